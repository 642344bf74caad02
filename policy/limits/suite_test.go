package limits

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock shared by every limiter instance of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(s string) *clock {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &clock{t: t}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(s string) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// factory returns a function making limiter instances ("replicas") that
// share one store and read the given clock.
type factory func(t *testing.T, now func() time.Time) func() Limiter

// runSuite runs the backend-independent behaviour tests against f.
func runSuite(t *testing.T, f factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, factory)
	}{
		{"RequestsExactAtLimit", testRequestsExactAtLimit},
		{"TokensReserveAndReconcile", testTokensReserveAndReconcile},
		{"TightestQuota", testTightestQuota},
		{"AllOrNothing", testAllOrNothing},
		{"BudgetRollover", testBudgetRollover},
		{"MaxCostPerRequest", testMaxCostPerRequest},
		{"CheckMidStream", testCheckMidStream},
		{"ConcurrentReplicas", testConcurrentReplicas},
		{"RealClockBound", testRealClockBound},
		{"TokenOvershootBound", testTokenOvershootBound},
		{"ClockBackwards", testClockBackwards},
		{"Invalid", testInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, f) })
	}
}

var ctx = context.Background()

func admit(t *testing.T, l Limiter, req Request) Decision {
	t.Helper()
	d, err := l.Admit(ctx, req)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	return d
}

func reconcile(t *testing.T, l Limiter, res Reservation, u Usage) {
	t.Helper()
	if err := l.Reconcile(ctx, res, u); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
}

func wantRefused(t *testing.T, d Decision, reason Reason, scope string, retry time.Duration) {
	t.Helper()
	if d.Allowed || d.Reason != reason || d.Scope != scope || d.RetryAfter != retry {
		t.Fatalf("got allowed=%v reason=%q scope=%q retry=%v; want refused %q %q %v", d.Allowed, d.Reason, d.Scope, d.RetryAfter, reason, scope, retry)
	}
}

func testRequestsExactAtLimit(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:00Z")
	l := f(t, c.Now)()
	req := Request{Limits: []Limit{{Scope: "key:a", RequestsPerMinute: 3}}}
	for i, want := range []Quota{{3, 2, 20 * time.Second}, {3, 1, 40 * time.Second}, {3, 0, 60 * time.Second}} {
		d := admit(t, l, req)
		if !d.Allowed || d.Requests != want || d.Tokens != (Quota{}) {
			t.Fatalf("request %d: allowed=%v requests=%+v tokens=%+v; want %+v", i+1, d.Allowed, d.Requests, d.Tokens, want)
		}
	}
	d := admit(t, l, req)
	wantRefused(t, d, ReasonRequests, "key:a", 20*time.Second)
	if d.Requests != (Quota{3, 0, 60 * time.Second}) {
		t.Fatalf("refused quota %+v", d.Requests)
	}
	c.Advance(20*time.Second - time.Millisecond)
	wantRefused(t, admit(t, l, req), ReasonRequests, "key:a", time.Millisecond)
	c.Advance(time.Millisecond)
	if d := admit(t, l, req); !d.Allowed || d.Requests.Remaining != 0 {
		t.Fatalf("after 20s: %+v", d)
	}
	// A full minute later the bucket is empty again: a full burst of 3.
	c.Advance(time.Minute)
	for i := range 3 {
		if !admit(t, l, req).Allowed {
			t.Fatalf("burst request %d refused", i+1)
		}
	}
}

func testTokensReserveAndReconcile(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:00Z")
	l := f(t, c.Now)()
	limits := []Limit{{Scope: "app:x", TokensPerMinute: 1000}}
	first := admit(t, l, Request{Limits: limits, Tokens: 600})
	if !first.Allowed || first.Tokens != (Quota{1000, 400, 36 * time.Second}) {
		t.Fatalf("first: %+v", first)
	}
	// 600 + 500 > 1000: wait until 100 tokens have drained (6 s).
	wantRefused(t, admit(t, l, Request{Limits: limits, Tokens: 500}), ReasonTokens, "app:x", 6*time.Second)
	// The first used only 100: 500 are refunded.
	reconcile(t, l, first.Reservation, Usage{Tokens: 100})
	second := admit(t, l, Request{Limits: limits, Tokens: 500})
	if !second.Allowed || second.Tokens.Remaining != 400 {
		t.Fatalf("after refund: %+v", second)
	}
	// The second used 900: 400 more are charged, the limit is reached.
	reconcile(t, l, second.Reservation, Usage{Tokens: 900})
	if d := admit(t, l, Request{Limits: limits, Tokens: 0}); !d.Allowed || d.Tokens.Remaining != 0 {
		t.Fatalf("at the limit, a zero reservation: %+v", d)
	}
	wantRefused(t, admit(t, l, Request{Limits: limits, Tokens: 1}), ReasonTokens, "app:x", 60*time.Millisecond)
	// Charging beyond the limit is debt: even a zero reservation waits.
	third := admit(t, l, Request{Limits: limits, Tokens: 0})
	reconcile(t, l, third.Reservation, Usage{Tokens: 500})
	wantRefused(t, admit(t, l, Request{Limits: limits, Tokens: 0}), ReasonTokens, "app:x", 30*time.Second)
	// More than the limit can never be admitted.
	wantRefused(t, admit(t, l, Request{Limits: limits, Tokens: 1001}), ReasonTooLarge, "app:x", 0)
	// Reconciling a refused request's (zero) reservation changes nothing.
	reconcile(t, l, Reservation{}, Usage{Tokens: 1 << 40})
}

