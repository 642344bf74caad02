package devfront

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Envoy is a running stand-in: an HTTP/1.1 listener on 127.0.0.1 that behaves as Envoy's
// HTTP connection manager with the bootstrap's ext_proc filter and router.
type Envoy struct {
	opts     Options
	cfg      atomic.Pointer[config] // the config in force; replaced whole by xDS updates
	ln       net.Listener
	srv      *http.Server
	handlers sync.WaitGroup
	ads      *adsClient // nil without dynamic_resources
	// ready is closed once the listener may serve: at once for a static route_config, else
	// after the initial RDS fetch (see doc.go, xDS).
	ready chan struct{}

	grpcMu   sync.Mutex
	grpc     map[*extProcConfig]*grpc.ClientConn // nil value: the gRPC client cannot be created (Envoy ext_proc: message_timeout and failure_mode_allow)
	byTarget map[string]*grpc.ClientConn
	conns    []*grpc.ClientConn

	mu     sync.Mutex
	closed bool
	stats  map[string]uint64
	log    []AccessRecord
	panics []string // recovered handler panics, from the server's error log
	stop   func() bool
}

// AccessRecord is what an access log would show for one finished request.
type AccessRecord struct {
	RequestID string
	Method    string // :method as finally sent upstream
	Path      string // :path as finally sent upstream (%REQ(:PATH)%)
	Route     string // name of the route the router used ("" if none matched)
	Cluster   string // upstream cluster ("" if the router chose none)
	// ResponseCode is the status sent to the client (0 if the stream was reset before
	// response headers).
	ResponseCode int
	// ResponseCodeDetails is %RESPONSE_CODE_DETAILS%: "via_upstream" for proxied
	// responses, else the local reply's reason, e.g. "request_payload_too_large",
	// "ext_proc_error_per-message_timeout_exceeded", "cluster_not_found",
	// "direct_response".
	ResponseCodeDetails string
	// Reset is true when the client stream was reset (truncated response).
	Reset bool
	// DynamicMetadata is the stream's dynamic metadata at the end: namespace → struct.
	DynamicMetadata map[string]*structpb.Struct
	// UpstreamAttempts counts upstream requests started (%UPSTREAM_REQUEST_ATTEMPT_COUNT%).
	UpstreamAttempts int
	// UpstreamHost is %UPSTREAM_HOST% of the last attempt: the endpoint address it was
	// sent to (after any Clusters override), "" if no attempt started.
	UpstreamHost string
	// UpstreamHostname is that endpoint's hostname, e.g. "api.anthropic.com" (what
	// auto_host_rewrite uses).
	UpstreamHostname string
	// UpstreamPriority is that endpoint's priority in its cluster.
	UpstreamPriority int
}

// Start parses the bootstrap, applies the cluster overrides the same way RewriteBootstrap
// does, and starts listening on Options.Addr (127.0.0.1:0 by default). The stand-in stops when ctx is done or on
// Close.
//
// With dynamic_resources (see doc.go, xDS) Start does not wait for the control plane: the
// ADS client connects in the background (reconnecting until it can), and requests are
// held until the initial RDS fetch is over. WaitApplied and WaitXDS wait for versions.
func Start(ctx context.Context, opts Options) (*Envoy, error) {
	if opts.Version == 0 {
		opts.Version = 36
	}
	if opts.Version < 33 || opts.Version > 36 {
		return nil, fmt.Errorf("devfront: Version %d: only Envoy 1.33 to 1.36 are emulated", opts.Version)
	}
	bs, err := parseBootstrap(opts.Bootstrap)
	if err != nil {
		return nil, err
	}
	// With CDS, overrides for clusters the bootstrap does not define wait for CDS.
	static, dynamic, err := splitOverrides(bs, opts.Clusters)
	if err != nil {
		return nil, err
	}
	if err := rewrite(bs, Rewrite{Listener: opts.Listener, Clusters: static, AdminPort: 1}); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(bs, opts.Version)
	if err != nil {
		return nil, err
	}
	ads, err := loadADS(bs, cfg)
	if err != nil {
		return nil, err
	}
	e := &Envoy{opts: opts, stats: map[string]uint64{}, grpc: map[*extProcConfig]*grpc.ClientConn{},
		byTarget: map[string]*grpc.ClientConn{}, ready: make(chan struct{})}
	if err := e.dialProcessors(cfg); err != nil {
		e.closeClients()
		return nil, err
	}
	e.cfg.Store(cfg)
	if ads == nil {
		close(e.ready)
	} else if e.ads, err = newADSClient(e, ads, dynamic); err != nil {
		e.closeClients()
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	e.ln, err = lc.Listen(ctx, "tcp", addr)
	if err != nil {
		e.closeClients()
		if e.ads != nil {
			_ = e.ads.conn.Close() // its loop never started
		}
		return nil, fmt.Errorf("devfront: listen: %w", err)
	}
	// net/http recovers a handler's panic and only logs it; Envoy never panics, so
	// the log is kept and Close reports it.
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serveHTTP), ReadHeaderTimeout: time.Minute,
		ErrorLog: log.New(serverLog{e}, "", 0)}
	go func() { _ = e.srv.Serve(e.ln) }()
	if e.ads != nil {
		e.ads.start()
	}
	e.stop = context.AfterFunc(ctx, func() { _ = e.Close() })
	return e, nil
}

