package gateway

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-ai/tollgate/extproc"
	"github.com/tollgate-ai/tollgate/routing/config"
)

func TestMetricsOptions(t *testing.T) {
	tests := []struct {
		m    *config.Metrics
		want extproc.MetricsOptions
	}{
		{nil, extproc.MetricsOptions{LabelCap: config.MaxMetricLabelValues}},
		{&config.Metrics{}, extproc.MetricsOptions{LabelCap: config.MaxMetricLabelValues}},
		{&config.Metrics{Labels: []string{"tenant"}}, extproc.MetricsOptions{TenantLabel: true, LabelCap: config.MaxMetricLabelValues}},
		{&config.Metrics{Labels: []string{"app", "tenant"}}, extproc.MetricsOptions{TenantLabel: true, AppLabel: true, LabelCap: config.MaxMetricLabelValues}},
	}
	for _, tt := range tests {
		if got := metricsOptions(tt.m); got != tt.want {
			t.Errorf("%+v: %+v, want %+v", tt.m, got, tt.want)
		}
	}
}

// TestMetricsLabelsWiring: a gateway started with metrics.labels counts a
// served request's cost under its tenant.
func TestMetricsLabelsWiring(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := limitsConfig("  rate_limits:\n    - {scope: global, requests_per_minute: 1000}") + "metrics: {labels: [tenant]}\n"
	g := startGatewayWith(t, gatewayOpts{cfg: cfg, reg: reg})
	if !fullRequest(t, dial(t, g), []byte(`{"model":"smart-default","messages":[{"role":"user","content":"hi"}]}`), 100) {
		t.Fatal("refused")
	}
	waitMetricSeries(t, reg, "tollgate_cost_usd_total")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tollgate_cost_usd_total" {
			continue
		}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			if l.GetName() == "tenant" {
				return
			}
		}
		t.Fatalf("no tenant label: %v", mf.GetMetric()[0].GetLabel())
	}
	t.Fatal("no tollgate_cost_usd_total")
}

func waitMetricSeries(t *testing.T, reg *prometheus.Registry, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a failure guard, not a synchronisation
	for {
		if n, _ := testutil.GatherAndCount(reg, name); n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s series", name)
		}
		time.Sleep(5 * time.Millisecond) // polling an observable condition
	}
}
