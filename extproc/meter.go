package extproc

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// Metering: admission against rate limits and budgets before a request goes
// upstream, exact usage and cost when it ends, and the figures the client
// sees (x-tollgate-* headers, Server-Timing, or an SSE comment for streams).

// bytesPerToken is the estimate used where no tokenizer runs: reservations
// before the call, and usage of a stream cut before its usage arrived.
const bytesPerToken = 4

func estimateTokens(n int) int64 { return int64((n + bytesPerToken - 1) / bytesPerToken) }

// meter is one request's metering state, embedded in exchange. Admission
// (admit, capOutput) writes the reservation, budgets and estimates before
// the request goes upstream; the response readers consult it only through
// budgetSpent and endComment; settle turns what the response reported into
// the record's usage and cost exactly once.
//
// settle runs at one point: when the end of the response reaches the
// processor (endResponse for a body or headers-only response, endComment
// for a stream's end marker or last chunk), or, for an exchange that ended
// before its response did, in finish. Everything that reports the figures
// (meteringHeaders, meterComment, the log line, the ledger, reconcile) reads
// them after that point and never settles itself.
type meter struct {
	quota           limits.Decision     // admission decision (its quotas feed x-ratelimit-*)
	reservation     *limits.Reservation // to reconcile when the request ends
	budgets         []limits.Budget     // budgets that applied, for mid-stream checks
	promptEst       int64
	maxOut          int64
	forwarded       bool      // the request went upstream
	forwardedAt     time.Time // when the request body reply was sent
	procTime        time.Duration
	settled         bool // usage and cost are final
	lastBudgetCheck time.Time
}

// admission is what admit estimates for one endpoint; each processor lists
// the admit step configured for its body, so admit never asks which
// endpoint it serves.
type admission struct {
	promptTokens bool // the body is text whose tokens are estimated (audio bytes are not tokens)
	capOutput    bool // the body carries an output cap (max_completion_tokens / max_tokens) to read or set
	// outputField, with capOutput, is the endpoint's one output cap field,
	// read and written whatever the provider (max_output_tokens on
	// Responses); "": chat's two, written in the provider's field.
	outputField string
}

// admit reserves the request on every limit and budget that applies.
func admit(x *exchange, req *upstreamRequest, a admission) *oaierror.Error {
	rules, limiter := x.snap.Limits, x.srv.limiter
	if rules.Empty() || limiter == nil {
		return nil
	}
	s := limits.Subject{KeyID: x.key.ID, Tenant: x.key.Tenant, Tier: x.rec.tier, Model: x.target.Canonical()}
	if x.app != nil {
		s.App = x.app.Tenant + "/" + x.app.Name
	}
	ls, bs := rules.For(s)
	if len(ls) == 0 && len(bs) == 0 {
		return nil
	}
	x.budgets = bs
	if a.promptTokens {
		x.promptEst = estimateTokens(len(req.body))
	}
	if a.capOutput {
		if err := capOutput(x, req, rules.DefaultMaxTokens(), boundsOutput(ls, bs), a.outputField); err != nil {
			return err
		}
	}
	est, refused := x.estimateCost(len(bs) > 0)
	if refused != nil {
		return refused
	}
	dec, err := limiter.Admit(x.ctx, limits.Request{Limits: ls, Budgets: bs, Tokens: x.promptEst + x.maxOut, EstimatedCost: int64(est)})
	if err != nil {
		// The decision already follows the configured failure policy.
		x.log().Warn("limits backend failed", zap.Error(err), zap.Bool("allowed", dec.Allowed))
		x.srv.metrics.limitsBackendError()
	}
	x.quota = dec
	x.srv.metrics.admission(dec)
	if !dec.Allowed {
		return refusal(dec)
	}
	res := dec.Reservation
	x.reservation = &res
	return nil
}

