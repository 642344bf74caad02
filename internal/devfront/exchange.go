package devfront

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// exchange is one HTTP request through the emulated HCM: request headers → ext_proc →
// router → upstream, and back. Like Envoy's dispatcher, one goroutine (the handler's) runs
// every state change; readers, the gRPC stream and timers post closures to it.
type exchange struct {
	e   *Envoy
	cfg *config
	w   http.ResponseWriter
	r   *http.Request

	events   chan func()
	done     chan struct{}
	finished bool // the response is complete (or reset): leave the loop
	reset    bool // reset the client stream when the loop ends

	reqHeaders  *headerMap
	respHeaders *headerMap
	route       *route
	routeValid  bool // Envoy's cached route; cleared by clear_route_cache (Envoy ext_proc API: CommonResponse.clear_route_cache)
	meta        map[string]*structpb.Struct

	fp *filter // ext_proc; nil without the filter
	rt *router
	cw *clientWriter

	reqSrc   *source
	idle     *xtimer
	idleDur  time.Duration
	replying bool // a local reply is being sent

	details   string
	cluster   string
	routeName string
	attempts  int
}

func newExchange(e *Envoy, w http.ResponseWriter, r *http.Request) *exchange {
	cfg := e.config() // the route table snapped for the whole stream
	x := &exchange{e: e, cfg: cfg, w: w, r: r, events: make(chan func(), 16), done: make(chan struct{}),
		meta: map[string]*structpb.Struct{}, idleDur: cfg.streamIdle}
	x.rt = &router{x: x}
	x.cw = &clientWriter{x: x}
	return x
}

// post hands f to the exchange goroutine; false once the exchange has ended.
func (x *exchange) post(f func()) bool {
	select {
	case x.events <- f:
		return true
	case <-x.done:
		return false
	}
}

func (x *exchange) run() {
	defer x.cleanup()
	// Reading the request body while the response streams (Envoy ext_proc: request and response directions interleave) needs full duplex.
	_ = http.NewResponseController(x.w).EnableFullDuplex()
	x.armIdle()
	h, ok := x.requestHeaders()
	if !ok {
		x.localReply(http.StatusBadRequest, "Bad Request", "path_normalization_failed", nil)
		return
	}
	x.reqHeaders = h
	eos := x.r.ContentLength == 0 // HTTP/1: no body, or Content-Length: 0 (Envoy ext_proc: a body-less request ends at its headers)
	if !eos {
		x.reqSrc = newSource(x, x.r.Body, x.e.opts.RequestChunks, x.onRequestData)
	}
	if x.cfg.extProc != nil {
		fp, err := newFilter(x, x.currentRoute()) // per-route config from the initial route (Envoy ext_proc API: CommonResponse.clear_route_cache)
		if err != nil {
			x.localReply(http.StatusInternalServerError, "", noSpace(err.Error()), nil)
			return
		}
		x.fp = fp
		fp.dec.onHeaders(h, eos)
	} else {
		x.rt.headers(h, eos)
	}
	for !x.finished {
		x.pump()
		select {
		case f := <-x.events:
			f()
		case <-x.r.Context().Done():
			x.downstreamGone()
		}
	}
}

// pump asks for more body data where nothing holds reading back (watermarks).
func (x *exchange) pump() {
	if x.finished {
		return
	}
	if s := x.reqSrc; s != nil && !x.replying && !(x.fp != nil && x.fp.dec.watermark) {
		s.want()
	}
	if s := x.rt.respSrc; s != nil && !(x.fp != nil && x.fp.enc.watermark) {
		s.want()
	}
}

func (x *exchange) cleanup() {
	if !x.finished {
		x.finish()
	}
	close(x.done)
	if s := x.reqSrc; s != nil {
		// The handler must not return while a read of the request body is in
		// flight: net/http then drains the body itself and panics on the
		// concurrent Read. A local reply can end the exchange mid-body; an
		// expired read deadline unblocks the read (the connection is not
		// reused, as Envoy resets a stream whose body it did not consume).
		s.stop(x.w)
	}
	if x.fp != nil {
		x.fp.closeStream() // end of the HTTP stream resets the gRPC stream (Envoy ext_proc: one gRPC stream per HTTP request)
	}
	x.rt.abort()
	x.idle.cancel()
}

