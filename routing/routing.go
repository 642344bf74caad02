// Package routing compiles the gateway config into an immutable table that
// answers one question per request: which provider, Envoy cluster and
// provider model serve the model name this client sent.
package routing

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/anthropic"
)

// Endpoint is an OpenAI API operation the gateway routes.
type Endpoint int

// Endpoints the gateway serves.
const (
	EndpointUnknown Endpoint = iota
	EndpointChat
	EndpointEmbeddings
	EndpointModels
	EndpointTranscriptions
	EndpointMessages            // Anthropic's POST /v1/messages (extproc/messages.go)
	EndpointMessagesCountTokens // Anthropic's POST /v1/messages/count_tokens
	EndpointResponses
)

func (e Endpoint) String() string {
	switch e {
	case EndpointChat:
		return "chat"
	case EndpointEmbeddings:
		return "embeddings"
	case EndpointModels:
		return "models"
	case EndpointTranscriptions:
		return "transcriptions"
	case EndpointMessages:
		return "messages"
	case EndpointMessagesCountTokens:
		return "messages_count_tokens"
	case EndpointResponses:
		return "responses"
	}
	return "unknown"
}

// suffix is the endpoint's path below the provider's base path.
func (e Endpoint) suffix() string {
	switch e {
	case EndpointChat:
		return "/chat/completions"
	case EndpointEmbeddings:
		return "/embeddings"
	case EndpointModels:
		return "/models"
	case EndpointTranscriptions:
		return "/audio/transcriptions"
	case EndpointResponses:
		return "/responses"
	}
	return ""
}

// ErrNoCredential means a provider's credential could not be read when the
// config was loaded (missing env var or Secret file).
var ErrNoCredential = errors.New("provider credential unavailable")

// Provider is a compiled provider entry.
type Provider struct {
	Name     string
	Schema   string
	Cluster  string
	BasePath string
	// Address and Port locate the provider when its config has a url
	// (server.address and server.port on the gateway's span); empty and 0
	// for a provider behind an externally managed Envoy cluster.
	Address string
	Port    int
	// Translator converts requests and responses for providers that do not
	// speak the OpenAI wire format; nil for OpenAI-compatible ones.
	Translator       translate.Schema
	DefaultMaxTokens int
	// MaxTokensField is the OpenAI-format field that carries the gateway's
	// output cap: max_completion_tokens or max_tokens.
	MaxTokensField string
	// AllowUnpriced lets requests for its models that have no price pass
	// where a budget or cost cap applies (config unpriced: allow).
	AllowUnpriced bool
	apiVersion    string                 // azure-openai
	priceAs       map[string]pricing.Key // model id → the price entry it is priced as

	credHeader string
	credValue  string // prefix + secret; never logged
	credErr    error
	paths      [endpoints]staticPath // by endpoint (setPaths)
	auth       authenticator         // minted credentials (bedrock, vertex-ai); nil otherwise
	tenantAuth map[string]tenantAuth // tenant → its own minted credential (vertex-ai BYOK)
}

// Path returns the upstream :path for an endpoint and provider model, and
// false when the provider does not offer the endpoint. The client's query
// string is never forwarded: OpenAI's API takes none, and an Azure-style
// client's api-version means nothing to another provider.
func (p *Provider) Path(e Endpoint, model string) (string, bool) {
	if e >= 0 && int(e) < len(p.paths) && p.paths[e].known {
		return p.paths[e].path, p.paths[e].ok
	}
	return p.path(e, model)
}

// staticPath is an endpoint's upstream path when it does not depend on the
// model: computed once, where building it per request cost an allocation.
type staticPath struct {
	path      string
	ok, known bool
}

// endpoints is the number of Endpoint values.
const endpoints = int(EndpointResponses) + 1

// setPaths computes every endpoint's path that does not name the model.
func (p *Provider) setPaths() {
	for e := range Endpoint(endpoints) {
		if p.Schema == config.SchemaAzureOpenAI && e != EndpointResponses {
			continue // the deployment (the model) is in the path
		}
		path, ok := p.path(e, "")
		p.paths[e] = staticPath{path: path, ok: ok, known: true}
	}
}

