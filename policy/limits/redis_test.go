package limits

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/test/redistest"
)

func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           time.Second,
		ReadTimeout:           2 * time.Second,
		WriteTimeout:          2 * time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		DialerRetries:         1,
		PoolSize:              32,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newRedis is NewRedis, closed when the test ends. Deadlines not set are
// generous: most tests are about decisions, and a loaded machine must not
// turn a slow answer into a failure-policy one.
func newRedis(t testing.TB, client redis.Scripter, o RedisOptions) *Redis {
	if o.AdmitTimeout == 0 {
		o.AdmitTimeout = 10 * time.Second
	}
	if o.ReconcileTimeout == 0 {
		o.ReconcileTimeout = 10 * time.Second
	}
	l := NewRedis(client, o)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// waitPending polls until l has n reconciliations queued, within a bounded
// time.
func waitPending(t *testing.T, l *Redis, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a failure guard, not a synchronisation
	for l.Pending() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d reconciliations queued; want %d", l.Pending(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling an observable condition
	}
}

// redisFactory: each instance is a replica with its own client.
func redisFactory(t *testing.T, now func() time.Time) func() Limiter {
	srv := redistest.Start(t)
	return func() Limiter {
		return newRedis(t, newClient(t, srv.Addr()), RedisOptions{Prefix: "{test}:", Now: now})
	}
}

func TestRedis(t *testing.T) { runSuite(t, redisFactory) }

func TestLuaConstants(t *testing.T) {
	if maxLevelLua != strconv.Itoa(maxLevel) || keyMarginLua != strconv.FormatInt(keyMargin.Milliseconds(), 10) {
		t.Fatal("the Lua spellings of maxLevel and keyMargin are stale")
	}
}

// TestRedisKeys: keys carry the prefix and expire.
func TestRedisKeys(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	c := newClock("2026-05-01T23:00:00Z")
	l := newRedis(t, client, RedisOptions{Now: c.Now})
	d := admit(t, l, Request{Limits: []Limit{{Scope: "key:a", RequestsPerMinute: 10, TokensPerMinute: 100}}, Budgets: []Budget{{Scope: "key:a", Daily: 10, Monthly: 10}}, Tokens: 50})
	reconcile(t, l, d.Reservation, Usage{Tokens: 60, Cost: 3})
	for key, want := range map[string]time.Duration{
		"tollgate:r:key:a":          6*time.Second + keyMargin,
		"tollgate:t:key:a":          36*time.Second + keyMargin,
		"tollgate:d:20260501:key:a": time.Hour + spendGrace,
		"tollgate:m:202605:key:a":   30*24*time.Hour + time.Hour + spendGrace,
	} {
		ttl, err := client.PTTL(ctx, key).Result()
		if err != nil || ttl <= want-5*time.Second || ttl > want {
			t.Errorf("PTTL %s = %v, %v; want about %v", key, ttl, err, want)
		}
	}
	if v, _ := client.Get(ctx, "tollgate:d:20260501:key:a").Result(); v != "3" {
		t.Errorf("day counter = %q", v)
	}
	// A full refund deletes the bucket.
	d = admit(t, l, Request{Limits: []Limit{{Scope: "key:b", TokensPerMinute: 100}}, Tokens: 50})
	reconcile(t, l, d.Reservation, Usage{})
	if n, _ := client.Exists(ctx, "tollgate:t:key:b").Result(); n != 0 {
		t.Error("an empty bucket was kept")
	}
}

// TestRedisLargeCounters: spend counters beyond 2^53 compare exactly and
// saturate instead of overflowing.
func TestRedisLargeCounters(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	c := newClock("2026-05-01T10:00:00Z")
	l := newRedis(t, client, RedisOptions{Now: c.Now})
	const budget = 1<<62 + 1 // not representable as a double
	budgets := []Budget{{Scope: "big", Daily: budget}}
	d := admit(t, l, Request{Budgets: budgets})
	reconcile(t, l, d.Reservation, Usage{Cost: budget - 1})
	if d := admit(t, l, Request{Budgets: budgets}); !d.Allowed {
		t.Fatalf("one below the budget: %+v", d)
	}
	reconcile(t, l, d.Reservation, Usage{Cost: 1})
	wantRefused(t, admit(t, l, Request{Budgets: budgets}), ReasonDaily, "big", 14*time.Hour)
	reconcile(t, l, d.Reservation, Usage{Cost: 1 << 62})
	if v, _ := client.Get(ctx, "tollgate:d:20260501:big").Result(); v != "9223372036854775807" {
		t.Fatalf("counter after overflow = %q", v)
	}
}

