package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-ai/tollgate/extproc"
	"github.com/tollgate-ai/tollgate/routing/usage"
	"github.com/tollgate-ai/tollgate/test/pgtest"
)

// backend opens a fresh store.
type backend struct {
	name string
	open func(t *testing.T) *Store
}

// backends returns SQLite and, when PostgreSQL binaries exist, PostgreSQL
// (one server for the test, a fresh database per store).
func backends(t *testing.T) []backend {
	bs := []backend{{"sqlite", func(t *testing.T) *Store { return openSQLite(t) }}}
	pg := pgtest.Start(t)
	n := 0
	var mu sync.Mutex
	bs = append(bs, backend{"postgres", func(t *testing.T) *Store {
		mu.Lock()
		n++
		name := fmt.Sprintf("ledger%d", n)
		mu.Unlock()
		s, err := OpenPostgres(context.Background(), pg.CreateDB(name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}})
	return bs
}

func openSQLite(t testing.TB) *Store {
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func hit(b bool) *bool { return &b }

// seed is traffic with known figures; see the expectations in
// TestAggregate.
func seed() []Row {
	return []Row{
		{ID: "a1", Time: t0.Add(5 * time.Minute), Tenant: "acme", App: "web", KeyID: "k1", Alias: "smart", Provider: "openai",
			ProviderModel: "gpt-4o", Endpoint: "chat", Status: 200, UsageKnown: true, CostKnown: true,
			Tokens: [numKinds]int64{Prompt: 1000, Completion: 500, CachedRead: 200}, CostPico: 7_500_000_000,
			Latency: ms(100), TTFB: ms(40), CacheHit: hit(true), Metadata: [][2]string{{"operation", "summarise"}}},
		{ID: "a2", Time: t0.Add(10 * time.Minute), Tenant: "acme", App: "web", KeyID: "k1", Alias: "smart", Provider: "openai",
			ProviderModel: "gpt-4o", Endpoint: "chat", Status: 200, Stream: true, Estimated: true, CostKnown: true,
			Tokens: [numKinds]int64{Prompt: 10, Completion: 20}, CostPico: 250_000_000, Latency: ms(300), TTFB: ms(100), CacheHit: hit(false)},
		{ID: "a3", Time: t0.Add(70 * time.Minute), Tenant: "acme", App: "batch", KeyID: "k2", Alias: "fast", Provider: "openai",
			ProviderModel: "gpt-4o-mini", Endpoint: "chat", Status: 500, Latency: ms(50), TTFB: ms(50)},
		{ID: "a4", Time: t0.Add(25 * time.Hour), Tenant: "acme", App: "web", KeyID: "k1", Alias: "claude", Provider: "anthropic",
			ProviderModel: "claude-sonnet-4-5", Endpoint: "chat", Status: 200, UsageKnown: true, CostKnown: true,
			Tokens: [numKinds]int64{Prompt: 2000, Completion: 100, Reasoning: 30}, CostPico: 1_234_567, Latency: ms(200)},
		{ID: "a5", Time: t0.Add(20 * time.Minute), Tenant: "beta", KeyID: "k3", Alias: "smart", Endpoint: "chat",
			Status: 429, Refusal: "rate_limit_exceeded", Latency: ms(1)},
		{ID: "old", Time: t0.Add(-2 * time.Hour), Tenant: "acme", Provider: "openai", ProviderModel: "gpt-4o", Status: 200,
			CostKnown: true, CostPico: 9_000_000_000_000, Latency: ms(5)},
	}
}

func TestAggregate(t *testing.T) {
	hitRate := 0.5
	total := &Stats{Group: "", Requests: 5, Errors: 2, ErrorRate: 0.4,
		ByClass:  map[string]int64{"4xx": 1, "5xx": 1, "no_response": 0},
		Refusals: map[string]int64{"rate_limit_exceeded": 1},
		Tokens:   map[string]int64{"prompt": 3010, "completion": 620, "cached_read": 200, "cache_write": 0, "reasoning": 30},
		CostPico: 7_751_234_567, CostUSD: "0.007751234567", Estimated: 1,
		// latencies 1, 50, 100, 200, 300 ms: p50 at rank ceil(2.5)=3, p95 at rank ceil(4.75)=5
		Latency: Timing{Count: 5, Avg: 130.2, P50: 100, P95: 300},
		// time to first byte 40, 50, 100 ms (requests without a response byte are left out)
		TTFB:     Timing{Count: 3, Avg: 190.0 / 3, P50: 50, P95: 100},
		CacheHit: &hitRate,
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			ctx := context.Background()
			if err := s.Insert(ctx, seed()); err != nil {
				t.Fatal(err)
			}
			// A retried batch changes nothing.
			if err := s.Insert(ctx, seed()[:2]); err != nil {
				t.Fatal(err)
			}
			q := Query{From: t0, To: t0.Add(48 * time.Hour)}
			got := aggregate(t, s, q)
			if js(got) != js([]*Stats{total}) {
				t.Errorf("summary:\n got  %s\n want %s", js(got), js([]*Stats{total}))
			}

			q.GroupBy = "provider"
			got = aggregate(t, s, q)
			if g := groups(got); !reflect.DeepEqual(g, []string{"openai", "anthropic", ""}) {
				t.Fatalf("providers by cost = %q", g)
			}
			if o := got[0]; o.Requests != 3 || o.Errors != 1 || o.ByClass["5xx"] != 1 || o.CostUSD != "0.00775" ||
				o.Latency != (Timing{Count: 3, Avg: 150, P50: 100, P95: 300}) {
				t.Errorf("openai = %s", js(o))
			}

			q.GroupBy = "model"
			if g := groups(aggregate(t, s, q)); !reflect.DeepEqual(g, []string{"openai/gpt-4o", "anthropic/claude-sonnet-4-5", "", "openai/gpt-4o-mini"}) {
				t.Errorf("models = %q", g)
			}
			q.GroupBy = "app"
			got = aggregate(t, s, q)
			if g := groups(got); !reflect.DeepEqual(g, []string{"acme/web", "", "acme/batch"}) || got[0].Requests != 3 {
				t.Errorf("apps = %q", g)
			}
			q.GroupBy = "key"
			if g := groups(aggregate(t, s, q)); !reflect.DeepEqual(g, []string{"k1", "k2", "k3"}) {
				t.Errorf("keys = %q", g)
			}
			q.GroupBy = "alias"
			if g := groups(aggregate(t, s, q)); !reflect.DeepEqual(g, []string{"smart", "claude", "fast"}) {
				t.Errorf("aliases = %q", g)
			}

			q = Query{From: t0, To: t0.Add(48 * time.Hour), Tenant: "acme", App: "web"}
			if got := aggregate(t, s, q); got[0].Requests != 3 || got[0].CostPico != 7_751_234_567 {
				t.Errorf("acme/web = %s", js(got))
			}

			q = Query{From: t0, To: t0.Add(48 * time.Hour), Bucket: "hour"}
			got = aggregate(t, s, q)
			want := []struct {
				at   time.Time
				reqs int64
			}{{t0, 3}, {t0.Add(time.Hour), 1}, {t0.Add(25 * time.Hour), 1}}
			if len(got) != len(want) {
				t.Fatalf("hourly = %s", js(got))
			}
			for i, w := range want {
				if !got[i].Bucket.Equal(w.at) || got[i].Requests != w.reqs {
					t.Errorf("hour %d = %v %d, want %v %d", i, got[i].Bucket, got[i].Requests, w.at, w.reqs)
				}
			}
			q.Bucket = "day"
			got = aggregate(t, s, q)
			if len(got) != 2 || got[0].Requests != 4 || got[1].Requests != 1 || !got[1].Bucket.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("daily = %s", js(got))
			}

			if got := aggregate(t, s, Query{From: t0.Add(-time.Hour * 24 * 30), To: t0.Add(-time.Hour * 24 * 29)}); len(got) != 0 {
				t.Errorf("empty range = %s", js(got))
			}
		})
	}
}

