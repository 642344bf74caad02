// Package config defines Tollgate's gateway configuration (providers, model aliases, gateway keys), loads it
// strictly from YAML or JSON files and directories (Kubernetes ConfigMap and Secret volumes), and watches those
// files for hot reload.
//
// Secrets never appear in the configuration itself: a [SecretRef] names an environment variable or a mounted
// file, and [SecretRef.Resolve] reads it when the caller needs the value.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// Version is the only configuration schema version this package accepts.
const Version = 1

// Provider schemas (the wire format a provider speaks).
const (
	SchemaOpenAI      = "openai"       // OpenAI and OpenAI-compatible APIs (Gemini's, Mistral, Ollama, vLLM, OpenRouter)
	SchemaAnthropic   = "anthropic"    // Anthropic Messages API
	SchemaAzureOpenAI = "azure-openai" // Azure OpenAI: deployment in the path, api-version query
	// SchemaMock is the gateway's built-in mock provider: answered by the processor itself
	// (internal/mockprovider), with no cluster, no credential and no upstream call.
	SchemaMock = "mock"
)

// Values of Provider.DirectModels.
const (
	DirectNone   = "none"   // clients may only use aliases
	DirectListed = "listed" // clients may also use "<provider>/<model>" for the provider's listed models
	DirectAny    = "any"    // clients may use "<provider>/<model>" for any model id
)

// DefaultBasePath is the upstream path prefix used when a provider sets none.
const DefaultBasePath = "/v1"

// Config is the whole gateway configuration, merged from every loaded file.
// After [Load] or [Parse] succeeds, defaults are filled in (Provider.BasePath, Provider.DirectModels),
// credential header names are lower-case and relative secret file paths are resolved.
type Config struct {
	Version         int             `json:"version"`          // must be 1, in every file that sets anything
	Providers       []Provider      `json:"providers"`        // upstream providers
	Models          []Model         `json:"models"`           // aliases
	Keys            []Key           `json:"keys"`             // gateway keys (usually a Secret)
	Tenants         []Tenant        `json:"tenants"`          // tenants and their apps (policy config)
	RequestMetadata *MetadataLimits `json:"request_metadata"` // limits on tollgate_metadata; defaults when unset
	Pricing         *yaml.Node      `json:"pricing"`          // price table (routing/pricing format); merged over the built-in one
	Limits          *Limits         `json:"limits"`           // rate limits and budgets (policy config)
	Guardrails      *Guardrails     `json:"guardrails"`       // guardrail policies, named by apps
	Ledger          *Ledger         `json:"ledger"`           // usage ledger database; at most one file
	Cache           *Cache          `json:"cache"`            // response cache; at most one file
	Admin           *Admin          `json:"admin"`            // admin API settings; at most one file
	Metrics         *Metrics        `json:"metrics"`          // Prometheus options; at most one file; read at start
	BasePath        string          `json:"base_path"`        // prefix every endpoint is served under ("/api/v1/llm"); at most one file

	// Prices is the pricing section parsed and merged across files: model entry name → entry.
	Prices pricing.Table `json:"-"`
}

// Limits configures rate limiting and budgets. At most one file sets it.
type Limits struct {
	Backend          string         `json:"backend"`            // "memory" (default) or "redis"; a change needs a restart
	Redis            *RedisBackend  `json:"redis"`              // required with backend redis
	OnBackendFailure *FailurePolicy `json:"on_backend_failure"` // what to do when Redis is unreachable
	DefaultMaxTokens int            `json:"default_max_tokens"` // output reservation when a request sets no max_tokens; default 1024
	RateLimits       []RateLimit    `json:"rate_limits"`
	Budgets          []BudgetRule   `json:"budgets"`
}

// Metrics configures the Prometheus metrics. Like the ledger it is read at
// start: a label set cannot change while the process runs.
type Metrics struct {
	// Labels are extra labels on the cost and token counters: "tenant",
	// "app" (the app name, with tenant when both are set). Each is capped at
	// MaxMetricLabelValues distinct values; later ones are "_OTHER".
	Labels []string `json:"labels"`
}

// MaxMetricLabelValues bounds the distinct values of a configured metric
// label, as the model label is bounded.
const MaxMetricLabelValues = 200