// config is the configuration in force: a request snaps it when it starts.
func (e *Envoy) config() *config { return e.cfg.Load() }

// dialProcessors creates one gRPC client per distinct ext_proc target, for the
// downstream filter and every upstream one. It runs for each new config: targets already
// dialled keep their client, so streams in flight are unaffected.
func (e *Envoy) dialProcessors(cfg *config) error {
	var eps []*extProcConfig
	if cfg.extProc != nil {
		eps = append(eps, cfg.extProc)
	}
	for _, fs := range append([][]*upstreamFilter{cfg.routerFilters}, clusterFilters(cfg)...) {
		for _, f := range fs {
			if f.extProc != nil {
				eps = append(eps, f.extProc)
			}
		}
	}
	e.grpcMu.Lock()
	defer e.grpcMu.Unlock()
	for _, ep := range eps {
		key := ep.grpcCluster + "|" + ep.grpcTarget + "|" + ep.grpcAuthority
		if c := cfg.clusters[ep.grpcCluster]; c != nil && len(c.hosts) > 0 {
			key += "|" + c.hosts[0].network + ":" + c.hosts[0].addr
		}
		conn, ok := e.byTarget[key]
		if !ok {
			var err error
			if conn, err = e.dialProcessor(cfg, ep); err != nil {
				return err
			}
			e.byTarget[key] = conn
			if conn != nil {
				e.conns = append(e.conns, conn)
			}
		}
		e.grpc[ep] = conn
	}
	return nil
}

// processorConn is the gRPC client of an ext_proc filter config.
func (e *Envoy) processorConn(ep *extProcConfig) *grpc.ClientConn {
	e.grpcMu.Lock()
	defer e.grpcMu.Unlock()
	return e.grpc[ep]
}

func clusterFilters(cfg *config) [][]*upstreamFilter {
	var out [][]*upstreamFilter
	for _, c := range cfg.clusters {
		out = append(out, c.filters)
	}
	return out
}

func (e *Envoy) dialProcessor(cfg *config, ep *extProcConfig) (*grpc.ClientConn, error) {
	target := ep.grpcTarget
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Envoy's gRPC client has no receive limit by default (Envoy ext_proc: BUFFERED bodies and the buffer limit).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<31-1), grpc.MaxCallSendMsgSize(1<<31-1)),
	}
	if ep.grpcCluster != "" {
		c := cfg.clusters[ep.grpcCluster]
		if c == nil || len(c.hosts) == 0 {
			// Envoy 1.33–1.38 silently fail open when the gRPC client cannot be created
			// (Envoy ext_proc: message_timeout and failure_mode_allow, last row): requests go through unprocessed.
			return nil, nil
		}
		h := c.hosts[0]
		target = "passthrough:///" + h.addr
		if h.network == "unix" {
			target = "unix://" + h.addr
		}
		opts = append(opts, grpc.WithAuthority(ep.grpcAuthority), grpc.WithContextDialer(loopbackDialer(h)))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("devfront: ext_proc client: %w", err)
	}
	return conn, nil
}

// loopbackDialer dials the endpoint, refusing anything off this machine.
func loopbackDialer(h *host) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		if !h.loopback {
			// Looks like a connection failure to the router (a 503).
			return nil, &net.OpError{Op: "dial", Net: h.network,
				Err: fmt.Errorf("devfront: cluster %q: refusing non-loopback address %s", h.cluster.name, h.addr)}
		}
		var d net.Dialer
		return d.DialContext(ctx, h.network, h.addr)
	}
}

// URL is the stand-in's base URL, e.g. "http://127.0.0.1:40123".
func (e *Envoy) URL() string { return "http://" + e.ln.Addr().String() }