func TestQueryValidate(t *testing.T) {
	for _, q := range []Query{
		{From: t0, To: t0.Add(time.Hour), GroupBy: "colour"},
		{From: t0, To: t0.Add(time.Hour), Bucket: "week"},
		{From: t0, To: t0},
	} {
		if err := q.Validate(); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		vals []int64
		p    int
		want int64
	}{
		{nil, 50, 0},
		{[]int64{7}, 50, 7},
		{[]int64{7}, 95, 7},
		{[]int64{1, 2}, 50, 1},
		{[]int64{1, 2}, 95, 2},
		{[]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 50, 5},
		{[]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 95, 10},
		{[]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 100, 10},
	}
	for _, tt := range tests {
		if got := Percentile(tt.vals, tt.p); got != tt.want {
			t.Errorf("Percentile(%v, %d) = %d, want %d", tt.vals, tt.p, got, tt.want)
		}
	}
}

func aggregate(t *testing.T, s *Store, q Query) []*Stats {
	t.Helper()
	got, err := s.Aggregate(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func groups(st []*Stats) []string {
	var g []string
	for _, s := range st {
		g = append(g, s.Group)
	}
	return g
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func record(i int) *extproc.Record {
	return &extproc.Record{Start: t0.Add(time.Duration(i) * time.Millisecond), RequestID: fmt.Sprintf("req-%d", i),
		Tenant: "acme", App: "web", KeyID: "k1", Endpoint: "chat", Alias: "smart", Provider: "openai", ProviderModel: "gpt-4o",
		Status: 200, UsageKnown: true, Usage: usage.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, CachedTokens: 2, ReasoningTokens: 1},
		CostKnown: true, Cost: 1000, Latency: ms(10), TTFB: ms(3), Metadata: [][2]string{{"op", "x\"y"}}}
}

// waitCount polls the row count until it equals want or the deadline passes.
func waitCount(t *testing.T, s *Store, want int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := s.Count(context.Background())
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows = %d (%v), want %d", n, err, want)
		}
		time.Sleep(10 * time.Millisecond) // polling an observable condition with a deadline
	}
}