// Ledger configures the usage ledger: one database row per finished request, written asynchronously. The
// backend is chosen at start; a change needs a restart.
type Ledger struct {
	Backend       string          `json:"backend"`        // "sqlite" (default) or "postgres"
	SQLite        *SQLiteLedger   `json:"sqlite"`         // with backend sqlite
	Postgres      *PostgresLedger `json:"postgres"`       // required with backend postgres
	RetentionDays int             `json:"retention_days"` // rows older than this are purged; DefaultRetentionDays when 0
	QueueSize     int             `json:"queue_size"`     // records held for the writer; DefaultLedgerQueue when 0
	BatchSize     int             `json:"batch_size"`     // rows per insert; DefaultLedgerBatch when 0
}

// SQLiteLedger is the embedded backend: one database file.
type SQLiteLedger struct {
	Path string `json:"path"` // database file; relative to the naming configuration file's directory
}

// PostgresLedger is the shared backend for several replicas. The DSN may hold a password, so it is a secret
// reference.
type PostgresLedger struct {
	DSN SecretRef `json:"dsn"` // postgres://user:password@host:5432/db?sslmode=… or key=value form
}

// Ledger defaults and bounds.
const (
	DefaultRetentionDays = 90
	MaxRetentionDays     = 3650
	DefaultLedgerQueue   = 10000
	MaxLedgerQueue       = 1_000_000
	DefaultLedgerBatch   = 256
	MaxLedgerBatch       = 1000
	DefaultSQLitePath    = "tollgate-ledger.db"
)

// Admin configures the admin server's authenticated API (usage analytics and the dashboard).
type Admin struct {
	// Token is the bearer token the analytics API and dashboard require. Unset: they are disabled.
	Token *SecretRef `json:"token"`
}

// RedisBackend locates the shared Redis and bounds every wait on it. The URL may hold a password, so it is a
// secret reference. Admission waits for Redis, so its waits are short by default: a hung Redis must cost a
// request the admission timeout, not Envoy's message_timeout.
type RedisBackend struct {
	URL              SecretRef `json:"url"`               // redis://[user:password@]host:port[/db] or rediss://…
	Prefix           string    `json:"prefix"`            // key prefix; default "tollgate:"
	DialTimeout      Duration  `json:"dial_timeout"`      // default 250ms
	ReadTimeout      Duration  `json:"read_timeout"`      // default 250ms
	WriteTimeout     Duration  `json:"write_timeout"`     // default 250ms
	PoolSize         int       `json:"pool_size"`         // connections per replica; default 10 per CPU
	MaxRetries       *int      `json:"max_retries"`       // retries of a failed command; default 1, 0 = none
	AdmissionTimeout Duration  `json:"admission_timeout"` // bound of one admission or budget check; default 500ms
	ReconcileTimeout Duration  `json:"reconcile_timeout"` // bound of one reconciliation attempt; default 2s
	ReconcileQueue   int       `json:"reconcile_queue"`   // failed reconciliations kept for retry; default 10000
}

// Duration is a Go duration string such as "250ms" or "2s".
type Duration string

// Defaults of the Redis backend's waits (see RedisBackend).
const (
	DefaultRedisDialTimeout      = 250 * time.Millisecond
	DefaultRedisReadTimeout      = 250 * time.Millisecond
	DefaultRedisWriteTimeout     = 250 * time.Millisecond
	DefaultRedisMaxRetries       = 1
	DefaultRedisAdmissionTimeout = 500 * time.Millisecond
	DefaultRedisReconcileTimeout = 2 * time.Second
	DefaultRedisReconcileQueue   = 10_000
	// MaxRedisAdmissionTimeout keeps admission well under Envoy's ext_proc message_timeout (10s in the
	// shipped bootstraps): past that, Envoy answers 504 whatever the failure policy says.
	MaxRedisAdmissionTimeout = 5 * time.Second
)

// RedisSettings are a RedisBackend's waits with defaults filled in.
type RedisSettings struct {
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	PoolSize                               int // 0: go-redis's default, 10 per CPU
	MaxRetries                             int
	AdmissionTimeout, ReconcileTimeout     time.Duration
	ReconcileQueue                         int
}

