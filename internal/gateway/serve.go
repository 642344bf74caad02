// Package gateway runs a Tollgate gateway process: the ext_proc gRPC server
// with the standard gRPC health service, the admin HTTP server (/healthz,
// /readyz, /metrics), and configuration hot reload. The tollgate binary and
// the end-to-end tests both start gateways through Start, so the tests run
// exactly what ships.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tollgate-ai/tollgate/extproc"
	"github.com/tollgate-ai/tollgate/internal/grpccodec"
	"github.com/tollgate-ai/tollgate/internal/xds"
)

// MaxMessageSize bounds one ext_proc message. Envoy sends a BUFFERED body as
// a single message and our listener allows 50 MiB bodies, while grpc-go
// refuses anything over 4 MiB by default (Envoy ext_proc: BUFFERED bodies and the buffer limit).
const MaxMessageSize = 64 << 20

// Config configures a gateway process.
type Config struct {
	GRPCAddr  string // "host:port" or "unix:///path"
	AdminAddr string // "host:port"; empty disables the admin server
	// ConfigPaths are files or directories; empty means the embedded example.
	ConfigPaths []string
	// DrainTimeout bounds how long Shutdown waits for in-flight streams.
	DrainTimeout time.Duration
	Logger       *zap.Logger
	// LookupEnv reads environment variables for secret references
	// (os.LookupEnv when nil).
	LookupEnv func(string) (string, bool)
	// Registry receives the metrics; a fresh one when nil.
	Registry *prometheus.Registry
	// OnReload, when set, is called after every reload attempt triggered by a
	// file change, with its result (nil when the new config is in force).
	OnReload func(error)
	// IntN picks members of weighted pools (math/rand/v2 when nil).
	IntN func(n int) int
	// Now is the rate limiter's clock (time.Now when nil); tests freeze it
	// to make limit decisions independent of the machine's speed.
	Now func() time.Time
	// TracerProvider traces every request when set (internal/tracing builds
	// it from OTEL_* variables in the binary); nil is off. Propagator and
	// LatestGenAI: see extproc.Options.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	LatestGenAI    bool
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin server.
	// Off by default: a profile costs CPU and shows the process's internals.
	Pprof bool
}

// Gateway is a running gateway process.
type Gateway struct {
	cfg      Config
	log      *zap.Logger
	grpc     *grpc.Server
	health   *health.Server
	admin    *http.Server
	grpcLis  net.Listener
	adminLis net.Listener
	reload   *reloader
	xds      *xds.Server
	xdsStop  context.CancelFunc
	closeLim func() error
	ledger   *usageLedger
	draining atomic.Bool
	drainc   chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errc     chan error
}

// Start loads the configuration, listens, and serves until Shutdown. It fails
// if the initial configuration is invalid: a gateway never starts on a guess.
func Start(ctx context.Context, cfg Config) (*Gateway, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.LookupEnv == nil {
		cfg.LookupEnv = os.LookupEnv
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, errc: make(chan error, 2), drainc: make(chan struct{})}
	g.reload = newReloader(cfg.ConfigPaths, cfg.LookupEnv, cfg.Logger, cfg.Registry)
	g.reload.onReload = cfg.OnReload
	// The ADS server lives until Shutdown begins: its streams never end on
	// their own, so they must not hold up the graceful stop.
	xctx, xcancel := context.WithCancel(context.WithoutCancel(ctx))
	g.xds, g.xdsStop = xds.NewServer(xctx, cfg.Logger), xcancel
	g.reload.publish = func(r *xds.Resources) error {
		_, err := g.xds.Publish(xctx, r)
		return err
	}
	if err := g.reload.load(); err != nil {
		xcancel()
		return nil, fmt.Errorf("initial configuration: %w", err)
	}

	limiter, closeLim, err := newLimiter(g.reload.limits, limiterDeps{lookupEnv: cfg.LookupEnv, log: cfg.Logger, reg: cfg.Registry, now: cfg.Now})
	if err != nil {
		return nil, err
	}
	store, closeCache, err := newCacheStore(g.reload.cache, g.reload.limits, cfg.LookupEnv, cfg.Now)
	if err != nil {
		_ = closeLim()
		return nil, err
	}
	closeLimiter := closeLim
	closeLim = func() error { return errors.Join(closeLimiter(), closeCache()) }
	g.closeLim = closeLim
	if g.ledger, err = openLedger(ctx, g.reload.ledger, cfg.LookupEnv, cfg.Logger, cfg.Registry); err != nil {
		_ = closeLim()
		return nil, err
	}
	if g.grpcLis, err = listen(cfg.GRPCAddr); err != nil {
		g.ledger.close(context.Background(), g.log)
		_ = closeLim()
		return nil, fmt.Errorf("grpc listener: %w", err)
	}
	if cfg.AdminAddr != "" {
		if g.adminLis, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			g.grpcLis.Close()
			g.ledger.close(context.Background(), g.log)
			_ = closeLim()
			return nil, fmt.Errorf("admin listener: %w", err)
		}
	}

	srv := extproc.New(extproc.Options{
		Snapshot: g.reload.current,
		Logger:   cfg.Logger,
		Metrics:  extproc.NewMetricsWith(cfg.Registry, metricsOptions(g.reload.metrics)),
		Limiter:  limiter,
		IntN:     cfg.IntN,
		Sink:     g.sink(),
		Cache:    store,

		TracerProvider: cfg.TracerProvider,
		Propagator:     cfg.Propagator,
		LatestGenAI:    cfg.LatestGenAI,
	})
	g.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(MaxMessageSize),
		// Large bodies are neither copied out of the receive buffer nor
		// into the reply (docs/performance.md, memory).
		grpc.ForceServerCodecV2(grpccodec.Codec{Slack: grpccodec.DefaultSlack}))
	extprocv3.RegisterExternalProcessorServer(g.grpc, srv)
	// Envoy's clusters and routes, over ADS on the same listener: one
	// address for Envoy to reach (envoy/envoy-ads.yaml, cluster tollgate_xds).
	g.xds.Register(g.grpc)
	g.health = health.NewServer()
	healthpb.RegisterHealthServer(g.grpc, g.health)
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	g.health.SetServingStatus(extprocv3.ExternalProcessor_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel = cancel
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.reload.watch(wctx)
	}()
	go func() { g.errc <- g.grpc.Serve(g.grpcLis) }()
	if g.adminLis != nil {
		g.admin = &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := g.admin.Serve(g.adminLis); !errors.Is(err, http.ErrServerClosed) {
				g.errc <- err
			}
		}()
	}
	g.log.Info("tollgate serving",
		zap.String("grpc_addr", g.GRPCAddr()), zap.String("admin_addr", g.AdminAddr()),
		zap.Strings("config", cfg.ConfigPaths))
	return g, nil
}