// requestHeaders builds the request header map as the HCM hands it to the filter chain
// (Envoy ext_proc API: HeaderValue.raw_value): pseudo-headers, Host as :authority, lower-case keys, hop-by-hop headers
// stripped, x-request-id added.
func (x *exchange) requestHeaders() (*headerMap, bool) {
	r := x.r
	authority := r.Host
	if x.cfg.stripAnyHostPort {
		if host, _, err := net.SplitHostPort(authority); err == nil {
			authority = host
		}
	}
	path := r.RequestURI
	if x.cfg.normalizePath || x.cfg.mergeSlashes {
		var ok bool
		if path, ok = normalizePath(path, x.cfg.normalizePath, x.cfg.mergeSlashes); !ok {
			return nil, false
		}
	}
	h := &headerMap{}
	h.add(":authority", authority)
	h.add(":path", path)
	h.add(":method", r.Method)
	h.add(":scheme", "http")
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys) // Go does not keep the wire order; make it deterministic
	for _, k := range keys {
		lk := strings.ToLower(k)
		if hopByHop[lk] || lk == "x-envoy-internal" || lk == "host" {
			continue
		}
		for _, v := range r.Header[k] {
			h.add(lk, v)
		}
	}
	edge := false
	if x.cfg.useRemoteAddress {
		// Envoy is the edge and (1.33+ default) trusts no address as internal.
		edge = true
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		if xff, ok := h.get("x-forwarded-for"); ok {
			h.set("x-forwarded-for", xff+","+ip)
		} else {
			h.add("x-forwarded-for", ip)
		}
		h.set("x-forwarded-proto", "http")
		h.set("x-envoy-external-address", ip) // [inf] set for external requests
	}
	if x.cfg.generateID && (edge || !h.has("x-request-id")) {
		h.set("x-request-id", newUUID())
	}
	return h, true
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// currentRoute returns the cached route, re-resolving from the current headers after a
// route-cache clear (Envoy ext_proc API: CommonResponse.clear_route_cache).
func (x *exchange) currentRoute() *route {
	if !x.routeValid {
		x.route = x.cfg.routes.resolve(x.reqHeaders)
		x.routeValid = true
	}
	return x.route
}

func (x *exchange) clearRouteCache() { x.routeValid = false }

func (x *exchange) onRequestData(ps []piece, err error) {
	if err != nil {
		x.downstreamGone()
		return
	}
	for _, p := range ps {
		if x.finished || x.replying {
			return
		}
		x.activity()
		if x.fp != nil {
			x.fp.dec.onData(p.data, p.eos)
		} else {
			x.rt.data(p.data, p.eos)
		}
	}
}

// encodeHeaders and encodeData feed the upstream response into the encoder filter chain.
func (x *exchange) encodeHeaders(h *headerMap, eos bool) {
	x.respHeaders = h
	if x.fp != nil {
		x.fp.enc.onHeaders(h, eos)
	} else {
		x.cw.headers(h, eos)
	}
}

func (x *exchange) encodeData(p []byte, eos bool) {
	if x.fp != nil {
		x.fp.enc.onData(p, eos)
	} else {
		x.cw.data(p, eos)
	}
}

// localReply is the filter manager's sendLocalReply. Before response headers went out it
// replaces the response (and resets any upstream request); afterwards it resets the
// stream. Local replies never pass through ext_proc (Envoy ext_proc: local replies are not sent to the processor).
func (x *exchange) localReply(code int, body, details string, mutate func(*headerMap)) {
	if x.finished || x.replying {
		return
	}
	if x.cw.started {
		x.resetStream(details)
		return
	}
	x.replying = true
	x.details = details
	if x.fp != nil {
		x.fp.stop()
	}
	x.rt.abort()
	h := &headerMap{}
	h.add(":status", strconv.Itoa(code))
	if mutate != nil {
		mutate(h)
	}
	// local_reply_config runs on every local reply, an ImmediateResponse's included,
	// after its header mutations (Envoy's Utility::sendLocalReply: modify_headers, then
	// rewrite). A body the mappers changed gets their content type unless they set a
	// content-type header themselves; an unchanged body keeps the reply's own.
	ctBefore, _ := h.get("content-type")
	_, body, ct := x.cfg.localReply.rewrite(x, h, code, body, details) // a new status is in h
	ctAfter, _ := h.get("content-type")
	if body != "" {
		h.set("content-length", strconv.Itoa(len(body)))
		if !h.has("content-type") || (ct != "" && ctAfter == ctBefore) {
			if ct == "" {
				ct = "text/plain"
			}
			h.set("content-type", ct)
		}
	}
	x.cw.headers(h, body == "")
	if body != "" {
		x.cw.data([]byte(body), true)
	}
}

