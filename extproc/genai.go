package extproc

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// GenAI metrics after the OpenTelemetry semantic conventions for generative
// AI (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/),
// with their recommended bucket boundaries, in Prometheus naming: dots
// become underscores and seconds get the _seconds suffix. The gateway is a
// client of each provider, so token usage is gen_ai_client_token_usage; the
// durations describe the provider as a model server seen from the gateway.
type genAIMetrics struct {
	tokens     *prometheus.HistogramVec // gen_ai_client_token_usage
	duration   *prometheus.HistogramVec // gen_ai_server_request_duration_seconds
	ttft       *prometheus.HistogramVec // gen_ai_server_time_to_first_token_seconds
	perToken   *prometheus.HistogramVec // gen_ai_server_time_per_output_token_seconds
	overhead   *prometheus.HistogramVec // tollgate_gateway_overhead_seconds
	modelCost  *prometheus.CounterVec   // tollgate_model_cost_usd_total
	models     sync.Map                 // request model label values in use
	modelCount atomic.Int32

	// Series resolved once (metrics.go, handles).
	overheads handles[string, prometheus.Observer]
	durations handles[durationSeries, prometheus.Observer]
	costs     handles[[2]string, prometheus.Counter]      // provider, model
	usages    handles[[3]string, *[2]prometheus.Observer] // genAILabels' values: input, output (chat only)
}

// durationSeries is a gen_ai_server_request_duration_seconds series:
// genAILabels' values and the status error_type is made of.
type durationSeries struct {
	labels [3]string
	status int
}

// errorType is error_type's value for a response status: none for a
// success, the status of a failure, otherValue for no response at all.
func errorType(status int) string {
	switch {
	case status == 0:
		return otherValue
	case status >= 400:
		return strconv.Itoa(status)
	}
	return ""
}

// maxModelLabels bounds the distinct gen_ai_request_model values: with
// direct_models: any a client could otherwise mint a series per name.
const maxModelLabels = 200

// otherValue is the conventions' fallback value: request model names
// beyond the bound, and error_type of a request that got no response.
const otherValue = "_OTHER"

var genAILabels = []string{"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"}

func newGenAIMetrics() *genAIMetrics {
	return &genAIMetrics{
		tokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_client_token_usage",
			Help:    "Tokens used per request by token type (input, output), as the provider reported them.",
			Buckets: []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864},
		}, append(genAILabels, "gen_ai_token_type")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_server_request_duration_seconds",
			Help:    "Duration of requests that reached a provider, to the last byte, gateway included; error_type is the status of failed ones.",
			Buckets: []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92},
		}, append(genAILabels, "error_type")),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_server_time_to_first_token_seconds",
			Help:    "Time to the first streamed response byte of successful streaming requests.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0},
		}, genAILabels),
		perToken: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_server_time_per_output_token_seconds",
			Help:    "Time per output token after the first of successful streaming requests: (duration - time to first token) / (output tokens - 1).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5},
		}, genAILabels),
		overhead: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_gateway_overhead_seconds",
			Help:    "Processor time spent on one request, all its ext_proc messages together: the gateway's own overhead.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}, []string{"route"}),
		modelCost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_model_cost_usd_total",
			Help: "Cost of finished requests in USD by provider and provider model (exact figures are in the usage ledger).",
		}, []string{"gen_ai_provider_name", "gen_ai_request_model"}),
	}
}

func (g *genAIMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{g.tokens, g.duration, g.ttft, g.perToken, g.overhead, g.modelCost}
}

// modelLabel returns name while fewer than maxModelLabels names are in use,
// then otherValue for new ones.
func (g *genAIMetrics) modelLabel(name string) string {
	if _, ok := g.models.Load(name); ok {
		return name
	}
	if g.modelCount.Add(1) > maxModelLabels {
		g.modelCount.Add(-1)
		return otherValue
	}
	if _, loaded := g.models.LoadOrStore(name, struct{}{}); loaded {
		g.modelCount.Add(-1)
	}
	return name
}

// operation maps an endpoint to gen_ai.operation.name.
func operation(route string) string {
	switch route {
	case "chat":
		return "chat"
	case "embeddings":
		return "embeddings"
	case "transcriptions":
		return "transcription" // not a well-known value; the conventions allow a custom one
	}
	return ""
}

// observe records one finished request. Each instrument's series is
// resolved once.
func (g *genAIMetrics) observe(r *record, latency, ttfb, proc time.Duration) {
	g.overheads.get(r.route, func(route string) prometheus.Observer { return g.overhead.WithLabelValues(route) }).
		Observe(proc.Seconds())
	op := operation(r.route)
	if op == "" || r.provider == "" {
		return // refused before a provider was chosen: no GenAI operation happened
	}
	model := g.modelLabel(r.providerModel)
	labels := [...]string{op, r.provider, model}
	// Successes share one series whatever their status.
	status := r.status
	if status > 0 && status < 400 {
		status = 200
	}
	g.durations.get(durationSeries{labels, status}, func(k durationSeries) prometheus.Observer {
		return g.duration.WithLabelValues(k.labels[0], k.labels[1], k.labels[2], errorType(k.status))
	}).Observe(latency.Seconds())
	if r.costKnown {
		g.costs.get([2]string{r.provider, model}, func(k [2]string) prometheus.Counter { return g.modelCost.WithLabelValues(k[0], k[1]) }).
			Add(float64(r.cost) / float64(pricing.USD))
	}
	if r.usageKnown {
		t := g.usages.get(labels, func(k [3]string) *[2]prometheus.Observer {
			t := &[2]prometheus.Observer{g.tokens.WithLabelValues(k[0], k[1], k[2], "input")}
			if k[0] == "chat" { // only chat has an output series
				t[1] = g.tokens.WithLabelValues(k[0], k[1], k[2], "output")
			}
			return t
		})
		t[0].Observe(float64(r.usage.PromptTokens))
		if op == "chat" {
			t[1].Observe(float64(r.usage.CompletionTokens))
		}
	}
	if !r.stream || r.status != 200 || ttfb <= 0 {
		return
	}
	g.ttft.WithLabelValues(labels[:]...).Observe(ttfb.Seconds())
	if out := r.usage.CompletionTokens; r.usageKnown && out > 1 && latency > ttfb {
		g.perToken.WithLabelValues(labels[:]...).Observe((latency - ttfb).Seconds() / float64(out-1))
	}
}