// Settings returns r's waits, defaults for what is unset. Call it on a validated configuration.
func (r *RedisBackend) Settings() RedisSettings {
	s := RedisSettings{PoolSize: r.PoolSize, MaxRetries: DefaultRedisMaxRetries, ReconcileQueue: r.ReconcileQueue}
	for _, f := range []struct {
		dst *time.Duration
		src Duration
		def time.Duration
	}{
		{&s.DialTimeout, r.DialTimeout, DefaultRedisDialTimeout},
		{&s.ReadTimeout, r.ReadTimeout, DefaultRedisReadTimeout},
		{&s.WriteTimeout, r.WriteTimeout, DefaultRedisWriteTimeout},
		{&s.AdmissionTimeout, r.AdmissionTimeout, DefaultRedisAdmissionTimeout},
		{&s.ReconcileTimeout, r.ReconcileTimeout, DefaultRedisReconcileTimeout},
	} {
		*f.dst = f.def
		if d, err := time.ParseDuration(string(f.src)); err == nil && d > 0 {
			*f.dst = d
		}
	}
	if r.MaxRetries != nil {
		s.MaxRetries = *r.MaxRetries
	}
	if s.ReconcileQueue == 0 {
		s.ReconcileQueue = DefaultRedisReconcileQueue
	}
	return s
}

// FailurePolicy says, per limit kind, whether requests pass ("open") or are refused ("closed") while the
// backend is unreachable. Defaults: requests and tokens open, budgets closed.
type FailurePolicy struct {
	Requests string `json:"requests"`
	Tokens   string `json:"tokens"`
	Budgets  string `json:"budgets"`
}

// RateLimit applies requests- and tokens-per-minute limits to every entity of a scope, or only to the one
// Match names.
type RateLimit struct {
	Scope             string `json:"scope"` // key, app, tenant, tier, model or global
	Match             string `json:"match"` // key id, "tenant/app", tenant, tier, "provider/model"; empty: each
	RequestsPerMinute int    `json:"requests_per_minute"`
	TokensPerMinute   int    `json:"tokens_per_minute"`
}

// BudgetRule caps spend in USD per calendar day and month (UTC), and the estimated cost of one request.
type BudgetRule struct {
	Scope                string  `json:"scope"` // key, app or tenant
	Match                string  `json:"match"` // as for RateLimit
	DailyUSD             Decimal `json:"daily_usd"`
	MonthlyUSD           Decimal `json:"monthly_usd"`
	MaxCostPerRequestUSD Decimal `json:"max_cost_per_request_usd"`
}

// Decimal is a decimal number kept as the text written in the file, so money is never parsed as a float.
type Decimal string

// Limit scopes.
const (
	ScopeKey    = "key"
	ScopeApp    = "app"
	ScopeTenant = "tenant"
	ScopeTier   = "tier"
	ScopeModel  = "model"
	ScopeGlobal = "global"
)

// DefaultMaxTokens is the output reservation for requests that set no max_tokens.
const DefaultMaxTokens = 1024