func (p *Provider) path(e Endpoint, model string) (string, bool) {
	switch {
	case p.Translator != nil:
		sub, ok := p.Translator.Path(e.suffix())
		return p.BasePath + sub, ok
	case p.Schema == config.SchemaMock:
		// Answered by the gateway itself (extproc/mock.go): no upstream path.
		return e.suffix(), e == EndpointChat || e == EndpointEmbeddings
	case p.Schema == config.SchemaAzureOpenAI && e == EndpointResponses:
		// Azure serves the Responses API only on its v1 path, with the
		// deployment as the body's model and no api-version
		// (https://learn.microsoft.com/azure/ai-foundry/openai/how-to/responses).
		return p.BasePath + "/v1/responses", true
	case p.Schema == config.SchemaAzureOpenAI:
		// Azure names the deployment in the path; the model is the deployment.
		return p.BasePath + "/deployments/" + url.PathEscape(model) + e.suffix() + "?api-version=" + url.QueryEscape(p.apiVersion), true
	}
	return p.BasePath + e.suffix(), true
}

// Mock reports whether the gateway answers the provider's requests itself
// (schema mock): no cluster, no credential, no upstream call.
func (p *Provider) Mock() bool { return p.Schema == config.SchemaMock }

// Credential returns the header and value to inject upstream. Header is
// empty for providers that take no credential.
func (p *Provider) Credential() (header, value string, err error) {
	if p.credErr != nil {
		return "", "", p.credErr
	}
	return p.credHeader, p.credValue, nil
}

// String never includes the credential.
func (p *Provider) String() string { return p.Name }

// PriceKey is the price table key of one of the provider's models: its
// price_as mapping, else the provider's own name and the model id.
func (p *Provider) PriceKey(model string) pricing.Key {
	if k, ok := p.priceAs[model]; ok {
		return k
	}
	return pricing.Key{Provider: p.Name, Model: model}
}

// Target is where one request goes.
type Target struct {
	Provider *Provider
	Model    string // provider model id written into the upstream body
	Name     string // the name the client asked for
	Direct   bool   // the client named "provider/model" rather than an alias
	// Chain is set for a fallback alias: Envoy's chain cluster tries its
	// members in order, and each attempt is translated for its member.
	Chain *Chain
}

// Chain is an ordered fallback chain behind one Envoy cluster.
type Chain struct {
	Cluster string
	Members []Target // in priority order
}

// Member returns the chain's member for a provider: the one an upstream
// attempt's endpoint belongs to.
func (c *Chain) Member(provider string) (Target, bool) {
	for _, m := range c.Members {
		if m.Provider.Name == provider {
			return m, true
		}
	}
	return Target{}, false
}

// Canonical is the target as "provider/model", what allowlists may name
// besides the client's own name.
func (t Target) Canonical() string { return t.Provider.Name + "/" + t.Model }

// Table maps client model names to targets. It is immutable.
type Table struct {
	names     map[string]Target    // aliases and allowed provider/model names
	pools     map[string]pool      // aliases that are weighted pools
	anyModel  map[string]*Provider // providers that accept any provider/model name
	providers map[string]*Provider
	listed    []string // sorted ids for /v1/models
}

