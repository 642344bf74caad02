package standin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
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
	cfg      *config
	ln       net.Listener
	srv      *http.Server
	grpcConn *grpc.ClientConn // nil: the ext_proc gRPC client cannot be created (spec §4)
	upstream map[string]*http.Transport
	handlers sync.WaitGroup

	mu     sync.Mutex
	closed bool
	stats  map[string]uint64
	log    []AccessRecord
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
}

// Start parses the bootstrap, applies the cluster overrides the same way RewriteBootstrap
// does, and starts listening on 127.0.0.1:0. The stand-in stops when ctx is done or on
// Close.
func Start(ctx context.Context, opts Options) (*Envoy, error) {
	if opts.Version == 0 {
		opts.Version = 36
	}
	if opts.Version < 33 || opts.Version > 36 {
		return nil, fmt.Errorf("standin: Version %d: only Envoy 1.33 to 1.36 are emulated", opts.Version)
	}
	bs, err := parseBootstrap(opts.Bootstrap)
	if err != nil {
		return nil, err
	}
	if err := rewrite(bs, Rewrite{Listener: opts.Listener, Clusters: opts.Clusters, AdminPort: 1}); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(bs, opts.Version)
	if err != nil {
		return nil, err
	}
	e := &Envoy{opts: opts, cfg: cfg, stats: map[string]uint64{}, upstream: map[string]*http.Transport{}}
	if err := e.dialProcessor(); err != nil {
		return nil, err
	}
	for name, c := range cfg.clusters {
		e.upstream[name] = newTransport(c)
	}
	var lc net.ListenConfig
	e.ln, err = lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		e.closeClients()
		return nil, fmt.Errorf("standin: listen: %w", err)
	}
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serveHTTP), ReadHeaderTimeout: time.Minute}
	go func() { _ = e.srv.Serve(e.ln) }()
	e.stop = context.AfterFunc(ctx, func() { _ = e.Close() })
	return e, nil
}

func (e *Envoy) dialProcessor() error {
	ep := e.cfg.extProc
	if ep == nil {
		return nil
	}
	target := ep.grpcTarget
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Envoy's gRPC client has no receive limit by default (spec §1.5).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<31-1), grpc.MaxCallSendMsgSize(1<<31-1)),
	}
	if ep.grpcCluster != "" {
		c := e.cfg.clusters[ep.grpcCluster]
		if c == nil {
			// Envoy 1.33–1.38 silently fail open when the gRPC client cannot be created
			// (spec §4, last row): requests go through unprocessed.
			return nil
		}
		target = "passthrough:///" + c.addr
		if c.network == "unix" {
			target = "unix://" + c.addr
		}
		opts = append(opts, grpc.WithAuthority(ep.grpcAuthority), grpc.WithContextDialer(loopbackDialer(c)))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return fmt.Errorf("standin: ext_proc client: %w", err)
	}
	e.grpcConn = conn
	return nil
}

// loopbackDialer dials the cluster's endpoint, refusing anything off this machine.
func loopbackDialer(c *cluster) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		if !c.loopback {
			// Looks like a connection failure to the router (a 503).
			return nil, &net.OpError{Op: "dial", Net: c.network,
				Err: fmt.Errorf("standin: cluster %q: refusing non-loopback address %s", c.name, c.addr)}
		}
		var d net.Dialer
		return d.DialContext(ctx, c.network, c.addr)
	}
}

func newTransport(c *cluster) *http.Transport {
	dial := loopbackDialer(c)
	return &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, "") },
		DisableCompression:  true, // Envoy never adds accept-encoding
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}
}

// URL is the stand-in's base URL, e.g. "http://127.0.0.1:40123".
func (e *Envoy) URL() string { return "http://" + e.ln.Addr().String() }

// Close stops listening, resets open requests, and waits for their handlers to end.
func (e *Envoy) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	err := e.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	e.handlers.Wait()
	e.closeClients()
	if e.stop != nil {
		e.stop()
	}
	return err
}

func (e *Envoy) closeClients() {
	if e.grpcConn != nil {
		_ = e.grpcConn.Close()
	}
	for _, t := range e.upstream {
		t.CloseIdleConnections()
	}
}

// Stats returns the counters, by Envoy's names: the ext_proc filter's (spec §4:
// streams_started, stream_msgs_sent, stream_msgs_received, spurious_msgs_received,
// streams_closed, streams_failed, failure_mode_allowed, message_timeouts,
// rejected_header_mutations, override_message_timeout_received/_ignored,
// clear_route_cache_ignored/_disabled) and the HCM's downstream_rq_too_large and
// rs_too_large.
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
	x := newExchange(e, w, r)
	x.run()
	if x.reset {
		// Envoy resets the stream: the client sees a truncated body (spec §2.6, §4).
		panic(http.ErrAbortHandler)
	}
}