// Provider is an upstream model provider reached through an Envoy cluster.
type Provider struct {
	Name   string `json:"name"`   // [a-z0-9][a-z0-9_-]*, unique; clients may say "<name>/<model>"
	Schema string `json:"schema"` // wire format; SchemaOpenAI
	// URL locates the provider: http(s)://host[:port], no path (base_path holds it). Tollgate
	// generates the provider's Envoy cluster from it and serves it over xDS (internal/xds).
	URL string `json:"url"`
	// Cluster is the Envoy cluster the route's cluster_header sends requests to. With URL it must
	// be empty (or that name) and is set by Load to the derived name (the provider's name); without URL it names
	// an externally managed cluster (the escape hatch), for which nothing is generated.
	Cluster      string      `json:"cluster"`
	BasePath     string      `json:"base_path"`     // upstream path prefix; DefaultBasePath when unset
	Credential   *Credential `json:"credential"`    // nil when the provider needs none
	Models       []string    `json:"models"`        // provider model ids known to the gateway
	DirectModels string      `json:"direct_models"` // DirectNone (when unset), DirectListed or DirectAny
	// DefaultMaxTokens is sent to providers that require max_tokens (anthropic) when the client set none.
	DefaultMaxTokens int `json:"default_max_tokens"`
	// APIVersion is Azure OpenAI's api-version query parameter; required for azure-openai.
	APIVersion string `json:"api_version"`
	// MaxTokensField is the chat field that carries the gateway's output cap (limits.default_max_tokens)
	// when a client sets none: "max_completion_tokens" (the default; OpenAI's current field, the only one
	// its reasoning models accept) or "max_tokens" (for servers that know only the older field, such as
	// Ollama, Mistral or OpenRouter). Translated schemas (anthropic) write their own field.
	MaxTokensField string `json:"max_tokens_field"`
	// PriceAs prices some of this provider's model ids as another price entry: model id →
	// "<price provider>/<model>", e.g. an Azure deployment gpt-4o-prod → "openai/gpt-4o". Without it a
	// model is priced by the entry for this provider's name and the model id.
	PriceAs map[string]string `json:"price_as"`
	// Unpriced says what happens to a request for a model of this provider that has no price while a
	// budget or cost cap applies to it: UnpricedRefuse (default; also when empty) or UnpricedAllow. Allow also silences the
	// load-time check that every routable model of the provider is priced.
	Unpriced string  `json:"unpriced"`
	AWS      *AWS    `json:"aws"`    // bedrock: region, host, credentials
	Vertex   *Vertex `json:"vertex"` // vertex-ai: project, location, service account

	// Options of the generated cluster; only with URL (see upstream.go).
	ConnectTimeout  Duration         `json:"connect_timeout"`  // DefaultConnectTimeout when unset
	IdleTimeout     Duration         `json:"idle_timeout"`     // idle upstream connections close after it; Envoy's 1h when unset
	HTTPVersion     string           `json:"http_version"`     // "2" (default for https) or "1.1" (default for http)
	CircuitBreakers *CircuitBreakers `json:"circuit_breakers"` // defaults in DefaultCircuitBreakers
	TLS             *UpstreamTLS     `json:"tls"`              // https only
}

// Output cap fields of OpenAI-format chat requests.
const (
	FieldMaxCompletionTokens = "max_completion_tokens"
	FieldMaxTokens           = "max_tokens"
)

// Values of Provider.Unpriced.
const (
	UnpricedRefuse = "refuse"
	UnpricedAllow  = "allow"
)

// Credential is the header the gateway adds to requests sent to a provider: Header: Prefix + secret.
type Credential struct {
	Header string    `json:"header"` // lower-case header name
	Prefix string    `json:"prefix"` // e.g. "Bearer "; empty or ending in a space
	Source SecretRef `json:"source"`
}

// SecretRef points at a secret value; exactly one of Env and File is set. There is deliberately no field
// that holds the value itself.
type SecretRef struct {
	Env  string `json:"env,omitempty"`  // environment variable name
	File string `json:"file,omitempty"` // file path; Load resolves a relative one against the naming file's directory
}

// Model is an alias clients may send as "model".
type Model struct {
	Name     string `json:"name"`     // what clients send; unique; no "/"
	Provider string `json:"provider"` // a Provider.Name
	Model    string `json:"model"`    // the provider's model id
	// Targets makes the alias a weighted pool instead of a single
	// provider/model: each request goes to one target, chosen by weight.
	Targets []PoolTarget `json:"targets"`
	// Fallback makes the alias an ordered chain: Envoy tries the next member
	// when one fails before any byte reached the client.
	Fallback *Fallback `json:"fallback"`
	// IfNoCredential is where a single-target alias goes instead while its
	// provider's credential cannot be read (an unset environment variable, a
	// missing Secret file), e.g. the example's mock provider when
	// OPENAI_API_KEY is unset.
	IfNoCredential *Target `json:"if_no_credential"`
}

// Target is one provider and model.
type Target struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
}

