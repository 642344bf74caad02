package extproc

import (
	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// Limits are the compiled rate-limit and budget rules of a snapshot
// (policy/limits compiles and scopes them).
type Limits = limits.Rules

// NewLimits compiles the limits section of a validated config: it turns
// the configured USD amounts into pricing.Amount units (pico-USD).
func NewLimits(c *config.Limits) (*Limits, error) {
	if c == nil {
		return limits.NewRules(nil, nil, config.DefaultMaxTokens), nil
	}
	def := int64(config.DefaultMaxTokens)
	if c.DefaultMaxTokens > 0 {
		def = int64(c.DefaultMaxTokens)
	}
	rates := make([]limits.RateRule, 0, len(c.RateLimits))
	for _, r := range c.RateLimits {
		rates = append(rates, limits.RateRule{Scope: r.Scope, Match: r.Match,
			RequestsPerMinute: int64(r.RequestsPerMinute), TokensPerMinute: int64(r.TokensPerMinute)})
	}
	budgets := make([]limits.BudgetRule, 0, len(c.Budgets))
	for _, b := range c.Budgets {
		r := limits.BudgetRule{Scope: b.Scope, Match: b.Match}
		for _, f := range []struct {
			dst *int64
			src config.Decimal
		}{{&r.Daily, b.DailyUSD}, {&r.Monthly, b.MonthlyUSD}, {&r.MaxPerCall, b.MaxCostPerRequestUSD}} {
			if f.src == "" {
				continue
			}
			a, err := pricing.ParseUSD(string(f.src))
			if err != nil {
				return nil, err
			}
			*f.dst = int64(a)
		}
		budgets = append(budgets, r)
	}
	return limits.NewRules(rates, budgets, def), nil
}
