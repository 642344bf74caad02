package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// Groupings a query may break figures down by, and the expression of each.
// Models are "provider/model"; apps are "tenant/app".
var groupExprs = map[string]string{
	"":         "''",
	"provider": "provider",
	"model":    "CASE WHEN provider = '' THEN '' ELSE provider || '/' || provider_model END",
	"tenant":   "tenant",
	"app":      "CASE WHEN app = '' THEN '' ELSE tenant || '/' || app END",
	"key":      "key_id",
	"alias":    "alias",
}

// Bucket widths of a time series, in microseconds. Buckets are aligned to
// the Unix epoch, so day buckets are UTC days.
var bucketWidths = map[string]int64{"hour": 3600_000_000, "day": 86400_000_000}

// Query selects requests that started in [From, To), optionally of one
// tenant and one app, broken down by GroupBy and, for a time series, by
// Bucket.
type Query struct {
	From, To time.Time
	GroupBy  string // "", provider, model, tenant, app, key, alias
	Bucket   string // "" (one summary), hour, day
	Tenant   string // filter; empty: all
	App      string // filter on the app name (with Tenant, that tenant's app)
	// Raw makes every figure come from the requests table, never from the
	// rollups (tests and benchmarks compare the two).
	Raw bool
	// NoPercentiles leaves latency and time-to-first-byte percentiles out
	// (count and average stay), so no raw row is read when a rollup can
	// answer.
	NoPercentiles bool
}

// source is where the additive figures of a query are read from: the
// requests table, or a rollup table whose rows carry sums.
type source struct {
	table, ts                                                  string
	count, c4, c5, c0, cost, est, lat, ttfb, ttfbN, seen, hits string
	token                                                      func(column string) string
}

var rawSource = source{table: "requests", ts: "ts_us", count: "COUNT(*)",
	c4: "CASE WHEN status >= 400 AND status < 500 THEN 1 ELSE 0 END", c5: "CASE WHEN status >= 500 THEN 1 ELSE 0 END",
	c0: "CASE WHEN status = 0 THEN 1 ELSE 0 END", cost: "cost_pico", est: "estimated", lat: "latency_us", ttfb: "ttfb_us",
	ttfbN: "CASE WHEN ttfb_us > 0 THEN 1 ELSE 0 END", seen: "CASE WHEN cache_hit IS NULL THEN 0 ELSE 1 END", hits: "CASE WHEN cache_hit = 1 THEN 1 ELSE 0 END",
	token: func(c string) string { return c }}

func rollupSource(table string) source {
	return source{table: table, ts: "bucket_us", count: "CAST(COALESCE(SUM(requests), 0) AS BIGINT)",
		c4: "CASE WHEN status_class = 4 THEN requests ELSE 0 END", c5: "CASE WHEN status_class = 5 THEN requests ELSE 0 END",
		c0: "CASE WHEN status_class = 0 THEN requests ELSE 0 END", cost: "cost_pico", est: "estimated", lat: "latency_us",
		ttfb: "ttfb_us", ttfbN: "ttfb_count", seen: "cache_seen", hits: "cache_hits", token: func(c string) string { return c }}
}

// source picks the table the additive figures come from: the day rollup
// when the range starts and ends on UTC days and no hourly series is asked
// for, the hour rollup when it starts and ends on hours, and the requests
// table otherwise (a rollup bucket cannot be split). Percentiles always come
// from the requests table.
func (q Query) source() source {
	if q.Raw {
		return rawSource
	}
	aligned := func(w int64) bool { return q.From.UnixMicro()%w == 0 && q.To.UnixMicro()%w == 0 }
	switch {
	case q.Bucket != "hour" && aligned(bucketWidths["day"]):
		return rollupSource("rollup_day")
	case aligned(bucketWidths["hour"]):
		return rollupSource("rollup_hour")
	}
	return rawSource
}

// Validate reports a query the store cannot answer.
func (q Query) Validate() error {
	if _, ok := groupExprs[q.GroupBy]; !ok {
		return fmt.Errorf("group_by %q must be one of provider, model, tenant, app, key, alias", q.GroupBy)
	}
	if _, ok := bucketWidths[q.Bucket]; !ok && q.Bucket != "" {
		return fmt.Errorf("bucket %q must be hour or day", q.Bucket)
	}
	if !q.From.Before(q.To) {
		return fmt.Errorf("from must be before to")
	}
	return nil
}

