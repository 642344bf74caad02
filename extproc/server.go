// Package extproc is Tollgate's Envoy external processor: the gRPC service
// envoy.service.ext_proc.v3.ExternalProcessor.
//
// Envoy opens one bidirectional stream per HTTP request (Envoy ext_proc: one gRPC stream per HTTP request) and sends
// request headers, the buffered request body, response headers and the
// response body (buffered, or streamed for SSE) in that order. The server
// keeps one exchange per stream: a small state machine whose request side is
// a chain of steps (authenticate, classify, parse, resolve, rewrite) and
// whose response side reads usage from JSON bodies or SSE events.
package extproc

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/policy/tenancy"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// Snapshot is one consistent view of the configuration. A request keeps the
// snapshot it started with, so a reload never changes a request in flight.
type Snapshot struct {
	Routes     *routing.Table
	Keys       *keys.Store
	Tenants    *tenancy.Directory
	Metadata   config.MetadataLimits
	Prices     *pricing.Prices
	Limits     *Limits
	Guardrails *guardrails.Set
	BasePath   string         // every endpoint is served under it ("" is the root); config.Load validated it
	Cache      *CacheSettings // nil: no response cache

	procs atomic.Pointer[[]*processor] // endpoint processors, assembled on first use (processor.go)
}

// Options configure a Server.
type Options struct {
	// Snapshot returns the configuration in force; nil means not ready, and
	// requests are refused with 503.
	Snapshot func() *Snapshot
	Logger   *zap.Logger
	Metrics  *Metrics         // optional
	Now      func() time.Time // optional; for tests
	// Limiter keeps rate-limit and budget counters for the life of the
	// process; nil disables limits.
	Limiter limits.Limiter
	// IntN picks members of weighted pools: a number in [0, n). nil means
	// math/rand/v2; tests pass a seeded source.
	IntN func(n int) int
	// Sink receives every finished request's record (the usage ledger);
	// nil keeps only the log line.
	Sink RecordSink
	// TracerProvider, when set, traces every request (one span each); nil
	// turns tracing off at no cost. Propagator reads and writes trace
	// context (W3C TraceContext when nil). LatestGenAI emits the latest
	// GenAI semantic conventions instead of the v1.36.0 set.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	LatestGenAI    bool
	// Cache is the response cache's store, for the life of the process;
	// nil turns the cache off (docs/cache.md).
	Cache CacheStore
}

// Server implements extprocv3.ExternalProcessorServer.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	snapshot func() *Snapshot
	log      *zap.Logger
	// access writes the requests' log lines: log without zap's caller
	// capture (0.75 µs a line: a walk of the stack). Every line has the
	// same caller, exchange.finish's call site, so the first line's,
	// captured by log, is kept in accessCaller and set on the others.
	access       *zap.Logger
	accessCaller atomic.Pointer[accessCaller]
	metrics      *Metrics
	now          func() time.Time
	limiter      limits.Limiter
	intn         func(n int) int
	sink         RecordSink
	tracing      *tracing // nil when off
	cache        CacheStore
	meta         metadataCache // request body replies' metadata (request.go)
}

// New returns a Server.
func New(o Options) *Server {
	s := &Server{snapshot: o.Snapshot, log: o.Logger, metrics: o.Metrics, now: o.Now, limiter: o.Limiter, intn: o.IntN, sink: o.Sink, cache: o.Cache,
		tracing: newTracing(o)}
	if s.intn == nil {
		s.intn = rand.IntN
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.access = s.log.WithOptions(zap.WithCaller(false))
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// endOfStream maps a Recv error to Process's result. Envoy ends a stream by
// resetting it (Canceled), or with a half-close under the graceful-close
// runtime (io.EOF); both are the normal end of a request (Envoy ext_proc: one gRPC stream per HTTP request).
func endOfStream(err error) error {
	if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// handler answers the messages of one ext_proc stream: an exchange (a
// downstream request) or an attempt (one upstream try of a fallback chain).
type handler interface {
	// handle answers one message; a nil reply ends the stream unanswered.
	handle(req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, string)
	// handled is told the time the processor spent on the message and
	// reports whether the stream is over (an ImmediateResponse was sent).
	handled(d time.Duration) (over bool)
}

// handled adds to the request's processing time; after an
// ImmediateResponse Envoy closes the stream (Envoy ext_proc API: ImmediateResponse), and ending it at
// once frees the goroutine.
func (x *exchange) handled(d time.Duration) bool {
	x.procTime += d
	return x.done
}

// handled: an attempt answers every message of its stream.
func (a *attempt) handled(time.Duration) bool { return false }

// Process serves one HTTP request's ext_proc stream: its first message says
// whether it is a downstream request or a fallback chain's attempt.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	req, err := stream.Recv()
	if err != nil {
		return endOfStream(err)
	}
	if isAttempt(req) {
		return s.serve(stream, req, &attempt{srv: s, snap: s.snapshot()})
	}
	x := newExchange(stream.Context(), s, s.snapshot())
	s.metrics.streamStarted()
	defer x.finish()
	return s.serve(stream, req, x)
}

// serve answers every message of a stream, starting with req, until Envoy
// ends the stream or h reports it over.
func (s *Server) serve(stream extprocv3.ExternalProcessor_ProcessServer, req *extprocv3.ProcessingRequest, h handler) error {
	for {
		start := s.now()
		resp, phase := h.handle(req)
		if resp == nil {
			// A message we must not answer (none today); returning nil tells
			// Envoy to carry on without us for the rest of the request.
			return nil
		}
		d := s.now().Sub(start)
		over := h.handled(d)
		if err := stream.Send(resp); err != nil {
			return err
		}
		s.metrics.observePhase(phase, d)
		if over {
			return nil
		}
		var err error
		if req, err = stream.Recv(); err != nil {
			return endOfStream(err)
		}
	}
}
