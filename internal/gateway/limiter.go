package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing/config"
)

func backendOf(l *config.Limits) string {
	if l == nil || l.Backend == "" {
		return "memory"
	}
	return l.Backend
}

// limiterDeps is what building a limiter needs from the process.
type limiterDeps struct {
	lookupEnv func(string) (string, bool)
	log       *zap.Logger
	reg       prometheus.Registerer
	now       func() time.Time // nil: time.Now
}

// newLimiter builds the process's limiter from the limits section in force
// at start: counters must outlive config reloads, so the backend is chosen
// once. The closer flushes queued reconciliations (bounded) and releases
// the Redis client.
func newLimiter(l *config.Limits, deps limiterDeps) (limits.Limiter, func() error, error) {
	if backendOf(l) == "memory" {
		return limits.NewMemory(deps.now), func() error { return nil }, nil
	}
	url, err := l.Redis.URL.Resolve(deps.lookupEnv)
	if err != nil {
		return nil, nil, fmt.Errorf("limits: redis url: %w", err)
	}
	opts, err := redis.ParseURL(string(url))
	if err != nil {
		// The URL may hold a password: say what is wrong, not what it is.
		return nil, nil, fmt.Errorf("limits: redis url from %s is not a valid redis:// or rediss:// URL", l.Redis.URL)
	}
	set := l.Redis.Settings()
	applySettings(opts, set)
	client := redis.NewClient(opts)
	fail := limits.FailurePolicy{Budgets: limits.FailClosed}
	if f := l.OnBackendFailure; f != nil {
		fail.Requests = failMode(f.Requests, limits.FailOpen)
		fail.Tokens = failMode(f.Tokens, limits.FailOpen)
		fail.Budgets = failMode(f.Budgets, limits.FailClosed)
	}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_limits_reconcile_dropped_total",
		Help: "Reconciliations (token adjustments and budget charges) given up: the retry queue was full, Redis refused them, or Redis was unreachable at shutdown.",
	})
	lim := limits.NewRedis(client, limits.RedisOptions{
		Prefix: l.Redis.Prefix, Now: deps.now, Failure: fail,
		AdmitTimeout: set.AdmissionTimeout, ReconcileTimeout: set.ReconcileTimeout, RetryQueue: set.ReconcileQueue,
		OnDropped: func(n int, err error) {
			dropped.Add(float64(n))
			deps.log.Error("limits reconciliations dropped: their token adjustments and budget charges are lost",
				zap.Int("count", n), zap.Error(err))
		},
	})
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tollgate_limits_reconcile_queued",
		Help: "Reconciliations waiting for Redis to answer again.",
	}, func() float64 { return float64(lim.Pending()) })
	if err := registerAll(deps.reg, dropped, queued); err != nil {
		_ = errors.Join(lim.Close(), client.Close())
		return nil, nil, fmt.Errorf("limits metrics: %w", err)
	}
	return lim, func() error { return errors.Join(lim.Close(), client.Close()) }, nil
}

// applySettings bounds every wait of the client. ContextTimeoutEnabled lets
// the limiter's per-call deadlines reach the sockets and the pool queue, so
// a hung Redis costs a request the admission timeout at most.
func applySettings(o *redis.Options, s config.RedisSettings) {
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = s.DialTimeout, s.ReadTimeout, s.WriteTimeout
	o.ContextTimeoutEnabled = true
	o.PoolTimeout = s.AdmissionTimeout
	if s.PoolSize > 0 {
		o.PoolSize = s.PoolSize
	}
	o.MaxRetries = s.MaxRetries
	if s.MaxRetries == 0 {
		o.MaxRetries = -1 // go-redis reads 0 as "the default, 3"
	}
	o.DialerRetries = max(s.MaxRetries, 1) // 0 would mean go-redis's 5 dial attempts
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func failMode(s string, def limits.FailMode) limits.FailMode {
	switch s {
	case "open":
		return limits.FailOpen
	case "closed":
		return limits.FailClosed
	}
	return def
}
