package devfront

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 20 * time.Second

// ---- scripted ext_proc processor ----

// procServer is a gRPC ext_proc server whose behaviour each test scripts: script runs once
// per stream and its return value ends the stream (nil = OK close).
type procServer struct {
	extprocsvc.UnimplementedExternalProcessorServer
	addr    string
	script  func(s *pstream) error
	streams chan *pstream
}

// pstream is one Process stream as the scripted processor sees it.
type pstream struct {
	srv  extprocsvc.ExternalProcessor_ProcessServer
	md   metadata.MD
	mu   sync.Mutex
	got  []*extprocsvc.ProcessingRequest
	end  error // the Recv error that ended the stream, once seen
	done chan struct{}
}

func startProcessor(t *testing.T, script func(s *pstream) error) *procServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &procServer{addr: ln.Addr().String(), script: script, streams: make(chan *pstream, 64)}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	extprocsvc.RegisterExternalProcessorServer(g, p)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return p
}

func (p *procServer) Process(srv extprocsvc.ExternalProcessor_ProcessServer) error {
	md, _ := metadata.FromIncomingContext(srv.Context())
	s := &pstream{srv: srv, md: md, done: make(chan struct{})}
	p.streams <- s
	defer close(s.done)
	return p.script(s)
}

// next waits for the next stream to start.
func (p *procServer) next(t *testing.T) *pstream {
	t.Helper()
	select {
	case s := <-p.streams:
		return s
	case <-time.After(testTimeout):
		t.Fatal("no ext_proc stream started")
		return nil
	}
}

// noStream asserts that no stream is pending.
func (p *procServer) noStream(t *testing.T) {
	t.Helper()
	select {
	case <-p.streams:
		t.Fatal("an ext_proc stream was opened")
	default:
	}
}

func (s *pstream) recv() (*extprocsvc.ProcessingRequest, error) {
	m, err := s.srv.Recv()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.end = err
		return nil, err
	}
	s.got = append(s.got, m)
	return m, nil
}

func (s *pstream) send(r *extprocsvc.ProcessingResponse) error { return s.srv.Send(r) }

// drain receives until the stream ends and returns the ending error.
func (s *pstream) drain() error {
	for {
		if _, err := s.recv(); err != nil {
			return err
		}
	}
}

func (s *pstream) messages() []*extprocsvc.ProcessingRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*extprocsvc.ProcessingRequest(nil), s.got...)
}

// wait blocks until the script returned.
func (s *pstream) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(testTimeout):
		t.Fatal("ext_proc script did not finish")
	}
}

// kinds lists the received message types, e.g. "request_headers", "response_body".
func (s *pstream) kinds() []string {
	var out []string
	for _, m := range s.messages() {
		out = append(out, kindOf(m))
	}
	return out
}

func kindOf(m *extprocsvc.ProcessingRequest) string {
	switch m.GetRequest().(type) {
	case *extprocsvc.ProcessingRequest_RequestHeaders:
		return "request_headers"
	case *extprocsvc.ProcessingRequest_ResponseHeaders:
		return "response_headers"
	case *extprocsvc.ProcessingRequest_RequestBody:
		return "request_body"
	case *extprocsvc.ProcessingRequest_ResponseBody:
		return "response_body"
	case *extprocsvc.ProcessingRequest_RequestTrailers:
		return "request_trailers"
	case *extprocsvc.ProcessingRequest_ResponseTrailers:
		return "response_trailers"
	}
	return "?"
}

// replier returns a script that answers every message with reply(m) (nil = a plain
// CONTINUE of the matching type), then drains the stream to see how it ended.
func replier(reply func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse) func(*pstream) error {
	return func(s *pstream) error {
		for {
			m, err := s.recv()
			if err != nil {
				return nil
			}
			r := reply(m)
			if r == nil {
				r = cont(m)
			}
			if err := s.send(r); err != nil {
				return nil
			}
		}
	}
}

// passAll continues every message unchanged.
func passAll(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse { return nil }

// cont is a plain CONTINUE reply of the type matching m, carrying cr if given.
func cont(m *extprocsvc.ProcessingRequest, cr ...*extprocsvc.CommonResponse) *extprocsvc.ProcessingResponse {
	var c *extprocsvc.CommonResponse
	if len(cr) > 0 {
		c = cr[0]
	}
	switch m.GetRequest().(type) {
	case *extprocsvc.ProcessingRequest_RequestHeaders:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocsvc.HeadersResponse{Response: c}}}
	case *extprocsvc.ProcessingRequest_ResponseHeaders:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseHeaders{
			ResponseHeaders: &extprocsvc.HeadersResponse{Response: c}}}
	case *extprocsvc.ProcessingRequest_RequestBody:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestBody{
			RequestBody: &extprocsvc.BodyResponse{Response: c}}}
	case *extprocsvc.ProcessingRequest_ResponseBody:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseBody{
			ResponseBody: &extprocsvc.BodyResponse{Response: c}}}
	}
	panic("unexpected message " + kindOf(m))
}