// Stats are the figures of one group (and bucket).
type Stats struct {
	Bucket   *time.Time `json:"bucket,omitempty"` // start of the bucket, time series only
	Group    string     `json:"group"`            // the group's value; "" for the whole selection
	Requests int64      `json:"requests"`
	// Errors are responses with status 4xx or 5xx and requests that ended
	// without a status; ErrorRate is Errors / Requests.
	Errors     int64            `json:"errors"`
	ErrorRate  float64          `json:"error_rate"`
	ByClass    map[string]int64 `json:"errors_by_class"` // "4xx", "5xx", "no_response"
	Refusals   map[string]int64 `json:"refusals"`        // the gateway's refusal code → count (part of 4xx/5xx)
	Tokens     map[string]int64 `json:"tokens"`          // token kind → count
	CostPico   int64            `json:"cost_pico_usd"`   // exact, integer pico-dollars
	CostUSD    string           `json:"cost_usd"`        // the same, as an exact decimal
	Estimated  int64            `json:"estimated_requests"`
	Latency    Timing           `json:"latency_ms"`
	TTFB       Timing           `json:"ttfb_ms"`        // over requests that received a response byte
	CacheHit   *float64         `json:"cache_hit_rate"` // null when no request had a cache decision
	cacheSeen  int64
	latencies  []int64
	ttfbs      []int64
	latencySum int64
	ttfbSum    int64
	ttfbN      int64
}

