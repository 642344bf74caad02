// Package limits enforces rate limits (requests and tokens per minute) and
// spend budgets (per UTC calendar day and month) for scopes such as a key,
// an app, a tenant, a tier, a model or the whole gateway.
//
// A request is admitted by [Limiter.Admit], which reserves one request and
// the estimated tokens on every applicable limit atomically (all or
// nothing) and checks every applicable budget; when it finishes,
// [Limiter.Reconcile] charges or refunds the difference between the
// estimate and the real token count and charges the real cost to the
// budgets. [Limiter.Check] answers "is a budget now exhausted?" while a
// stream runs.
//
// Rate limits are leaky buckets (GCRA): a limit of L per minute drains
// continuously at L per minute and holds at most L, so a full burst of L is
// allowed and then L per minute, with no window boundary to game. Budgets
// are plain counters. Two backends implement [Limiter]: [Memory] for one
// replica and [Redis] for many. docs/limits.md has the semantics and the
// overshoot bounds.
//
// Scopes are opaque strings built by the caller (e.g. "key:abc"); limit
// values come with each request, so a configuration reload applies to the
// next request without touching stored state.
package limits

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Limiter is what the gateway needs from a limits backend.
type Limiter interface {
	// Admit decides whether a request may go upstream and, when it may,
	// reserves it. The Decision is always usable: on error (backend
	// unreachable, invalid request) it is the failure policy's decision.
	Admit(ctx context.Context, req Request) (Decision, error)
	// Reconcile settles an admitted request once its usage is known.
	Reconcile(ctx context.Context, res Reservation, used Usage) error
	// Check reports, in Decision.Allowed, whether the budgets still have
	// room once pending (the running cost of this request, not yet charged)
	// is added. A refusal carries the exhausted budget's Reason and Scope.
	Check(ctx context.Context, budgets []Budget, pending int64) (Decision, error)
}

// MaxPerMinute is the highest accepted requests- or tokens-per-minute
// limit. It keeps all bucket arithmetic exact in Redis Lua, whose numbers
// are doubles (exact integers up to 2^53).
const MaxPerMinute = 10_000_000_000

// Limit is the rate limits of one scope. Zero means no limit.
type Limit struct {
	Scope             string
	RequestsPerMinute int64
	TokensPerMinute   int64
}

// Budget is the spend limits of one scope, in the caller's integer cost
// unit (pricing.Amount, pico-dollars). Zero means no limit.
type Budget struct {
	Scope             string
	Daily             int64 // per UTC calendar day
	Monthly           int64 // per UTC calendar month
	MaxCostPerRequest int64 // compared with Request.EstimatedCost
}

// Request is what Admit needs to know about one request.
type Request struct {
	Limits  []Limit  // every rate limit that applies; one entry per scope
	Budgets []Budget // every budget that applies; one entry per scope
	// Tokens is the number of tokens to reserve: the prompt estimate plus
	// the maximum output.
	Tokens int64
	// EstimatedCost is the worst-case cost, checked against
	// MaxCostPerRequest; 0 (unknown or free) skips that check.
	EstimatedCost int64
}

// Usage is what a finished request really used.
type Usage struct {
	Tokens int64 // total tokens, input and output
	Cost   int64 // in the budgets' unit
}

// Reason says why a request was refused.
type Reason string

// Reasons.
const (
	ReasonNone        Reason = ""
	ReasonRequests    Reason = "requests"          // requests-per-minute limit
	ReasonTokens      Reason = "tokens"            // tokens-per-minute limit
	ReasonTooLarge    Reason = "request_too_large" // the reservation alone exceeds a tokens-per-minute limit; retrying cannot help
	ReasonDaily       Reason = "daily_budget"
	ReasonMonthly     Reason = "monthly_budget"
	ReasonMaxCost     Reason = "max_cost_per_request" // the estimate exceeds MaxCostPerRequest; retrying cannot help
	ReasonUnavailable Reason = "unavailable"          // the backend failed and the failure policy is fail-closed
	ReasonInvalid     Reason = "invalid"              // the request's limits are invalid (a caller bug)
)

// Quota is one rate limit's state for x-ratelimit-* headers.
type Quota struct {
	Limit     int64         // per minute; 0 when no limit of this kind applied
	Remaining int64         // what can still be admitted now
	Reset     time.Duration // until the limit is back to Limit remaining
}

