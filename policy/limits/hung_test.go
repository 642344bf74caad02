package limits

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/test/redistest"
)

// slowClient has go-redis timeouts far beyond the limiter's deadlines, so
// only those deadlines can bound a call to a hung server.
func slowClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: addr, DialTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		ContextTimeoutEnabled: true, PoolSize: 4,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedisHungDeadline: with redis-server stopped by SIGSTOP (connections
// accepted, never answered), every Admit and Check returns within the
// admission deadline, concurrently and more of them than the pool has
// connections, with the failure policy's decision.
func TestRedisHungDeadline(t *testing.T) {
	const deadline = 300 * time.Millisecond
	const margin = 5 * time.Second // generous: the machine may be loaded; the old code waited a minute
	srv := redistest.Start(t)
	c := newClock("2026-05-01T10:00:00Z")
	client := slowClient(t, srv.Addr())
	open := newRedis(t, client, RedisOptions{Now: c.Now, AdmitTimeout: deadline, Failure: FailurePolicy{Budgets: FailClosed}})
	closed := newRedis(t, client, RedisOptions{Now: c.Now, AdmitTimeout: deadline, Failure: FailurePolicy{Requests: FailClosed}})
	rate := Request{Limits: []Limit{{Scope: "k", RequestsPerMinute: 100}}}
	budgets := []Budget{{Scope: "k", Daily: 10}}
	_, _ = open.Admit(ctx, rate) // opens a connection and loads the script; its outcome does not matter
	srv.Pause()
	type result struct {
		name    string
		d       Decision
		err     error
		elapsed time.Duration
	}
	calls := map[string]func() (Decision, error){
		"open admit":   func() (Decision, error) { return open.Admit(ctx, rate) },
		"closed admit": func() (Decision, error) { return closed.Admit(ctx, rate) },
		"check":        func() (Decision, error) { return open.Check(ctx, budgets, 0) },
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	for range 6 { // 18 calls over 4 connections
		for name, call := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				d, err := call()
				mu.Lock()
				results = append(results, result{name, d, err, time.Since(start)})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for _, r := range results {
		if r.elapsed > deadline+margin {
			t.Errorf("%s took %v with Redis hung; the deadline is %v", r.name, r.elapsed, deadline)
		}
		if !errors.Is(r.err, ErrUnavailable) {
			t.Errorf("%s: error %v, want ErrUnavailable", r.name, r.err)
		}
		switch want := r.name == "open admit"; {
		case r.d.Allowed != want:
			t.Errorf("%s: allowed=%v, want %v", r.name, r.d.Allowed, want)
		case !want && r.d.Reason != ReasonUnavailable:
			t.Errorf("%s: reason %q", r.name, r.d.Reason)
		}
	}
	srv.Resume()
	// The resumed server first works through what piled up; a bounded
	// number of tries.
	for i := 0; ; i++ {
		if d, err := closed.Admit(ctx, rate); err == nil && d.Allowed {
			break
		} else if i == 50 {
			t.Fatalf("after resuming: %+v, %v", d, err)
		}
	}
}

// TestRedisHungReconcile: reconciliations that time out against a hung
// Redis are queued and applied once it answers again, exactly once each:
// the timed-out commands still sitting in the server's socket buffers run
// when it resumes, and the retries that follow must not charge again.
func TestRedisHungReconcile(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock("2026-05-01T10:00:00Z") // frozen: bucket levels are exact
	client := slowClient(t, srv.Addr())
	var dropped atomic.Int64
	l := newRedis(t, client, RedisOptions{Now: c.Now, ReconcileTimeout: 5 * time.Second, RetryInterval: 50 * time.Millisecond,
		OnDropped: func(n int, _ error) { dropped.Add(int64(n)) }})
	req := Request{Limits: []Limit{{Scope: "k", TokensPerMinute: 100_000}}, Budgets: []Budget{{Scope: "k", Daily: 1 << 40}}, Tokens: 100}
	const n = 8
	res := make([]Reservation, n)
	var wg sync.WaitGroup
	for i := range res { // concurrently, so the pool holds several connections
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = admit(t, l, req).Reservation
		}()
	}
	wg.Wait()
	// Load the reconciliation script, so the commands stuck in the paused
	// server run rather than fail with NOSCRIPT.
	reconcile(t, l, admit(t, l, Request{Limits: []Limit{{Scope: "other", TokensPerMinute: 1000}}, Tokens: 1}).Reservation, Usage{Tokens: 2})
	srv.Pause()
	for i, r := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Reconcile(ctx, r, Usage{Tokens: 150, Cost: int64(i + 1)}); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Reconcile with Redis hung: %v", err)
			}
		}()
	}
	wg.Wait()
	if l.Pending() != n {
		t.Fatalf("%d queued; want %d", l.Pending(), n)
	}
	srv.Resume()
	waitPending(t, l, 0)
	if dropped.Load() != 0 {
		t.Fatalf("%d dropped", dropped.Load())
	}
	if v, err := client.Get(ctx, "tollgate:d:20260501:k").Int64(); err != nil || v != n*(n+1)/2 {
		t.Fatalf("day spend = %d, %v; want %d: every charge exactly once", v, err, n*(n+1)/2)
	}
	if d := admit(t, l, Request{Limits: req.Limits}); d.Tokens.Remaining != 100_000-n*150 {
		t.Fatalf("tokens remaining %d; want %d: every adjustment exactly once", d.Tokens.Remaining, 100_000-n*150)
	}
}

// TestRedisRetryQueueBounds: beyond RetryQueue, failed reconciliations are
// dropped and reported; Close reports what Redis never took.
func TestRedisRetryQueueBounds(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock("2026-05-01T10:00:00Z")
	var dropped atomic.Int64
	l := NewRedis(newClient(t, srv.Addr()), RedisOptions{Now: c.Now, AdmitTimeout: 10 * time.Second, RetryQueue: 3, RetryInterval: time.Hour,
		OnDropped: func(n int, _ error) { dropped.Add(int64(n)) }})
	res := admit(t, l, Request{Budgets: []Budget{{Scope: "k", Daily: 100}}}).Reservation
	srv.Stop()
	for i := range 5 {
		if err := l.Reconcile(ctx, res, Usage{Cost: 1}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("reconcile %d: %v", i, err)
		}
	}
	if l.Pending() != 3 || dropped.Load() != 2 {
		t.Fatalf("queued %d, dropped %d; want 3 and 2", l.Pending(), dropped.Load())
	}
	if err := l.Close(); !errors.Is(err, ErrUnavailable) || dropped.Load() != 5 || l.Pending() != 0 {
		t.Fatalf("Close with Redis down: %v; dropped %d, queued %d", err, dropped.Load(), l.Pending())
	}
}