// GRPCAddr is the address the ext_proc server listens on ("unix://…" for a
// socket).
func (g *Gateway) GRPCAddr() string {
	if a := g.grpcLis.Addr(); a.Network() == "unix" {
		return "unix://" + a.String()
	}
	return g.grpcLis.Addr().String()
}

// AdminAddr is the admin server's address, empty when disabled.
func (g *Gateway) AdminAddr() string {
	if g.adminLis == nil {
		return ""
	}
	return g.adminLis.Addr().String()
}

// XDS returns the ADS server: the Envoy resources in force and their version.
func (g *Gateway) XDS() *xds.Server { return g.xds }

// Reload loads the configuration again now, as a file change would.
func (g *Gateway) Reload() error { return g.reload.load() }

// Draining is closed when Shutdown has begun.
func (g *Gateway) Draining() <-chan struct{} { return g.drainc }

// Err reports a server that stopped on its own.
func (g *Gateway) Err() <-chan error { return g.errc }

// Shutdown drains: the gateway reports not-ready and NOT_SERVING, stops
// taking new streams, and lets in-flight ones finish for up to DrainTimeout
// (or until ctx ends) before closing them.
func (g *Gateway) Shutdown(ctx context.Context) {
	if !g.draining.Swap(true) {
		close(g.drainc)
	}
	g.health.Shutdown()
	g.xdsStop() // Envoy keeps the resources it has
	if g.cfg.DrainTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.DrainTimeout)
		defer cancel()
	}
	stopped := make(chan struct{})
	go func() {
		g.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		g.log.Warn("drain timeout: closing in-flight streams")
		g.grpc.Stop()
		<-stopped
	}
	if g.admin != nil {
		_ = g.admin.Close()
	}
	// Every stream has ended, so every record is queued: flush them, with a
	// budget of their own so a drain that ran out of time still writes them.
	lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), ledgerDrainTimeout)
	defer lcancel()
	g.ledger.close(lctx, g.log)
	g.cancel()
	g.wg.Wait()
	_ = g.closeLim()
	g.log.Info("tollgate stopped")
}

func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case g.draining.Load():
			http.Error(w, "draining", http.StatusServiceUnavailable)
		case g.reload.current() == nil:
			http.Error(w, "no configuration loaded", http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ready\n"))
		}
	})
	mux.Handle("/metrics", promhttp.HandlerFor(g.cfg.Registry, promhttp.HandlerOpts{Registry: g.cfg.Registry}))
	g.analyticsRoutes(mux)
	if g.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves heap, goroutine, allocs, mutex, block
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// listen accepts "host:port" and "unix:///path". A stale socket file from a
// previous run is removed first.
func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}