func testTightestQuota(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:00Z")
	l := f(t, c.Now)()
	limits := []Limit{
		{Scope: "key:a", RequestsPerMinute: 10, TokensPerMinute: 1000},
		{Scope: "app:b", RequestsPerMinute: 5, TokensPerMinute: 100000},
		{Scope: "global", RequestsPerMinute: 1000, TokensPerMinute: 500},
	}
	d := admit(t, l, Request{Limits: limits, Tokens: 100})
	if d.Requests != (Quota{5, 4, 12 * time.Second}) || d.Tokens != (Quota{500, 400, 12 * time.Second}) {
		t.Fatalf("requests %+v tokens %+v", d.Requests, d.Tokens)
	}
	// Equal remaining: the longer reset wins.
	admit(t, l, Request{Limits: []Limit{{Scope: "y", RequestsPerMinute: 2}}})
	c.Advance(15 * time.Second)
	d = admit(t, l, Request{Limits: []Limit{{Scope: "y", RequestsPerMinute: 2}, {Scope: "x", RequestsPerMinute: 1}}})
	if d.Requests != (Quota{1, 0, time.Minute}) {
		t.Fatalf("tie: %+v", d.Requests)
	}
}

func testAllOrNothing(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:00Z")
	l := f(t, c.Now)()
	both := Request{Limits: []Limit{{Scope: "a", RequestsPerMinute: 10, TokensPerMinute: 1000}, {Scope: "b", RequestsPerMinute: 1}}, Tokens: 100}
	admit(t, l, both)
	wantRefused(t, admit(t, l, both), ReasonRequests, "b", time.Minute)
	// The refused request reserved nothing on "a".
	d := admit(t, l, Request{Limits: both.Limits[:1], Tokens: 100})
	if d.Requests.Remaining != 8 || d.Tokens.Remaining != 800 {
		t.Fatalf("a after a refusal: requests %+v tokens %+v", d.Requests, d.Tokens)
	}
}

func testBudgetRollover(t *testing.T, f factory) {
	c := newClock("2026-01-30T10:00:00Z")
	l := f(t, c.Now)()
	req := Request{Budgets: []Budget{{Scope: "tenant:t", Daily: 1000, Monthly: 1500}}}
	d := admit(t, l, req)
	if !d.Allowed {
		t.Fatalf("first: %+v", d)
	}
	reconcile(t, l, d.Reservation, Usage{Cost: 1000})
	wantRefused(t, admit(t, l, req), ReasonDaily, "tenant:t", 14*time.Hour)

	c.Set("2026-01-31T00:00:00Z") // a new day, the same month
	d = admit(t, l, req)
	if !d.Allowed {
		t.Fatalf("next day: %+v", d)
	}
	reconcile(t, l, d.Reservation, Usage{Cost: 500})
	wantRefused(t, admit(t, l, req), ReasonMonthly, "tenant:t", 24*time.Hour)
	c.Set("2026-02-01T04:59:59.999+05:00") // periods are UTC: still January
	wantRefused(t, admit(t, l, req), ReasonMonthly, "tenant:t", time.Millisecond)
	c.Advance(time.Millisecond)
	if d := admit(t, l, req); !d.Allowed {
		t.Fatalf("new month: %+v", d)
	}
}

