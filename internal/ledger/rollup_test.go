package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// traffic is n deterministic pseudo-random rows over three days before t0's
// day ends, with every dimension the rollups keep varying.
func traffic(n int, seed uint64) []Row {
	rng := rand.New(rand.NewPCG(seed, 1))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	statuses := []int{200, 200, 200, 200, 0, 400, 429, 500, 503}
	rows := make([]Row, n)
	for i := range rows {
		st := statuses[rng.IntN(len(statuses))]
		r := Row{ID: fmt.Sprintf("t%d-%d", seed, i), Time: t0.Add(-48*time.Hour + time.Duration(rng.Int64N(int64(72*time.Hour)))),
			Tenant: pick("acme", "beta", "gamma"), App: pick("", "web", "batch"), KeyID: pick("k1", "k2", "k3", "k4"),
			Alias: pick("smart", "fast", ""), Provider: pick("openai", "anthropic", ""), ProviderModel: pick("gpt-4o", "m2"),
			Endpoint: pick("chat", "embeddings"), Status: st, Estimated: rng.IntN(5) == 0, CostKnown: true,
			CostPico: rng.Int64N(1_000_000_000), Latency: time.Duration(rng.Int64N(5000)) * time.Millisecond}
		if st == 429 {
			r.Refusal = "rate_limit_exceeded"
		}
		if rng.IntN(2) == 0 {
			r.TTFB = time.Duration(rng.Int64N(1000)) * time.Millisecond
		}
		if rng.IntN(3) == 0 {
			r.CacheHit = hit(rng.IntN(2) == 0)
		}
		for k := range r.Tokens {
			r.Tokens[k] = rng.Int64N(10000)
		}
		rows[i] = r
	}
	return rows
}

// rollupQueries are queries the rollups answer (aligned ranges) in every
// grouping, as summaries and series.
func rollupQueries() []Query {
	day := t0.Truncate(24 * time.Hour)
	var qs []Query
	for _, g := range []string{"", "provider", "model", "tenant", "app", "key", "alias"} {
		qs = append(qs,
			Query{From: day.Add(-48 * time.Hour), To: day.Add(24 * time.Hour), GroupBy: g},
			Query{From: day.Add(-30 * time.Hour), To: day.Add(5 * time.Hour), GroupBy: g, Bucket: "hour"},
			Query{From: day.Add(-48 * time.Hour), To: day.Add(24 * time.Hour), GroupBy: g, Bucket: "day"},
			Query{From: day.Add(-47 * time.Hour), To: day.Add(3 * time.Hour), GroupBy: g, Bucket: "day", Tenant: "acme"},
			Query{From: day.Add(-48 * time.Hour), To: day, GroupBy: g, Tenant: "beta", App: "web"},
		)
	}
	return qs
}

// TestRollupsEqualRaw: for the same traffic, every figure of a summary or a
// series read from the rollups equals the one read from the raw rows, on
// both backends; a batch written twice (a retry after an unknown commit)
// is not rolled up twice; and migration 0002 rolls up rows already stored.
func TestRollupsEqualRaw(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			// 1,000 rows put several in every (tenant, app, key, model) cell of
			// every hour bucket queried; more only slows SQLite under -race.
			rows := traffic(1000, 1)
			for start := 0; start < len(rows); start += 256 {
				batch := rows[start:min(start+256, len(rows))]
				if err := s.Insert(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Insert(ctx, rows[:300]); err != nil { // a retried batch
				t.Fatal(err)
			}
			check := func(t *testing.T, sample bool) {
				for i, q := range rollupQueries() {
					if sample && i%5 != 0 {
						continue // one query shape of each grouping
					}
					if src := q.source(); src.table == "requests" {
						t.Fatalf("%+v is not answered from a rollup", q)
					}
					for _, noPct := range []bool{false, true} {
						q.NoPercentiles = noPct
						raw := q
						raw.Raw = true
						if got, want := js(aggregate(t, s, q)), js(aggregate(t, s, raw)); got != want {
							t.Errorf("%+v:\nrollup %s\nraw    %s", q, got, want)
						}
					}
				}
			}
			check(t, false)
			// Migration 0002 rebuilt from the stored rows gives the same.
			for _, stmt := range []string{`DROP TABLE rollup_hour`, `DROP TABLE rollup_day`, `DELETE FROM schema_migrations WHERE version = 2`} {
				if _, err := s.DB().ExecContext(ctx, stmt); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.migrate(ctx); err != nil {
				t.Fatal(err)
			}
			check(t, true)
		})
	}
}

