package tracing

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestEnabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set: off", nil, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{"exporter", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"exporter none wins", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false},
		{"sdk disabled false", map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, true},
	} {
		if got := Enabled(env(tc.env)); got != tc.want {
			t.Errorf("%s: Enabled = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLatestGenAI(t *testing.T) {
	for v, want := range map[string]bool{
		"": false, "http": false, "gen_ai_latest_experimental": true, "http, gen_ai_latest_experimental": true, "gen_ai": false,
	} {
		if got := LatestGenAI(env(map[string]string{"OTEL_SEMCONV_STABILITY_OPT_IN": v})); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	off, err := FromEnv(context.Background(), env(nil))
	if err != nil || off.Provider != nil || off.Shutdown(context.Background()) != nil {
		t.Fatalf("off: %+v %v", off, err)
	}
	for _, proto := range []string{"", "grpc", "http/protobuf"} {
		s, err := FromEnv(context.Background(), env(map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": proto}))
		if err != nil {
			t.Fatalf("%q: %v", proto, err)
		}
		if _, ok := s.Provider.(*sdktrace.TracerProvider); !ok || s.Propagator == nil {
			t.Fatalf("%q: %+v", proto, s)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // nothing was traced; do not wait on the unreachable endpoint
		_ = s.Shutdown(ctx)
	}
	for _, bad := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
		{"OTEL_TRACES_EXPORTER": "zipkin"},
	} {
		if _, err := FromEnv(context.Background(), env(bad)); err == nil || !strings.Contains(err.Error(), "OTEL") && !strings.Contains(err.Error(), "OTLP") {
			t.Errorf("%v: want a clear error, got %v", bad, err)
		}
	}
}