// Decision is the outcome of Admit or Check.
type Decision struct {
	Allowed bool
	Reason  Reason // ReasonNone when allowed
	Scope   string // the refusing limit's or budget's scope
	// RetryAfter is when retrying can succeed, for Retry-After; 0 when it
	// cannot (ReasonTooLarge, ReasonMaxCost) or is unknown.
	RetryAfter time.Duration
	// Requests and Tokens are the tightest applicable limit of each kind
	// (the least remaining, then the longest reset), after this request's
	// reservation when allowed. Zero when none applied or the backend
	// failed.
	Requests Quota
	Tokens   Quota
	// Reservation is what to pass to Reconcile when Allowed.
	Reservation Reservation
}

// Reservation is what Admit reserved; Reconcile settles it. The zero value
// reserves nothing.
type Reservation struct {
	limits   []Limit
	budgets  []Budget
	tokens   int64 // reserved on every tokens-per-minute limit
	reserved bool  // false when admitted without reserving (fail-open)
}

// FailMode is what a backend failure means for one kind of limit.
type FailMode int

// Fail modes.
const (
	FailOpen   FailMode = iota // admit as if the limit did not exist
	FailClosed                 // refuse with ReasonUnavailable
)

// FailurePolicy is the fail mode per kind of limit. When a request is
// subject to several kinds, any fail-closed kind refuses it.
type FailurePolicy struct {
	Requests FailMode
	Tokens   FailMode
	Budgets  FailMode // daily and monthly budgets; MaxCostPerRequest needs no backend
}

// Errors. Backend errors wrap ErrUnavailable (count them in a metric);
// invalid requests wrap ErrInvalid.
var (
	ErrUnavailable = errors.New("limits backend unavailable")
	ErrInvalid     = errors.New("invalid limits request")
)

// Internal units. A bucket's level counts unit per request or token and
// drains rate units per millisecond, so a limit of rate per minute holds
// rate*unit: integer arithmetic with millisecond resolution.
const (
	unit      = 60_000
	maxLevel  = 1 << 52 // debt beyond this is forgotten; keeps Lua exact
	keyMargin = time.Minute
	// spendGrace keeps a budget counter past its period, for replicas
	// whose clocks lag.
	spendGrace = 24 * time.Hour
)

type kind byte

const (
	kindRequests kind = 'r'
	kindTokens   kind = 't'
)

// bucketOp is one rate-limit bucket touched by an operation.
type bucketOp struct {
	key   string // kind + ":" + scope
	scope string
	kind  kind
	rate  int64 // per minute
	units int64 // to add (admission) or add/remove (reconciliation)
}

// spendOp is one budget counter touched by an operation.
type spendOp struct {
	key    string // "d:YYYYMMDD:" or "m:YYYYMM:" + scope
	scope  string
	reason Reason // ReasonDaily or ReasonMonthly
	limit  int64  // the budget (admission, check) or the amount to charge (reconciliation)
	ttl    time.Duration
	next   time.Time // start of the next period
}

// admitPlan is a validated Admit request in backend terms.
type admitPlan struct {
	now      time.Time
	buckets  []bucketOp
	spends   []spendOp
	refusal  *candidate // decided without the backend: max cost
	req      Request
	requests bool // kinds present, for the failure policy
	tokens   bool
}

// candidate is one reason to refuse.
type candidate struct {
	reason    Reason
	scope     string
	wait      time.Duration
	permanent bool
}

func validate(req Request) error {
	if req.Tokens < 0 || req.EstimatedCost < 0 {
		return fmt.Errorf("%w: negative tokens or estimated cost", ErrInvalid)
	}
	for i, l := range req.Limits {
		switch {
		case l.Scope == "":
			return fmt.Errorf("%w: limit without a scope", ErrInvalid)
		case slices.ContainsFunc(req.Limits[:i], func(o Limit) bool { return o.Scope == l.Scope }):
			return fmt.Errorf("%w: limit scope %q given twice", ErrInvalid, l.Scope)
		case l.RequestsPerMinute < 0 || l.RequestsPerMinute > MaxPerMinute || l.TokensPerMinute < 0 || l.TokensPerMinute > MaxPerMinute:
			return fmt.Errorf("%w: limit %q out of range [0, %d]", ErrInvalid, l.Scope, int64(MaxPerMinute))
		}
	}
	return validateBudgets(req.Budgets)
}