// resetStream resets the client stream: the client sees a truncated response.
func (x *exchange) resetStream(details string) {
	if x.finished {
		return
	}
	if details != "" {
		x.details = details
	}
	x.reset = true
	if x.fp != nil {
		x.fp.stop()
	}
	x.rt.abort()
	x.finish()
}

func (x *exchange) downstreamGone() {
	if x.finished {
		return
	}
	if x.details == "" {
		x.details = "downstream_remote_disconnect"
	}
	x.reset = true
	x.finish()
}

// finish ends the exchange and writes its access record.
func (x *exchange) finish() {
	if x.finished {
		return
	}
	x.finished = true
	rec := AccessRecord{
		Route: x.routeName, Cluster: x.cluster, ResponseCode: x.cw.status,
		ResponseCodeDetails: x.details, Reset: x.reset, UpstreamAttempts: x.attempts,
		DynamicMetadata: cloneMetadata(x.meta),
	}
	if h := x.reqHeaders; h != nil {
		rec.RequestID, rec.Method, rec.Path = h.value("x-request-id"), h.value(":method"), h.value(":path")
	}
	if a := x.rt.last; a != nil {
		rec.UpstreamHost, rec.UpstreamHostname, rec.UpstreamPriority = a.host.addr, a.host.hostname, a.host.priority
	}
	x.e.appendLog(rec)
}

// armIdle (re)starts the stream idle timer: HCM stream_idle_timeout, or the route's
// idle_timeout once a route was chosen. Expiry: 408 before response headers, else reset.
func (x *exchange) armIdle() {
	x.idle.cancel()
	x.idle = nil
	if x.idleDur <= 0 || x.finished {
		return
	}
	x.idle = x.startTimer(StreamIdleTimeout, x.idleDur, func() {
		x.localReply(http.StatusRequestTimeout, "stream timeout", "stream_idle_timeout", nil)
	})
}

// activity is stream activity: it restarts the idle timer.
func (x *exchange) activity() {
	if x.idle != nil {
		x.armIdle()
	}
}

// xtimer is one armed timer; fire runs on the exchange goroutine unless cancelled first.
type xtimer struct {
	live bool
	stop func() bool
	quit chan struct{}
}

func (x *exchange) startTimer(kind TimerKind, d time.Duration, fire func()) *xtimer {
	ch, stop := x.e.newTimer(kind, d)
	t := &xtimer{live: true, stop: stop, quit: make(chan struct{})}
	go func() {
		select {
		case <-ch:
			x.post(func() {
				if t.live {
					t.live = false
					fire()
				}
			})
		case <-t.quit:
		case <-x.done:
		}
	}()
	return t
}

func (t *xtimer) cancel() {
	if t != nil && t.live {
		t.live = false
		t.stop()
		close(t.quit)
	}
}

func (t *xtimer) active() bool { return t != nil && t.live }

// clientWriter is the downstream codec: it writes the response to the HTTP/1.1 client.
type clientWriter struct {
	x       *exchange
	started bool // response headers went out: later errors reset the stream
	status  int
}