// Timing is a latency distribution in milliseconds. Percentiles are
// nearest-rank: with the n values sorted ascending, the p-th percentile is
// the value at 1-based rank ceil(p/100 × n) — always an observed value.
type Timing struct {
	Count int64   `json:"count"`
	Avg   float64 `json:"avg"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, or 0 when it is empty.
func Percentile(sorted []int64, p int) int64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := (p*n + 99) / 100 // ceil(p*n/100)
	return sorted[max(rank, 1)-1]
}

func timing(sorted []int64, sum int64) Timing {
	n := int64(len(sorted))
	if n == 0 {
		return Timing{}
	}
	return Timing{Count: n, Avg: float64(sum) / float64(n) / 1000, P50: float64(Percentile(sorted, 50)) / 1000, P95: float64(Percentile(sorted, 95)) / 1000}
}

type statsKey struct {
	bucket int64
	group  string
}

// Aggregate answers q: one Stats per group (and bucket), ordered by bucket
// and then by cost, highest first, and group name.
func (s *Store) Aggregate(ctx context.Context, q Query) ([]*Stats, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	src := q.source()
	keys := q.keys(src.ts)
	where, args := q.where(src.ts)
	sum := func(e string) string { return "CAST(COALESCE(SUM(" + e + "), 0) AS BIGINT)" }
	count := src.count
	cols := []string{count, sum(src.c4), sum(src.c5), sum(src.c0), sum(src.cost), sum(src.est), sum(src.lat), sum(src.ttfb),
		sum(src.ttfbN), sum(src.seen), sum(src.hits)}
	for _, k := range tokenKinds {
		cols = append(cols, sum(src.token(k.column)))
	}
	rows, err := s.db.QueryContext(ctx, s.bind("SELECT "+keys+", "+strings.Join(cols, ", ")+" FROM "+src.table+where+" GROUP BY 1, 2"), args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: aggregate: %w", err)
	}
	out := map[statsKey]*Stats{}
	for rows.Next() {
		var k statsKey
		st := &Stats{ByClass: map[string]int64{}, Refusals: map[string]int64{}, Tokens: map[string]int64{}}
		var c4, c5, c0, hits int64
		var tokens [numKinds]int64
		dest := []any{&k.bucket, &k.group, &st.Requests, &c4, &c5, &c0, &st.CostPico, &st.Estimated, &st.latencySum, &st.ttfbSum, &st.ttfbN, &st.cacheSeen, &hits}
		for i := range tokens {
			dest = append(dest, &tokens[i])
		}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ledger: aggregate: %w", err)
		}
		st.Group = k.group
		st.ByClass["4xx"], st.ByClass["5xx"], st.ByClass["no_response"] = c4, c5, c0
		st.Errors = c4 + c5 + c0
		st.ErrorRate = float64(st.Errors) / float64(st.Requests)
		for i, n := range tokens {
			st.Tokens[tokenKinds[i].name] = n
		}
		st.CostUSD = pricing.Amount(st.CostPico).String()
		if st.cacheSeen > 0 {
			r := float64(hits) / float64(st.cacheSeen)
			st.CacheHit = &r
		}
		if q.Bucket != "" {
			t := time.UnixMicro(k.bucket).UTC()
			st.Bucket = &t
		}
		out[k] = st
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("ledger: aggregate: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: aggregate: %w", err)
	}
	if err := s.refusals(ctx, src, keys, where, args, out); err != nil {
		return nil, err
	}
	if q.NoPercentiles {
		return finish(out, func(st *Stats) {
			st.Latency = average(st.Requests, st.latencySum)
			st.TTFB = average(st.ttfbN, st.ttfbSum)
		}), nil
	}
	keys = q.keys(rawSource.ts)
	where, args = q.where(rawSource.ts)
	if err := s.distribution(ctx, keys, "latency_us", where, args, out, func(st *Stats, v int64) { st.latencies = append(st.latencies, v) }); err != nil {
		return nil, err
	}
	if err := s.distribution(ctx, keys, "ttfb_us", where+" AND ttfb_us > 0", args, out, func(st *Stats, v int64) { st.ttfbs = append(st.ttfbs, v) }); err != nil {
		return nil, err
	}
	return finish(out, func(st *Stats) {
		st.Latency = timing(st.latencies, st.latencySum)
		st.TTFB = timing(st.ttfbs, st.ttfbSum)
		st.latencies, st.ttfbs = nil, nil
	}), nil
}

// average is a Timing without percentiles.
func average(n, sum int64) Timing {
	if n == 0 {
		return Timing{}
	}
	return Timing{Count: n, Avg: float64(sum) / float64(n) / 1000}
}

// finish completes every group's timings and orders the groups by bucket,
// then cost (highest first), then name.
func finish(out map[statsKey]*Stats, timings func(*Stats)) []*Stats {
	list := make([]*Stats, 0, len(out))
	for _, st := range out {
		timings(st)
		list = append(list, st)
	}
	slices.SortFunc(list, func(a, b *Stats) int {
		if a.Bucket != nil && !a.Bucket.Equal(*b.Bucket) {
			return a.Bucket.Compare(*b.Bucket)
		}
		if a.CostPico != b.CostPico {
			if a.CostPico > b.CostPico {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Group, b.Group)
	})
	return list
}

// keys are the bucket and group expressions over the time column ts.
func (q Query) keys(ts string) string {
	bucket := "0"
	if w := bucketWidths[q.Bucket]; w > 0 {
		bucket = fmt.Sprintf("(%s / %d) * %d", ts, w, w)
	}
	return bucket + " AS bkt, " + groupExprs[q.GroupBy] + " AS grp"
}

func (q Query) where(ts string) (string, []any) {
	w := " WHERE " + ts + " >= ? AND " + ts + " < ?"
	args := []any{q.From.UnixMicro(), q.To.UnixMicro()}
	if q.Tenant != "" {
		w += " AND tenant = ?"
		args = append(args, q.Tenant)
	}
	if q.App != "" {
		w += " AND app = ?"
		args = append(args, q.App)
	}
	return w, args
}

func (s *Store) refusals(ctx context.Context, src source, keys, where string, args []any, out map[statsKey]*Stats) error {
	rows, err := s.db.QueryContext(ctx, s.bind("SELECT "+keys+", refusal, "+src.count+" FROM "+src.table+where+" AND refusal <> '' GROUP BY 1, 2, 3"), args...)
	if err != nil {
		return fmt.Errorf("ledger: refusals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k statsKey
		var code string
		var n int64
		if err := rows.Scan(&k.bucket, &k.group, &code, &n); err != nil {
			return fmt.Errorf("ledger: refusals: %w", err)
		}
		if st := out[k]; st != nil {
			st.Refusals[code] = n
		}
	}
	return rows.Err()
}

// distribution reads one timing column of every selected row, sorted within
// each group by the database, for exact nearest-rank percentiles computed the
// same way on both backends.
func (s *Store) distribution(ctx context.Context, keys, column, where string, args []any, out map[statsKey]*Stats, add func(*Stats, int64)) error {
	rows, err := s.db.QueryContext(ctx, s.bind("SELECT "+keys+", "+column+" FROM requests"+where+" ORDER BY 1, 2, 3"), args...)
	if err != nil {
		return fmt.Errorf("ledger: %s: %w", column, err)
	}
	defer rows.Close()
	var k statsKey
	var v int64
	var st *Stats
	for rows.Next() {
		var nk statsKey
		if err := rows.Scan(&nk.bucket, &nk.group, &v); err != nil {
			return fmt.Errorf("ledger: %s: %w", column, err)
		}
		if st == nil || nk != k {
			k, st = nk, out[nk]
		}
		if st != nil {
			add(st, v)
		}
	}
	return rows.Err()
}