func TestFromRecord(t *testing.T) {
	row := FromRecord(record(1))
	if row.Tokens != [numKinds]int64{Prompt: 10, Completion: 5, CachedRead: 2, Reasoning: 1} || row.CostPico != 1000 || row.ID != "req-1" {
		t.Errorf("row = %+v", row)
	}
	if got := metadataJSON(row.Metadata); got != `{"op":"x\"y"}` {
		t.Errorf("metadata = %s", got)
	}
	// Cache writes of both TTLs are one kind in the ledger.
	r := record(3)
	r.Usage.CacheWrite5mTokens, r.Usage.CacheWrite1hTokens = 7, 4
	if got := FromRecord(r).Tokens[CacheWrite]; got != 11 {
		t.Errorf("cache writes = %d; want 11", got)
	}
	r = record(2)
	r.RequestID, r.CostKnown, r.UsageKnown = "", false, false
	row = FromRecord(r)
	if row.ID == "" || row.CostPico != 0 || row.Tokens != [numKinds]int64{} {
		t.Errorf("row without id, cost or usage = %+v", row)
	}
}

// Records accepted by the queue while traffic is still arriving are all in
// the database once Close returns: what a SIGTERM drain relies on.
func TestDrainUnderLoad(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			reg := prometheus.NewRegistry()
			w := NewWriter(s, WriterOptions{Queue: 500, Batch: 64, PurgeTick: make(chan time.Time), Registry: reg})
			var accepted, refused int64
			var mu sync.Mutex
			var wg sync.WaitGroup
			started := make(chan struct{})
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 1000 {
						ok := w.Offer(record(g*1000 + i))
						mu.Lock()
						if ok {
							accepted++
						} else {
							refused++
						}
						mu.Unlock()
						if g == 0 && i == 100 {
							close(started)
						}
					}
				}()
			}
			<-started
			if err := w.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			n, err := s.Count(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n != accepted || accepted+refused != 4000 || accepted == 0 {
				t.Fatalf("rows = %d, accepted = %d, refused = %d", n, accepted, refused)
			}
			if d := w.Dropped(); d != refused {
				t.Errorf("Dropped() = %d, want %d", d, refused)
			}
			full, closed := testutil.ToFloat64(w.m.dropped.WithLabelValues("queue_full")), testutil.ToFloat64(w.m.dropped.WithLabelValues("closed"))
			if full+closed != float64(refused) {
				t.Errorf("dropped metric = %v queue_full + %v closed, want %d", full, closed, refused)
			}
			if got := testutil.ToFloat64(w.m.written); got != float64(accepted) {
				t.Errorf("written metric = %v, want %d", got, accepted)
			}
		})
	}
}