// TestRedisOutage: with Redis stopped, each kind follows its failure
// policy and errors are reported; once Redis is back, everything works,
// including settling a request admitted during the outage.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock("2026-05-01T10:00:00Z")
	client := newClient(t, srv.Addr())
	open := newRedis(t, client, RedisOptions{Now: c.Now, RetryInterval: time.Hour, Failure: FailurePolicy{Requests: FailOpen, Tokens: FailOpen, Budgets: FailClosed}})
	closedTokens := newRedis(t, client, RedisOptions{Now: c.Now, Failure: FailurePolicy{Tokens: FailClosed}})
	rate := Request{Limits: []Limit{{Scope: "key:a", RequestsPerMinute: 10, TokensPerMinute: 1000}}, Tokens: 100}
	budget := Request{Budgets: []Budget{{Scope: "key:a", Daily: 1000, MaxCostPerRequest: 50}}, EstimatedCost: 10}

	if d := admit(t, open, rate); !d.Allowed || d.Requests.Remaining != 9 {
		t.Fatalf("before the outage: %+v", d)
	}
	srv.Stop()

	d, err := open.Admit(ctx, rate)
	if !errors.Is(err, ErrUnavailable) || !d.Allowed || d.Requests != (Quota{}) {
		t.Fatalf("rate limits, fail-open: %+v, %v", d, err)
	}
	duringOutage := d.Reservation
	d, err = closedTokens.Admit(ctx, rate)
	if !errors.Is(err, ErrUnavailable) || d.Allowed || d.Reason != ReasonUnavailable {
		t.Fatalf("tokens fail-closed: %+v, %v", d, err)
	}
	if d, err := closedTokens.Admit(ctx, Request{Limits: []Limit{{Scope: "key:a", RequestsPerMinute: 10}}}); !errors.Is(err, ErrUnavailable) || !d.Allowed {
		t.Fatalf("requests only, fail-open under the tokens-closed policy: %+v, %v", d, err)
	}
	d, err = open.Admit(ctx, budget)
	if !errors.Is(err, ErrUnavailable) || d.Allowed || d.Reason != ReasonUnavailable {
		t.Fatalf("budgets fail-closed: %+v, %v", d, err)
	}
	over := budget
	over.EstimatedCost = 51
	if d, err := open.Admit(ctx, over); !errors.Is(err, ErrUnavailable) || d.Reason != ReasonMaxCost {
		t.Fatalf("max cost needs no Redis: %+v, %v", d, err)
	}
	if d, err := open.Check(ctx, budget.Budgets, 0); !errors.Is(err, ErrUnavailable) || d.Allowed || d.Reason != ReasonUnavailable {
		t.Fatalf("Check, budgets fail-closed: %+v, %v", d, err)
	}
	if d, err := closedTokens.Check(ctx, budget.Budgets, 0); !errors.Is(err, ErrUnavailable) || !d.Allowed {
		t.Fatalf("Check, budgets fail-open: %+v, %v", d, err)
	}
	queued, err := open.Admit(ctx, rate)
	if err == nil || !queued.Allowed {
		t.Fatalf("second fail-open admission: %+v, %v", queued, err)
	}
	if err := open.Reconcile(ctx, queued.Reservation, Usage{Tokens: 10, Cost: 1}); !errors.Is(err, ErrUnavailable) || open.Pending() != 1 {
		t.Fatalf("Reconcile during the outage: %v, %d queued", err, open.Pending())
	}

	srv.Start() // empty: no persistence, no cached scripts (EVALSHA falls back to EVAL)
	d = admit(t, open, rate)
	// The queued settlement (1 request, 10 tokens) lands before or after
	// this admission: the worker's first attempt, woken by the push, may
	// not have run before Redis came back. Either way it lands once (the
	// totals below).
	before := d.Requests.Remaining == 9 && d.Tokens.Remaining == 900
	after := d.Requests.Remaining == 8 && d.Tokens.Remaining == 890
	if !d.Allowed || !before && !after {
		t.Fatalf("after the outage: %+v", d)
	}
	// That success woke the retry worker: the queued settlement is applied.
	waitPending(t, open, 0)
	// Requests admitted open during the outage reserved nothing, so
	// settling them charges their request and all their tokens.
	reconcile(t, open, duringOutage, Usage{Tokens: 300, Cost: 1})
	if d := admit(t, open, Request{Limits: rate.Limits}); d.Requests.Remaining != 6 || d.Tokens.Remaining != 590 {
		t.Fatalf("after settling: requests %+v tokens %+v", d.Requests, d.Tokens)
	}
	if d := admit(t, open, budget); !d.Allowed {
		t.Fatalf("budget after the outage: %+v", d)
	}

	// Restart without any command in between: the pool's dead connections
	// are replaced, not reported.
	srv.Stop()
	srv.Start()
	if d := admit(t, open, rate); !d.Allowed {
		t.Fatalf("after a silent restart: %+v", d)
	}
}

