package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/tollgate-ai/tollgate/routing/pricing"
)

var (
	providerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	clusterRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)
	keyIDRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]*$`)
	envNameRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sha256RE       = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

const (
	maxProviderName = 63
	maxCluster      = 255
	maxModelName    = 256
	maxKeyID        = 128
)

// reservedHeaders may not carry a credential: Envoy or the gateway own them, or they are hop-by-hop.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"keep-alive": true, "proxy-connection": true, "te": true, "upgrade": true,
}

// where records the file and path at which a name was first defined, for duplicate messages.
type where struct {
	doc  *document
	path string
}

func (w where) String() string {
	if l := w.doc.line(w.path); l > 0 {
		return fmt.Sprintf("%s:%d", w.doc.file, l)
	}
	return w.doc.file
}

// validate checks every document, applies defaults in place, and records problems in the documents.
// Names must be unique and references must resolve across all documents.
func validate(docs []*document) {
	providers := map[string]where{}
	mocks := map[string]bool{} // providers of schema mock
	for _, d := range docs {
		if d.hasContent && !d.hasVersion {
			d.addf("version", "version is required (set version: %d)", Version)
		}
		if d.hasVersion && d.cfg.Version != Version {
			d.addf("version", "unsupported version %d (this gateway reads version %d)", d.cfg.Version, Version)
		}
		for i := range d.cfg.Providers {
			path := fmt.Sprintf("providers[%d]", i)
			p := &d.cfg.Providers[i]
			validateProvider(d, path, p)
			if p.Name == "" {
				continue
			}
			if first, dup := providers[p.Name]; dup {
				d.addf(path+".name", "duplicate provider name %q (first defined at %s)", p.Name, first)
			} else {
				providers[p.Name] = where{d, path + ".name"}
				mocks[p.Name] = p.Schema == SchemaMock
			}
		}
	}

	policies := validateGuardrails(docs)
	tenants := validateTenants(docs, providers)
	checkGuardrailRefs(docs, policies)
	validateMetadataLimits(docs)
	validatePricing(docs)
	validateLimits(docs)
	validateLedger(docs)
	validateCache(docs)
	validateAdmin(docs)
	validateMetrics(docs)
	validateBasePath(docs)

	aliases := map[string]where{}
	ids := map[string]where{}
	hashes := map[string]where{}
	for _, d := range docs {
		for i, m := range d.cfg.Models {
			path := fmt.Sprintf("models[%d]", i)
			if checkModelName(d, path+".name", "name", m.Name) {
				if strings.Contains(m.Name, "/") {
					d.addf(path+".name", "alias name %q must not contain \"/\" (that form means <provider>/<model>)", m.Name)
				} else if first, dup := aliases[m.Name]; dup {
					d.addf(path+".name", "duplicate model alias %q (first defined at %s)", m.Name, first)
				} else {
					aliases[m.Name] = where{d, path + ".name"}
				}
			}
			if m.IfNoCredential != nil && (m.Fallback != nil || len(m.Targets) > 0) {
				d.addf(path+".if_no_credential", "if_no_credential applies to a single provider and model, not to targets or fallback")
			}
			if fb := m.Fallback; fb != nil {
				if m.Provider != "" || m.Model != "" || len(m.Targets) > 0 {
					d.addf(path, "set one of provider and model, targets, or fallback")
				}
				if fb.Cluster != "" && !clusterRE.MatchString(fb.Cluster) {
					d.addf(path+".fallback.cluster", "cluster %q is not a valid cluster name", fb.Cluster)
				}
				if len(fb.Targets) < 2 {
					d.addf(path+".fallback.targets", "a fallback chain needs at least two targets")
				}
				seen := map[string]bool{}
				for j, tg := range fb.Targets {
					tp := fmt.Sprintf("%s.fallback.targets[%d]", path, j)
					checkProviderRef(d, tp+".provider", tg.Provider, providers)
					checkModelName(d, tp+".model", "model", tg.Model)
					if mocks[tg.Provider] {
						// Chain attempts are sent by Envoy's upstream filter to a cluster;
						// the gateway answers mock requests itself, before any cluster.
						d.addf(tp+".provider", "provider %q has schema %s, which the gateway answers itself: it cannot be a fallback member (use it as a plain alias or pool target)", tg.Provider, SchemaMock)
					}
					if seen[tg.Provider] {
						d.addf(tp+".provider", "provider %q is already in the chain: attempts are told apart by provider", tg.Provider)
					}
					seen[tg.Provider] = true
				}
				continue
			}
			if len(m.Targets) > 0 {
				if m.Provider != "" || m.Model != "" {
					d.addf(path, "set either provider and model, or targets, not both")
				}
				if len(m.Targets) > MaxPoolTargets {
					d.addf(path+".targets", "at most %d targets", MaxPoolTargets)
				}
				for j, tg := range m.Targets {
					tp := fmt.Sprintf("%s.targets[%d]", path, j)
					checkProviderRef(d, tp+".provider", tg.Provider, providers)
					checkModelName(d, tp+".model", "model", tg.Model)
					if tg.Weight < 0 || tg.Weight > 1000 {
						d.addf(tp+".weight", "weight must be between 1 and 1000")
					}
				}
				continue
			}
			checkProviderRef(d, path+".provider", m.Provider, providers)
			checkModelName(d, path+".model", "model", m.Model)
			if t := m.IfNoCredential; t != nil {
				checkProviderRef(d, path+".if_no_credential.provider", t.Provider, providers)
				checkModelName(d, path+".if_no_credential.model", "model", t.Model)
			}
		}
		for i, k := range d.cfg.Keys {
			path := fmt.Sprintf("keys[%d]", i)
			switch {
			case k.ID == "":
				d.addf(path+".id", "id is required")
			case len(k.ID) > maxKeyID || !keyIDRE.MatchString(k.ID):
				d.addf(path+".id", "id %q is invalid: use 1 to %d characters of letters, digits, '.', '_', ':', '@' and '-', starting with a letter or digit", k.ID, maxKeyID)
			default:
				if first, dup := ids[k.ID]; dup {
					d.addf(path+".id", "duplicate key id %q (first defined at %s)", k.ID, first)
				} else {
					ids[k.ID] = where{d, path + ".id"}
				}
			}
			// Never echo the sha256 value: an operator may have pasted the key itself.
			switch {
			case k.SHA256 == "":
				d.addf(path+".sha256", "sha256 is required")
			case !sha256RE.MatchString(k.SHA256):
				d.addf(path+".sha256", "must be the SHA-256 of the key as 64 lower-case hex characters (printf %%s \"$KEY\" | sha256sum), not the key itself")
			default:
				if first, dup := hashes[k.SHA256]; dup {
					d.addf(path+".sha256", "same sha256 as the key at %s", first)
				} else {
					hashes[k.SHA256] = where{d, path + ".sha256"}
				}
			}
			validateKeyPolicy(d, path, k, tenants)
		}
	}
	validateClusters(docs)
}

// tenantApps is what a key may reference: tenant name → app names.
type tenantApps map[string]map[string]bool

func validateTenants(docs []*document, providers map[string]where) tenantApps {
	tenants := tenantApps{}
	first := map[string]where{}
	for _, d := range docs {
		for i := range d.cfg.Tenants {
			t := &d.cfg.Tenants[i]
			path := fmt.Sprintf("tenants[%d]", i)
			if checkName(d, path+".name", t.Name) {
				if f, dup := first[t.Name]; dup {
					d.addf(path+".name", "duplicate tenant %q (first defined at %s)", t.Name, f)
				} else {
					first[t.Name] = where{d, path + ".name"}
				}
			}
			apps := map[string]bool{}
			tenants[t.Name] = apps
			for j := range t.Apps {
				a := &t.Apps[j]
				ap := fmt.Sprintf("%s.apps[%d]", path, j)
				if checkName(d, ap+".name", a.Name) {
					if apps[a.Name] {
						d.addf(ap+".name", "duplicate app %q in tenant %q", a.Name, t.Name)
					}
					apps[a.Name] = true
				}
				checkPatterns(d, ap+".models", a.Models)
				checkOptionalName(d, ap+".tier", a.Tier)
				checkOptionalName(d, ap+".guardrail_policy", a.GuardrailPolicy)
				for k, m := range a.RequiredMetadata {
					if !metadataKeyRE.MatchString(m) {
						d.addf(fmt.Sprintf("%s.required_metadata[%d]", ap, k), "metadata key %q must be 1 to 64 characters of a-z, 0-9 and '_'", m)
					}
				}
				switch a.OnBudgetExhausted {
				case "", "finish", "terminate":
				default:
					d.addf(ap+".on_budget_exhausted", "on_budget_exhausted %q must be finish or terminate", a.OnBudgetExhausted)
				}
				for k, id := range a.AgentIDs {
					if !IsUUIDv4(id) {
						d.addf(fmt.Sprintf("%s.agent_ids[%d]", ap, k), "agent id %q is not a UUID v4", id)
					}
				}
			}
			byok := map[string]bool{}
			for j := range t.ProviderCredentials {
				c := &t.ProviderCredentials[j]
				cp := fmt.Sprintf("%s.provider_credentials[%d]", path, j)
				switch w, ok := providers[c.Provider]; {
				case c.Provider == "":
					d.addf(cp+".provider", "provider is required")
				case !ok:
					d.addf(cp+".provider", "unknown provider %q", c.Provider)
				case w.doc.providerCredential(c.Provider) == nil && !w.doc.mintsFromDocument(c.Provider):
					d.addf(cp+".provider", "provider %q takes no credential, so there is nothing to bring", c.Provider)
				case byok[c.Provider]:
					d.addf(cp+".provider", "a second credential for provider %q", c.Provider)
				}
				byok[c.Provider] = true
				validateSecretRef(d, cp+".source", &c.Source)
			}
		}
	}
	return tenants
}

// providerCredential finds a provider defined in this document.
func (d *document) providerCredential(name string) *Credential {
	for _, p := range d.cfg.Providers {
		if p.Name == name {
			return p.Credential
		}
	}
	return nil
}

func validateKeyPolicy(d *document, path string, k Key, tenants tenantApps) {
	tenant := k.Tenant
	if tenant == "" {
		tenant = DefaultTenant
	}
	apps, ok := tenants[tenant]
	switch {
	case !ok && k.Tenant != "":
		d.addf(path+".tenant", "unknown tenant %q", k.Tenant)
	case k.App != "" && !apps[k.App]:
		d.addf(path+".app", "tenant %q has no app %q", tenant, k.App)
	}
	checkPatterns(d, path+".models", k.Models)
	checkOptionalName(d, path+".tier", k.Tier)
	if k.Expires != "" {
		if _, err := time.Parse(time.RFC3339, k.Expires); err != nil {
			d.addf(path+".expires", "expires %q is not an RFC 3339 time such as 2027-01-31T00:00:00Z", k.Expires)
		}
	}
	for name := range k.Labels {
		if name == "" || len(name) > 63 {
			d.addf(path+".labels", "label names must be 1 to 63 characters")
		}
	}
}

func validateMetadataLimits(docs []*document) {
	var first *where
	for _, d := range docs {
		m := d.cfg.RequestMetadata
		if m == nil {
			continue
		}
		if first != nil {
			d.addf("request_metadata", "request_metadata is already set at %s", *first)
			continue
		}
		first = &where{d, "request_metadata"}
		if m.MaxKeys < 0 || m.MaxKeys > 256 {
			d.addf("request_metadata.max_keys", "max_keys must be between 0 and 256")
		}
		if m.MaxValueLength < 0 || m.MaxValueLength > 65536 {
			d.addf("request_metadata.max_value_length", "max_value_length must be between 0 and 65536")
		}
	}
}

var (
	nameRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	metadataKeyRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)
)

// IsUUIDv4 reports whether s is a UUID of version 4 and the RFC 9562 variant:
// 8-4-4-4-12 hex digits, the third group starting with 4, the fourth with one
// of 89abAB. Checked byte by byte: it runs on every request with x-agent-id.
func IsUUIDv4(s string) bool {
	if len(s) != 36 || s[14] != '4' {
		return false
	}
	switch s[19] {
	case '8', '9', 'a', 'b', 'A', 'B':
	default:
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// checkName validates a tenant or app name and reports whether it is usable.
func checkName(d *document, path, s string) bool {
	switch {
	case s == "":
		d.addf(path, "name is required")
		return false
	case !nameRE.MatchString(s):
		d.addf(path, "name %q is invalid: use 1 to 63 characters of letters, digits, '_', '.' and '-', starting with a letter or digit", s)
		return false
	}
	return true
}

func checkOptionalName(d *document, path, s string) {
	if s != "" && !nameRE.MatchString(s) {
		d.addf(path, "%q is invalid: use 1 to 63 characters of letters, digits, '_', '.' and '-', starting with a letter or digit", s)
	}
}

// checkPatterns validates model allowlist globs ('*' matches any run of characters, '?' one).
func checkPatterns(d *document, path string, patterns []string) {
	for i, p := range patterns {
		checkModelName(d, fmt.Sprintf("%s[%d]", path, i), "pattern", p)
	}
}

func validateProvider(d *document, path string, p *Provider) {
	switch {
	case p.Name == "":
		d.addf(path+".name", "name is required")
	case len(p.Name) > maxProviderName || !providerNameRE.MatchString(p.Name):
		d.addf(path+".name", "name %q is invalid: use 1 to %d characters of a-z, 0-9, '_' and '-', starting with a-z or 0-9", p.Name, maxProviderName)
	}

	switch cloud := validateCloud(d, path, p); {
	case cloud:
	case p.Schema == SchemaMock:
		validateMock(d, path, p)
	case p.Schema == SchemaOpenAI, p.Schema == SchemaAnthropic:
		if p.APIVersion != "" {
			d.addf(path+".api_version", "api_version applies to schema %s only", SchemaAzureOpenAI)
		}
	case p.Schema == SchemaAzureOpenAI:
		if p.APIVersion == "" {
			d.addf(path+".api_version", "api_version is required for schema %s (e.g. \"2024-10-21\")", SchemaAzureOpenAI)
		} else if strings.ContainsAny(p.APIVersion, "&?#/ ") {
			d.addf(path+".api_version", "api_version %q is not a version string", p.APIVersion)
		}
	case p.Schema == "":
		d.addf(path+".schema", "schema is required (supported: %s)", supportedSchemas)
	default:
		d.addf(path+".schema", "unsupported schema %q (supported: %s)", p.Schema, supportedSchemas)
	}
	if p.DefaultMaxTokens < 0 {
		d.addf(path+".default_max_tokens", "default_max_tokens must not be negative")
	}
	switch p.MaxTokensField {
	case "", FieldMaxCompletionTokens, FieldMaxTokens:
		if p.MaxTokensField != "" && p.Schema == SchemaAnthropic {
			d.addf(path+".max_tokens_field", "max_tokens_field applies to schemas %s and %s; %s always sends max_tokens", SchemaOpenAI, SchemaAzureOpenAI, SchemaAnthropic)
		}
	default:
		d.addf(path+".max_tokens_field", "max_tokens_field %q must be %s or %s", p.MaxTokensField, FieldMaxCompletionTokens, FieldMaxTokens)
	}

	validateUpstream(d, path, p)

	switch {
	case p.Schema == SchemaMock: // validateMock
	case p.BasePath == "" && p.Schema == SchemaBedrock: // Bedrock's paths start at /model
	case p.BasePath == "":
		p.BasePath = DefaultBasePath
	default:
		if msg := checkBasePath(p.BasePath); msg != "" {
			d.addf(path+".base_path", "base_path %q %s", p.BasePath, msg)
		}
	}

	if p.Credential != nil {
		validateCredential(d, path+".credential", p.Credential)
	}

	seen := map[string]bool{}
	for i, m := range p.Models {
		mp := fmt.Sprintf("%s.models[%d]", path, i)
		if !checkModelName(d, mp, "model id", m) {
			continue
		}
		if seen[m] {
			d.addf(mp, "duplicate model %q", m)
		}
		seen[m] = true
	}

	switch p.DirectModels {
	case "":
		p.DirectModels = DirectNone
	case DirectNone, DirectListed, DirectAny:
	default:
		d.addf(path+".direct_models", "direct_models %q must be one of %s, %s, %s", p.DirectModels, DirectNone, DirectListed, DirectAny)
	}

	switch p.Unpriced {
	case "", UnpricedRefuse, UnpricedAllow: // empty: refuse
	default:
		d.addf(path+".unpriced", "unpriced %q must be %s or %s", p.Unpriced, UnpricedRefuse, UnpricedAllow)
	}
	for _, m := range sortedKeys(p.PriceAs) {
		mp := path + ".price_as." + m
		if !checkModelName(d, mp, "model id", m) {
			continue
		}
		if k, ok := pricing.ParseKey(p.PriceAs[m]); !ok || !providerNameRE.MatchString(k.Provider) {
			d.addf(mp, "price_as %q must name a price entry as <provider>/<model>, e.g. openai/gpt-4o", p.PriceAs[m])
		}
	}
}

// validateMock checks a schema mock provider: the gateway answers it itself, so nothing
// that describes an upstream applies.
func validateMock(d *document, path string, p *Provider) {
	if p.Cluster != "" {
		d.addf(path+".cluster", "schema %s is answered by the gateway itself: remove cluster", SchemaMock)
	}
	if p.Credential != nil {
		d.addf(path+".credential", "schema %s takes no credential: remove credential", SchemaMock)
	}
	if p.BasePath != "" {
		d.addf(path+".base_path", "schema %s has no upstream path: remove base_path", SchemaMock)
	}
	if p.APIVersion != "" {
		d.addf(path+".api_version", "api_version applies to schema %s only", SchemaAzureOpenAI)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkBasePath returns why s is not a usable upstream path prefix, or "".
func checkBasePath(s string) string {
	switch {
	case !strings.HasPrefix(s, "/"):
		return `must start with "/"`
	case strings.HasSuffix(s, "/"):
		return `must not end with "/"`
	case strings.ContainsAny(s, "?#"):
		return "must not contain a query or fragment"
	case strings.Contains(s, "//"):
		return `must not contain "//"`
	}
	for _, seg := range strings.Split(s[1:], "/") {
		if seg == "." || seg == ".." {
			return `must not contain "." or ".." segments`
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "has a malformed percent-encoding"
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("/-._~!$&'()*+,;=:@", c) >= 0:
		default:
			return fmt.Sprintf("contains %q, which is not allowed in a URL path (percent-encode it)", c)
		}
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func validateCredential(d *document, path string, c *Credential) {
	c.Header = strings.ToLower(c.Header)
	switch h := c.Header; {
	case h == "":
		d.addf(path+".header", "header is required")
	case strings.HasPrefix(h, ":"):
		d.addf(path+".header", "header %q: pseudo-headers cannot carry a credential", h)
	case !isToken(h):
		d.addf(path+".header", "header %q is not a valid HTTP header name", h)
	case reservedHeaders[h], strings.HasPrefix(h, "x-envoy-"), strings.HasPrefix(h, "x-tollgate-"):
		d.addf(path+".header", "header %q is reserved and cannot carry a credential", h)
	}

	for i := 0; i < len(c.Prefix); i++ {
		if b := c.Prefix[i]; b < 0x20 || b > 0x7e {
			d.addf(path+".prefix", "prefix may contain only printable ASCII characters and spaces")
			break
		}
	}
	// YAML drops trailing spaces of unquoted strings, so `prefix: Bearer ` silently becomes "Bearer".
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, " ") {
		d.addf(path+".prefix", "prefix %q must end with a space; quote it: prefix: %q", c.Prefix, c.Prefix+" ")
	}

	validateSecretRef(d, path+".source", &c.Source)
}

// validateSecretRef checks that exactly one source is named, and resolves a relative file.
func validateSecretRef(d *document, path string, s *SecretRef) {
	switch {
	case (s.Env == "") == (s.File == ""):
		d.addf(path, "exactly one of env or file is required")
	case s.Env != "":
		if !envNameRE.MatchString(s.Env) {
			d.addf(path+".env", "env %q is not a valid environment variable name", s.Env)
		}
	default:
		if strings.ContainsRune(s.File, 0) {
			d.addf(path+".file", "file must not contain NUL")
			break
		}
		// A relative secret file is relative to the configuration file that names it, not to the
		// process's working directory.
		if !filepath.IsAbs(s.File) {
			s.File = filepath.Join(filepath.Dir(d.file), s.File)
		}
	}
}

// isToken reports whether s is an RFC 9110 token (a valid header field name).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// checkModelName validates a model id or alias name (what clients send as "model") and reports whether it
// is usable.
func checkModelName(d *document, path, what, s string) bool {
	switch {
	case s == "":
		d.addf(path, "%s is required", what)
		return false
	case len(s) > maxModelName:
		d.addf(path, "%s is longer than %d bytes", what, maxModelName)
		return false
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0:
		d.addf(path, "%s %q must not contain spaces or control characters", what, s)
		return false
	}
	return true
}

// validatePricing parses each file's pricing section with the pricing package and checks that no model
// entry is defined twice across files.
func validatePricing(docs []*document) {
	first := map[string]string{}
	for _, d := range docs {
		if d.cfg.Pricing == nil {
			continue
		}
		t, err := pricing.ParseNode(d.file, d.cfg.Pricing)
		if err != nil {
			var ps Problems
			if errors.As(err, &ps) {
				for _, p := range ps {
					path := "pricing"
					if p.Path != "" {
						path += "." + p.Path
					}
					d.problems = append(d.problems, Problem{File: d.file, Line: p.Line, Path: path, Message: p.Message})
				}
			} else {
				d.addf("pricing", "%v", err)
			}
			continue
		}
		for name := range t.Models {
			if f, dup := first[name]; dup {
				d.addf("pricing", "price entry %q is already defined in %s", name, f)
			}
			first[name] = d.file
		}
		d.cfg.Prices = t
	}
}

func validateLimits(docs []*document) {
	var first *where
	for _, d := range docs {
		l := d.cfg.Limits
		if l == nil {
			continue
		}
		if first != nil {
			d.addf("limits", "limits is already set at %s", *first)
			continue
		}
		first = &where{d, "limits"}
		switch l.Backend {
		case "", "memory":
			if l.Redis != nil {
				d.addf("limits.redis", "redis is set but backend is %q", l.Backend)
			}
		case "redis":
			if l.Redis == nil {
				d.addf("limits.redis", "backend redis needs redis.url")
			} else {
				validateSecretRef(d, "limits.redis.url", &l.Redis.URL)
				validateRedis(d, l.Redis)
			}
		default:
			d.addf("limits.backend", "backend %q must be memory or redis", l.Backend)
		}
		if f := l.OnBackendFailure; f != nil {
			for name, v := range map[string]string{"requests": f.Requests, "tokens": f.Tokens, "budgets": f.Budgets} {
				if v != "" && v != "open" && v != "closed" {
					d.addf("limits.on_backend_failure."+name, "%q must be open or closed", v)
				}
			}
		}
		if l.DefaultMaxTokens < 0 {
			d.addf("limits.default_max_tokens", "default_max_tokens must not be negative")
		}
		for i, r := range l.RateLimits {
			path := fmt.Sprintf("limits.rate_limits[%d]", i)
			checkScope(d, path, r.Scope, r.Match, false)
			switch {
			case r.RequestsPerMinute < 0 || r.TokensPerMinute < 0:
				d.addf(path, "limits must not be negative")
			case r.RequestsPerMinute == 0 && r.TokensPerMinute == 0:
				d.addf(path, "set requests_per_minute, tokens_per_minute or both")
			}
		}
		for i, b := range l.Budgets {
			path := fmt.Sprintf("limits.budgets[%d]", i)
			checkScope(d, path, b.Scope, b.Match, true)
			set := false
			for name, v := range map[string]Decimal{"daily_usd": b.DailyUSD, "monthly_usd": b.MonthlyUSD, "max_cost_per_request_usd": b.MaxCostPerRequestUSD} {
				if v == "" {
					continue
				}
				set = true
				if _, err := pricing.ParseUSD(string(v)); err != nil {
					d.addf(path+"."+name, "%q is not a USD amount such as 25 or 0.50", string(v))
				}
			}
			if !set {
				d.addf(path, "set daily_usd, monthly_usd, max_cost_per_request_usd or several")
			}
		}
	}
}

// validateRedis checks the limiter's Redis backend's waits and sizes.
func validateRedis(d *document, r *RedisBackend) { validateRedisAt(d, "limits.redis", r) }

// validateRedisAt checks a Redis backend's waits and sizes; at is its path.
func validateRedisAt(d *document, at string, r *RedisBackend) {
	for _, f := range []struct {
		name    string
		v       Duration
		max     time.Duration
		maxHint string
	}{
		{"dial_timeout", r.DialTimeout, time.Minute, ""},
		{"read_timeout", r.ReadTimeout, time.Minute, ""},
		{"write_timeout", r.WriteTimeout, time.Minute, ""},
		{"admission_timeout", r.AdmissionTimeout, MaxRedisAdmissionTimeout, ": admission must end well before Envoy's message_timeout (10s in the shipped bootstraps)"},
		{"reconcile_timeout", r.ReconcileTimeout, time.Minute, ""},
	} {
		if f.v == "" {
			continue
		}
		v, err := time.ParseDuration(string(f.v))
		switch {
		case err != nil:
			d.addf(at+"."+f.name, "%q is not a duration such as 250ms or 2s", string(f.v))
		case v <= 0 || v > f.max:
			d.addf(at+"."+f.name, "%s must be above 0 and at most %v%s", f.name, f.max, f.maxHint)
		}
	}
	if r.PoolSize < 0 || r.PoolSize > 10_000 {
		d.addf(at+".pool_size", "pool_size must be between 0 (10 per CPU) and 10000")
	}
	if r.MaxRetries != nil && (*r.MaxRetries < 0 || *r.MaxRetries > 10) {
		d.addf(at+".max_retries", "max_retries must be between 0 and 10")
	}
	if r.ReconcileQueue < 0 || r.ReconcileQueue > 1_000_000 {
		d.addf(at+".reconcile_queue", "reconcile_queue must be between 0 (the default, 10000) and 1000000")
	}
}

func checkScope(d *document, path, scope, match string, budget bool) {
	switch scope {
	case ScopeKey, ScopeApp, ScopeTenant:
	case ScopeTier, ScopeModel, ScopeGlobal:
		if budget {
			d.addf(path+".scope", "budgets apply to key, app or tenant, not %q", scope)
			return
		}
	case "":
		d.addf(path+".scope", "scope is required (key, app, tenant, tier, model or global)")
		return
	default:
		d.addf(path+".scope", "unknown scope %q (key, app, tenant, tier, model or global)", scope)
		return
	}
	if scope == ScopeGlobal && match != "" {
		d.addf(path+".match", "a global limit matches everything; remove match")
	}
	if scope == ScopeApp && match != "" && !strings.Contains(match, "/") {
		d.addf(path+".match", "an app is matched as tenant/app, e.g. acme/%s", match)
	}
}

// validateGuardrails checks each file's guardrail policies and returns every policy name; a name may be defined
// once across files.
func validateGuardrails(docs []*document) map[string]bool {
	names := map[string]bool{}
	for _, d := range docs {
		g := d.cfg.Guardrails
		if g == nil {
			continue
		}
		var ps guardrailProblems
		g.validate(&ps)
		for _, p := range ps.list {
			path := "guardrails." + p.Path
			d.problems = append(d.problems, Problem{File: d.file, Line: d.line(path), Path: path, Message: p.Message})
		}
		for i, pc := range g.Policies {
			if names[pc.Name] {
				d.addf(fmt.Sprintf("guardrails.policies[%d].name", i), "guardrail policy %q is defined more than once", pc.Name)
			}
			names[pc.Name] = true
		}
	}
	return names
}

// checkGuardrailRefs requires every app's guardrail_policy to name a policy.
func checkGuardrailRefs(docs []*document, policies map[string]bool) {
	for _, d := range docs {
		for i, t := range d.cfg.Tenants {
			for j, a := range t.Apps {
				if a.GuardrailPolicy != "" && !policies[a.GuardrailPolicy] {
					d.addf(fmt.Sprintf("tenants[%d].apps[%d].guardrail_policy", i, j), "unknown guardrail policy %q", a.GuardrailPolicy)
				}
			}
		}
	}
}

func checkProviderRef(d *document, path, name string, providers map[string]where) {
	switch _, ok := providers[name]; {
	case name == "":
		d.addf(path, "provider is required")
	case !ok:
		d.addf(path, "unknown provider %q", name)
	}
}

func validateLedger(docs []*document) {
	var first *where
	for _, d := range docs {
		l := d.cfg.Ledger
		if l == nil {
			continue
		}
		if first != nil {
			d.addf("ledger", "ledger is already set at %s", *first)
			continue
		}
		first = &where{d, "ledger"}
		switch l.Backend {
		case "", "sqlite":
			if l.Postgres != nil {
				d.addf("ledger.postgres", "postgres is set but backend is %q", l.Backend)
			}
			if l.Backend == "" {
				l.Backend = "sqlite"
			}
			if l.SQLite == nil {
				l.SQLite = &SQLiteLedger{}
			}
			if l.SQLite.Path == "" {
				l.SQLite.Path = DefaultSQLitePath
			}
			if strings.ContainsRune(l.SQLite.Path, 0) || strings.ContainsAny(l.SQLite.Path, "?#") {
				d.addf("ledger.sqlite.path", "path must not contain NUL, ? or #")
			} else if !filepath.IsAbs(l.SQLite.Path) {
				l.SQLite.Path = filepath.Join(filepath.Dir(d.file), l.SQLite.Path)
			}
		case "postgres":
			if l.SQLite != nil {
				d.addf("ledger.sqlite", "sqlite is set but backend is postgres")
			}
			if l.Postgres == nil {
				d.addf("ledger.postgres", "backend postgres needs postgres.dsn")
			} else {
				validateSecretRef(d, "ledger.postgres.dsn", &l.Postgres.DSN)
			}
		default:
			d.addf("ledger.backend", "backend %q must be sqlite or postgres", l.Backend)
		}
		bound := func(field string, v *int, def, max int) {
			switch {
			case *v < 0 || *v > max:
				d.addf("ledger."+field, "%s must be between 1 and %d (0 or unset: %d)", field, max, def)
			case *v == 0:
				*v = def
			}
		}
		bound("retention_days", &l.RetentionDays, DefaultRetentionDays, MaxRetentionDays)
		bound("queue_size", &l.QueueSize, DefaultLedgerQueue, MaxLedgerQueue)
		bound("batch_size", &l.BatchSize, DefaultLedgerBatch, MaxLedgerBatch)
	}
}

func validateAdmin(docs []*document) {
	var first *where
	for _, d := range docs {
		a := d.cfg.Admin
		if a == nil {
			continue
		}
		if first != nil {
			d.addf("admin", "admin is already set at %s", *first)
			continue
		}
		first = &where{d, "admin"}
		if a.Token != nil {
			validateSecretRef(d, "admin.token", a.Token)
		}
	}
}

func validateMetrics(docs []*document) {
	var first *where
	for _, d := range docs {
		m := d.cfg.Metrics
		if m == nil {
			continue
		}
		if first != nil {
			d.addf("metrics", "metrics is already set at %s", *first)
			continue
		}
		first = &where{d, "metrics"}
		seen := map[string]bool{}
		for i, l := range m.Labels {
			path := fmt.Sprintf("metrics.labels[%d]", i)
			switch {
			case l != "tenant" && l != "app":
				d.addf(path, "label %q must be tenant or app", l)
			case seen[l]:
				d.addf(path, "label %q is listed twice", l)
			}
			seen[l] = true
		}
	}
}

// validateBasePath checks the prefix every endpoint is served under: one
// clean absolute path, so the processor and Envoy's routes agree on it.
func validateBasePath(docs []*document) {
	var first *where
	for _, d := range docs {
		b := d.cfg.BasePath
		if b == "" {
			continue
		}
		if first != nil {
			d.addf("base_path", "base_path is already set at %s", *first)
			continue
		}
		first = &where{d, "base_path"}
		if msg := basePathProblem(b); msg != "" {
			d.addf("base_path", "base_path %q %s", b, msg)
		}
	}
}

func basePathProblem(b string) string {
	switch {
	case !strings.HasPrefix(b, "/"):
		return "must start with \"/\""
	case b == "/" || strings.HasSuffix(b, "/"):
		return "must not end with \"/\" (leave it unset to serve at the root)"
	case strings.ContainsAny(b, "?#%;*{}\\ \t\r\n"):
		return "may contain only path characters (no query, fragment, escapes or spaces)"
	}
	for _, seg := range strings.Split(b[1:], "/") {
		switch seg {
		case "":
			return "must not contain empty segments (\"//\")"
		case ".", "..":
			return "must not contain \".\" or \"..\" segments"
		}
	}
	return ""
}
