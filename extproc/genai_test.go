package extproc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

func TestGenAIMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	stream := &record{route: "chat", provider: "openai", providerModel: "gpt-4o-mini", status: 200, stream: true,
		usage: usage.Usage{PromptTokens: 100, CompletionTokens: 11}, usageKnown: true, cost: 3 * pricing.MicroUSD, costKnown: true}
	m.streamStarted()
	m.finished(stream, 1200*time.Millisecond, 200*time.Millisecond, 300*time.Microsecond)
	failed := &record{route: "embeddings", provider: "openai", providerModel: "text-embedding-3-small", status: 500}
	m.streamStarted()
	m.finished(failed, 50*time.Millisecond, 40*time.Millisecond, 100*time.Microsecond)
	refused := &record{route: "chat", status: 401, refusal: "invalid_api_key"}
	m.streamStarted()
	m.finished(refused, time.Millisecond, 0, 50*time.Microsecond)

	want := `
# HELP gen_ai_server_time_per_output_token_seconds Time per output token after the first of successful streaming requests: (duration - time to first token) / (output tokens - 1).
# TYPE gen_ai_server_time_per_output_token_seconds histogram
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.01"} 0
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.025"} 0
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.05"} 0
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.075"} 0
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.1"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.15"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.2"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.3"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.4"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.5"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="0.75"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="1"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="2.5"} 1
gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",le="+Inf"} 1
gen_ai_server_time_per_output_token_seconds_sum{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"} 0.1
gen_ai_server_time_per_output_token_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"} 1
# HELP tollgate_model_cost_usd_total Cost of finished requests in USD by provider and provider model (exact figures are in the usage ledger).
# TYPE tollgate_model_cost_usd_total counter
tollgate_model_cost_usd_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"} 3e-06
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gen_ai_server_time_per_output_token_seconds", "tollgate_model_cost_usd_total"); err != nil {
		t.Error(err)
	}
	counts := map[string]int{
		// one chat stream; the failed embedding and the refusal have no usage
		"gen_ai_client_token_usage": 2, // input and output of the stream
		// the stream and the failed embedding reached a provider; the refusal did not
		"gen_ai_server_request_duration_seconds":    2,
		"gen_ai_server_time_to_first_token_seconds": 1,
		"tollgate_gateway_overhead_seconds":         2, // routes chat and embeddings
	}
	for name, n := range counts {
		if got, err := testutil.GatherAndCount(reg, name); err != nil || got != n {
			t.Errorf("%s: %d series (%v), want %d", name, got, err, n)
		}
	}
	dur, err := m.genAI.duration.GetMetricWithLabelValues("embeddings", "openai", "text-embedding-3-small", "500")
	var sample dto.Metric
	if err == nil {
		err = dur.(prometheus.Histogram).Write(&sample)
	}
	if err != nil || sample.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("failed embedding not recorded with error_type 500: %v", err)
	}
}

func TestModelLabelBound(t *testing.T) {
	g := newGenAIMetrics()
	for i := range maxModelLabels {
		if got := g.modelLabel(fmt.Sprintf("m%d", i)); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("model %d labelled %q", i, got)
		}
	}
	if got := g.modelLabel("one-too-many"); got != otherValue {
		t.Errorf("beyond the bound: %q, want %q", got, otherValue)
	}
	if got := g.modelLabel("m7"); got != "m7" {
		t.Errorf("a known model after the bound: %q", got)
	}
}