func setHeaders(kv ...string) *extprocsvc.HeaderMutation {
	hm := &extprocsvc.HeaderMutation{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.SetHeaders = append(hm.SetHeaders, &corev3.HeaderValueOption{
			Header: &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])}})
	}
	return hm
}

func appendHeader(k, v string) *corev3.HeaderValueOption {
	//lint:ignore SA1019 ext_proc reads only the deprecated append field
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}, Append: wrapperspb.Bool(true)}
}

func bodyMut(b string) *extprocsvc.BodyMutation {
	return &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: []byte(b)}}
}

func immediate(code int, body string, hm *extprocsvc.HeaderMutation) *extprocsvc.ProcessingResponse {
	ir := &extprocsvc.ImmediateResponse{Body: []byte(body), Headers: hm, Details: "test reply"}
	if code != 0 {
		ir.Status = &typev3.HttpStatus{Code: typev3.StatusCode(code)}
	}
	return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ImmediateResponse{ImmediateResponse: ir}}
}

// header returns the raw value of k in a headers message.
func header(m *extprocsvc.ProcessingRequest, k string) (string, bool) {
	var hm *corev3.HeaderMap
	if h := m.GetRequestHeaders(); h != nil {
		hm = h.GetHeaders()
	} else {
		hm = m.GetResponseHeaders().GetHeaders()
	}
	for _, h := range hm.GetHeaders() {
		if h.GetKey() == k {
			return string(h.GetRawValue()), true
		}
	}
	return "", false
}

// ---- injectable timers ----

type fakeTimers struct {
	mu     sync.Mutex
	timers []*fakeTimer
	notify chan struct{}
}

type fakeTimer struct {
	kind    TimerKind
	d       time.Duration
	ch      chan time.Time
	stopped bool
}

func newFakeTimers() *fakeTimers { return &fakeTimers{notify: make(chan struct{}, 1)} }

func (f *fakeTimers) NewTimer(kind TimerKind, d time.Duration) (<-chan time.Time, func() bool) {
	ft := &fakeTimer{kind: kind, d: d, ch: make(chan time.Time, 1)}
	f.mu.Lock()
	f.timers = append(f.timers, ft)
	f.mu.Unlock()
	select {
	case f.notify <- struct{}{}:
	default:
	}
	return ft.ch, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		was := !ft.stopped
		ft.stopped = true
		return was
	}
}

// live returns the armed timers of kind.
func (f *fakeTimers) live(kind TimerKind) []*fakeTimer {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeTimer
	for _, t := range f.timers {
		if t.kind == kind && !t.stopped {
			out = append(out, t)
		}
	}
	return out
}

// fire waits until a timer of kind is armed, then fires the newest one.
func (f *fakeTimers) fire(t *testing.T, kind TimerKind) time.Duration {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		if l := f.live(kind); len(l) > 0 {
			ft := l[len(l)-1]
			f.mu.Lock()
			ft.stopped = true
			f.mu.Unlock()
			ft.ch <- time.Now()
			return ft.d
		}
		select {
		case <-f.notify:
		case <-deadline:
			t.Fatalf("no %s timer armed", kind)
		}
	}
}

// durations lists every duration a timer of kind was armed with.
func (f *fakeTimers) durations(kind TimerKind) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, t := range f.timers {
		if t.kind == kind {
			out = append(out, t.d)
		}
	}
	return out
}

// ---- upstream ----

type upstreamReq struct {
	Method, Path, Host string
	Header             http.Header
	Body               string
	ContentLength      int64
	TransferEncoding   []string
}

type upstream struct {
	srv  *httptest.Server
	reqs chan upstreamReq
}

// startUpstream records each request and then runs h (nil: 200 "ok").
func startUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{reqs: make(chan upstreamReq, 64)}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := upstreamReq{Method: r.Method, Path: r.RequestURI, Host: r.Host, Header: r.Header.Clone(),
			ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding}
		if h == nil {
			b, _ := io.ReadAll(r.Body)
			rec.Body = string(b)
			u.reqs <- rec
			_, _ = io.WriteString(w, "ok")
			return
		}
		// A custom handler may answer before the request body ends (Envoy ext_proc: request and response directions interleave); what is
		// left of the body is recorded afterwards.
		_ = http.NewResponseController(w).EnableFullDuplex()
		h(w, r)
		b, _ := io.ReadAll(r.Body)
		rec.Body = string(b)
		u.reqs <- rec
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

func (u *upstream) next(t *testing.T) upstreamReq {
	t.Helper()
	select {
	case r := <-u.reqs:
		return r
	case <-time.After(testTimeout):
		t.Fatal("upstream got no request")
		return upstreamReq{}
	}
}

func (u *upstream) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-u.reqs:
		t.Fatalf("upstream got a request: %+v", r)
	default:
	}
}

// ---- bootstrap ----

