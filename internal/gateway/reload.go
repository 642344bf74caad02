package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/extproc"
	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/internal/xds"
	"github.com/tollgate-ai/tollgate/internal/yamldoc"
	"github.com/tollgate-ai/tollgate/policy/allow"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// Build compiles a validated configuration into a snapshot. It refuses a
// configuration only where compile does, and tollgate check runs compile
// too (through Check), so check passes exactly what serve accepts. Reading
// secrets never refuses: warnings name providers whose credential could not
// be read, and requests to them are refused until a reload fixes it.
func Build(cfg *config.Config, lookupEnv func(string) (string, bool), now time.Time) (*extproc.Snapshot, []error, error) {
	snap, _, warnings, err := build(cfg, lookupEnv, now)
	return snap, warnings, err
}

// build is Build that also returns the Envoy resources generated from cfg.
func build(cfg *config.Config, lookupEnv func(string) (string, bool), now time.Time) (*extproc.Snapshot, *xds.Resources, []error, error) {
	c, err := compile(cfg, now)
	if err != nil {
		return nil, nil, nil, err
	}
	table, warnings := routing.New(cfg, lookupEnv)
	tenants, tw := configopts.NewTenancy(cfg, lookupEnv)
	warnings = append(warnings, tw...)
	return &extproc.Snapshot{Routes: table, Keys: c.keys, Tenants: tenants, Metadata: cfg.MetadataLimits(),
		Prices: c.prices, Limits: c.limits, Guardrails: c.guards,
		BasePath: cfg.BasePath, Cache: c.cache}, c.envoy, warnings, nil
}

// compiled is every part of a snapshot that needs no secret.
type compiled struct {
	keys   *keys.Store
	prices *pricing.Prices
	limits *extproc.Limits
	guards *guardrails.Set
	cache  *extproc.CacheSettings
	envoy  *xds.Resources // clusters and routes served over ADS
}

// Check runs every step that can refuse a configuration config.Load
// accepted, exactly as serve runs it, without reading any secret. The error
// is a config.Problems listing every problem found.
func Check(cfg *config.Config, now time.Time) error {
	_, err := compile(cfg, now)
	return err
}

