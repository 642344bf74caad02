package ledger

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"       // database/sql driver "pgx"
	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3", pure Go
)

// Dialect is a database backend.
type Dialect string

// Backends.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

//go:embed migrations
var migrations embed.FS

// Store is the ledger database.
type Store struct {
	db      *sql.DB
	dialect Dialect
	mu      sync.Mutex
	insert  map[int]string // rows per statement → INSERT text
}

// OpenSQLite opens (creating if needed) the SQLite database file at path in
// WAL mode, so the analytics API reads while the writer writes, and applies
// the migrations.
func OpenSQLite(ctx context.Context, file string) (*Store, error) {
	u := url.URL{Scheme: "file", Path: file, RawQuery: "_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)&_txlock=immediate"}
	if !path.IsAbs(file) {
		u = url.URL{Scheme: "file", Opaque: file, RawQuery: u.RawQuery}
	}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, fmt.Errorf("ledger: open sqlite %s: %w", file, err)
	}
	return open(ctx, db, SQLite)
}

// OpenPostgres connects to PostgreSQL and applies the migrations. The DSN may
// hold a password; errors never repeat it.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, errors.New("ledger: postgres dsn is not a valid connection string")
	}
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return open(ctx, db, Postgres)
}

func open(ctx context.Context, db *sql.DB, d Dialect) (*Store, error) {
	s := &Store{db: db, dialect: d, insert: map[int]string{}}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Dialect is the store's backend.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB is the underlying database, for tests and checks.
func (s *Store) DB() *sql.DB { return s.db }

// migrate applies every embedded migration not yet recorded in
// schema_migrations, each in its own transaction, in version order. It is
// idempotent, and on PostgreSQL an advisory lock serialises replicas that
// start together.
func (s *Store) migrate(ctx context.Context) error {
	dir := "migrations/" + string(s.dialect)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("ledger: migrations: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_us BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("ledger: migrations table: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	for _, name := range names {
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("ledger: migration %s: name must start with a version number", name)
		}
		body, err := migrations.ReadFile(dir + "/" + name)
		if err != nil {
			return err
		}
		if err := s.apply(ctx, v, string(body)); err != nil {
			return fmt.Errorf("ledger: migration %s: %w", name, err)
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, version int, body string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7402611)`); err != nil {
			return err
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, s.bind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.bind(`INSERT INTO schema_migrations (version, applied_us) VALUES (?, ?)`), version, time.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}

// bind rewrites ? placeholders as $1, $2… for PostgreSQL. Queries never hold
// a literal question mark.
func (s *Store) bind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// columns in insert order; tokens follow the fixed ones.
var fixedColumns = []string{"id", "ts_us", "tenant", "app", "key_id", "agent_id", "tier", "alias", "provider", "provider_model",
	"endpoint", "status", "refusal", "stream", "usage_known", "estimated", "cost_known", "cost_pico", "latency_us", "ttfb_us",
	"proc_us", "cache_hit", "metadata", "cache_result", "cache_saved_tokens"}

func insertColumns() []string {
	cols := slices.Clone(fixedColumns)
	for _, k := range tokenKinds {
		cols = append(cols, k.column)
	}
	return cols
}

var numColumns = len(insertColumns())

func (s *Store) insertSQL(rows int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.insert[rows]; ok {
		return q
	}
	cols := insertColumns()
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	q := "INSERT INTO requests (" + strings.Join(cols, ",") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(one+",", rows), ",") + " ON CONFLICT (id) DO NOTHING RETURNING id"
	q = s.bind(q)
	s.insert[rows] = q
	return q
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Insert writes rows in one transaction, and adds them to the hour and day
// rollups in the same transaction. A row whose id is already stored is
// skipped (and not rolled up again), so retrying a batch whose commit
// outcome was unknown is safe.
func (s *Store) Insert(ctx context.Context, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ledger: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	const perStatement = 200 // well under both backends' bound-parameter limits
	args := make([]any, 0, perStatement*numColumns)
	inserted := make([]*Row, 0, len(rows))
	for start := 0; start < len(rows); start += perStatement {
		chunk := rows[start:min(start+perStatement, len(rows))]
		args = args[:0]
		for i := range chunk {
			r := &chunk[i]
			var hit any
			if r.CacheHit != nil {
				hit = b2i(*r.CacheHit)
			}
			args = append(args, r.ID, r.Time.UnixMicro(), r.Tenant, r.App, r.KeyID, r.AgentID, r.Tier, r.Alias, r.Provider,
				r.ProviderModel, r.Endpoint, r.Status, r.Refusal, b2i(r.Stream), b2i(r.UsageKnown), b2i(r.Estimated),
				b2i(r.CostKnown), r.CostPico, r.Latency.Microseconds(), r.TTFB.Microseconds(), r.ProcTime.Microseconds(),
				hit, metadataJSON(r.Metadata), r.CacheResult, r.CacheSaved)
			for _, t := range r.Tokens {
				args = append(args, t)
			}
		}
		if err := s.insertChunk(ctx, tx, args, chunk, &inserted); err != nil {
			return err
		}
	}
	if err := s.rollup(ctx, tx, inserted); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ledger: commit: %w", err)
	}
	return nil
}

// insertChunk inserts chunk and appends the rows actually inserted (not
// already stored) to inserted.
func (s *Store) insertChunk(ctx context.Context, tx *sql.Tx, args []any, chunk []Row, inserted *[]*Row) error {
	res, err := tx.QueryContext(ctx, s.insertSQL(len(chunk)), args...)
	if err != nil {
		return fmt.Errorf("ledger: insert: %w", err)
	}
	defer res.Close()
	fresh := make(map[string]bool, len(chunk))
	for res.Next() {
		var id string
		if err := res.Scan(&id); err != nil {
			return fmt.Errorf("ledger: insert: %w", err)
		}
		fresh[id] = true
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("ledger: insert: %w", err)
	}
	for i := range chunk {
		if fresh[chunk[i].ID] {
			*inserted = append(*inserted, &chunk[i])
			delete(fresh, chunk[i].ID) // a batch holding one id twice inserts it once
		}
	}
	return nil
}

// Purge deletes rows of requests that started before cutoff and reports how
// many.
func (s *Store) Purge(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.bind(`DELETE FROM requests WHERE ts_us < ?`), cutoff.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("ledger: purge: %w", err)
	}
	n, _ := res.RowsAffected()
	if err := s.purgeRollups(ctx, cutoff.UnixMicro()); err != nil {
		return n, err
	}
	return n, nil
}

// Count is the number of stored rows.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM requests`).Scan(&n)
	return n, err
}
