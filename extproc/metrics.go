package extproc

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the processor's Prometheus instruments. They are registered on
// a caller-supplied registry (no global state), so tests and several servers
// in one process do not collide.
type Metrics struct {
	requests   *prometheus.CounterVec
	processing *prometheus.HistogramVec
	tokens     *prometheus.CounterVec
	streams    prometheus.Gauge
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
	reg.MustRegister(m.requests, m.processing, m.tokens, m.streams)
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

func (m *Metrics) finished(r *record) {
	if m == nil {
		return
	}
	m.streams.Dec()
	status := "0" // stream ended before any response
	if r.status != 0 {
		status = strconv.Itoa(r.status)
	}
	m.requests.WithLabelValues(r.route, r.provider, status).Inc()
	if r.usageKnown {
		m.tokens.WithLabelValues(r.provider, "prompt").Add(float64(r.usage.PromptTokens))
		m.tokens.WithLabelValues(r.provider, "completion").Add(float64(r.usage.CompletionTokens))
		m.tokens.WithLabelValues(r.provider, "cached").Add(float64(r.usage.CachedTokens))
	}
}