// compile compiles the parts of a snapshot that need no secret: the key
// store, the price table (built-in merged with the configuration's entries
// and price_as mappings, covering every routable model), the limits and the
// guardrails. Every reason serve refuses a configuration that config.Load
// accepted lives here, and every problem is reported, as config.Problems.
func compile(cfg *config.Config, now time.Time) (*compiled, error) {
	var c compiled
	var ps config.Problems
	fail := func(path string, err error) {
		var cp config.Problems
		if errors.As(err, &cp) {
			ps = append(ps, cp...)
			return
		}
		ps = append(ps, config.Problem{Path: path, Message: err.Error()})
	}
	entries := make([]keys.Entry, len(cfg.Keys))
	for i, k := range cfg.Keys {
		e := keys.Entry{SHA256: k.SHA256, Disabled: k.Disabled, Key: keys.Key{
			ID: k.ID, Tenant: k.Tenant, App: k.App, Tier: k.Tier, Models: allow.List(k.Models),
			RequireAgentID: k.RequireAgentID, Labels: k.Labels,
		}}
		if e.Tenant == "" {
			e.Tenant = config.DefaultTenant
		}
		if k.Expires != "" {
			t, err := time.Parse(time.RFC3339, k.Expires) // validated by config
			if err != nil {
				fail(fmt.Sprintf("keys[%s].expires", k.ID), err)
			}
			e.Expires = t
		}
		entries[i] = e
	}
	var err error
	if c.keys, err = keys.NewStore(entries); err != nil {
		fail("keys", err)
	}
	if c.prices, err = buildPrices(cfg.Prices, routing.PriceAliases(cfg)); err != nil {
		fail("pricing", err)
	} else {
		ps = append(ps, routing.CheckPrices(cfg, c.prices, now)...)
	}
	if c.limits, err = extproc.NewLimits(cfg.Limits); err != nil {
		fail("limits", err)
	}
	// The Envoy resources, checked as strictly as a shipped bootstrap, so a
	// configuration Envoy would reject never replaces the last good one.
	if c.envoy, err = xds.Generate(cfg); err != nil {
		fail("envoy", err)
	} else {
		ps = append(ps, xds.Validate(c.envoy)...)
	}
	if gc, ok := configopts.Guardrails(cfg); ok {
		// Compiled once per load: no detector is built per request.
		if c.guards, err = guardrails.NewSet(gc); err != nil {
			fail("guardrails", err)
		}
	}
	if c.cache, err = cacheSettings(cfg); err != nil {
		fail("cache", err)
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return &c, nil
}

// buildPrices merges the configured price entries over the built-in table
// (seeded from the providers' list prices), an entry of the same name
// replacing the built-in one, and adds the providers' price_as mappings.
func buildPrices(own pricing.Table, aliases map[pricing.Key]pricing.Key) (*pricing.Prices, error) {
	t := pricing.DefaultTable()
	for name, e := range own.Models {
		t.Models[name] = e
	}
	p, err := pricing.New(t)
	if err != nil {
		var pp yamldoc.Problems
		if errors.As(err, &pp) {
			ps := make(config.Problems, len(pp))
			for i, q := range pp {
				ps[i] = config.Problem{Path: "pricing." + q.Path, Message: q.Message + " (in the configured entries merged over the built-in table)"}
			}
			return nil, ps
		}
		return nil, fmt.Errorf("price table: %w", err)
	}
	if p, err = p.WithAliases(aliases); err != nil {
		return nil, fmt.Errorf("providers' price_as: %w", err)
	}
	return p, nil
}

// Load reads the configuration from paths, or the embedded example when
// there are none.
func Load(paths []string) (*config.Config, error) {
	if len(paths) == 0 {
		return config.Parse("example/tollgate.yaml", config.Example())
	}
	return config.Load(paths...)
}

// reloader keeps the last good snapshot. An invalid new configuration is
// logged and counted, and the last good one stays in force. Requests read the
// pointer once when they start, so a swap never changes a request in flight.
type reloader struct {
	paths     []string
	lookupEnv func(string) (string, bool)
	log       *zap.Logger
	reloads   *prometheus.CounterVec
	onReload  func(error)
	publish   func(*xds.Resources) error // hands new Envoy resources to the ADS server
	snap      atomic.Pointer[extproc.Snapshot]
	admin     atomic.Pointer[adminToken]

	mu         sync.Mutex
	secrets    []string       // secret files of the config in force
	limits     *config.Limits // the limits section at start; it chose the backend
	ledger     *config.Ledger // the ledger section at start; it chose the database
	ledgerSet  bool
	metrics    *config.Metrics // the metrics section at start; it chose the label sets
	metricsSet bool
	cache      *config.Cache // the cache section at start; it chose the store
	cacheSet   bool
}

func newReloader(paths []string, lookupEnv func(string) (string, bool), log *zap.Logger, reg prometheus.Registerer) *reloader {
	r := &reloader{
		paths:     paths,
		lookupEnv: lookupEnv,
		log:       log,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_config_reload_total",
			Help: "Configuration loads by result (success, error).",
		}, []string{"result"}),
	}
	reg.MustRegister(r.reloads)
	return r
}

func (r *reloader) current() *extproc.Snapshot { return r.snap.Load() }

