package extproc

import (
	"testing"

	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// TestLimitScopesAgree: the config's scope names are the ones
// policy/limits matches on.
func TestLimitScopesAgree(t *testing.T) {
	for _, p := range [][2]string{{config.ScopeKey, limits.ScopeKey}, {config.ScopeApp, limits.ScopeApp},
		{config.ScopeTenant, limits.ScopeTenant}, {config.ScopeTier, limits.ScopeTier},
		{config.ScopeModel, limits.ScopeModel}, {config.ScopeGlobal, limits.ScopeGlobal}} {
		if p[0] != p[1] {
			t.Errorf("config scope %q, limits scope %q", p[0], p[1])
		}
	}
}

func TestNewLimits(t *testing.T) {
	usd := func(s string) int64 {
		a, err := pricing.ParseUSD(s)
		if err != nil {
			t.Fatal(err)
		}
		return int64(a)
	}
	tests := []struct {
		name    string
		cfg     *config.Limits
		def     int64
		limits  []limits.Limit
		budgets []limits.Budget
		err     bool
	}{
		{name: "no section", def: config.DefaultMaxTokens},
		{name: "default max tokens", cfg: &config.Limits{DefaultMaxTokens: 77}, def: 77},
		{name: "rates and budgets in pico-USD",
			cfg: &config.Limits{RateLimits: []config.RateLimit{{Scope: config.ScopeKey, RequestsPerMinute: 3, TokensPerMinute: 9}},
				Budgets: []config.BudgetRule{{Scope: config.ScopeTenant, DailyUSD: "1.5", MonthlyUSD: "20", MaxCostPerRequestUSD: "0.01"}}},
			def:     config.DefaultMaxTokens,
			limits:  []limits.Limit{{Scope: "key:k1", RequestsPerMinute: 3, TokensPerMinute: 9}},
			budgets: []limits.Budget{{Scope: "tenant:acme", Daily: usd("1.5"), Monthly: usd("20"), MaxCostPerRequest: usd("0.01")}}},
		{name: "bad amount", cfg: &config.Limits{Budgets: []config.BudgetRule{{Scope: config.ScopeKey, DailyUSD: "lots"}}}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewLimits(tt.cfg)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			if r.DefaultMaxTokens() != tt.def {
				t.Errorf("default max tokens %d, want %d", r.DefaultMaxTokens(), tt.def)
			}
			ls, bs := r.For(limits.Subject{KeyID: "k1", Tenant: "acme", Model: "p/m"})
			if len(ls) != len(tt.limits) || len(bs) != len(tt.budgets) {
				t.Fatalf("For = %v %v, want %v %v", ls, bs, tt.limits, tt.budgets)
			}
			for i := range ls {
				if ls[i] != tt.limits[i] {
					t.Errorf("limit %v, want %v", ls[i], tt.limits[i])
				}
			}
			for i := range bs {
				if bs[i] != tt.budgets[i] {
					t.Errorf("budget %v, want %v", bs[i], tt.budgets[i])
				}
			}
		})
	}
}
