// Package tracing builds the gateway's OpenTelemetry tracer provider from the
// standard OTEL_* environment variables. The binary's assembly calls it and
// passes the result into the gateway; library code never touches OTel's
// globals.
package tracing

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Setup is the tracing of one process. A zero Setup (Provider nil) means
// tracing is off.
type Setup struct {
	Provider   trace.TracerProvider
	Propagator propagation.TextMapPropagator
	// LatestGenAI is OTEL_SEMCONV_STABILITY_OPT_IN containing
	// gen_ai_latest_experimental: emit the latest GenAI conventions instead
	// of the v1.36.0 set.
	LatestGenAI bool
	// Shutdown flushes and stops the exporter; a no-op when tracing is off.
	Shutdown func(context.Context) error
}

// Enabled reports whether the environment asks for traces: an OTLP endpoint
// or a traces exporter is configured and the SDK is not disabled.
func Enabled(lookupEnv func(string) (string, bool)) bool {
	get := func(k string) string { v, _ := lookupEnv(k); return strings.TrimSpace(v) }
	if strings.EqualFold(get("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch exp := get("OTEL_TRACES_EXPORTER"); {
	case exp == "none":
		return false
	case exp != "":
		return true
	}
	return get("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// LatestGenAI reads OTEL_SEMCONV_STABILITY_OPT_IN, a comma-separated list.
func LatestGenAI(lookupEnv func(string) (string, bool)) bool {
	v, _ := lookupEnv("OTEL_SEMCONV_STABILITY_OPT_IN")
	for _, s := range strings.Split(v, ",") {
		if strings.TrimSpace(s) == "gen_ai_latest_experimental" {
			return true
		}
	}
	return false
}

// FromEnv builds the tracer provider the environment describes, or a zero
// Setup when tracing is not configured. The OTLP exporters read their own
// endpoint, headers, timeout, compression and TLS variables, and the SDK
// reads OTEL_TRACES_SAMPLER/_ARG, OTEL_BSP_* and the resource variables,
// from the process environment: lookupEnv decides only whether tracing is on
// and which protocol, so the binary passes os.LookupEnv.
func FromEnv(ctx context.Context, lookupEnv func(string) (string, bool)) (Setup, error) {
	s := Setup{LatestGenAI: LatestGenAI(lookupEnv), Shutdown: func(context.Context) error { return nil }}
	if !Enabled(lookupEnv) {
		return s, nil
	}
	if exp, _ := lookupEnv("OTEL_TRACES_EXPORTER"); exp != "" && exp != "otlp" {
		return s, fmt.Errorf("OTEL_TRACES_EXPORTER %q: only otlp is supported", exp)
	}
	client, err := otlpClient(lookupEnv)
	if err != nil {
		return s, err
	}
	exporter, err := otlptrace.New(ctx, client)
	if err != nil {
		return s, fmt.Errorf("otlp trace exporter: %w", err)
	}
	// service.name defaults to tollgate; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES win: later detectors override earlier ones.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", "tollgate")), resource.WithFromEnv())
	if err != nil {
		return s, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	s.Provider, s.Shutdown = tp, tp.Shutdown
	s.Propagator = propagation.TraceContext{}
	return s, nil
}

// otlpClient picks gRPC or HTTP/protobuf as OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
// (or OTEL_EXPORTER_OTLP_PROTOCOL) says; the specification's default is
// http/protobuf.
func otlpClient(lookupEnv func(string) (string, bool)) (otlptrace.Client, error) {
	proto, _ := lookupEnv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto, _ = lookupEnv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "grpc":
		return otlptracegrpc.NewClient(), nil
	case "", "http/protobuf":
		return otlptracehttp.NewClient(), nil
	}
	return nil, fmt.Errorf("OTLP protocol %q: use grpc or http/protobuf", proto)
}