// bootstrap returns a test bootstrap. extProc is the ext_proc filter's YAML body (indented
// by the caller's choice; it is re-indented here), "" for no ext_proc filter; routes the
// routes list (nil: one catch-all to cluster "upstream").
type boot struct {
	extProc     string
	routes      string
	bufferLimit int
	hcmExtra    string
}

const defaultRoutes = `
- name: default
  match: { prefix: "/" }
  route: { cluster: upstream }
`

func (b boot) yaml() string {
	routes := b.routes
	if routes == "" {
		routes = defaultRoutes
	}
	filters := ""
	if b.extProc != "" {
		filters = "- name: envoy.filters.http.ext_proc\n  typed_config:\n    \"@type\": " + extProcTypeURL + "\n" +
			indent("grpc_service: { envoy_grpc: { cluster_name: ext_proc } }\n"+b.extProc, 4)
	}
	filters += "- name: envoy.filters.http.router\n  typed_config:\n    \"@type\": " + routerTypeURL + "\n"
	limit := ""
	if b.bufferLimit > 0 {
		limit = fmt.Sprintf("    per_connection_buffer_limit_bytes: %d\n", b.bufferLimit)
	}
	return `static_resources:
  listeners:
  - name: test
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
` + limit + `    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": ` + hcmTypeURL + `
          stat_prefix: test
` + indent(b.hcmExtra, 10) + `          http_filters:
` + indent(filters, 10) + `          route_config:
            name: test_routes
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
` + indent(routes, 14) + `
  clusters:
  - name: ext_proc
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: ext_proc
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }]
  - name: upstream
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }]
  - name: other
    type: LOGICAL_DNS
    load_assignment:
      cluster_name: other
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: other.example.com, port_value: 443 } } } }] }]
`
}

func indent(s string, n int) string {
	if s == "" {
		return ""
	}
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(strings.TrimLeft(s, "\n"), "\n"), "\n") {
		b.WriteString(pad + l + "\n")
	}
	return b.String()
}

// ---- environment ----

type env struct {
	envoy  *Envoy
	proc   *procServer
	up     *upstream
	other  *upstream
	timers *fakeTimers
	client *http.Client
}

type envOpts struct {
	boot      boot
	script    func(*pstream) error
	upstream  http.HandlerFunc
	other     http.HandlerFunc
	version   int
	reqChunks Chunker
	resChunks Chunker
	hook      func(string)
	noProc    bool // ext_proc cluster points at a closed port
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{timers: newFakeTimers()}
	if o.script == nil {
		o.script = replier(passAll)
	}
	e.proc = startProcessor(t, o.script)
	e.up = startUpstream(t, o.upstream)
	e.other = startUpstream(t, o.other)
	procAddr := e.proc.addr
	if o.noProc {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		procAddr = ln.Addr().String()
		ln.Close()
	}
	var err error
	e.envoy, err = Start(context.Background(), Options{
		Bootstrap: []byte(o.boot.yaml()),
		Clusters:  map[string]string{"ext_proc": procAddr, "upstream": e.up.addr(), "other": e.other.addr()},
		Version:   o.version, RequestChunks: o.reqChunks, ResponseChunks: o.resChunks,
		NewTimer: e.timers.NewTimer, hook: o.hook,
	})
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, o.boot.yaml())
	}
	t.Cleanup(func() { _ = e.envoy.Close() })
	e.client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: testTimeout}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

type result struct {
	status int
	header http.Header
	body   string
	err    error // body read error (e.g. a reset stream)
}

func (e *env) do(t *testing.T, method, path string, body io.Reader, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, e.envoy.URL()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

func (e *env) get(t *testing.T, path string, hdr ...string) result {
	t.Helper()
	return e.do(t, http.MethodGet, path, nil, hdr...)
}

func (e *env) post(t *testing.T, path, body string, hdr ...string) result {
	t.Helper()
	return e.do(t, http.MethodPost, path, bytes.NewBufferString(body), hdr...)
}

// lastLog returns the newest access record.
func (e *env) lastLog(t *testing.T) AccessRecord {
	t.Helper()
	l := e.envoy.Log()
	if len(l) == 0 {
		t.Fatal("no access record")
	}
	return l[len(l)-1]
}

func wantStatus(t *testing.T, r result, code int) {
	t.Helper()
	if r.err != nil && r.status == 0 {
		t.Fatalf("request failed: %v", r.err)
	}
	if r.status != code {
		t.Fatalf("status = %d, want %d (body %q)", r.status, code, r.body)
	}
}

// modes is a processing_mode YAML snippet.
func modes(reqH, reqB, respH, respB string) string {
	return fmt.Sprintf("processing_mode: { request_header_mode: %s, request_body_mode: %s, response_header_mode: %s, response_body_mode: %s }\n",
		reqH, reqB, respH, respB)
}

func mustStruct(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func timeoutCh() <-chan time.Time { return time.After(testTimeout) }
