package limits

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the shared backend: every replica pointing at the same Redis
// (and Prefix) enforces the same limits. Each call is one Lua script, run
// with EVALSHA (falling back to EVAL when the server lost its script cache,
// e.g. after a restart): one round trip for Admit, one for Reconcile, one
// for Check. The replica's clock, passed to the script, is the time.
//
// Every call runs under a deadline (RedisOptions.AdmitTimeout,
// ReconcileTimeout), whatever the caller's context, so a hung Redis costs a
// request at most that long. A reconciliation that fails is queued and
// retried in the background once Redis answers again; [Redis.Close] stops
// that and reports what is left.
type Redis struct {
	client                  redis.Scripter
	prefix                  string
	now                     func() time.Time
	failure                 FailurePolicy
	admitTimeout            time.Duration
	reconcileTimeout        time.Duration
	admit, reconcile, check *redis.Script
	retry                   *retryQueue
}

// RedisOptions configures a Redis backend.
type RedisOptions struct {
	// Prefix starts every key; "tollgate:" when empty. On Redis Cluster
	// it must contain a hash tag ("{tollgate}:"): one script touches the
	// keys of several scopes, which must live in one slot.
	Prefix string
	// Now is the clock (time.Now when nil). Replicas' clocks should agree
	// to well under a second; skew shifts budget periods and drains
	// buckets early or late by the skew.
	Now func() time.Time
	// Failure is what to decide when Redis cannot be reached.
	Failure FailurePolicy
	// AdmitTimeout bounds each Admit and Check, including waiting for a
	// pooled connection, dialing and go-redis's own retries
	// (DefaultAdmitTimeout when 0). Keep it well under Envoy's ext_proc
	// message_timeout: a refused or fail-open answer within it beats
	// Envoy's 504.
	AdmitTimeout time.Duration
	// ReconcileTimeout bounds each Reconcile and each retry of a queued
	// one (DefaultReconcileTimeout when 0).
	ReconcileTimeout time.Duration
	// RetryQueue is how many failed reconciliations are kept for retry
	// (DefaultRetryQueue when 0); beyond it they are dropped and reported
	// to OnDropped.
	RetryQueue int
	// RetryInterval is how long the retry worker waits after a failed retry
	// before trying again (DefaultRetryInterval when 0). A successful call
	// from a request wakes it at once.
	RetryInterval time.Duration
	// OnDropped is told about reconciliations given up: the queue was full,
	// Redis refused the script, or Close found Redis still unreachable. Count
	// and log them: their charges are lost. Called from any goroutine.
	OnDropped func(n int, err error)
}

// Defaults of RedisOptions.
const (
	DefaultAdmitTimeout     = 500 * time.Millisecond
	DefaultReconcileTimeout = 2 * time.Second
	DefaultRetryQueue       = 10_000
	DefaultRetryInterval    = time.Second
)

var _ Limiter = (*Redis)(nil)

