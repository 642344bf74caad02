package extproc

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// Metrics are the processor's Prometheus instruments. They are registered on
// a caller-supplied registry (no global state), so tests and several servers
// in one process do not collide.
type Metrics struct {
	requests   *prometheus.CounterVec
	processing *prometheus.HistogramVec
	tokens     *prometheus.CounterVec
	streams    prometheus.Gauge
	cost       *prometheus.CounterVec
	admissions *prometheus.CounterVec
	backendErr prometheus.Counter
	guardrails *prometheus.CounterVec
	refusals   *prometheus.CounterVec
	cache      *prometheus.CounterVec
	cacheSaved prometheus.Counter
	genAI      *genAIMetrics
	// who are the optional tenant and app labels of the cost and token
	// counters, in that order; nil entries are off.
	tenant, app *cappedLabel
	// Label handles resolved once, not per message or request: by phase,
	// and a provider's cost and token counters (without optional labels).
	phases     handles[string, prometheus.Observer]
	costs      handles[string, prometheus.Counter]
	tokenKinds handles[string, *[7]prometheus.Counter] // in tokenKinds' order
	finishes   handles[requestSeries, prometheus.Counter]
}

// requestSeries is a tollgate_requests_total series: route, provider and
// the status (0: the stream ended before any response).
type requestSeries struct {
	route, provider string
	status          int
}

// handles caches metric handles by label values (K: one value, or a struct
// of several): reads are a map lookup without a lock or an allocation; a new
// key copies the map (the label sets are small and bounded: phases,
// routes, providers, statuses, capped model names). Prometheus's own lookup
// hashes and validates every value on every call.
//
// A key's strings are kept: they must be values the process holds anyway
// (constants, configuration, a request's own copies), never views of a
// message's bytes.
type handles[K comparable, T any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]T]
}

func (h *handles[K, T]) get(k K, resolve func(K) T) T {
	if m := h.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := make(map[K]T, 8)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	v := resolve(k)
	next[k] = v
	h.m.Store(&next)
	return v
}

// MetricsOptions choose optional labels.
type MetricsOptions struct {
	// TenantLabel and AppLabel add "tenant" and "app" labels to
	// tollgate_cost_usd_total and tollgate_tokens_total, each capped at
	// LabelCap distinct values (later ones are "_OTHER").
	TenantLabel, AppLabel bool
	LabelCap              int // 0: 200
}

// cappedLabel bounds a label's distinct values: the first max values seen
// are kept, later ones are reported as otherValue.
type cappedLabel struct {
	max   int32
	seen  sync.Map
	count atomic.Int32
}

func (c *cappedLabel) value(v string) string {
	if _, ok := c.seen.Load(v); ok {
		return v
	}
	if c.count.Add(1) > c.max {
		c.count.Add(-1)
		return otherValue
	}
	if _, loaded := c.seen.LoadOrStore(v, struct{}{}); loaded {
		c.count.Add(-1)
	}
	return v
}

// NewMetrics registers the processor's metrics on reg, without optional
// labels.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return NewMetricsWith(reg, MetricsOptions{})
}

// NewMetricsWith registers the processor's metrics on reg with the optional
// labels o asks for.
func NewMetricsWith(reg prometheus.Registerer, o MetricsOptions) *Metrics {
	if o.LabelCap <= 0 {
		o.LabelCap = 200
	}
	var extra []string
	var tenant, app *cappedLabel
	if o.TenantLabel {
		tenant = &cappedLabel{max: int32(o.LabelCap)}
		extra = append(extra, "tenant")
	}
	if o.AppLabel {
		app = &cappedLabel{max: int32(o.LabelCap)}
		extra = append(extra, "app")
	}
	m := &Metrics{tenant: tenant, app: app,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_requests_total",
			Help: "Finished requests by endpoint, provider and HTTP status the client received.",
		}, []string{"route", "provider", "status"}),
		processing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_extproc_processing_seconds",
			Help:    "Time the processor spent on one ext_proc message, by message kind.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1},
		}, []string{"phase"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_tokens_total",
			Help: "Tokens reported by providers, by provider and kind (prompt, completion, cached).",
		}, append([]string{"provider", "kind"}, extra...)),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_extproc_streams_active",
			Help: "ext_proc streams (HTTP requests) in progress.",
		}),
	}
	m.cost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_cost_usd_total",
		Help: "Cost of finished requests in USD, by provider (exact figures are on the log lines).",
	}, append([]string{"provider"}, extra...))
	m.admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_limit_decisions_total",
		Help: "Rate-limit and budget admissions by result and reason.",
	}, []string{"result", "reason"})
	m.backendErr = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_limits_backend_errors_total",
		Help: "Limits backend (Redis) calls that failed; the configured failure policy decided.",
	})
	m.guardrails = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_guardrail_decisions_total",
		Help: "Guardrail decisions by guardrail, stage (input, output) and action (block, redact, flag).",
	}, []string{"guardrail", "stage", "action"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_refusals_total",
		Help: "Requests the gateway refused, by the request step that refused them and the error code.",
	}, []string{"step", "code"})
	m.cache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_cache_requests_total",
		Help: "Response cache results: hit, miss, bypass, and error (the store failed: a lookup, which the client sees as a miss, or a store).",
	}, []string{"result"})
	m.cacheSaved = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tollgate_cache_saved_tokens_total",
		Help: "Tokens (prompt and completion) of the stored answers served from the response cache.",
	})
	reg.MustRegister(m.requests, m.processing, m.tokens, m.streams, m.cost, m.admissions, m.backendErr, m.guardrails, m.refusals,
		m.cache, m.cacheSaved)
	m.genAI = newGenAIMetrics()
	reg.MustRegister(m.genAI.collectors()...)
	return m
}

