package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-ai/tollgate/internal/devfront"
	"github.com/tollgate-ai/tollgate/internal/gateway"
	"github.com/tollgate-ai/tollgate/internal/xds"
)

// extProcCluster is the local bootstrap's cluster that `tollgate run` points at its own
// processor. The built-in mock provider needs none: the processor answers it itself.
const extProcCluster = "tollgate_ext_proc"

// Front choices.
const (
	frontAuto     = "auto"
	frontEnvoy    = "envoy"
	frontEmulated = "emulated"
)

const envoyInstall = "install Envoy 1.33–1.36 (https://www.envoyproxy.io/docs/envoy/latest/start/install) " +
	"and put it on PATH, pass --envoy PATH, or let tollgate run download Envoy " + pinnedEnvoyVersion + " (needs internet once)"

// runOptions configures `tollgate run`.
type runOptions struct {
	configPaths []string
	listen      string // the front's HTTP address
	grpcAddr    string
	adminAddr   string
	pprof       bool
	front       string
	envoyPath   string
	envoyLevel  string
	bootstrap   []byte // local Envoy bootstrap; the ADS bootstrap (xds.Bootstrap) when nil
	drain       time.Duration
	log         *zap.Logger
	lookupEnv   func(string) (string, bool)
	lookPath    func(string) (string, error)
	// ready receives the front's base URL once requests can be sent.
	ready func(url string)

	// envoyVersion, envoyHome and envoyVersionsURL configure func-e's download of Envoy
	// when neither envoyPath nor PATH has one; envoyVersion "" disables the download.
	envoyVersion     string
	envoyHome        string
	envoyVersionsURL string // "" means func-e's default (archive.tetratelabs.io)
}