func (r *reloader) load() error {
	cfg, err := Load(r.paths)
	if err == nil {
		var snap *extproc.Snapshot
		var res *xds.Resources
		var warnings []error
		snap, res, warnings, err = build(cfg, r.lookupEnv, time.Now())
		for _, w := range warnings {
			r.log.Warn("configuration warning", zap.Error(w))
		}
		if err == nil && r.publish != nil {
			// Envoy's resources first: a snapshot the cache refuses leaves
			// both the processor and Envoy on the last good configuration.
			err = r.publish(res)
		}
		if err == nil {
			r.snap.Store(snap)
			r.reloads.WithLabelValues("success").Inc()
			r.setSecrets(cfg.SecretFiles())
			r.setLimits(cfg.Limits)
			r.setLedger(cfg.Ledger)
			r.setCache(cfg.Cache)
			r.setMetrics(cfg.Metrics)
			r.admin.Store(resolveAdmin(cfg.Admin, r.lookupEnv))
			r.log.Info("configuration loaded", zap.Int("providers", len(cfg.Providers)),
				zap.Int("models", len(cfg.Models)), zap.Int("keys", len(cfg.Keys)))
			return nil
		}
	}
	r.reloads.WithLabelValues("error").Inc()
	var problems config.Problems
	if errors.As(err, &problems) {
		for _, p := range problems {
			r.log.Error("configuration problem", zap.String("problem", p.String()))
		}
	}
	if r.current() != nil {
		r.log.Error("configuration rejected; the last good configuration stays in force", zap.Error(err))
	}
	return fmt.Errorf("load configuration: %w", err)
}

func (r *reloader) setSecrets(files []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.Sort(files)
	r.secrets = files
}

// setLimits remembers the limits section; the first one chooses the backend.
func (r *reloader) setLimits(l *config.Limits) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limits != nil && backendOf(r.limits) != backendOf(l) {
		r.log.Warn("limits backend changed in the configuration; it takes effect after a restart")
	}
	if r.limits == nil {
		r.limits = l
	}
}

// setLedger remembers the ledger section; the first one (at start) chose
// the database, and a later change only warns.
func (r *reloader) setLedger(l *config.Ledger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ledgerSet {
		r.ledger, r.ledgerSet = l, true
		return
	}
	if !sameLedger(r.ledger, l) {
		r.log.Warn("ledger section changed in the configuration; it takes effect after a restart")
	}
}

// setCache remembers the cache section; the first one (at start) chose the
// store and its sizes. A later change of backend, sizes or Redis only warns;
// hash_strategy and app opt-ins take effect at once (they are per snapshot).
func (r *reloader) setCache(c *config.Cache) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.cacheSet {
		r.cache, r.cacheSet = c, true
		return
	}
	if storeOf(r.cache) != storeOf(c) {
		r.log.Warn("cache store settings changed in the configuration; they take effect after a restart")
	}
}

func storeOf(c *config.Cache) string {
	if c == nil || c.Backend == config.CacheDisabled {
		return config.CacheDisabled
	}
	redisAt := ""
	if c.Redis != nil {
		redisAt = c.Redis.URL.String()
	}
	return fmt.Sprintf("%s/%d/%d/%d/%s", c.Backend, c.TTLSeconds, c.MaxCacheSizeMB, c.MaxEntryKB, redisAt)
}

func (r *reloader) watched() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(slices.Clone(r.paths), r.secrets...)
}

// watch reloads on every change to the config paths or to the secret files
// the configuration in force refers to, until ctx ends. After each reload the
// watched set is updated in place, so no change is missed in between.
func (r *reloader) watch(ctx context.Context) {
	if len(r.paths) == 0 {
		return // embedded example: nothing to watch
	}
	w, err := config.NewWatcher(r.watched(), config.WatchOptions{Debounce: config.DefaultDebounce, Logger: r.log})
	if err != nil {
		r.log.Error("configuration watch failed; hot reload is off", zap.Error(err))
		return
	}
	err = w.Run(ctx, func() {
		err := r.load()
		if err := w.SetPaths(r.watched()); err != nil {
			r.log.Error("configuration watch: updating watched paths", zap.Error(err))
		}
		if r.onReload != nil {
			r.onReload(err)
		}
	})
	if err != nil {
		r.log.Error("configuration watch stopped", zap.Error(err))
	}
}
