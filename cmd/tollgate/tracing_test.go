package main

import (
	"strings"
	"testing"
)

// TestServeRefusesBadTracingConfig: a tracing configuration the gateway
// cannot honour stops it at start-up with a clear log line, rather than
// silently serving untraced.
func TestServeRefusesBadTracingConfig(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	code, _, stderr := runCLI(t, "serve", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "")
	if code != 1 || !strings.Contains(stderr, "tracing setup failed") || !strings.Contains(stderr, "http/json") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
}