func testMaxCostPerRequest(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:00Z")
	l := f(t, c.Now)()
	limits := []Limit{{Scope: "key:a", RequestsPerMinute: 10}}
	budgets := []Budget{{Scope: "key:a", MaxCostPerRequest: 500}, {Scope: "tenant:t", Daily: 1 << 40}}
	d := admit(t, l, Request{Limits: limits, Budgets: budgets, EstimatedCost: 501})
	wantRefused(t, d, ReasonMaxCost, "key:a", 0)
	if d.Requests != (Quota{10, 10, 0}) {
		t.Fatalf("refused quota %+v", d.Requests)
	}
	for i, est := range []int64{500, 0} { // at the maximum; unknown
		if d := admit(t, l, Request{Limits: limits, Budgets: budgets, EstimatedCost: est}); !d.Allowed || d.Requests.Remaining != int64(9-i) {
			t.Fatalf("estimate %d: %+v", est, d)
		}
	}
}

func testCheckMidStream(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:00Z")
	l := f(t, c.Now)()
	budgets := []Budget{{Scope: "app:s", Daily: 1000}, {Scope: "key:k", Monthly: 5000}}
	d := admit(t, l, Request{Budgets: budgets})
	reconcile(t, l, d.Reservation, Usage{Cost: 600})
	for _, tt := range []struct {
		pending int64
		want    Decision
	}{
		{0, Decision{Allowed: true}},
		{399, Decision{Allowed: true}},
		{400, Decision{Reason: ReasonDaily, Scope: "app:s", RetryAfter: 14 * time.Hour}},
		{1 << 62, Decision{Reason: ReasonMonthly, Scope: "key:k", RetryAfter: 31*24*time.Hour - 10*time.Hour}},
	} {
		got, err := l.Check(ctx, budgets, tt.pending)
		if err != nil || got.Allowed != tt.want.Allowed || got.Reason != tt.want.Reason || got.Scope != tt.want.Scope || got.RetryAfter != tt.want.RetryAfter {
			t.Errorf("Check(pending %d) = %+v, %v; want %+v", tt.pending, got, err, tt.want)
		}
	}
	if d, err := l.Check(ctx, nil, 1<<62); err != nil || !d.Allowed {
		t.Errorf("Check without budgets: %+v, %v", d, err)
	}
}

