package extproc

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// capSnapshot has an OpenAI provider (default cap field), an Ollama-like
// one configured for max_tokens, and Anthropic (translated), under lim.
func capSnapshot(t *testing.T, lim *config.Limits) *Snapshot {
	t.Helper()
	cfg := &config.Config{
		Version: 1,
		Providers: []config.Provider{
			{Name: "openai", Schema: "openai", Cluster: "openai", BasePath: "/v1", DirectModels: "any"},
			{Name: "local", Schema: "openai", Cluster: "ollama", BasePath: "/v1", DirectModels: "any", MaxTokensField: config.FieldMaxTokens},
			{Name: "anthropic", Schema: "anthropic", Cluster: "anthropic", BasePath: "/v1", DirectModels: "any", DefaultMaxTokens: 8000},
		},
	}
	lookup := func(string) (string, bool) { return "", false }
	table, _ := routing.New(cfg, lookup)
	tenants, _ := configopts.NewTenancy(cfg, lookup)
	store, err := keys.NewStore([]keys.Entry{{Key: keys.Key{ID: "k1", Tenant: config.DefaultTenant}, SHA256: keys.Hash(testKey)}})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := NewLimits(lim)
	if err != nil {
		t.Fatal(err)
	}
	return &Snapshot{Routes: table, Keys: store, Tenants: tenants, Metadata: cfg.MetadataLimits(), Prices: pricing.Default(), Limits: rules}
}

// TestOutputCap: when a chat request sets no output limit and its limits
// depend on output size (a tokens-per-minute limit, a per-request cost cap),
// the gateway sends default_max_tokens upstream in the provider's field and
// reserves exactly that; otherwise the request is left as the client sent it.
func TestOutputCap(t *testing.T) {
	tpm := &config.Limits{DefaultMaxTokens: 300, RateLimits: []config.RateLimit{{Scope: config.ScopeKey, TokensPerMinute: 100_000}}}
	rpm := &config.Limits{DefaultMaxTokens: 300, RateLimits: []config.RateLimit{{Scope: config.ScopeKey, RequestsPerMinute: 100}}}
	maxCost := &config.Limits{DefaultMaxTokens: 300, Budgets: []config.BudgetRule{{Scope: config.ScopeKey, MaxCostPerRequestUSD: "1"}}}
	daily := &config.Limits{DefaultMaxTokens: 300, Budgets: []config.BudgetRule{{Scope: config.ScopeKey, DailyUSD: "1"}}}
	tests := []struct {
		name   string
		limits *config.Limits
		body   string
		field  string // where the cap must appear upstream; "" = no field added
		want   int64  // the cap upstream (when field is set) and x.maxOut
	}{
		{"omitted, tpm limit", tpm, `{"model":"openai/gpt-4o","messages":[]}`, "max_completion_tokens", 300},
		{"null counts as omitted", tpm, `{"model":"openai/gpt-4o","max_tokens":null,"messages":[]}`, "max_completion_tokens", 300},
		{"provider field max_tokens", tpm, `{"model":"local/llama3","messages":[]}`, "max_tokens", 300},
		{"anthropic: translated max_tokens is the cap, not its own default", tpm, `{"model":"anthropic/claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`, "max_tokens", 300},
		// The cap is queued with the other body edits: stripping a gateway
		// field and rewriting the model in the same request must not move it.
		{"with gateway fields and stream usage", tpm, `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}],"tollgate_metadata":{"team":"a"}}`, "max_completion_tokens", 300},
		{"null, other field", tpm, `{"tollgate_metadata":{"team":"a"},"max_completion_tokens":null,"model":"openai/gpt-4o","messages":[]}`, "max_completion_tokens", 300},
		{"max cost budget", maxCost, `{"model":"openai/gpt-4o","messages":[]}`, "max_completion_tokens", 300},
		{"client max_tokens kept", tpm, `{"model":"openai/gpt-4o","max_tokens":50,"messages":[]}`, "", 50},
		{"client max_completion_tokens kept", tpm, `{"model":"local/llama3","max_completion_tokens":70,"messages":[]}`, "", 70},
		{"client value the provider will judge", tpm, `{"model":"openai/gpt-4o","max_tokens":"lots","messages":[]}`, "", 300},
		{"requests-only limit: no cap", rpm, `{"model":"openai/gpt-4o","messages":[]}`, "", 300},
		{"daily budget only: no cap", daily, `{"model":"openai/gpt-4o","messages":[]}`, "", 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := capSnapshot(t, tt.limits)
			srv := New(Options{Snapshot: func() *Snapshot { return snap }, Limiter: limits.NewMemory(nil)})
			x := newExchange(context.Background(), srv, snap)
			if h, _ := x.handle(chatHeaders()); h.GetRequestHeaders() == nil {
				t.Fatalf("headers refused: %v", h)
			}
			resp, _ := x.handle(reqBody(tt.body))
			common := resp.GetRequestBody().GetResponse()
			if common == nil {
				t.Fatalf("refused: %v", resp)
			}
			upstream := tt.body
			if m := common.GetBodyMutation(); m != nil {
				upstream = string(m.GetBody())
			}
			for _, f := range []string{"max_completion_tokens", "max_tokens"} {
				sent, client := gjson.Get(upstream, f), gjson.Get(tt.body, f)
				switch {
				case f == tt.field && sent.Int() != tt.want:
					t.Errorf("upstream %s = %s; want %d (body %s)", f, sent.Raw, tt.want, upstream)
				case f != tt.field && tt.field != "" && sent.Exists() && sent.Type != gjson.Null:
					t.Errorf("upstream has %s too: %s", f, upstream)
				case tt.field == "" && sent.Raw != client.Raw:
					t.Errorf("upstream %s = %q; the client sent %q", f, sent.Raw, client.Raw)
				}
			}
			if !json.Valid([]byte(upstream)) || gjson.Get(upstream, "tollgate_metadata").Exists() {
				t.Errorf("upstream body %s: invalid or still has gateway fields", upstream)
			}
			if x.maxOut != tt.want {
				t.Errorf("reserved output %d; want %d", x.maxOut, tt.want)
			}
		})
	}
}

