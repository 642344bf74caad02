package helm

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func otelEnv(c *corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "OTEL_") {
			out[e.Name] = e
		}
	}
	return out
}

// TestTracingValues: tracing is off by default (no OTEL_* variable, so the
// gateway starts no tracer), and the values become the standard OTEL_*
// variables, the OTLP headers from a Secret, never inline.
func TestTracingValues(t *testing.T) {
	helm := helmBinary(t)
	if env := otelEnv(mustRender(t, helm).container(t, "tollgate")); len(env) != 0 {
		t.Fatalf("tracing off by default, got %v", env)
	}
	r := mustRender(t, helm,
		"--set", "tracing.endpoint=https://cloud.langfuse.com/api/public/otel",
		"--set", "tracing.protocol=grpc",
		"--set", "tracing.headersSecret=langfuse-otlp",
		"--set-json", "tracing.samplingRatio=0.1",
		"--set", "tracing.latestGenAIConventions=true")
	env := otelEnv(r.container(t, "tollgate"))
	for k, want := range map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":   "https://cloud.langfuse.com/api/public/otel",
		"OTEL_EXPORTER_OTLP_PROTOCOL":   "grpc",
		"OTEL_TRACES_SAMPLER":           "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG":       "0.1",
		"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
	} {
		if got := env[k].Value; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	h := env["OTEL_EXPORTER_OTLP_HEADERS"]
	if ref := h.ValueFrom; h.Value != "" || ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "langfuse-otlp" || ref.SecretKeyRef.Key != "headers" {
		t.Errorf("OTEL_EXPORTER_OTLP_HEADERS = %+v, want a secretKeyRef to langfuse-otlp/headers", h)
	}
	if env := otelEnv(mustRender(t, helm, "--set", "tracing.endpoint=http://collector:4318").container(t, "tollgate")); env["OTEL_EXPORTER_OTLP_HEADERS"].Name != "" || env["OTEL_SEMCONV_STABILITY_OPT_IN"].Name != "" || env["OTEL_EXPORTER_OTLP_PROTOCOL"].Value != "http/protobuf" {
		t.Errorf("defaults: %v", env)
	}
}

func TestTracingValuesRejected(t *testing.T) {
	helm := helmBinary(t)
	for name, args := range map[string][]string{
		"ratio above 1": {"--set", "tracing.samplingRatio=2"},
		"protocol":      {"--set", "tracing.protocol=http/json"},
		"endpoint":      {"--set", "tracing.endpoint=collector:4317"},
		"unknown field": {"--set", "tracing.sampler=always_on"},
	} {
		if _, err := template(t, helm, args...); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		}
	}
}
