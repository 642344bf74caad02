package extproc

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// TestMetricsTenantAppLabels: the optional tenant and app labels appear on
// the cost and token counters only when asked for, and each is capped like
// the model label.
func TestMetricsTenantAppLabels(t *testing.T) {
	rec := func(tenant, app string) *record {
		return &record{route: "chat", provider: "openai", providerModel: "gpt-4o", status: 200, tenant: tenant, app: app,
			usage: usage.Usage{PromptTokens: 10, CompletionTokens: 2}, usageKnown: true, cost: pricing.MicroUSD, costKnown: true}
	}
	tests := []struct {
		name string
		o    MetricsOptions
		want string
	}{
		{"off", MetricsOptions{}, `
tollgate_cost_usd_total{provider="openai"} 3e-06
`},
		{"tenant", MetricsOptions{TenantLabel: true, LabelCap: 2}, `
tollgate_cost_usd_total{provider="openai",tenant="_OTHER"} 1e-06
tollgate_cost_usd_total{provider="openai",tenant="acme"} 1e-06
tollgate_cost_usd_total{provider="openai",tenant="beta"} 1e-06
`},
		{"tenant and app", MetricsOptions{TenantLabel: true, AppLabel: true, LabelCap: 2}, `
tollgate_cost_usd_total{app="_OTHER",provider="openai",tenant="_OTHER"} 1e-06
tollgate_cost_usd_total{app="batch",provider="openai",tenant="beta"} 1e-06
tollgate_cost_usd_total{app="web",provider="openai",tenant="acme"} 1e-06
`},
		{"app", MetricsOptions{AppLabel: true}, `
tollgate_cost_usd_total{app="batch",provider="openai"} 1e-06
tollgate_cost_usd_total{app="cli",provider="openai"} 1e-06
tollgate_cost_usd_total{app="web",provider="openai"} 1e-06
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := NewMetricsWith(reg, tt.o)
			for _, r := range []*record{rec("acme", "web"), rec("beta", "batch"), rec("gamma", "cli")} {
				m.streamStarted()
				m.finished(r, 10*time.Millisecond, time.Millisecond, time.Microsecond)
			}
			head := "# HELP tollgate_cost_usd_total Cost of finished requests in USD, by provider (exact figures are on the log lines).\n# TYPE tollgate_cost_usd_total counter"
			if err := testutil.GatherAndCompare(reg, strings.NewReader(head+tt.want), "tollgate_cost_usd_total"); err != nil {
				t.Error(err)
			}
			// Tokens carry the same labels.
			n, err := testutil.GatherAndCount(reg, "tollgate_tokens_total")
			if err != nil {
				t.Fatal(err)
			}
			series := strings.Count(strings.TrimSpace(tt.want), "\n") + 1
			if n != series*7 {
				t.Errorf("tollgate_tokens_total has %d series, want %d (7 kinds × %d)", n, series*7, series)
			}
		})
	}
}

// TestHandlesResolvedOnce: a label value resolves its handle once; later
// requests reuse it without allocating.
func TestHandlesResolvedOnce(t *testing.T) {
	var h handles[string, *int]
	calls := 0
	resolve := func(string) *int { calls++; return new(int) }
	first := h.get("openai", resolve)
	if h.get("openai", resolve) != first || h.get("anthropic", resolve) == first || calls != 2 {
		t.Fatalf("resolved %d times, want 2 (one per value)", calls)
	}
	if n := testing.AllocsPerRun(100, func() { h.get("openai", resolve) }); n != 0 {
		t.Fatalf("%v allocations per cached lookup", n)
	}
}
