package main

import (
	"context"
	"flag"
	"io"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate-ai/tollgate/internal/gateway"
	"github.com/tollgate-ai/tollgate/internal/tracing"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths multiFlag
	fs.Var(&paths, "config", "config file or directory (repeatable); the embedded example config when absent")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:50051", "ext_proc gRPC listen address, host:port or unix:///path")
	adminAddr := fs.String("admin-addr", "127.0.0.1:9090", "admin HTTP listen address (/healthz, /readyz, /metrics); empty disables it")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long in-flight streams may take to finish")
	pprofOn := fs.Bool("pprof", false, "serve Go profiles under /debug/pprof/ on the admin listener (see docs/performance.md)")
	dev := fs.Bool("dev", false, "human-readable logs")
	level := zapcore.InfoLevel
	fs.Var(&level, "log-level", "log level (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(stderr, *dev, level)
	defer func() { _ = log.Sync() }()
	// go-redis's logger is package-global: one for every client in the
	// process. So it is set here, where the binary is assembled, and never
	// from library code (extproc/serve): tests run several gateways in one
	// process, each with its own logger, and a library setting it would race
	// and let the last one win.
	redis.SetLogger(newRedisLogger(log))

	tr, err := tracing.FromEnv(ctx, os.LookupEnv)
	if err != nil {
		log.Error("tracing setup failed", zap.Error(err))
		return 1
	}
	defer func() {
		// Spans still batched are flushed on the way out, within a bound.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("tracing shutdown", zap.Error(err))
		}
	}()
	g, err := gateway.Start(ctx, gateway.Config{
		GRPCAddr:       *grpcAddr,
		AdminAddr:      *adminAddr,
		ConfigPaths:    paths,
		DrainTimeout:   *drain,
		Logger:         log,
		TracerProvider: tr.Provider,
		Propagator:     tr.Propagator,
		LatestGenAI:    tr.LatestGenAI,
		Pprof:          *pprofOn,
	})
	if err != nil {
		log.Error("start failed", zap.Error(err))
		return 1
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining in-flight streams", zap.Duration("drain_timeout", *drain))
		g.Shutdown(context.Background())
		return 0
	case err := <-g.Err():
		log.Error("server failed", zap.Error(err))
		g.Shutdown(context.Background())
		return 1
	}
}

// newLogger logs JSON lines (or, with dev, human-readable ones) to w.
func newLogger(w io.Writer, dev bool, level zapcore.Level) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	if dev {
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level), zap.AddCaller())
}
