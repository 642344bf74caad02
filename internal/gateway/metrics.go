package gateway

import (
	"slices"

	"github.com/tollgate-ai/tollgate/extproc"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// setMetrics remembers the metrics section; the first one (at start) chose
// the metrics' label sets, which cannot change while the process runs, so a
// later change only warns.
func (r *reloader) setMetrics(m *config.Metrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.metricsSet {
		r.metrics, r.metricsSet = m, true
		return
	}
	if !slices.Equal(labelsOf(r.metrics), labelsOf(m)) {
		r.log.Warn("metrics section changed in the configuration; it takes effect after a restart")
	}
}

func labelsOf(m *config.Metrics) []string {
	if m == nil {
		return nil
	}
	l := slices.Clone(m.Labels)
	slices.Sort(l)
	return l
}

// metricsOptions are the processor's metric options from the metrics
// section.
func metricsOptions(m *config.Metrics) extproc.MetricsOptions {
	l := labelsOf(m)
	return extproc.MetricsOptions{TenantLabel: slices.Contains(l, "tenant"), AppLabel: slices.Contains(l, "app"),
		LabelCap: config.MaxMetricLabelValues}
}