// TestRedisOneRoundTrip counts the commands each call sends.
func TestRedisOneRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr())
	if err := client.Ping(ctx).Err(); err != nil { // opens the connection
		t.Fatal(err)
	}
	var cmds atomic.Int64
	client.AddHook(countHook{&cmds})
	c := newClock("2026-05-01T10:00:00Z")
	l := newRedis(t, client, RedisOptions{Now: c.Now})
	req := Request{Limits: []Limit{{Scope: "a", RequestsPerMinute: 10, TokensPerMinute: 1000}, {Scope: "b", RequestsPerMinute: 10}}, Budgets: []Budget{{Scope: "a", Daily: 100, Monthly: 100}}, Tokens: 10}
	for _, step := range []struct {
		name string
		fn   func()
	}{
		{"Admit", func() { admit(t, l, req) }},
		{"Reconcile", func() {
			reconcile(t, l, Reservation{limits: req.Limits, budgets: req.Budgets, tokens: 10, reserved: true}, Usage{Tokens: 20, Cost: 5})
		}},
		{"Check", func() { _, _ = l.Check(ctx, req.Budgets, 0) }},
	} {
		cmds.Store(0)
		step.fn()
		if n := cmds.Load(); n != 2 {
			t.Errorf("first %s sent %d commands; want 2 (EVALSHA, then EVAL to load the script)", step.name, n)
		}
		cmds.Store(0)
		step.fn()
		if n := cmds.Load(); n != 1 {
			t.Errorf("%s sent %d commands; want 1", step.name, n)
		}
	}
}

type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func BenchmarkAdmitReconcileRedis(b *testing.B) {
	srv := redistest.Start(b)
	benchmarkAdmitReconcile(b, newRedis(b, newClient(b, srv.Addr()), RedisOptions{}))
}

// TestBackendsAgree runs the same random operations on both backends and
// requires identical decisions.
func TestBackendsAgree(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock("2026-01-31T23:58:00Z")
	mem := NewMemory(c.Now)
	red := newRedis(t, newClient(t, srv.Addr()), RedisOptions{Now: c.Now})
	rng := rand.New(rand.NewPCG(1, 2))
	scopes := []string{"key:a", "app:b", "tenant:c", "global"}
	type pending struct{ mem, red Reservation }
	var open []pending
	seen := map[Reason]bool{}
	for i := range 3000 {
		switch op := rng.IntN(10); {
		case op < 5:
			var req Request
			for _, s := range scopes {
				if rng.IntN(2) == 0 {
					req.Limits = append(req.Limits, Limit{Scope: s, RequestsPerMinute: rng.Int64N(4), TokensPerMinute: rng.Int64N(3) * 500})
				}
				if rng.IntN(3) == 0 {
					req.Budgets = append(req.Budgets, Budget{Scope: s, Daily: rng.Int64N(3) * 1000, Monthly: rng.Int64N(3) * 3000, MaxCostPerRequest: rng.Int64N(2) * 400})
				}
			}
			req.Tokens, req.EstimatedCost = rng.Int64N(700), rng.Int64N(500)
			dm, errm := mem.Admit(ctx, req)
			dr, errr := red.Admit(ctx, req)
			if errm != nil || errr != nil {
				t.Fatalf("op %d: errors %v, %v", i, errm, errr)
			}
			seen[dm.Reason] = true
			if view(dm) != view(dr) {
				t.Fatalf("op %d: Admit(%+v):\nmemory %+v\nredis  %+v", i, req, dm, dr)
			}
			if d1, _ := mem.Admit(ctx, req); d1.Allowed { // keep the reservation to settle later
				d2, _ := red.Admit(ctx, req)
				if !d2.Allowed {
					t.Fatalf("op %d: redis refused a second admission memory allowed", i)
				}
				open = append(open, pending{d1.Reservation, d2.Reservation})
			}
		case op < 8 && len(open) > 0:
			k := rng.IntN(len(open))
			u := Usage{Tokens: rng.Int64N(1200), Cost: rng.Int64N(900)}
			if errm, errr := mem.Reconcile(ctx, open[k].mem, u), red.Reconcile(ctx, open[k].red, u); errm != nil || errr != nil {
				t.Fatalf("op %d: errors %v, %v", i, errm, errr)
			}
			open = append(open[:k], open[k+1:]...)
		case op < 9:
			budgets := []Budget{{Scope: scopes[rng.IntN(len(scopes))], Daily: 2000, Monthly: 5000}}
			pend := rng.Int64N(2000)
			dm, errm := mem.Check(ctx, budgets, pend)
			dr, errr := red.Check(ctx, budgets, pend)
			if errm != nil || errr != nil || dm.Allowed != dr.Allowed || dm.Reason != dr.Reason || dm.Scope != dr.Scope || dm.RetryAfter != dr.RetryAfter {
				t.Fatalf("op %d: Check: memory %+v, %v; redis %+v, %v", i, dm, errm, dr, errr)
			}
		default:
			c.Advance(time.Duration(rng.Int64N(int64(5 * time.Second))))
		}
	}
	for _, r := range []Reason{ReasonNone, ReasonRequests, ReasonTokens, ReasonTooLarge, ReasonDaily, ReasonMonthly, ReasonMaxCost} {
		if !seen[r] {
			t.Errorf("no decision with reason %q: the operations miss a case", r)
		}
	}
}

type decisionView struct {
	Allowed          bool
	Reason           Reason
	Scope            string
	RetryAfter       time.Duration
	Requests, Tokens Quota
}

// view is d without its (incomparable) reservation.
func view(d Decision) decisionView {
	return decisionView{d.Allowed, d.Reason, d.Scope, d.RetryAfter, d.Requests, d.Tokens}
}