// New compiles cfg. Secrets are read through lookupEnv and the filesystem; a
// provider whose credential cannot be read stays routable but every request
// to it fails with ErrNoCredential, so one missing Secret does not take every
// other provider down. The returned warnings say which (never the value).
func New(cfg *config.Config, lookupEnv func(string) (string, bool)) (*Table, []error) {
	t := &Table{
		names:     make(map[string]Target),
		anyModel:  make(map[string]*Provider),
		providers: make(map[string]*Provider, len(cfg.Providers)),
	}
	var warnings []error
	for _, pc := range cfg.Providers {
		p := &Provider{Name: pc.Name, Schema: pc.Schema, Cluster: pc.Cluster, BasePath: pc.BasePath,
			DefaultMaxTokens: pc.DefaultMaxTokens, MaxTokensField: pc.MaxTokensField, apiVersion: pc.APIVersion,
			AllowUnpriced: pc.Unpriced == config.UnpricedAllow, priceAs: priceAs(pc.PriceAs)}
		if p.MaxTokensField == "" {
			p.MaxTokensField = config.FieldMaxCompletionTokens
		}
		if pc.URL != "" {
			if e, err := config.ParseURL(pc.URL); err == nil { // Load validated it
				p.Address, p.Port = e.Host, e.Port
			}
		}
		if pc.Schema == config.SchemaAnthropic {
			p.Translator = &anthropic.Schema{}
		}
		if err := compileCloud(p, pc, lookupEnv); err != nil {
			p.credErr = fmt.Errorf("provider %s: %w: %v", pc.Name, ErrNoCredential, err)
			warnings = append(warnings, p.credErr)
		}
		if c := pc.Credential; c != nil {
			p.credHeader = strings.ToLower(c.Header)
			secret, err := c.Source.Resolve(lookupEnv)
			if err != nil {
				p.credErr = fmt.Errorf("provider %s: %w: %v", pc.Name, ErrNoCredential, err)
				warnings = append(warnings, p.credErr)
			} else {
				p.credValue = c.Prefix + string(secret)
			}
		}
		p.setPaths()
		t.providers[p.Name] = p
		switch pc.DirectModels {
		case "any":
			t.anyModel[p.Name] = p
			fallthrough
		case "listed":
			for _, m := range pc.Models {
				name := p.Name + "/" + m
				t.names[name] = Target{Provider: p, Model: m, Name: name, Direct: true}
				t.listed = append(t.listed, name)
			}
		}
	}
	warnings = append(warnings, t.compileTenantAuth(cfg, lookupEnv)...)
	t.pools = make(map[string]pool)
	for _, mc := range cfg.Models {
		if fb := mc.Fallback; fb != nil {
			ch := &Chain{Cluster: fb.Cluster}
			for _, tc := range fb.Targets {
				if p := t.providers[tc.Provider]; p != nil {
					ch.Members = append(ch.Members, Target{Provider: p, Model: tc.Model, Name: mc.Name, Chain: ch})
				}
			}
			if len(ch.Members) == 0 {
				warnings = append(warnings, fmt.Errorf("model %s: no usable fallback target", mc.Name))
				continue
			}
			t.names[mc.Name] = ch.Members[0]
			t.listed = append(t.listed, mc.Name)
			continue
		}
		if len(mc.Targets) > 0 {
			var pl pool
			for _, tc := range mc.Targets {
				p := t.providers[tc.Provider]
				if p == nil {
					warnings = append(warnings, fmt.Errorf("model %s: unknown provider %q", mc.Name, tc.Provider))
					continue
				}
				w := max(tc.Weight, 1)
				pl.targets = append(pl.targets, Target{Provider: p, Model: tc.Model, Name: mc.Name})
				pl.cumulative = append(pl.cumulative, pl.total+w)
				pl.total += w
			}
			if len(pl.targets) > 0 {
				t.pools[mc.Name] = pl
				t.listed = append(t.listed, mc.Name)
			}
			continue
		}
		p := t.providers[mc.Provider]
		if p == nil { // config validation guarantees this; stay safe anyway
			warnings = append(warnings, fmt.Errorf("model %s: unknown provider %q", mc.Name, mc.Provider))
			continue
		}
		model := mc.Model
		if alt := mc.IfNoCredential; alt != nil && p.credErr != nil {
			if ap := t.providers[alt.Provider]; ap != nil {
				p, model = ap, alt.Model
			}
		}
		t.names[mc.Name] = Target{Provider: p, Model: model, Name: mc.Name}
		t.listed = append(t.listed, mc.Name)
	}
	sort.Strings(t.listed)
	return t, warnings
}

// pool is a weighted set of targets for one alias.
type pool struct {
	targets    []Target
	cumulative []int // running sum of weights
	total      int
}

func (p pool) pick(intn func(n int) int) Target {
	r := intn(p.total)
	for i, c := range p.cumulative {
		if r < c {
			return p.targets[i]
		}
	}
	return p.targets[len(p.targets)-1]
}

// Choose finds the target for one request: like Resolve, but an alias that is
// a weighted pool picks a member, with intn(n) returning a number in [0, n).
func (t *Table) Choose(name string, intn func(n int) int) (Target, bool) {
	if pl, ok := t.pools[name]; ok {
		return pl.pick(intn), true
	}
	return t.Resolve(name)
}

// Resolve finds the target for a client model name: an alias, or
// "provider/model" where that provider allows it. For a weighted pool it
// returns the first member.
func (t *Table) Resolve(name string) (Target, bool) {
	if tg, ok := t.names[name]; ok {
		return tg, true
	}
	if pl, ok := t.pools[name]; ok {
		return pl.targets[0], true
	}
	prov, model, ok := strings.Cut(name, "/")
	if !ok || model == "" {
		return Target{}, false
	}
	if p := t.anyModel[prov]; p != nil {
		return Target{Provider: p, Model: model, Name: name, Direct: true}, true
	}
	return Target{}, false
}

// Models lists the model names clients may use, sorted. The slice is shared;
// do not modify it.
func (t *Table) Models() []string { return t.listed }

// Providers returns the compiled providers by name.
func (t *Table) Provider(name string) *Provider { return t.providers[name] }