// Close stops listening, resets open requests, and waits for their handlers to end. It
// returns an error if net/http recovered a handler panic during the stand-in's life.
func (e *Envoy) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	err := e.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	e.handlers.Wait()
	if e.ads != nil {
		e.ads.stop()
	}
	e.closeClients()
	if e.stop != nil {
		e.stop()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil && len(e.panics) > 0 {
		err = fmt.Errorf("devfront: %d HTTP handler panics, the first: %s", len(e.panics), e.panics[0])
	}
	return err
}

// serverLog receives the HTTP server's error log and keeps the recovered panics.
type serverLog struct{ e *Envoy }

func (l serverLog) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("panic")) {
		l.e.mu.Lock()
		l.e.panics = append(l.e.panics, string(p))
		l.e.mu.Unlock()
	}
	return len(p), nil
}

// Panics returns the HTTP handler panics net/http recovered so far (each with its stack).
func (e *Envoy) Panics() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.panics)
}

func (e *Envoy) closeClients() {
	e.grpcMu.Lock()
	defer e.grpcMu.Unlock()
	for _, c := range e.conns {
		_ = c.Close()
	}
}

// Stats returns the counters, by Envoy's names: the downstream ext_proc filter's (spec
// Envoy ext_proc: message_timeout and failure_mode_allow: streams_started, stream_msgs_sent, stream_msgs_received, spurious_msgs_received,
// streams_closed, streams_failed, failure_mode_allowed, message_timeouts,
// rejected_header_mutations, override_message_timeout_received/_ignored,
// clear_route_cache_ignored/_disabled); the same counters of the upstream ext_proc filters
// (all instances together) prefixed "upstream.", plus their
// upstream.clear_route_cache_upstream_ignored and
// upstream.send_immediate_resp_upstream_ignored (Envoy ext_proc API: CommonResponse.clear_route_cache; Envoy ext_proc API: ImmediateResponse); the HCM's
// downstream_rq_too_large and rs_too_large; and the router's and clusters'
// upstream_rq_timeout, upstream_rq_per_try_timeout, upstream_rq_per_try_idle_timeout,
// upstream_rq_retry, upstream_rq_retry_success, upstream_rq_retry_limit_exceeded,
// upstream_rq_retry_backoff_exponential, upstream_rq_retry_backoff_ratelimited,
// retry_or_shadow_abandoned and upstream_cx_connect_fail.
func (e *Envoy) Stats() map[string]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.stats)
}

// Log returns one record per finished request, in the order they finished. A request's
// record is written before the end of its response reaches the client.
func (e *Envoy) Log() []AccessRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]AccessRecord, len(e.log))
	for i, r := range e.log {
		out[i] = r
		out[i].DynamicMetadata = cloneMetadata(r.DynamicMetadata)
	}
	return out
}

func (e *Envoy) inc(name string) {
	e.mu.Lock()
	e.stats[name]++
	e.mu.Unlock()
}

func (e *Envoy) appendLog(r AccessRecord) {
	e.mu.Lock()
	e.log = append(e.log, r)
	e.mu.Unlock()
}

func (e *Envoy) newTimer(kind TimerKind, d time.Duration) (<-chan time.Time, func() bool) {
	if e.opts.NewTimer != nil {
		return e.opts.NewTimer(kind, d)
	}
	t := time.NewTimer(d)
	return t.C, t.Stop
}

func (e *Envoy) hook(ev string) {
	if e.opts.hook != nil {
		e.opts.hook(ev)
	}
}

func cloneMetadata(m map[string]*structpb.Struct) map[string]*structpb.Struct {
	if m == nil {
		return nil
	}
	out := make(map[string]*structpb.Struct, len(m))
	for k, v := range m {
		out[k] = proto.Clone(v).(*structpb.Struct)
	}
	return out
}

func (e *Envoy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
	e.handlers.Add(1)
	e.mu.Unlock()
	defer e.handlers.Done()
	if r.ProtoMajor != 1 || strings.EqualFold(r.Header.Get("Upgrade"), "h2c") {
		http.Error(w, "only HTTP/1.1 is emulated", http.StatusHTTPVersionNotSupported)
		return
	}
	select {
	case <-e.ready:
	case <-r.Context().Done():
		return
	}
	x := newExchange(e, w, r)
	x.run()
	if x.reset {
		// Envoy resets the stream: the client sees a truncated body (Envoy ext_proc API: ImmediateResponse; Envoy ext_proc: message_timeout and failure_mode_allow).
		panic(http.ErrAbortHandler)
	}
}