// testConcurrentReplicas: three instances, 500 concurrent admissions
// against 100 requests per minute admit exactly 100.
func testConcurrentReplicas(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:00Z")
	newInstance := f(t, c.Now)
	replicas := []Limiter{newInstance(), newInstance(), newInstance()}
	req := Request{
		Limits:  []Limit{{Scope: "global", RequestsPerMinute: 100}, {Scope: "tenant:t", RequestsPerMinute: 1000, TokensPerMinute: 1_000_000}},
		Budgets: []Budget{{Scope: "tenant:t", Daily: 1 << 40}},
		Tokens:  10,
	}
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 500)
	for i := range 500 {
		wg.Go(func() {
			d, err := replicas[i%3].Admit(ctx, req)
			switch {
			case err != nil:
				errs <- err
			case d.Allowed:
				admitted.Add(1)
			case d.Reason == ReasonRequests && d.Scope == "global":
				refused.Add(1)
			default:
				errs <- errors.New("unexpected refusal " + string(d.Reason))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if admitted.Load() != 100 || refused.Load() != 400 {
		t.Fatalf("admitted %d, refused %d; want 100, 400", admitted.Load(), refused.Load())
	}
	d := admit(t, replicas[0], Request{Limits: req.Limits[1:]})
	if d.Requests.Remaining != 1000-101 || d.Tokens.Remaining != 1_000_000-1000 {
		t.Fatalf("tenant after 100 admissions: requests %+v tokens %+v", d.Requests, d.Tokens)
	}
}

// testRealClockBound: on the real clock, buckets drain while a burst runs,
// so exactness is not the promise; the documented bound is. Over an
// interval of length d a limit of L per minute admits at least L (from an
// empty bucket) and at most L x (1 + d/60s), however slow the machine.
func testRealClockBound(t *testing.T, f factory) {
	const limit = 100
	newInstance := f(t, time.Now)
	replicas := []Limiter{newInstance(), newInstance(), newInstance()}
	req := Request{Limits: []Limit{{Scope: "real", RequestsPerMinute: limit}}}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 500 {
		wg.Go(func() {
			if d, err := replicas[i%3].Admit(ctx, req); err != nil {
				t.Error(err)
			} else if d.Allowed {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	bound := limit + int64(math.Ceil(limit*d.Seconds()/60))
	if n := admitted.Load(); n < limit || n > bound {
		t.Fatalf("admitted %d of 500 in %v; want between %d and %d", n, d, limit, bound)
	}
}

// testTokenOvershootBound: requests whose real usage exceeds their
// reservation by err overshoot a tokens-per-minute limit by at most err
// when they run one after another; concurrent reservations never exceed it.
func testTokenOvershootBound(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:00Z")
	newInstance := f(t, c.Now)
	l := newInstance()
	const limit, est, under = 10_000, 900, 350
	limits := []Limit{{Scope: "model:m", TokensPerMinute: limit}}
	var used int64
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("never refused")
		}
		d := admit(t, l, Request{Limits: limits, Tokens: est})
		if !d.Allowed {
			break
		}
		reconcile(t, l, d.Reservation, Usage{Tokens: est + under})
		used += est + under
	}
	if used > limit+under || used <= limit-est {
		t.Fatalf("sequential: used %d tokens against %d (+%d allowed)", used, limit, under)
	}

	// Concurrent: the reservations alone are bounded exactly.
	limits = []Limit{{Scope: "model:n", TokensPerMinute: limit}}
	replicas := []Limiter{newInstance(), newInstance(), newInstance()}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			if d, err := replicas[i%3].Admit(ctx, Request{Limits: limits, Tokens: est}); err == nil && d.Allowed {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if got := admitted.Load(); got != limit/est {
		t.Fatalf("concurrent: admitted %d reservations of %d against %d", got, est, limit)
	}
}

// testClockBackwards: a replica whose clock lags neither refills a bucket
// nor loses what another replica drained.
func testClockBackwards(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:30Z")
	ahead := f(t, c.Now)
	l := ahead()
	limits := []Limit{{Scope: "k", RequestsPerMinute: 2}}
	admit(t, l, Request{Limits: limits})
	admit(t, l, Request{Limits: limits})
	c.Advance(-30 * time.Second)
	wantRefused(t, admit(t, l, Request{Limits: limits}), ReasonRequests, "k", 30*time.Second)
	c.Advance(60 * time.Second) // 30 s after the last update
	if d := admit(t, l, Request{Limits: limits}); !d.Allowed || d.Requests.Remaining != 0 {
		t.Fatalf("30 s later: %+v", d)
	}
}

func testInvalid(t *testing.T, f factory) {
	c := newClock("2026-05-01T10:00:00Z")
	l := f(t, c.Now)()
	for _, req := range []Request{
		{Limits: []Limit{{Scope: "a", RequestsPerMinute: 1}, {Scope: "a", TokensPerMinute: 1}}},
		{Limits: []Limit{{RequestsPerMinute: 1}}},
		{Limits: []Limit{{Scope: "a", TokensPerMinute: MaxPerMinute + 1}}},
		{Limits: []Limit{{Scope: "a", RequestsPerMinute: -1}}},
		{Budgets: []Budget{{Scope: "b", Daily: -1}}},
		{Budgets: []Budget{{Scope: "b"}, {Scope: "b"}}},
		{Tokens: -1},
	} {
		d, err := l.Admit(ctx, req)
		if !errors.Is(err, ErrInvalid) || d.Allowed || d.Reason != ReasonInvalid {
			t.Errorf("Admit(%+v) = %+v, %v", req, d, err)
		}
	}
	if err := l.Reconcile(ctx, Reservation{}, Usage{Cost: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Reconcile with a negative cost: %v", err)
	}
	if _, err := l.Check(ctx, nil, -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Check with a negative pending cost: %v", err)
	}
}

// benchmarkAdmitReconcile measures one request's admission and
// reconciliation: three rate-limit scopes and two budgets, as a gateway key
// in an app in a tenant would have.
func benchmarkAdmitReconcile(b *testing.B, l Limiter) {
	req := Request{
		Limits: []Limit{
			{Scope: "key:bench", RequestsPerMinute: MaxPerMinute, TokensPerMinute: MaxPerMinute},
			{Scope: "app:bench", RequestsPerMinute: MaxPerMinute, TokensPerMinute: MaxPerMinute},
			{Scope: "global", RequestsPerMinute: MaxPerMinute},
		},
		Budgets:       []Budget{{Scope: "key:bench", Daily: 1 << 62, MaxCostPerRequest: 1 << 40}, {Scope: "tenant:bench", Monthly: 1 << 62}},
		Tokens:        1500,
		EstimatedCost: 1000,
	}
	run := func(b *testing.B, loop func(func() bool)) {
		loop(func() bool {
			d, err := l.Admit(ctx, req)
			if err != nil || !d.Allowed {
				b.Errorf("Admit: %+v, %v", d, err)
				return false
			}
			if err := l.Reconcile(ctx, d.Reservation, Usage{Tokens: 1200, Cost: 800}); err != nil {
				b.Errorf("Reconcile: %v", err)
				return false
			}
			return true
		})
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		run(b, func(one func() bool) {
			for b.Loop() {
				if !one() {
					return
				}
			}
		})
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		run(b, func(one func() bool) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !one() {
						return
					}
				}
			})
		})
	})
}
