package extproc

import (
	"strconv"
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
	genAI      *genAIMetrics
}

// NewMetrics registers the processor's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
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
		}, []string{"provider", "kind"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_extproc_streams_active",
			Help: "ext_proc streams (HTTP requests) in progress.",
		}),
	}
	m.cost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_cost_usd_total",
		Help: "Cost of finished requests in USD, by provider (exact figures are on the log lines).",
	}, []string{"provider"})
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
	reg.MustRegister(m.requests, m.processing, m.tokens, m.streams, m.cost, m.admissions, m.backendErr, m.guardrails)
	m.genAI = newGenAIMetrics()
	reg.MustRegister(m.genAI.collectors()...)
	return m
}

func (m *Metrics) observePhase(phase string, d time.Duration) {
	if m == nil {
		return
	}
	m.processing.WithLabelValues(phase).Observe(d.Seconds())
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
	status := "0" // stream ended before any response
	if r.status != 0 {
		status = strconv.Itoa(r.status)
	}
	m.requests.WithLabelValues(r.route, r.provider, status).Inc()
	if r.costKnown {
		m.cost.WithLabelValues(r.provider).Add(float64(r.cost) / float64(pricing.USD))
	}
	if r.usageKnown || r.estimated {
		m.tokens.WithLabelValues(r.provider, "prompt").Add(float64(r.usage.PromptTokens))
		m.tokens.WithLabelValues(r.provider, "completion").Add(float64(r.usage.CompletionTokens))
		m.tokens.WithLabelValues(r.provider, "cached").Add(float64(r.usage.CachedTokens))
		m.tokens.WithLabelValues(r.provider, "cache_write_5m").Add(float64(r.usage.CacheWrite5mTokens))
		m.tokens.WithLabelValues(r.provider, "cache_write_1h").Add(float64(r.usage.CacheWrite1hTokens))
		m.tokens.WithLabelValues(r.provider, "reasoning").Add(float64(r.usage.ReasoningTokens))
		m.tokens.WithLabelValues(r.provider, "audio").Add(float64(r.usage.AudioTokens))
	}
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

func (m *Metrics) limitsBackendError() {
	if m != nil {
		m.backendErr.Inc()
	}
}