func validateBudgets(budgets []Budget) error {
	// Requests carry a handful of scopes: a quadratic scan beats a map.
	for i, b := range budgets {
		switch {
		case b.Scope == "":
			return fmt.Errorf("%w: budget without a scope", ErrInvalid)
		case slices.ContainsFunc(budgets[:i], func(o Budget) bool { return o.Scope == b.Scope }):
			return fmt.Errorf("%w: budget scope %q given twice", ErrInvalid, b.Scope)
		case b.Daily < 0 || b.Monthly < 0 || b.MaxCostPerRequest < 0:
			return fmt.Errorf("%w: budget %q is negative", ErrInvalid, b.Scope)
		}
	}
	return nil
}

func bucketKey(k kind, scope string) string { return string(k) + ":" + scope }

// spendOps returns the counters of budgets at now, with limit set by
// amount (nil: the budget itself).
func spendOps(budgets []Budget, now time.Time, amount func(Budget) int64) []spendOp {
	now = now.UTC()
	y, m, d := now.Date()
	nextDay := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
	nextMonth := time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
	day, month := now.Format("20060102"), now.Format("200601")
	var ops []spendOp
	for _, b := range budgets {
		if b.Daily > 0 {
			v := b.Daily
			if amount != nil {
				v = amount(b)
			}
			ops = append(ops, spendOp{key: "d:" + day + ":" + b.Scope, scope: b.Scope, reason: ReasonDaily, limit: v, ttl: nextDay.Sub(now) + spendGrace, next: nextDay})
		}
		if b.Monthly > 0 {
			v := b.Monthly
			if amount != nil {
				v = amount(b)
			}
			ops = append(ops, spendOp{key: "m:" + month + ":" + b.Scope, scope: b.Scope, reason: ReasonMonthly, limit: v, ttl: nextMonth.Sub(now) + spendGrace, next: nextMonth})
		}
	}
	return ops
}

// planAdmit validates req and lays out the buckets and counters it touches.
func planAdmit(req Request, now time.Time) (*admitPlan, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	p := &admitPlan{now: now, req: req}
	for _, l := range req.Limits {
		if l.RequestsPerMinute > 0 {
			p.requests = true
			p.buckets = append(p.buckets, bucketOp{key: bucketKey(kindRequests, l.Scope), scope: l.Scope, kind: kindRequests, rate: l.RequestsPerMinute, units: unit})
		}
		if l.TokensPerMinute > 0 {
			p.tokens = true
			// A reservation above the limit is refused whatever the state;
			// clamping keeps the arithmetic small.
			n := min(req.Tokens, l.TokensPerMinute+1)
			p.buckets = append(p.buckets, bucketOp{key: bucketKey(kindTokens, l.Scope), scope: l.Scope, kind: kindTokens, rate: l.TokensPerMinute, units: n * unit})
		}
	}
	p.spends = spendOps(req.Budgets, now, nil)
	if req.EstimatedCost > 0 {
		for _, b := range req.Budgets {
			if b.MaxCostPerRequest > 0 && req.EstimatedCost > b.MaxCostPerRequest {
				p.refusal = &candidate{reason: ReasonMaxCost, scope: b.Scope, permanent: true}
				break
			}
		}
	}
	return p, nil
}