// NewRedis returns a backend using client (a *redis.Client, or a
// *redis.ClusterClient with a hash-tagged prefix) and starts its retry
// worker; call Close when done. Give the client ContextTimeoutEnabled, so
// the call deadlines reach the socket, and short dial, read and write
// timeouts with few retries. go-redis reconnects by itself once the server
// is back.
func NewRedis(client redis.Scripter, o RedisOptions) *Redis {
	if o.Prefix == "" {
		o.Prefix = "tollgate:"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AdmitTimeout <= 0 {
		o.AdmitTimeout = DefaultAdmitTimeout
	}
	if o.ReconcileTimeout <= 0 {
		o.ReconcileTimeout = DefaultReconcileTimeout
	}
	if o.RetryQueue <= 0 {
		o.RetryQueue = DefaultRetryQueue
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.OnDropped == nil {
		o.OnDropped = func(int, error) {}
	}
	r := &Redis{
		client: client, prefix: o.Prefix, now: o.Now, failure: o.Failure,
		admitTimeout: o.AdmitTimeout, reconcileTimeout: o.ReconcileTimeout,
		admit:     redis.NewScript(luaHelpers + admitLua),
		reconcile: redis.NewScript(luaHelpers + reconcileLua),
		check:     redis.NewScript(checkLua),
		retry:     newRetryQueue(o.RetryQueue, o.RetryInterval, o.OnDropped),
	}
	go r.retryLoop()
	return r
}

// maxLevel and keyMargin in milliseconds, spelled for Lua (a test checks).
const (
	maxLevelLua  = "4503599627370496"
	keyMarginLua = "60000"
)

// The scripts share these helpers. ge compares non-negative decimal
// strings exactly: counters in pico-dollars exceed 2^53, where Lua's double
// numbers stop being exact. drain mirrors leak in Go: rate*el stays exact
// while it is below level <= 2^52, and only its comparison with level
// matters beyond.
const luaHelpers = `
local function ge(a, b)
  if #a ~= #b then return #a > #b end
  for k = 1, #a do
    local x, y = a:byte(k), b:byte(k)
    if x ~= y then return x > y end
  end
  return true
end
local function drain(key, rate, now)
  local st = redis.call('HMGET', key, 'l', 't')
  local l = tonumber(st[1]) or 0
  local t = tonumber(st[2]) or now
  local el = now - t
  if el > 0 then
    if rate * el >= l then l = 0 else l = l - rate * el end
  end
  if now > t then t = now end
  return l, t
end
local function put(key, rate, l, t)
  if l <= 0 then
    redis.call('DEL', key)
    return
  end
  if l > ` + maxLevelLua + ` then l = ` + maxLevelLua + ` end
  redis.call('HSET', key, 'l', string.format('%.0f', l), 't', string.format('%.0f', t))
  redis.call('PEXPIRE', key, string.format('%.0f', math.ceil(l / rate) + ` + keyMarginLua + `))
end
`

// admitScript: KEYS = buckets, then budget counters. ARGV = now (ms),
// number of buckets, refuse flag ("1": refuse whatever the state), then
// rate and units per bucket, then the budget per counter. Returns
// {admitted 0/1, drained level per bucket..., counter value per counter...}
// and writes the reservations only when every bucket and budget has room.
const admitLua = `
local now = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local ok = ARGV[3] == '0'
local out = {0}
local lv, lt = {}, {}
for i = 1, nb do
  local rate, units = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  lv[i], lt[i] = drain(KEYS[i], rate, now)
  out[i + 1] = lv[i]
  if lv[i] + units > rate * 60000 then ok = false end
end
local base = 3 + 2 * nb
for j = nb + 1, #KEYS do
  local spent = redis.call('GET', KEYS[j]) or '0'
  out[j + 1] = spent
  if ge(spent, ARGV[base + j - nb]) then ok = false end
end
if ok then
  out[1] = 1
  for i = 1, nb do
    put(KEYS[i], tonumber(ARGV[2 + 2 * i]), lv[i] + tonumber(ARGV[3 + 2 * i]), lt[i])
  end
end
return out
`

// reconcileScript: KEYS = the reconciliation's marker, then buckets, then
// counters. ARGV = now (ms), number of buckets, marker TTL (ms), then rate
// and signed units per bucket, then amount and TTL (ms) per counter. A
// counter saturates at the int64 maximum.
//
// The marker makes a reconciliation apply at most once. A call that timed
// out may still run: its command sits in the socket buffer of a hung
// server, which executes it when it resumes, and the retry queue sends it
// again. Whichever arrives second finds the marker and changes nothing
// (returns 0).
const reconcileLua = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
local now = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
for i = 1, nb do
  local rate, delta = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local l, t = drain(KEYS[i + 1], rate, now)
  put(KEYS[i + 1], rate, l + delta, t)
end
local base = 3 + 2 * nb
for j = nb + 2, #KEYS do
  local k = base + 2 * (j - nb - 1) - 1
  local r = redis.pcall('INCRBY', KEYS[j], ARGV[k])
  if type(r) == 'table' and r.err then redis.call('SET', KEYS[j], '9223372036854775807') end
  redis.call('PEXPIRE', KEYS[j], ARGV[k + 1])
end
return 1
`

// markerTTL is how long a reconciliation's marker outlives its first
// execution. A retry comes within seconds of Redis answering again, so a
// few minutes is ample; each marker is one small key while it lives.
const markerTTL = 5 * time.Minute

// checkScript returns the value of every counter in KEYS. A script rather
// than MGET so the client only needs to be a redis.Scripter.
const checkLua = `
local out = {}
for j = 1, #KEYS do out[j] = redis.call('GET', KEYS[j]) or '0' end
return out
`

// Admit implements [Limiter]. On a Redis error it returns the failure
// policy's decision and an error wrapping ErrUnavailable.
func (r *Redis) Admit(ctx context.Context, req Request) (Decision, error) {
	now := r.now()
	p, err := planAdmit(req, now)
	if err != nil {
		return Decision{Reason: ReasonInvalid}, err
	}
	if len(p.buckets)+len(p.spends) == 0 {
		return p.decide(nil, nil), nil // nothing stored applies
	}
	keys := make([]string, 0, len(p.buckets)+len(p.spends))
	args := make([]any, 0, 3+2*len(p.buckets)+len(p.spends))
	refuse := "0"
	if p.refusal != nil {
		refuse = "1"
	}
	args = append(args, now.UnixMilli(), len(p.buckets), refuse)
	for _, op := range p.buckets {
		keys = append(keys, r.prefix+op.key)
		args = append(args, op.rate, op.units)
	}
	for _, op := range p.spends {
		keys = append(keys, r.prefix+op.key)
		args = append(args, op.limit)
	}
	ctx, cancel := context.WithTimeout(ctx, r.admitTimeout)
	defer cancel()
	res, err := r.admit.Run(ctx, r.client, keys, args...).Slice()
	if err != nil {
		return p.failed(r.failure, fmt.Errorf("redis admit: %w", err))
	}
	r.answered()
	if len(res) != 1+len(keys) {
		return p.failed(r.failure, fmt.Errorf("redis admit: %d results for %d keys", len(res), len(keys)))
	}
	levels := make([]int64, len(p.buckets))
	spent := make([]int64, len(p.spends))
	for i := range levels {
		if levels[i], err = toInt(res[1+i]); err != nil {
			return p.failed(r.failure, fmt.Errorf("redis admit: %w", err))
		}
	}
	for j := range spent {
		if spent[j], err = toInt(res[1+len(levels)+j]); err != nil {
			return p.failed(r.failure, fmt.Errorf("redis admit: %w", err))
		}
	}
	d := p.decide(levels, spent)
	if admitted, _ := toInt(res[0]); (admitted == 1) != d.Allowed {
		// Cannot happen unless fits and the script diverge. The script
		// wrote (or not) by its own verdict, so report that one.
		err := fmt.Errorf("%w: redis admit: the script and decide disagree", ErrUnavailable)
		if admitted == 1 {
			return Decision{Allowed: true, Reservation: Reservation{limits: req.Limits, budgets: req.Budgets, tokens: req.Tokens, reserved: true}}, err
		}
		return Decision{Reason: ReasonUnavailable}, err
	}
	return d, nil
}

// Reconcile implements [Limiter]. It runs under ReconcileTimeout and
// ignores ctx's cancellation (a request's settlement must not be lost
// because its client left). When Redis cannot be reached the settlement is
// queued for retry and the error, wrapping ErrUnavailable, says so;
// settlements the queue cannot keep go to OnDropped.
func (r *Redis) Reconcile(ctx context.Context, res Reservation, used Usage) error {
	now := r.now()
	buckets, spends, err := planReconcile(res, used, now)
	if err != nil || len(buckets)+len(spends) == 0 {
		return err
	}
	op := settlement{
		keys: make([]string, 0, 1+len(buckets)+len(spends)),
		args: make([]any, 0, 3+2*len(buckets)+2*len(spends)),
	}
	op.keys = append(op.keys, r.prefix+"x:"+rand.Text())
	op.args = append(op.args, now.UnixMilli(), len(buckets), markerTTL.Milliseconds())
	for _, b := range buckets {
		op.keys = append(op.keys, r.prefix+b.key)
		op.args = append(op.args, b.rate, b.units)
	}
	for _, s := range spends {
		op.keys = append(op.keys, r.prefix+s.key)
		op.args = append(op.args, s.limit, s.ttl.Milliseconds())
	}
	err = r.settle(context.WithoutCancel(ctx), op)
	switch {
	case err == nil:
		r.answered()
		return nil
	case isReply(err):
		r.retry.onDropped(1, err)
		return fmt.Errorf("%w: redis reconcile refused, charge dropped: %w", ErrUnavailable, err)
	case !r.retry.push(op):
		r.retry.onDropped(1, fmt.Errorf("retry queue full: %w", err))
		return fmt.Errorf("%w: redis reconcile, retry queue full, charge dropped: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: redis reconcile (queued for retry): %w", ErrUnavailable, err)
}

// settle runs one settlement under ReconcileTimeout.
func (r *Redis) settle(ctx context.Context, op settlement) error {
	ctx, cancel := context.WithTimeout(ctx, r.reconcileTimeout)
	defer cancel()
	return r.reconcile.Run(ctx, r.client, op.keys, op.args...).Err()
}

// isReply reports an error Redis answered with (a script error, a wrong
// type): retrying would fail the same way. Anything else (timeouts,
// refused or reset connections) is an outage worth retrying.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, context.DeadlineExceeded)
}

// Check implements [Limiter]. On a Redis error it decides by the budgets'
// failure policy and returns an error wrapping ErrUnavailable.
func (r *Redis) Check(ctx context.Context, budgets []Budget, pending int64) (Decision, error) {
	if err := validateBudgets(budgets); err != nil || pending < 0 {
		if err == nil {
			err = fmt.Errorf("%w: negative pending cost", ErrInvalid)
		}
		return Decision{Reason: ReasonInvalid}, err
	}
	now := r.now()
	ops := spendOps(budgets, now, nil)
	if len(ops) == 0 {
		return Decision{Allowed: true}, nil
	}
	keys := make([]string, len(ops))
	for i, op := range ops {
		keys[i] = r.prefix + op.key
	}
	fail := func(err error) (Decision, error) {
		err = fmt.Errorf("%w: redis check: %w", ErrUnavailable, err)
		if r.failure.Budgets == FailClosed {
			return Decision{Reason: ReasonUnavailable}, err
		}
		return Decision{Allowed: true}, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.admitTimeout)
	defer cancel()
	res, err := r.check.Run(ctx, r.client, keys).Slice()
	if err != nil {
		return fail(err)
	}
	r.answered()
	if len(res) != len(ops) {
		return fail(fmt.Errorf("%d results for %d keys", len(res), len(ops)))
	}
	spent := make([]int64, len(ops))
	for i := range spent {
		if spent[i], err = toInt(res[i]); err != nil {
			return fail(err)
		}
	}
	return checkDecision(ops, spent, pending, now), nil
}

// toInt reads an integer reply or a decimal string reply.
func toInt(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected counter value %q", v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("unexpected reply of type %T", v)
}