func TestRetention(t *testing.T) {
	s := openSQLite(t)
	if err := s.Insert(context.Background(), seed()); err != nil {
		t.Fatal(err)
	}
	tick := make(chan time.Time)
	now := t0.Add(24 * time.Hour) // keeps a4 (t0+25h) only with one day of retention… and a4 is in the future
	w := NewWriter(s, WriterOptions{Retention: 24 * time.Hour, PurgeTick: tick, Now: func() time.Time { return now }})
	defer w.Close(context.Background())
	tick <- now
	// Everything before t0 is gone ("old"); the rest stays.
	waitCount(t, s, 5)
	now = t0.Add(48 * time.Hour)
	tick <- now
	waitCount(t, s, 1) // only a4 (t0+25h) is within a day of t0+48h
}

// PostgreSQL goes away and comes back on the same port: records keep
// queueing up to the bound and are written once it is back; what did not
// fit is counted as dropped.
func TestPostgresDownAndBack(t *testing.T) {
	pg := pgtest.Start(t)
	s, err := OpenPostgres(context.Background(), pg.CreateDB("ledger"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := NewWriter(s, WriterOptions{Queue: 50, Batch: 10, FlushEvery: 10 * time.Millisecond, RetryMin: 10 * time.Millisecond,
		RetryMax: 50 * time.Millisecond, PurgeTick: make(chan time.Time)})
	for i := range 5 {
		w.Offer(record(i))
	}
	waitCount(t, s, 5)

	pg.Stop()
	accepted := int64(5)
	for i := 5; i < 205; i++ {
		if w.Offer(record(i)) {
			accepted++
		}
	}
	// At most the queue plus the batch in hand is held; the rest is dropped.
	if accepted > 5+50+10 || w.Dropped() != 205-accepted {
		t.Fatalf("accepted %d, dropped %d", accepted, w.Dropped())
	}
	pg.Start()
	waitCount(t, s, accepted)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(context.Background()); n != accepted {
		t.Errorf("rows after close = %d, want %d", n, accepted)
	}
	if testutil.ToFloat64(w.m.errors) == 0 {
		t.Error("no failed write was counted while the database was down")
	}
}

// A drain whose deadline passes while the database is down counts what it
// could not write.
func TestCloseDeadline(t *testing.T) {
	s := openSQLite(t)
	w := NewWriter(s, WriterOptions{Queue: 10, Batch: 5, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, PurgeTick: make(chan time.Time)})
	s.Close() // every write now fails
	for i := range 7 {
		w.Offer(record(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Close(ctx); err == nil {
		t.Fatal("Close succeeded with the database closed")
	}
	if d := w.Dropped(); d != 7 {
		t.Errorf("dropped = %d, want 7", d)
	}
	if w.Offer(record(99)) {
		t.Error("a closed writer accepted a record")
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "l.db")
	for range 2 {
		s, err := OpenSQLite(context.Background(), file)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.DB().QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != 3 { // 0001_requests, 0002_rollups, 0003_cache
			t.Fatalf("migrations = %d, %v", n, err)
		}
		s.Close()
	}
}

// TestCacheColumns: a hit is stored with its result and the tokens it saved
// and counts toward the hit rate; a bypass does not.
func TestCacheColumns(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			hit, miss, bypass := record(1), record(2), record(3)
			hit.Cache, hit.CacheSaved = "hit", usage.Usage{TotalTokens: 15}
			hit.Usage, hit.UsageKnown, hit.CostKnown, hit.Cost = usage.Usage{}, false, false, 0
			miss.Cache, bypass.Cache = "miss", "bypass"
			rows := []Row{FromRecord(hit), FromRecord(miss), FromRecord(bypass)}
			if err := s.Insert(context.Background(), rows); err != nil {
				t.Fatal(err)
			}
			var result string
			var saved int64
			q := s.bind(`SELECT cache_result, cache_saved_tokens FROM requests WHERE id = ?`)
			if err := s.DB().QueryRow(q, "req-1").Scan(&result, &saved); err != nil || result != "hit" || saved != 15 {
				t.Fatalf("hit row: %q %d %v", result, saved, err)
			}
			stats, err := s.Aggregate(context.Background(), Query{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if len(stats) != 1 || stats[0].CacheHit == nil || *stats[0].CacheHit != 0.5 {
				t.Fatalf("cache hit rate: %+v", stats)
			}
		})
	}
}