// TestOutputCapPricesMaxCost: the per-request cost worst case of a request
// without max_tokens prices default_max_tokens output tokens, the same cap
// the provider receives. gpt-4o: $2.50 in, $10 out per MTok; a 40-byte body
// is 10 prompt tokens; 300 output tokens: $0.003025 at worst.
func TestOutputCapPricesMaxCost(t *testing.T) {
	body := `{"model":"openai/gpt-4o","messages":[]}`
	for _, tt := range []struct {
		maxCost config.Decimal
		status  int // 0: forwarded
	}{{"0.003", 400}, {"0.0031", 0}} {
		t.Run(string(tt.maxCost), func(t *testing.T) {
			snap := capSnapshot(t, &config.Limits{DefaultMaxTokens: 300, Budgets: []config.BudgetRule{{Scope: config.ScopeKey, MaxCostPerRequestUSD: tt.maxCost}}})
			srv := New(Options{Snapshot: func() *Snapshot { return snap }, Limiter: limits.NewMemory(nil)})
			x := newExchange(context.Background(), srv, snap)
			x.handle(chatHeaders())
			resp, _ := x.handle(reqBody(body))
			if tt.status == 0 {
				if resp.GetRequestBody() == nil {
					t.Fatalf("refused: %v", resp)
				}
				return
			}
			status, e := immediateError(t, resp)
			if status != tt.status || e.Error.Code == nil || *e.Error.Code != "max_cost_per_request_exceeded" {
				t.Fatalf("got %d %v, want %d max_cost_per_request_exceeded", status, e.Error.Code, tt.status)
			}
		})
	}
}

// TestOutputCapAbsurdValue: a max_tokens near 2^63 is saturated, so the token
// limit refuses it with a 429 naming max_tokens, instead of the sum
// overflowing into a limits-backend error (a 503 and a false alert).
func TestOutputCapAbsurdValue(t *testing.T) {
	snap := capSnapshot(t, &config.Limits{DefaultMaxTokens: 300, RateLimits: []config.RateLimit{{Scope: config.ScopeKey, TokensPerMinute: 100_000}}})
	srv := New(Options{Snapshot: func() *Snapshot { return snap }, Limiter: limits.NewMemory(nil)})
	x := newExchange(context.Background(), srv, snap)
	x.handle(chatHeaders())
	resp, _ := x.handle(reqBody(`{"model":"openai/gpt-4o","max_tokens":9223372036854775807,"messages":[]}`))
	status, body := immediateError(t, resp)
	if status != 429 || body.Error.Code == nil || *body.Error.Code != "rate_limit_exceeded" {
		t.Fatalf("status %d, error %+v; want 429 rate_limit_exceeded", status, body.Error)
	}
}
