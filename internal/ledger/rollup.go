package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// rollupTables are the rollup tables (migration 0002) and their bucket
// widths in microseconds.
var rollupTables = []struct {
	table string
	width int64
}{{"rollup_hour", 3600_000_000}, {"rollup_day", 86400_000_000}}

// rollupKey is one rollup row's identity: bucket and dimensions.
type rollupKey struct {
	bucket                            int64
	tenant, app, key, alias, provider string
	model, endpoint                   string
	class                             int
	refusal                           string
}

// rollupSums are the additive figures of one rollup row.
type rollupSums struct {
	requests, estimated, cost, latency, ttfb, ttfbN, cacheSeen, cacheHits int64
	tokens                                                                [numKinds]int64
}

// statusClass is the rollup's status class: 0 no response, 4 and 5 for
// errors, 2 for everything else.
func statusClass(status int) int {
	switch {
	case status == 0:
		return 0
	case status >= 500:
		return 5
	case status >= 400:
		return 4
	}
	return 2
}

func (s *rollupSums) add(r *Row) {
	s.requests++
	s.estimated += int64(b2i(r.Estimated))
	s.cost += r.CostPico
	s.latency += r.Latency.Microseconds()
	s.ttfb += r.TTFB.Microseconds()
	if r.TTFB.Microseconds() > 0 {
		s.ttfbN++
	}
	if r.CacheHit != nil {
		s.cacheSeen++
		s.cacheHits += int64(b2i(*r.CacheHit))
	}
	for i, n := range r.Tokens {
		s.tokens[i] += n
	}
}

var rollupColumns = []string{"bucket_us", "tenant", "app", "key_id", "alias", "provider", "provider_model", "endpoint",
	"status_class", "refusal", "requests", "estimated", "cost_pico", "latency_us", "ttfb_us", "ttfb_count", "cache_seen", "cache_hits",
	"prompt_tokens", "completion_tokens", "cached_read_tokens", "cache_write_tokens", "reasoning_tokens"}

const rollupKeyColumns = 10

// rollup adds the rows just inserted (and only those: a row already stored
// was skipped by the insert and must not be counted twice) to both rollup
// tables, within tx.
func (s *Store) rollup(ctx context.Context, tx *sql.Tx, rows []*Row) error {
	for _, rt := range rollupTables {
		sums := map[rollupKey]*rollupSums{}
		var order []rollupKey
		for _, r := range rows {
			k := rollupKey{bucket: (r.Time.UnixMicro() / rt.width) * rt.width, tenant: r.Tenant, app: r.App, key: r.KeyID,
				alias: r.Alias, provider: r.Provider, model: r.ProviderModel, endpoint: r.Endpoint, class: statusClass(r.Status), refusal: r.Refusal}
			sm := sums[k]
			if sm == nil {
				sm = &rollupSums{}
				sums[k] = sm
				order = append(order, k)
			}
			sm.add(r)
		}
		const perStatement = 200
		for start := 0; start < len(order); start += perStatement {
			chunk := order[start:min(start+perStatement, len(order))]
			args := make([]any, 0, len(chunk)*len(rollupColumns))
			for _, k := range chunk {
				sm := sums[k]
				args = append(args, k.bucket, k.tenant, k.app, k.key, k.alias, k.provider, k.model, k.endpoint, k.class, k.refusal,
					sm.requests, sm.estimated, sm.cost, sm.latency, sm.ttfb, sm.ttfbN, sm.cacheSeen, sm.cacheHits)
				for _, n := range sm.tokens {
					args = append(args, n)
				}
			}
			if _, err := tx.ExecContext(ctx, s.rollupSQL(rt.table, len(chunk)), args...); err != nil {
				return fmt.Errorf("ledger: %s: %w", rt.table, err)
			}
		}
	}
	return nil
}

// rollupSQL is the upsert of n rollup rows into table: new keys are
// inserted, existing ones get the sums added.
func (s *Store) rollupSQL(table string, n int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(rollupColumns)), ",") + ")"
	sets := make([]string, 0, len(rollupColumns)-rollupKeyColumns)
	for _, c := range rollupColumns[rollupKeyColumns:] {
		sets = append(sets, c+" = "+table+"."+c+" + excluded."+c)
	}
	q := "INSERT INTO " + table + " (" + strings.Join(rollupColumns, ",") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(one+",", n), ",") +
		" ON CONFLICT (" + strings.Join(rollupColumns[:rollupKeyColumns], ",") + ") DO UPDATE SET " + strings.Join(sets, ", ")
	return s.bind(q)
}

// purgeRollups deletes rollup buckets that ended at or before cutoff: a
// bucket the cutoff falls inside is kept whole until the next purge after
// it ends.
func (s *Store) purgeRollups(ctx context.Context, cutoffUS int64) error {
	for _, rt := range rollupTables {
		if _, err := s.db.ExecContext(ctx, s.bind(`DELETE FROM `+rt.table+` WHERE bucket_us + ? <= ?`), rt.width, cutoffUS); err != nil {
			return fmt.Errorf("ledger: purge %s: %w", rt.table, err)
		}
	}
	return nil
}