// Fallback is an ordered chain of providers behind one Envoy cluster whose
// endpoints are those providers at increasing priorities (see
// envoy/envoy-fallback.yaml). An upstream ext_proc filter on that cluster
// translates and authenticates each attempt for its provider.
type Fallback struct {
	// Cluster is the Envoy chain cluster. Load sets it to "chain_<alias>" when unset. When
	// every target's provider has a URL, Tollgate generates the cluster and its route;
	// otherwise the cluster is externally managed and must be named here.
	Cluster string        `json:"cluster"`
	Targets []ChainTarget `json:"targets"` // in priority order; each provider at most once
	// FirstByteTimeout bounds each attempt's wait for the response headers (the route's
	// per_try_idle_timeout): the alias's time to first token before the next provider is tried.
	// DefaultFirstByteTimeout when unset. Generated chains only.
	FirstByteTimeout Duration `json:"first_byte_timeout"`
}

// ChainTarget is one member of a fallback chain.
type ChainTarget struct {
	Provider string `json:"provider"` // matches the endpoint metadata tollgate.provider
	Model    string `json:"model"`
}

// PoolTarget is one member of a weighted pool.
type PoolTarget struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Weight   int    `json:"weight"` // relative share, 1 to 1000; default 1
}

// MaxPoolTargets bounds the members of one pool.
const MaxPoolTargets = 16

// Key is a gateway API key, stored only as the SHA-256 of the key.
type Key struct {
	ID             string            `json:"id"`               // unique, non-secret (logged)
	SHA256         string            `json:"sha256"`           // lower-case hex SHA-256 of the key; unique
	Tenant         string            `json:"tenant"`           // a Tenant.Name; DefaultTenant when empty
	App            string            `json:"app"`              // an app of Tenant: an app-scoped key; empty: tenant-scoped
	Tier           string            `json:"tier"`             // rate-limit tier; the app's tier overrides it
	Models         []string          `json:"models"`           // allowed model names, glob patterns; empty allows all
	Expires        string            `json:"expires"`          // RFC 3339; empty never expires
	Disabled       bool              `json:"disabled"`         // refused like an unknown key
	RequireAgentID bool              `json:"require_agent_id"` // x-agent-id must be a UUID v4
	Labels         map[string]string `json:"labels"`           // free-form, for operators
}

// Tenant owns apps and, optionally, its own provider credentials (bring your own key).
type Tenant struct {
	Name                string             `json:"name"`                 // unique
	Apps                []App              `json:"apps"`                 // unique names within the tenant
	ProviderCredentials []TenantCredential `json:"provider_credentials"` // BYOK, at most one per provider
}

// TenantCredential is a tenant's own secret for a provider. The provider's credential header and
// prefix are used with it.
type TenantCredential struct {
	Provider string    `json:"provider"` // a Provider.Name that has a credential
	Source   SecretRef `json:"source"`
}

// App is an application of a tenant and carries its policy.
type App struct {
	Name             string   `json:"name"`              // unique within the tenant
	Models           []string `json:"models"`            // allowed model names, glob patterns; empty allows all
	Tier             string   `json:"tier"`              // overrides the key's tier
	GuardrailPolicy  string   `json:"guardrail_policy"`  // name of a guardrail policy (guardrails config)
	RequiredMetadata []string `json:"required_metadata"` // tollgate_metadata keys every request must carry
	RequireAgentID   bool     `json:"require_agent_id"`  // x-agent-id must be a UUID v4
	AgentIDs         []string `json:"agent_ids"`         // if set, the only agent ids allowed
	// OnBudgetExhausted is what happens to a stream already running when its budget runs out:
	// "finish" (default) or "terminate" (a terminal SSE error event).
	OnBudgetExhausted string `json:"on_budget_exhausted"`
	// CaptureContent records prompts and completions, after guardrail
	// redaction, on the request's trace span. Off by default.
	CaptureContent bool `json:"capture_content"`
	// Cache opts the app in to the response cache (when one is configured).
	Cache *AppCache `json:"cache"`
}

// MetadataLimits bound the request metadata a client may attach (tollgate_metadata or
// x-tollgate-metadata-* headers).
type MetadataLimits struct {
	MaxKeys        int `json:"max_keys"`         // default 16
	MaxValueLength int `json:"max_value_length"` // bytes, default 256
}

// DefaultTenant is the tenant of keys that name none. It need not be declared unless it has apps or
// provider credentials.
const DefaultTenant = "default"