// capOutput sets x.maxOut, the output tokens reserved and priced: the
// client's max_completion_tokens or max_tokens, else def. When the client set
// neither and enforce is true, def is also written into the request, so the
// provider stops where the reservation ends; otherwise a provider's own
// default (or none) would let output, and the tokens charged, run past it.
// The field is the provider's (config max_tokens_field); translated schemas
// read it from the OpenAI-format body and send their own. An endpoint with
// a field of its own (own) reads and writes only that one, and its
// translation carries the cap to the provider's field.
func capOutput(x *exchange, req *upstreamRequest, def int64, enforce bool, own string) *oaierror.Error {
	set := false
	fields := []string{"max_completion_tokens", "max_tokens"}
	if own != "" {
		fields = []string{own}
	}
	for _, f := range fields {
		v := req.get(f)
		if v.Type == gjson.Number && v.Int() > 0 {
			// Saturated: no model writes 2^31 tokens, and an absurd value must
			// be judged by the limits (a 429), not overflow their arithmetic.
			x.maxOut = min(v.Int(), math.MaxInt32)
			return nil
		}
		// Anything but null is the client's choice: left for the provider to judge.
		set = set || (v.Exists() && v.Type != gjson.Null)
	}
	x.maxOut = def
	if !enforce || set {
		return nil
	}
	// A fallback chain's attempts share one body: the first member's field.
	p := x.target.Provider
	if ch := x.target.Chain; ch != nil && len(ch.Members) > 0 {
		p = ch.Members[0].Provider
	}
	field := config.FieldMaxCompletionTokens
	switch {
	case own != "":
		field = own
	case p != nil && p.MaxTokensField != "":
		field = p.MaxTokensField
	}
	// Queued like every other body edit (spliceBody writes them in one pass):
	// rewriting the body here would move the offsets of edits queued before.
	value := strconv.AppendInt(nil, def, 10)
	if i := req.member(field); i >= 0 { // present as null
		req.edit(req.members[i].ValueStart, req.members[i].ValueEnd, value)
	} else {
		req.addMember(field, value)
	}
	return nil
}

// boundsOutput reports whether a request's output size matters to its
// limits: a tokens-per-minute limit reserves it, a per-request cost cap
// prices it.
func boundsOutput(ls []limits.Limit, bs []limits.Budget) bool {
	for _, l := range ls {
		if l.TokensPerMinute > 0 {
			return true
		}
	}
	for _, b := range bs {
		if b.MaxCostPerRequest > 0 {
			return true
		}
	}
	return false
}

// refusal maps a limiter refusal to OpenAI's error shapes: 429
// rate_limit_exceeded for rate limits, 429 insufficient_quota for spent
// budgets.
func refusal(dec limits.Decision) *oaierror.Error {
	switch dec.Reason {
	case limits.ReasonRequests:
		return &oaierror.Error{Status: 429, Type: "requests", Code: "rate_limit_exceeded", Message: "Rate limit reached for requests per minute. Retry after the time in the Retry-After header."}
	case limits.ReasonTokens:
		return &oaierror.Error{Status: 429, Type: "tokens", Code: "rate_limit_exceeded", Message: "Rate limit reached for tokens per minute. Retry after the time in the Retry-After header."}
	case limits.ReasonTooLarge:
		return &oaierror.Error{Status: 429, Type: "tokens", Code: "rate_limit_exceeded", Message: "This request needs more tokens than the per-minute limit allows; lower max_tokens or the prompt size."}
	case limits.ReasonDaily, limits.ReasonMonthly:
		return &oaierror.Error{Status: 429, Type: "insufficient_quota", Code: "insufficient_quota", Message: "The " + string(dec.Reason) + " budget is spent."}
	case limits.ReasonMaxCost:
		return &oaierror.Error{Status: 400, Type: oaierror.TypeInvalidRequest, Code: "max_cost_per_request_exceeded", Param: "max_tokens",
			Message: "The estimated cost of this request exceeds the maximum per request; lower max_tokens or the prompt size."}
	}
	return oaierror.Internal(503, "limits_unavailable", "Rate limits cannot be checked right now.")
}