func (m *Metrics) observePhase(phase string, d time.Duration) {
	if m == nil {
		return
	}
	m.phases.get(phase, func(p string) prometheus.Observer { return m.processing.WithLabelValues(p) }).Observe(d.Seconds())
}

func (m *Metrics) streamStarted() {
	if m != nil {
		m.streams.Inc()
	}
}

func (m *Metrics) finished(r *record, latency, ttfb, proc time.Duration) {
	if m == nil {
		return
	}
	m.genAI.observe(r, latency, ttfb, proc)
	m.streams.Dec()
	m.finishes.get(requestSeries{r.route, r.provider, r.status}, func(k requestSeries) prometheus.Counter {
		return m.requests.WithLabelValues(k.route, k.provider, strconv.Itoa(k.status))
	}).Inc()
	if m.tenant == nil && m.app == nil {
		m.usage(r) // the default: no allocation for optional labels
		return
	}
	who := m.who(r)
	if r.costKnown {
		m.cost.WithLabelValues(append([]string{r.provider}, who...)...).Add(float64(r.cost) / float64(pricing.USD))
	}
	if r.usageKnown || r.estimated {
		for _, t := range tokenKinds(r) {
			m.tokens.WithLabelValues(append([]string{r.provider, t.kind}, who...)...).Add(float64(t.n))
		}
	}
}

// usage counts r's cost and tokens without optional labels.
func (m *Metrics) usage(r *record) {
	if r.costKnown {
		m.costs.get(r.provider, func(p string) prometheus.Counter { return m.cost.WithLabelValues(p) }).
			Add(float64(r.cost) / float64(pricing.USD))
	}
	if r.usageKnown || r.estimated {
		c := m.tokenKinds.get(r.provider, func(p string) *[7]prometheus.Counter {
			var c [7]prometheus.Counter
			for i, t := range tokenKinds(&record{}) {
				c[i] = m.tokens.WithLabelValues(p, t.kind)
			}
			return &c
		})
		for i, t := range tokenKinds(r) {
			c[i].Add(float64(t.n))
		}
	}
}

type tokenCount struct {
	kind string
	n    int64
}

// tokenKinds are r's token counts by the kind label's values.
func tokenKinds(r *record) [7]tokenCount {
	return [...]tokenCount{{"prompt", r.usage.PromptTokens}, {"completion", r.usage.CompletionTokens}, {"cached", r.usage.CachedTokens},
		{"cache_write_5m", r.usage.CacheWrite5mTokens}, {"cache_write_1h", r.usage.CacheWrite1hTokens},
		{"reasoning", r.usage.ReasoningTokens}, {"audio", r.usage.AudioTokens}}
}

// who are the values of the optional tenant and app labels for r.
func (m *Metrics) who(r *record) []string {
	if m.tenant == nil && m.app == nil {
		return nil
	}
	v := make([]string, 0, 2)
	if m.tenant != nil {
		v = append(v, m.tenant.value(r.tenant))
	}
	if m.app != nil {
		v = append(v, m.app.value(r.app))
	}
	return v
}

func (m *Metrics) admission(d limits.Decision) {
	if m == nil {
		return
	}
	result := "allowed"
	if !d.Allowed {
		result = "refused"
	}
	m.admissions.WithLabelValues(result, string(d.Reason)).Inc()
}

func (m *Metrics) guardrail(name, stage, action string) {
	if m != nil {
		m.guardrails.WithLabelValues(name, stage, action).Inc()
	}
}

func (m *Metrics) refused(step, code string) {
	if m != nil {
		m.refusals.WithLabelValues(step, code).Inc()
	}
}

func (m *Metrics) limitsBackendError() {
	if m != nil {
		m.backendErr.Inc()
	}
}

func (m *Metrics) cacheResult(result string) {
	if m != nil {
		m.cache.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) cacheSavedTokens(n int64) {
	if m != nil && n > 0 {
		m.cacheSaved.Add(float64(n))
	}
}