// MetadataLimits returns the metadata limits in force, defaults filled in.
func (c *Config) MetadataLimits() MetadataLimits {
	var m MetadataLimits
	if c.RequestMetadata != nil {
		m = *c.RequestMetadata
	}
	if m.MaxKeys == 0 {
		m.MaxKeys = DefaultMetadataMaxKeys
	}
	if m.MaxValueLength == 0 {
		m.MaxValueLength = DefaultMetadataMaxValueLength
	}
	return m
}

// Default metadata limits.
const (
	DefaultMetadataMaxKeys        = 16
	DefaultMetadataMaxValueLength = 256
)

//go:embed example/tollgate.yaml
var example []byte

// Example returns the commented example configuration (example/tollgate.yaml). Parse it with
// Parse("example/tollgate.yaml", Example()).
func Example() []byte {
	return append([]byte(nil), example...)
}

// SecretFiles returns every file named by a SecretRef in c, without duplicates, in configuration order.
// Watch them together with the configuration paths so a rotated Secret triggers a reload.
func (c *Config) SecretFiles() []string {
	var files []string
	seen := map[string]bool{}
	add := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	for _, p := range c.Providers {
		if p.Credential != nil {
			add(p.Credential.Source.File)
		}
		cloudSecretFiles(p, add)
	}
	for _, t := range c.Tenants {
		for _, tc := range t.ProviderCredentials {
			add(tc.Source.File)
		}
	}
	if c.Limits != nil && c.Limits.Redis != nil {
		add(c.Limits.Redis.URL.File)
	}
	if c.Ledger != nil && c.Ledger.Postgres != nil {
		add(c.Ledger.Postgres.DSN.File)
	}
	if c.Admin != nil && c.Admin.Token != nil {
		add(c.Admin.Token.File)
	}
	return files
}

// String names the secret's source (never its value), for logs and errors.
func (r SecretRef) String() string {
	switch {
	case r.Env != "" && r.File == "":
		return "env " + r.Env
	case r.File != "" && r.Env == "":
		return "file " + r.File
	default:
		return "invalid secret reference"
	}
}

// Resolve reads the secret. lookupEnv is used for Env references (nil means os.LookupEnv). A file's
// single trailing "\n" or "\r\n" is removed (kubectl create secret --from-file keeps the one an editor added).
// An unset or empty value is an error, and so is one that cannot be sent in an HTTP header.
// Errors name the variable or file but never include the value.
func (r SecretRef) Resolve(lookupEnv func(string) (string, bool)) ([]byte, error) {
	val, err := r.read(lookupEnv)
	if err != nil {
		return nil, err
	}
	if r.File != "" {
		if n := len(val); n > 0 && val[n-1] == '\n' {
			val = val[:n-1]
			if n := len(val); n > 0 && val[n-1] == '\r' {
				val = val[:n-1]
			}
		}
	}
	if len(val) == 0 {
		return nil, fmt.Errorf("secret %s: empty", r)
	}
	for _, b := range val {
		if (b < 0x20 && b != '\t') || b == 0x7f {
			return nil, fmt.Errorf("secret %s: contains a control character or line break, which cannot be sent in a header", r)
		}
	}
	return val, nil
}

// read returns the raw secret from its environment variable or file. Errors
// name the variable or file but never include the value.
func (r SecretRef) read(lookupEnv func(string) (string, bool)) ([]byte, error) {
	switch {
	case r.Env != "" && r.File != "", r.Env == "" && r.File == "":
		return nil, errors.New("secret reference: exactly one of env or file is required")
	case r.Env != "":
		if lookupEnv == nil {
			lookupEnv = os.LookupEnv
		}
		v, ok := lookupEnv(r.Env)
		if !ok {
			return nil, fmt.Errorf("secret env %s: not set", r.Env)
		}
		return []byte(v), nil
	}
	b, err := os.ReadFile(r.File)
	if err != nil {
		// *os.PathError carries the path and the cause, never file content.
		return nil, fmt.Errorf("secret file: %w", err)
	}
	return b, nil
}

// isConfigName reports whether a directory entry name is loaded from a configuration directory.
func isConfigName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")
}