// rateLimitHeaders adds OpenAI's x-ratelimit-* headers for the tightest
// limits that applied, and Retry-After on a refusal.
func (x *exchange) rateLimitHeaders(mu *mutation) {
	d := x.quota
	for _, q := range []struct {
		kind string
		q    limits.Quota
	}{{"requests", d.Requests}, {"tokens", d.Tokens}} {
		if q.q.Limit == 0 {
			continue
		}
		mu.set("x-ratelimit-limit-"+q.kind, strconv.FormatInt(q.q.Limit, 10))
		mu.set("x-ratelimit-remaining-"+q.kind, strconv.FormatInt(max(q.q.Remaining, 0), 10))
		mu.set("x-ratelimit-reset-"+q.kind, formatReset(q.q.Reset))
	}
	if !d.Allowed && d.RetryAfter > 0 {
		mu.set("retry-after", strconv.FormatInt(int64(math.Ceil(d.RetryAfter.Seconds())), 10))
	}
}

// formatReset writes a duration as OpenAI does: "6m0s", "1s", "12ms".
func formatReset(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

// endResponse marks the end of the response (its end_of_stream reached the
// processor) and settles the meter.
func (x *exchange) endResponse() {
	x.respEnded = true
	x.settle()
}

// settle writes the request's usage and cost to the record: the provider's
// figures where it reported them, an estimate flagged as such where a
// response started but its usage never arrived (client gone, upstream
// reset, timeout). Only the first call counts (see meter).
func (x *exchange) settle() {
	if x.settled {
		return
	}
	x.settled = true
	r := &x.rec
	if x.body != nil {
		if u, ok := x.body.usage(); ok {
			r.usage, r.usageKnown = u, true
		}
	}
	if !r.usageKnown && x.forwarded && r.status == 200 && (x.endpoint == routing.EndpointChat || x.endpoint == routing.EndpointEmbeddings) {
		r.usage, r.estimated = x.estimateUsage(), true
	}
	if x.snap != nil && x.target.Provider != nil && (r.usageKnown || r.estimated) {
		c, ok := x.snap.Prices.Cost(x.priceKey(), pricingUsage(r.usage), x.start)
		r.cost, r.costKnown = c.Total, ok
	}
}

// reconcile charges the limits and budgets with what the request really
// used. A request that never reached a provider used no tokens.
func (x *exchange) reconcile() {
	if x.reservation == nil {
		return
	}
	// The client may be gone (its stream cancelled) but what it used must
	// still be charged: keep the request's values, drop its cancellation.
	// The backend bounds the call (Redis: limits.redis.reconcile_timeout) and
	// queues it for retry when Redis does not answer.
	ctx := context.WithoutCancel(x.ctx)
	u := limits.Usage{Tokens: x.rec.usage.TotalTokens, Cost: int64(x.rec.cost)}
	if err := x.srv.limiter.Reconcile(ctx, *x.reservation, u); err != nil {
		x.srv.log.Warn("limits reconcile failed", zap.String("request_id", x.rec.requestID), zap.Error(err))
		x.srv.metrics.limitsBackendError()
	}
}

// meteringHeaders are the figures a non-streaming response carries; the
// meter is settled (endResponse) before.
func (x *exchange) meteringHeaders(mu *mutation) {
	r := &x.rec
	mu.reserveFor(9) // the headers below, all of them in the common case
	if r.provider != "" {
		mu.set("x-tollgate-provider", r.provider)
		mu.set("x-tollgate-model", r.providerModel)
	}
	if r.usageKnown || r.estimated {
		mu.setInt("x-tollgate-prompt-tokens", r.usage.PromptTokens)
		mu.setInt("x-tollgate-completion-tokens", r.usage.CompletionTokens)
		mu.setInt("x-tollgate-total-tokens", r.usage.TotalTokens)
		mu.setInt("x-tollgate-cached-tokens", r.usage.CachedTokens)
		mu.set("x-tollgate-usage", usageSource(r))
	}
	if r.costKnown {
		var c [24]byte
		mu.setBytes("x-tollgate-cost-usd", r.cost.Append(c[:0]))
	}
	var st [64]byte
	mu.setBytes("server-timing", x.appendServerTiming(st[:0]))
}

func usageSource(r *record) string {
	if r.estimated {
		return "estimated"
	}
	return "provider"
}

// appendServerTiming appends the server-timing value to b: the gateway's own
// processing time and the time the provider took to answer, in milliseconds
// (strconv's 'f' with precision 3 is fmt's %.3f without its allocations).
func (x *exchange) appendServerTiming(b []byte) []byte {
	upstream := time.Duration(0)
	if x.forwarded && !x.rec.upstreamHeaders.IsZero() {
		upstream = x.rec.upstreamHeaders.Sub(x.forwardedAt)
	}
	b = append(b, "gateway;dur="...)
	b = strconv.AppendFloat(b, ms(x.procTime), 'f', 3, 64)
	b = append(b, ", upstream;dur="...)
	return strconv.AppendFloat(b, ms(upstream), 'f', 3, 64)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// endComment settles the meter at a stream's end (its end marker or last
// chunk) and returns the metering comment that ends the client's stream.
func (x *exchange) endComment() []byte {
	x.settle()
	return x.meterComment()
}

// meterComment is the SSE comment line that ends a stream with the same
// figures a non-streaming response carries in headers. SSE clients ignore
// comment lines.
func (x *exchange) meterComment() []byte {
	r := &x.rec
	b := make([]byte, 0, 256)
	b = append(b, ": tollgate request_id="...)
	b = append(b, r.requestID...)
	b = append(b, " provider="...)
	b = append(b, r.provider...)
	b = append(b, " model="...)
	b = append(b, r.providerModel...)
	if r.usageKnown || r.estimated {
		b = fmt.Appendf(b, " prompt_tokens=%d completion_tokens=%d total_tokens=%d cached_tokens=%d usage=%s",
			r.usage.PromptTokens, r.usage.CompletionTokens, r.usage.TotalTokens, r.usage.CachedTokens, usageSource(r))
	}
	if r.costKnown {
		b = append(b, " cost_usd="...)
		b = append(b, r.cost.String()...)
	}
	b = fmt.Appendf(b, " gateway_ms=%.3f upstream_ms=%.3f\n\n", ms(x.procTime), ms(x.rec.upstreamHeaders.Sub(x.forwardedAt)))
	return b
}

// budgetSpent reports, at most once a second per stream, whether a budget of
// this request ran out while its stream was running, counting the stream's
// own cost so far. Only apps whose policy is to terminate ask.
func (x *exchange) budgetSpent(received int) bool {
	if x.app == nil || x.app.OnBudgetExhausted != "terminate" || len(x.budgets) == 0 || x.srv.limiter == nil || x.snap.Prices == nil {
		return false
	}
	now := x.srv.now()
	if now.Sub(x.lastBudgetCheck) < time.Second {
		return false
	}
	x.lastBudgetCheck = now
	c, _ := x.snap.Prices.Cost(x.priceKey(), pricing.Usage{PromptTokens: x.promptEst, CompletionTokens: estimateTokens(received)}, x.start)
	dec, err := x.srv.limiter.Check(x.ctx, x.budgets, int64(c.Total))
	if err != nil {
		x.srv.log.Warn("limits budget check failed", zap.Error(err))
		x.srv.metrics.limitsBackendError()
	}
	return !dec.Allowed
}

// budgetErrorEvent ends a stream whose budget ran out: a terminal SSE error
// event in OpenAI's format, which SDKs raise as an error.
var budgetErrorEvent = []byte(`data: {"error":{"message":"The budget for this app is spent; the stream was ended.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}` + "\n\n")