func runCmd(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o runOptions
	var paths multiFlag
	fs.Var(&paths, "config", "config file or directory (repeatable); the embedded example config when absent")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:10000", "HTTP address clients send requests to (the front's listener)")
	fs.StringVar(&o.grpcAddr, "grpc-addr", "127.0.0.1:0", "in-process ext_proc gRPC address the front connects to")
	fs.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:9090", "admin HTTP address (/healthz, /readyz, /metrics); empty disables it")
	fs.BoolVar(&o.pprof, "pprof", false, "serve Go profiles under /debug/pprof/ on the admin listener (see docs/performance.md)")
	fs.StringVar(&o.front, "front", frontAuto, "auto (Envoy if one is found, else the development front), envoy, or emulated")
	fs.StringVar(&o.envoyPath, "envoy", "", "envoy binary (default: envoy on PATH)")
	fs.StringVar(&o.envoyLevel, "envoy-log-level", "info", "Envoy's --log-level")
	fs.StringVar(&o.envoyVersion, "envoy-version", pinnedEnvoyVersion, "Envoy version func-e downloads when neither --envoy nor PATH has one; empty disables the download")
	fs.StringVar(&o.envoyHome, "envoy-home", "", "where downloaded Envoy versions are cached (default: $TOLLGATE_ENVOY_HOME, else the user cache directory's tollgate/envoy)")
	fs.StringVar(&o.envoyVersionsURL, "envoy-versions-url", "", "func-e's envoy-versions.json, for a mirror (default: func-e's, archive.tetratelabs.io)")
	bootstrapPath := fs.String("bootstrap", "", "Envoy bootstrap (default: the minimal ADS bootstrap of `tollgate envoy bootstrap`)")
	fs.DurationVar(&o.drain, "drain-timeout", 30*time.Second, "on Ctrl-C or SIGTERM, how long in-flight requests may take to finish")
	dev := fs.Bool("dev", false, "human-readable logs")
	level := zapcore.InfoLevel
	fs.Var(&level, "log-level", "log level (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.configPaths = paths
	if *bootstrapPath != "" {
		b, err := os.ReadFile(*bootstrapPath)
		if err != nil {
			fmt.Fprintf(stderr, "tollgate run: %v\n", err)
			return 2
		}
		o.bootstrap = b
	}
	o.log = newLogger(stderr, *dev, level)
	if o.envoyHome == "" {
		o.envoyHome = defaultEnvoyHome(os.LookupEnv)
	}
	defer func() { _ = o.log.Sync() }()
	redis.SetLogger(newRedisLogger(o.log)) // process-global: see serveCmd
	return runGateway(ctx, o)
}

// runGateway runs the processor in-process and a front (Envoy as a
// child process, or the development front) until ctx ends or one of them fails.
func runGateway(ctx context.Context, o runOptions) int {
	log := o.log
	if o.lookPath == nil {
		o.lookPath = exec.LookPath
	}
	if o.bootstrap == nil {
		// The ADS bootstrap: providers and fallback chains come from the run's own
		// configuration over xDS, so an edit of it reaches the front without a restart.
		b, err := xds.Bootstrap(xds.BootstrapOptions{Command: "tollgate run"})
		if err != nil {
			log.Error("bootstrap", zap.Error(err))
			return 1
		}
		o.bootstrap = b
	}
	switch o.front {
	case frontAuto, frontEnvoy, frontEmulated:
	default:
		log.Error("--front must be auto, envoy or emulated", zap.String("front", o.front))
		return 2
	}
	// Choose the front first: --front envoy fails before anything listens.
	envoyBin, err := findEnvoy(ctx, o)
	if err != nil && ctx.Err() != nil {
		log.Error("stopped while getting Envoy", zap.Error(err))
		return 1
	}
	if err != nil {
		log.Error("no Envoy for --front envoy: "+envoyInstall, zap.Error(err))
		return 1
	}

	gw, err := gateway.Start(ctx, gateway.Config{
		GRPCAddr: o.grpcAddr, AdminAddr: o.adminAddr, ConfigPaths: o.configPaths,
		DrainTimeout: o.drain, Logger: log, LookupEnv: o.lookupEnv, Pprof: o.pprof,
	})
	if err != nil {
		log.Error("start failed", zap.Error(err))
		return 1
	}
	// Only the gateway's own clusters are pointed at the processor: with an ADS bootstrap
	// the provider clusters arrive over CDS, and the rewrite refuses names it does not define.
	clusters := map[string]string{extProcCluster: gw.GRPCAddr()}
	if hasStaticCluster(o.bootstrap, xds.XDSCluster) {
		clusters[xds.XDSCluster] = gw.GRPCAddr()
	}
	if envoyBin == "" {
		return runEmulated(ctx, o, gw, o.bootstrap, clusters)
	}
	return runEnvoy(ctx, o, gw, envoyBin, o.bootstrap, clusters)
}

// hasStaticCluster reports whether a bootstrap (YAML or JSON) defines the static
// cluster name; false if it does not parse (the front reports why).
func hasStaticCluster(bootstrap []byte, name string) bool {
	var bs struct {
		StaticResources struct {
			Clusters []struct {
				Name string `json:"name"`
			} `json:"clusters"`
		} `json:"static_resources"`
	}
	if err := yaml.Unmarshal(bootstrap, &bs); err != nil {
		return false
	}
	for _, c := range bs.StaticResources.Clusters {
		if c.Name == name {
			return true
		}
	}
	return false
}

// findEnvoy returns the envoy binary to run, "" for the development front. In order:
// --envoy, envoy on PATH, then Envoy o.envoyVersion downloaded and cached by func-e.
func findEnvoy(ctx context.Context, o runOptions) (string, error) {
	if o.front == frontEmulated {
		return "", nil
	}
	if o.envoyPath != "" {
		if _, err := os.Stat(o.envoyPath); err != nil {
			if o.front == frontEnvoy {
				return "", fmt.Errorf("--envoy: %w", err)
			}
			o.log.Warn("--envoy not usable: falling back to the development front", zap.Error(err))
			return "", nil
		}
		return o.envoyPath, nil
	}
	if p, err := o.lookPath("envoy"); err == nil {
		return p, nil
	}
	if o.envoyVersion == "" {
		if o.front == frontEnvoy {
			return "", errors.New("envoy is not on PATH and --envoy-version is empty (no download)")
		}
		return "", nil
	}
	o.log.Info("envoy is not on PATH: getting Envoy "+o.envoyVersion+" with func-e", zap.String("envoy_home", o.envoyHome))
	p, err := fetchEnvoy(ctx, o)
	if err != nil {
		if o.front == frontEnvoy || ctx.Err() != nil {
			return "", fmt.Errorf("envoy is not on PATH and the download failed (offline?): %w", err)
		}
		o.log.Warn("envoy is not on PATH and Envoy "+o.envoyVersion+" could not be downloaded (offline?): "+
			"falling back to the development front", zap.Error(err))
		return "", nil
	}
	return p, nil
}

func runEmulated(ctx context.Context, o runOptions, gw *gateway.Gateway, bootstrap []byte, clusters map[string]string) int {
	log := o.log
	log.Warn("DEVELOPMENT FRONT: no envoy binary found (or --front emulated), so requests are served by Tollgate's " +
		"built-in Envoy emulation (internal/devfront). Development only, NOT FOR PRODUCTION: plain HTTP/1.1, and it " +
		"reaches only loopback upstreams, not OpenAI (the built-in mock provider needs none). For the real thing, " + envoyInstall + ".")
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	front, err := devfront.Start(fctx, devfront.Options{Bootstrap: bootstrap, Clusters: clusters, Addr: o.listen})
	if err != nil {
		gw.Shutdown(context.Background())
		log.Error("development front failed to start", zap.Error(err))
		return 1
	}
	log.Info("tollgate run: send requests to "+front.URL(), zap.String("front", frontEmulated))
	if o.ready != nil {
		o.ready(front.URL())
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining in-flight requests", zap.Duration("drain_timeout", o.drain))
		gw.Shutdown(context.Background())
		if err := front.Close(); err != nil {
			log.Error("development front", zap.Error(err))
			return 1
		}
		return 0
	case err := <-gw.Err():
		log.Error("processor failed: stopping the development front", zap.Error(err))
		_ = front.Close()
		gw.Shutdown(context.Background())
		return 1
	}
}

func runEnvoy(ctx context.Context, o runOptions, gw *gateway.Gateway, bin string, bootstrap []byte, clusters map[string]string) int {
	log := o.log
	_, portStr, err := net.SplitHostPort(o.listen)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil {
		gw.Shutdown(context.Background())
		log.Error("--listen must be host:port", zap.String("listen", o.listen))
		return 2
	}
	rewritten, err := devfront.RewriteBootstrap(bootstrap, devfront.Rewrite{ListenerPort: port, Clusters: clusters})
	if err != nil {
		gw.Shutdown(context.Background())
		log.Error("bootstrap", zap.Error(err))
		return 1
	}
	dir, err := os.MkdirTemp("", "tollgate-run-")
	if err != nil {
		gw.Shutdown(context.Background())
		log.Error("temporary directory", zap.Error(err))
		return 1
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(file, rewritten, 0o600); err != nil {
		gw.Shutdown(context.Background())
		log.Error("write bootstrap", zap.Error(err))
		return 1
	}
	cmd := exec.Command(bin, "-c", file, "--log-level", o.envoyLevel, "--drain-time-s", "1")
	elog := log.Named("envoy")
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		gw.Shutdown(context.Background())
		log.Error("envoy failed to start", zap.String("envoy", bin), zap.Error(err))
		return 1
	}
	copied := make(chan struct{}, 2)
	for _, r := range []io.Reader{stdout, stderr} {
		go func() {
			forwardLines(r, elog)
			copied <- struct{}{}
		}()
	}
	exited := make(chan error, 1)
	go func() {
		<-copied
		<-copied
		exited <- cmd.Wait()
	}()
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	log.Info("tollgate run: send requests to "+url, zap.String("front", frontEnvoy), zap.String("envoy", bin), zap.Int("pid", cmd.Process.Pid))
	if o.ready != nil {
		o.ready(url)
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down: stopping envoy and draining in-flight requests", zap.Duration("drain_timeout", o.drain))
		code := stopEnvoy(cmd, exited, o.drain, log)
		gw.Shutdown(context.Background())
		return code
	case err := <-exited:
		log.Error("envoy exited: stopping the processor", zap.Error(err), zap.Int("exit_code", cmd.ProcessState.ExitCode()))
		gw.Shutdown(context.Background())
		return 1
	case err := <-gw.Err():
		log.Error("processor failed: stopping envoy", zap.Error(err))
		stopEnvoy(cmd, exited, o.drain, log)
		gw.Shutdown(context.Background())
		return 1
	}
}

// stopEnvoy sends SIGTERM (Envoy's graceful exit) and kills it after grace.
func stopEnvoy(cmd *exec.Cmd, exited <-chan error, grace time.Duration, log *zap.Logger) int {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-exited:
		if err != nil {
			log.Warn("envoy stopped", zap.Error(err))
		}
		return 0
	case <-t.C:
		log.Error("envoy did not stop in time: killing it")
		_ = cmd.Process.Kill()
		<-exited
		return 1
	}
}

// forwardLines writes each line Envoy prints to the log of the "envoy" logger.
func forwardLines(r io.Reader, log *zap.Logger) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		log.Info(sc.Text())
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		log.Warn("reading envoy output", zap.Error(err))
	}
}
