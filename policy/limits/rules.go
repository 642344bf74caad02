package limits

// Rules are the compiled rate-limit and budget rules of one configuration.
// They hold no counters: a Limiter does, for the life of the process, so a
// reload changes the rules without resetting what was spent.
type Rules struct {
	rates            []RateRule
	budgets          []BudgetRule
	defaultMaxTokens int64
}

// Scopes a rule can apply to.
const (
	ScopeKey    = "key"
	ScopeApp    = "app"
	ScopeTenant = "tenant"
	ScopeTier   = "tier"
	ScopeModel  = "model"
	ScopeGlobal = "global"
)

// RateRule is one configured rate limit: per minute, for every entity of a
// scope, or only the one Match names.
type RateRule struct {
	Scope, Match      string
	RequestsPerMinute int64
	TokensPerMinute   int64
}

// BudgetRule is one configured budget, in the Budget's cost unit.
type BudgetRule struct {
	Scope, Match               string
	Daily, Monthly, MaxPerCall int64
}

// NewRules compiles rules. defaultMaxTokens is the output reserved for a
// request that names no maximum.
func NewRules(rates []RateRule, budgets []BudgetRule, defaultMaxTokens int64) *Rules {
	return &Rules{rates: rates, budgets: budgets, defaultMaxTokens: defaultMaxTokens}
}

// Empty reports whether no rule applies to any request.
func (r *Rules) Empty() bool { return r == nil || (len(r.rates) == 0 && len(r.budgets) == 0) }

// DefaultMaxTokens is the output reserved for a request that names no
// maximum.
func (r *Rules) DefaultMaxTokens() int64 { return r.defaultMaxTokens }

// Subject names what a request is, in every scope a rule can match.
type Subject struct {
	KeyID, Tenant, Tier string
	App                 string // "tenant/app"; "" when the request has no app
	Model               string // "provider/model"
}

// scope returns the entity a rule of this scope applies to for s, and
// whether it applies at all (a request without an app has no app scope).
func (s Subject) scope(scope string) (entity string, ok bool) {
	switch scope {
	case ScopeKey:
		return s.KeyID, true
	case ScopeApp:
		return s.App, s.App != ""
	case ScopeTenant:
		return s.Tenant, true
	case ScopeTier:
		return s.Tier, s.Tier != ""
	case ScopeModel:
		return s.Model, true
	case ScopeGlobal:
		return "", true
	}
	return "", false
}

// counter is the limiter key for an entity in a scope. A tier limit is a
// per-key allowance (every key of tier "free" gets its own bucket), which is
// what tiers are for.
func (s Subject) counter(scope, entity string) string {
	switch scope {
	case ScopeGlobal:
		return "global"
	case ScopeTier:
		return "tier:" + entity + ":key:" + s.KeyID
	}
	return scope + ":" + entity
}

// For returns the limits and budgets that apply to a request, one entry per
// counter (the tightest of each kind), as Limiter.Admit requires.
func (r *Rules) For(s Subject) ([]Limit, []Budget) {
	if r == nil {
		return nil, nil
	}
	var ls []Limit
	for _, rr := range r.rates {
		entity, ok := s.scope(rr.Scope)
		if !ok || (rr.Match != "" && rr.Match != entity) {
			continue
		}
		ls = append(ls, Limit{Scope: s.counter(rr.Scope, entity),
			RequestsPerMinute: rr.RequestsPerMinute, TokensPerMinute: rr.TokensPerMinute})
	}
	var bs []Budget
	for _, b := range r.budgets {
		entity, ok := s.scope(b.Scope)
		if !ok || (b.Match != "" && b.Match != entity) {
			continue
		}
		bs = append(bs, Budget{Scope: s.counter(b.Scope, entity), Daily: b.Daily, Monthly: b.Monthly, MaxCostPerRequest: b.MaxPerCall})
	}
	return mergeLimits(ls), mergeBudgets(bs)
}

// mergeLimits keeps one entry per counter, the tightest of each kind.
func mergeLimits(ls []Limit) []Limit {
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

func mergeBudgets(bs []Budget) []Budget {
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