func TestQuerySource(t *testing.T) {
	day := t0.Truncate(24 * time.Hour)
	tests := []struct {
		q    Query
		want string
	}{
		{Query{From: day, To: day.Add(48 * time.Hour)}, "rollup_day"},
		{Query{From: day, To: day.Add(48 * time.Hour), Bucket: "day"}, "rollup_day"},
		{Query{From: day, To: day.Add(48 * time.Hour), Bucket: "hour"}, "rollup_hour"},
		{Query{From: day.Add(time.Hour), To: day.Add(48 * time.Hour)}, "rollup_hour"},
		{Query{From: day.Add(time.Minute), To: day.Add(48 * time.Hour)}, "requests"},
		{Query{From: day, To: day.Add(48*time.Hour + time.Second)}, "requests"},
		{Query{From: day, To: day.Add(48 * time.Hour), Raw: true}, "requests"},
	}
	for _, tt := range tests {
		if got := tt.q.source().table; got != tt.want {
			t.Errorf("%v..%v bucket %q raw %v: %s, want %s", tt.q.From, tt.q.To, tt.q.Bucket, tt.q.Raw, got, tt.want)
		}
	}
}

// TestRollupRetention: a purge deletes rollup buckets that ended before the
// cutoff and keeps the one the cutoff falls in.
func TestRollupRetention(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	if err := s.Insert(ctx, seed()); err != nil {
		t.Fatal(err)
	}
	// "old" is at t0-2h; the cutoff t0-90m ends its hour bucket (t0-2h..t0-1h)
	// only at t0-1h, so it stays; at t0 it goes.
	count := func(table string) (n int64) {
		if err := s.DB().QueryRowContext(ctx, `SELECT COALESCE(SUM(requests), 0) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := s.Purge(ctx, t0.Add(-90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := count("rollup_hour"); n != 6 {
		t.Errorf("hour rollup after a cutoff inside the bucket: %d requests, want 6", n)
	}
	if _, err := s.Purge(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if n := count("rollup_hour"); n != 5 {
		t.Errorf("hour rollup after a cutoff past the bucket: %d requests, want 5", n)
	}
	if n := count("rollup_day"); n != 6 {
		t.Errorf("day rollup before its day ended: %d requests, want 6", n)
	}
	if _, err := s.Purge(ctx, t0.Add(24*time.Hour).Truncate(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := count("rollup_day"); n != 1 {
		t.Errorf("day rollup after t0's day: %d requests, want 1 (a4, the next day)", n)
	}
}

// BenchmarkSummary is the analytics summary of one day grouped by model
// over 200k rows spread over 30 days, from the rollups and from the raw
// rows (20 keys, 4 models), with percentiles (read from the raw rows of the range either way)
// and without (percentiles=false).
func BenchmarkSummary(b *testing.B) {
	ctx := context.Background()
	s := openSQLite(b)
	const n = 200_000
	rows := make([]Row, 0, 2000)
	for i := range n {
		// Realistic cardinality: 20 keys, each of one tenant and app, 4
		// models, a few statuses (random dimensions would make the rollup
		// as large as the table).
		r := traffic(1, uint64(i))[0]
		k := i % 20
		r.KeyID, r.Tenant, r.App = fmt.Sprintf("k%d", k), fmt.Sprintf("t%d", k%5), fmt.Sprintf("a%d", k%3)
		r.Alias, r.Provider, r.ProviderModel, r.Endpoint = "smart", "openai", fmt.Sprintf("m%d", i%4), "chat"
		r.Time = t0.Add(-30*24*time.Hour + time.Duration(i)*(30*24*time.Hour/n))
		rows = append(rows, r)
		if len(rows) == cap(rows) {
			if err := s.Insert(ctx, rows); err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	day := t0.Truncate(24 * time.Hour)
	for _, mode := range []struct {
		name       string
		raw, noPct bool
	}{{"rollups", false, true}, {"raw", true, true}, {"rollups+percentiles", false, false}, {"raw+percentiles", true, false}} {
		b.Run(mode.name, func(b *testing.B) {
			q := Query{From: day.Add(-30 * 24 * time.Hour), To: day, GroupBy: "model", Raw: mode.raw, NoPercentiles: mode.noPct}
			b.ResetTimer()
			for range b.N {
				if _, err := s.Aggregate(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/summary")
		})
	}
}