func (c *clientWriter) headers(h *headerMap, eos bool) {
	x := c.x
	if x.finished {
		return
	}
	status, err := strconv.Atoi(h.value(":status"))
	if err != nil || status < 100 || status > 999 {
		status = http.StatusBadGateway
	}
	out := x.w.Header()
	for _, e := range h.e {
		if strings.HasPrefix(e.k, ":") || hopByHop[e.k] {
			continue // never copy transfer-encoding (Envoy ext_proc API: HeaderValue.raw_value; Envoy ext_proc: transfer-encoding)
		}
		k := http.CanonicalHeaderKey(e.k)
		out[k] = append(out[k], e.v)
	}
	if _, ok := out["Content-Type"]; !ok {
		out["Content-Type"] = nil // no sniffing: Envoy adds no content-type
	}
	out["Server"] = []string{"envoy"} // server_header_transformation OVERWRITE
	if s := x.reqSrc; s != nil && !s.eof {
		// A response that starts before the request ended closes an HTTP/1 connection:
		// Envoy's ConnectionManagerImpl::ActiveStream::encodeHeaders sets the drain state
		// to Closing when !remoteDecodeComplete() on HTTP/1 (counting
		// downstream_rq_response_before_rq_complete) and so adds "connection: close".
		// It also keeps net/http from reading the next request while the rest of this
		// body is drained (golang/go#68560: with full duplex, the post-handler drain
		// starts a background read that the next request's read then panics on).
		out["Connection"] = []string{"close"}
	}
	c.started, c.status = true, status
	if !x.replying && x.details == "" {
		x.details = "via_upstream"
	}
	if eos {
		x.finish() // the record exists before the response completes
	}
	x.w.WriteHeader(status)
	if !eos && !x.replying {
		c.flush() // a local reply's body follows at once; proxied headers go out now
	}
}

func (c *clientWriter) data(p []byte, eos bool) {
	x := c.x
	if x.finished {
		return
	}
	x.activity()
	if eos {
		x.finish()
	}
	if len(p) > 0 {
		if _, err := x.w.Write(p); err != nil && !eos {
			x.downstreamGone()
			return
		}
	}
	if !eos {
		c.flush() // STREAMED chunks reach the client as each reply arrives
	}
}

func (c *clientWriter) flush() {
	if err := http.NewResponseController(c.x.w).Flush(); err != nil {
		c.x.downstreamGone()
	}
}

// piece is one body callback: bytes and end of stream.
type piece struct {
	data []byte
	eos  bool
}

// source reads a body on its own goroutine, one read per want(), so that not asking is
// back-pressure (a watermark).
type source struct {
	x        *exchange
	cut      cutter
	emptyEnd bool
	pending  bool
	eof      bool
	req      chan struct{}
	deliver  func([]piece, error)
	stopped  chan struct{} // closed when the reading goroutine has returned
	reading  atomic.Bool   // the goroutine is inside Read
}

func newSource(x *exchange, r io.Reader, c Chunker, deliver func([]piece, error)) *source {
	s := &source{x: x, cut: cutter{c: c}, req: make(chan struct{}, 1), deliver: deliver, stopped: make(chan struct{})}
	if c != nil {
		s.emptyEnd = c.EmptyEnd()
	}
	go func() {
		defer close(s.stopped)
		buf := make([]byte, 32<<10)
		for {
			select {
			case <-s.req:
			case <-x.done:
				return
			}
			s.reading.Store(true)
			n, err := r.Read(buf)
			s.reading.Store(false)
			data := append([]byte(nil), buf[:n]...)
			if !x.post(func() { s.pending = false; s.handle(data, err) }) || err != nil {
				return
			}
		}
	}()
	return s
}

// stop waits for the reading goroutine to return; x.done is already closed.
// Only a Read in flight is interrupted, by an expired read deadline that is
// cleared again at once: touching the deadline otherwise would also break
// net/http's own background read of an idle keep-alive connection.
func (s *source) stop(w http.ResponseWriter) {
	for {
		select {
		case <-s.stopped:
			return
		default:
		}
		if s.reading.Load() {
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Now())
			<-s.stopped
			_ = rc.SetReadDeadline(time.Time{})
			return
		}
		runtime.Gosched() // the goroutine is between its select and Read, or returning
	}
}

func (s *source) want() {
	if s.pending || s.eof {
		return
	}
	s.pending = true
	s.req <- struct{}{}
}

func (s *source) handle(data []byte, err error) {
	if err != nil && err != io.EOF {
		s.eof = true
		s.deliver(nil, err)
		return
	}
	var ps []piece
	for _, c := range s.cut.cut(data) {
		ps = append(ps, piece{data: c})
	}
	if err == io.EOF {
		s.eof = true
		if len(ps) == 0 || s.emptyEnd {
			ps = append(ps, piece{eos: true})
		} else {
			ps[len(ps)-1].eos = true
		}
	}
	if len(ps) > 0 {
		s.deliver(ps, nil)
	}
}
