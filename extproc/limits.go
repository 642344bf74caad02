package extproc

import (
	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// Limits are the compiled rate-limit and budget rules of a snapshot. They
// hold no counters: the limiter does, for the life of the process, so a
// reload changes the rules without resetting what was spent.
type Limits struct {
	rates            []config.RateLimit
	budgets          []budgetRule
	defaultMaxTokens int64
}

type budgetRule struct {
	scope, match            string
	daily, monthly, maxCost int64 // pricing.Amount units (pico-USD)
}

// NewLimits compiles the limits section of a validated config.
func NewLimits(c *config.Limits) (*Limits, error) {
	l := &Limits{defaultMaxTokens: config.DefaultMaxTokens}
	if c == nil {
		return l, nil
	}
	if c.DefaultMaxTokens > 0 {
		l.defaultMaxTokens = int64(c.DefaultMaxTokens)
	}
	l.rates = c.RateLimits
	for _, b := range c.Budgets {
		r := budgetRule{scope: b.Scope, match: b.Match}
		for _, f := range []struct {
			dst *int64
			src config.Decimal
		}{{&r.daily, b.DailyUSD}, {&r.monthly, b.MonthlyUSD}, {&r.maxCost, b.MaxCostPerRequestUSD}} {
			if f.src == "" {
				continue
			}
			a, err := pricing.ParseUSD(string(f.src))
			if err != nil {
				return nil, err
			}
			*f.dst = int64(a)
		}
		l.budgets = append(l.budgets, r)
	}
	return l, nil
}

func (l *Limits) empty() bool { return l == nil || (len(l.rates) == 0 && len(l.budgets) == 0) }

// subject names what a request is, in every scope a rule can match.
type subject struct {
	keyID, tenant, app, tier, model string // app as "tenant/app", model as "provider/model"
}

// scope returns the entity a rule of this scope applies to for s, and
// whether it applies at all (a request without an app has no app scope).
func (s subject) scope(scope string) (entity string, ok bool) {
	switch scope {
	case config.ScopeKey:
		return s.keyID, true
	case config.ScopeApp:
		return s.app, s.app != ""
	case config.ScopeTenant:
		return s.tenant, true
	case config.ScopeTier:
		return s.tier, s.tier != ""
	case config.ScopeModel:
		return s.model, true
	case config.ScopeGlobal:
		return "", true
	}
	return "", false
}

// counter is the limiter key for an entity in a scope. A tier limit is a
// per-key allowance (every key of tier "free" gets its own bucket), which is
// what tiers are for.
func (s subject) counter(scope, entity string) string {
	switch scope {
	case config.ScopeGlobal:
		return "global"
	case config.ScopeTier:
		return "tier:" + entity + ":key:" + s.keyID
	}
	return scope + ":" + entity
}

// forSubject returns the limits and budgets that apply to a request.
func (l *Limits) forSubject(s subject) ([]limits.Limit, []limits.Budget) {
	var ls []limits.Limit
	for _, r := range l.rates {
		entity, ok := s.scope(r.Scope)
		if !ok || (r.Match != "" && r.Match != entity) {
			continue
		}
		ls = append(ls, limits.Limit{Scope: s.counter(r.Scope, entity),
			RequestsPerMinute: int64(r.RequestsPerMinute), TokensPerMinute: int64(r.TokensPerMinute)})
	}
	var bs []limits.Budget
	for _, b := range l.budgets {
		entity, ok := s.scope(b.scope)
		if !ok || (b.match != "" && b.match != entity) {
			continue
		}
		bs = append(bs, limits.Budget{Scope: s.counter(b.scope, entity), Daily: b.daily, Monthly: b.monthly, MaxCostPerRequest: b.maxCost})
	}
	return mergeLimits(ls), mergeBudgets(bs)
}

// mergeLimits keeps one entry per counter, the tightest of each kind, as the
// limiter requires.
func mergeLimits(ls []limits.Limit) []limits.Limit {
	out := ls[:0]
next:
	for _, l := range ls {
		for i := range out {
			if out[i].Scope == l.Scope {
				out[i].RequestsPerMinute = tighter(out[i].RequestsPerMinute, l.RequestsPerMinute)
				out[i].TokensPerMinute = tighter(out[i].TokensPerMinute, l.TokensPerMinute)
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

func mergeBudgets(bs []limits.Budget) []limits.Budget {
	out := bs[:0]
next:
	for _, b := range bs {
		for i := range out {
			if out[i].Scope == b.Scope {
				out[i].Daily = tighter(out[i].Daily, b.Daily)
				out[i].Monthly = tighter(out[i].Monthly, b.Monthly)
				out[i].MaxCostPerRequest = tighter(out[i].MaxCostPerRequest, b.MaxCostPerRequest)
				continue next
			}
		}
		out = append(out, b)
	}
	return out
}

// tighter picks the smaller of two limits where 0 means "none".
func tighter(a, b int64) int64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