// leak drains level by rate per millisecond over elapsed milliseconds.
func leak(level, rate, elapsed int64) int64 {
	if elapsed <= 0 || level <= 0 {
		return max(level, 0)
	}
	if elapsed >= ceilDiv(level, rate) { // rate*elapsed >= level, without overflow
		return 0
	}
	return level - rate*elapsed
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func ms(d int64) time.Duration { return time.Duration(d) * time.Millisecond }

// fits is the admission test of one bucket; the Lua script has the same.
func fits(level int64, op bucketOp) bool { return level+op.units <= op.rate*unit }

// decide turns the state the plan saw (bucket levels after draining, before
// this request; counter values) into a Decision. Both backends use it, so
// they answer identically; the Lua script repeats only its yes/no.
func (p *admitPlan) decide(levels, spent []int64) Decision {
	var cands []candidate
	if p.refusal != nil {
		cands = append(cands, *p.refusal)
	}
	for i, op := range p.buckets {
		if fits(levels[i], op) {
			continue
		}
		c := candidate{reason: ReasonRequests, scope: op.scope}
		if op.kind == kindTokens {
			c.reason = ReasonTokens
		}
		if op.units > op.rate*unit {
			c.reason, c.permanent = ReasonTooLarge, true
		} else {
			c.wait = ms(ceilDiv(levels[i]+op.units-op.rate*unit, op.rate))
		}
		cands = append(cands, c)
	}
	for i, op := range p.spends {
		if spent[i] >= op.limit {
			cands = append(cands, candidate{reason: op.reason, scope: op.scope, wait: op.next.Sub(p.now)})
		}
	}
	d := Decision{Allowed: len(cands) == 0}
	if d.Allowed {
		d.Reservation = Reservation{limits: p.req.Limits, budgets: p.req.Budgets, tokens: p.req.Tokens, reserved: true}
	} else {
		c := worst(cands)
		d.Reason, d.Scope, d.RetryAfter = c.reason, c.scope, c.wait
	}
	for i, op := range p.buckets {
		level := levels[i]
		if d.Allowed {
			level += op.units
		}
		q := Quota{Limit: op.rate, Remaining: max(op.rate*unit-level, 0) / unit, Reset: ms(ceilDiv(level, op.rate))}
		tight := &d.Requests
		if op.kind == kindTokens {
			tight = &d.Tokens
		}
		if tight.Limit == 0 || q.Remaining < tight.Remaining || q.Remaining == tight.Remaining && q.Reset > tight.Reset {
			*tight = q
		}
	}
	return d
}

// worst picks the refusal to report: one retrying cannot fix, else the one
// with the longest wait (retrying earlier would be refused again).
func worst(cands []candidate) candidate {
	w := cands[0]
	for _, c := range cands[1:] {
		if !w.permanent && (c.permanent || c.wait > w.wait) {
			w = c
		}
	}
	return w
}

// failed is the failure policy's decision when the backend could not be
// asked. The max-cost check needs no backend and still applies.
func (p *admitPlan) failed(policy FailurePolicy, err error) (Decision, error) {
	err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	if p.refusal != nil {
		return Decision{Reason: p.refusal.reason, Scope: p.refusal.scope}, err
	}
	if p.requests && policy.Requests == FailClosed || p.tokens && policy.Tokens == FailClosed || len(p.spends) > 0 && policy.Budgets == FailClosed {
		return Decision{Reason: ReasonUnavailable}, err
	}
	return Decision{Allowed: true, Reservation: Reservation{limits: p.req.Limits, budgets: p.req.Budgets}}, err
}

// planReconcile lays out the bucket adjustments and counter charges that
// settle res. Tokens not reserved at admission (fail-open) are charged now.
func planReconcile(res Reservation, used Usage, now time.Time) ([]bucketOp, []spendOp, error) {
	if used.Tokens < 0 || used.Cost < 0 {
		return nil, nil, fmt.Errorf("%w: negative usage", ErrInvalid)
	}
	tokens := min(used.Tokens, MaxPerMinute)
	reserved := int64(0)
	if res.reserved {
		reserved = res.tokens
	}
	var buckets []bucketOp
	for _, l := range res.limits {
		if l.RequestsPerMinute > 0 && !res.reserved {
			buckets = append(buckets, bucketOp{key: bucketKey(kindRequests, l.Scope), scope: l.Scope, kind: kindRequests, rate: l.RequestsPerMinute, units: unit})
		}
		if l.TokensPerMinute > 0 && tokens != reserved {
			buckets = append(buckets, bucketOp{key: bucketKey(kindTokens, l.Scope), scope: l.Scope, kind: kindTokens, rate: l.TokensPerMinute, units: (tokens - reserved) * unit})
		}
	}
	var spends []spendOp
	if used.Cost > 0 {
		spends = spendOps(res.budgets, now, func(Budget) int64 { return used.Cost })
	}
	return buckets, spends, nil
}

// settle applies a reconciliation delta to a drained level.
func settle(level, delta int64) int64 { return min(max(level+delta, 0), maxLevel) }

// checkDecision decides Check from the counters' values.
func checkDecision(ops []spendOp, spent []int64, pending int64, now time.Time) Decision {
	var cands []candidate
	for i, op := range ops {
		if spent[i] >= op.limit-min(pending, op.limit) { // spent+pending >= limit, without overflow
			cands = append(cands, candidate{reason: op.reason, scope: op.scope, wait: op.next.Sub(now)})
		}
	}
	if len(cands) == 0 {
		return Decision{Allowed: true}
	}
	c := worst(cands)
	return Decision{Reason: c.reason, Scope: c.scope, RetryAfter: c.wait}
}

// addSat adds two non-negative counters, saturating.
func addSat(a, b int64) int64 {
	const maxInt = 1<<63 - 1
	if a > maxInt-b {
		return maxInt
	}
	return a + b
}
