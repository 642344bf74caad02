package limits

import (
	"slices"
	"testing"
)

func TestRulesFor(t *testing.T) {
	subject := Subject{KeyID: "k1", Tenant: "acme", Tier: "free", App: "acme/bot", Model: "openai/gpt-4o"}
	tests := []struct {
		name    string
		rates   []RateRule
		budgets []BudgetRule
		s       Subject
		limits  []Limit
		budget  []Budget
	}{
		{name: "no rules", s: subject},
		{name: "every scope names its entity",
			rates: []RateRule{{Scope: ScopeKey, RequestsPerMinute: 1}, {Scope: ScopeApp, RequestsPerMinute: 2},
				{Scope: ScopeTenant, RequestsPerMinute: 3}, {Scope: ScopeModel, RequestsPerMinute: 4}, {Scope: ScopeGlobal, RequestsPerMinute: 5}},
			s: subject,
			limits: []Limit{{Scope: "key:k1", RequestsPerMinute: 1}, {Scope: "app:acme/bot", RequestsPerMinute: 2},
				{Scope: "tenant:acme", RequestsPerMinute: 3}, {Scope: "model:openai/gpt-4o", RequestsPerMinute: 4}, {Scope: "global", RequestsPerMinute: 5}}},
		{name: "a tier limit is a per-key allowance",
			rates: []RateRule{{Scope: ScopeTier, Match: "free", TokensPerMinute: 100}}, s: subject,
			limits: []Limit{{Scope: "tier:free:key:k1", TokensPerMinute: 100}}},
		{name: "match selects one entity",
			rates:  []RateRule{{Scope: ScopeTenant, Match: "other", RequestsPerMinute: 1}, {Scope: ScopeTenant, Match: "acme", RequestsPerMinute: 2}},
			s:      subject,
			limits: []Limit{{Scope: "tenant:acme", RequestsPerMinute: 2}}},
		{name: "no app, no tier: those scopes do not apply",
			rates:   []RateRule{{Scope: ScopeApp, RequestsPerMinute: 1}, {Scope: ScopeTier, RequestsPerMinute: 1}},
			budgets: []BudgetRule{{Scope: ScopeApp, Daily: 1}},
			s:       Subject{KeyID: "k1", Tenant: "acme", Model: "m"}},
		{name: "unknown scope applies nowhere",
			rates: []RateRule{{Scope: "planet", RequestsPerMinute: 1}}, s: subject},
		{name: "one entry per counter, the tightest of each kind",
			rates: []RateRule{{Scope: ScopeKey, RequestsPerMinute: 10, TokensPerMinute: 0}, {Scope: ScopeKey, RequestsPerMinute: 20, TokensPerMinute: 500},
				{Scope: ScopeKey, Match: "k1", RequestsPerMinute: 5}},
			budgets: []BudgetRule{{Scope: ScopeTenant, Daily: 7, Monthly: 0}, {Scope: ScopeTenant, Daily: 9, Monthly: 30, MaxPerCall: 2}},
			s:       subject,
			limits:  []Limit{{Scope: "key:k1", RequestsPerMinute: 5, TokensPerMinute: 500}},
			budget:  []Budget{{Scope: "tenant:acme", Daily: 7, Monthly: 30, MaxCostPerRequest: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRules(tt.rates, tt.budgets, 300)
			ls, bs := r.For(tt.s)
			if !slices.Equal(ls, tt.limits) || !slices.Equal(bs, tt.budget) {
				t.Fatalf("For = %v %v, want %v %v", ls, bs, tt.limits, tt.budget)
			}
			if r.Empty() != (len(tt.rates) == 0 && len(tt.budgets) == 0) {
				t.Fatalf("Empty = %v", r.Empty())
			}
		})
	}
}

func TestRulesNilAndZero(t *testing.T) {
	var nilRules *Rules
	if !nilRules.Empty() || !(&Rules{}).Empty() {
		t.Fatal("nil or zero rules must be empty")
	}
	if ls, bs := nilRules.For(Subject{KeyID: "k"}); ls != nil || bs != nil {
		t.Fatalf("nil rules apply %v %v", ls, bs)
	}
	if d := NewRules(nil, nil, 300).DefaultMaxTokens(); d != 300 {
		t.Fatalf("DefaultMaxTokens = %d", d)
	}
}

func TestTighter(t *testing.T) {
	for _, tt := range []struct{ a, b, want int64 }{{0, 0, 0}, {0, 5, 5}, {5, 0, 5}, {3, 5, 3}, {5, 3, 3}} {
		if got := tighter(tt.a, tt.b); got != tt.want {
			t.Errorf("tighter(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
