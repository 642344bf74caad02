package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/extproc"
	"github.com/tollgate-ai/tollgate/internal/ledger"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// ledgerDrainTimeout bounds the ledger flush at shutdown, after the streams
// have drained. What is not written by then is counted as dropped and logged.
const ledgerDrainTimeout = 10 * time.Second

// usageLedger is the process's ledger, opened from the ledger section in
// force at start: like the limits backend, a change needs a restart.
type usageLedger struct {
	store  *ledger.Store
	writer *ledger.Writer
}

func openLedger(ctx context.Context, l *config.Ledger, lookupEnv func(string) (string, bool), log *zap.Logger, reg prometheus.Registerer) (*usageLedger, error) {
	if l == nil {
		return nil, nil
	}
	var store *ledger.Store
	var err error
	switch l.Backend {
	case "postgres":
		dsn, rerr := l.Postgres.DSN.Resolve(lookupEnv)
		if rerr != nil {
			return nil, fmt.Errorf("ledger: postgres dsn: %w", rerr)
		}
		store, err = ledger.OpenPostgres(ctx, string(dsn))
	default:
		store, err = ledger.OpenSQLite(ctx, l.SQLite.Path)
	}
	if err != nil {
		return nil, err
	}
	w := ledger.NewWriter(store, ledger.WriterOptions{
		Queue:     l.QueueSize,
		Batch:     l.BatchSize,
		Retention: time.Duration(l.RetentionDays) * 24 * time.Hour,
		Logger:    log,
		Registry:  reg,
	})
	log.Info("usage ledger open", zap.String("backend", string(store.Dialect())), zap.Int("retention_days", l.RetentionDays))
	return &usageLedger{store: store, writer: w}, nil
}

// close writes everything queued, within ctx, then closes the database.
func (u *usageLedger) close(ctx context.Context, log *zap.Logger) {
	if u == nil {
		return
	}
	if err := u.writer.Close(ctx); err != nil {
		log.Error("usage ledger drain incomplete", zap.Error(err), zap.Int64("dropped_total", u.writer.Dropped()))
	}
	if err := u.store.Close(); err != nil {
		log.Warn("usage ledger close", zap.Error(err))
	}
}

// adminToken is the admin section's token as last loaded.
type adminToken struct {
	token []byte // nil: none configured
	err   error  // configured but unreadable
}

func resolveAdmin(a *config.Admin, lookupEnv func(string) (string, bool)) *adminToken {
	if a == nil || a.Token == nil {
		return &adminToken{}
	}
	v, err := a.Token.Resolve(lookupEnv)
	if err != nil {
		return &adminToken{err: fmt.Errorf("admin token: %w", err)}
	}
	return &adminToken{token: []byte(v)}
}

// sink is the processor's record sink: the ledger's writer, or none.
func (g *Gateway) sink() extproc.RecordSink {
	if g.ledger == nil {
		return nil
	}
	return g.ledger.writer
}

// analyticsRoutes adds the analytics API and the dashboard to the admin
// server. Both need the admin token; without one they say they are off.
func (g *Gateway) analyticsRoutes(mux *http.ServeMux) {
	api := &ledger.API{
		Token: func() ([]byte, error) {
			a := g.reload.admin.Load()
			if a == nil {
				return nil, nil
			}
			return a.token, a.err
		},
		Now: time.Now,
		Log: g.log,
	}
	if g.ledger != nil {
		api.Store = g.ledger.store
	}
	mux.Handle("/v1/analytics/", api)
	mux.Handle("/dashboard/", http.StripPrefix("/dashboard", ledger.Dashboard()))
	mux.Handle("/dashboard", http.RedirectHandler("/dashboard/", http.StatusMovedPermanently))
}

// sameLedger reports whether two ledger sections open the same database
// with the same settings.
func sameLedger(a, b *config.Ledger) bool {
	if a == nil || b == nil {
		return a == b
	}
	same := a.Backend == b.Backend && a.RetentionDays == b.RetentionDays && a.QueueSize == b.QueueSize && a.BatchSize == b.BatchSize
	switch {
	case a.SQLite != nil && b.SQLite != nil:
		return same && a.SQLite.Path == b.SQLite.Path
	case a.Postgres != nil && b.Postgres != nil:
		return same && a.Postgres.DSN == b.Postgres.DSN
	}
	return false
}
