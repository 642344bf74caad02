package devfront

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// router is the router filter: it runs when the request headers are released, resolves
// the route (re-resolving after a route-cache clear, Envoy ext_proc API: CommonResponse.clear_route_cache), and sends the request to
// the cluster as one or more attempts over HTTP/1.1, retrying per the route's
// retry_policy.
//
// Each attempt selects a host (priorities, retry priority and host predicates), connects
// in parallel with its upstream HTTP filter chain (a new instance per attempt, Envoy router: upstream_http_filters),
// and is sent by its codec once both are done. The request body is kept in the router's
// buffer for retries, up to the buffer limit.
type router struct {
	x         *exchange
	route     *route
	cluster   *cluster
	filters   []*upstreamFilter
	upHeaders *headerMap // the router's request headers, shared by every attempt (Envoy router: upstream_http_filters)

	retry      *retryState // nil: no (more) retries
	buffering  bool        // the request body is kept for retries
	buf        []byte      // Envoy's decodingBuffer
	reqDone    bool        // the whole request reached the router
	reqStarted bool        // some attempt sent bytes upstream (reset-before-request)
	isRetry    bool

	att          *attempt // the attempt in flight; nil while a retry backs off
	last         *attempt // the most recent attempt (access log, attributes)
	respSrc      *source
	respStarted  bool // response headers were passed to the encoder filters
	upstreamDone bool

	routeTimer, backoff *xtimer
}

// attempt is one UpstreamRequest: its host, its upstream filter instances and its codec.
type attempt struct {
	rt      *router
	n       int // attempt number, from 1
	host    *host
	filters []*filter // upstream ext_proc instances
	first   stage     // the head of the upstream filter chain

	ctx    context.Context
	cancel context.CancelFunc

	conn      net.Conn // set once the pool is ready
	poolReady bool
	gotHdrs   bool // the filter chain released the headers to the codec
	hdrsEOS   bool
	pipe      *bodyPipe
	sent      bool // the request went out on the connection
	resp      *http.Response
	started   time.Time
	dead      bool

	perTry, perTryIdle *xtimer
	timersArmed        bool
}

func (rt *router) headers(h *headerMap, eos bool) {
	x := rt.x
	if x.finished || x.replying {
		return
	}
	r := x.currentRoute()
	if r == nil {
		x.localReply(http.StatusNotFound, "", "route_not_found", nil)
		return
	}
	x.routeName = r.name
	if r.idleTimeout != nil {
		x.idleDur = *r.idleTimeout // route idle_timeout overrides stream_idle_timeout
		x.armIdle()
	}
	if r.direct {
		x.localReply(r.directStatus, r.directBody, "direct_response", func(rh *headerMap) {
			applyHeaderOps(rh, r.headerLevels(), false)
		})
		return
	}
	name := r.cluster
	if r.clusterHeader != "" {
		name = h.value(r.clusterHeader)
	}
	// The cluster manager's view now, not the stream's snapshot: a cluster that CDS removed
	// or that is still warming is not found (see doc.go, xDS).
	c := x.e.config().clusters[name]
	if c == nil {
		x.localReply(r.clusterNotFoundCode, "", "cluster_not_found", nil)
		return
	}
	x.cluster = name
	rt.route, rt.cluster = r, c
	rt.filters = c.filters
	if !c.hasFilters {
		rt.filters = x.cfg.routerFilters
	}

	// finalizeRequestHeaders: route, virtual host, route configuration. auto_host_rewrite
	// happens per attempt, once its connection is ready.
	applyHeaderOps(h, r.headerLevels(), true)
	if r.prefixRewrite != "" && r.prefix != "" {
		if p := h.value(":path"); strings.HasPrefix(p, r.prefix) {
			h.set(":path", r.prefixRewrite+p[len(r.prefix):])
		}
	}
	if r.hostLiteral != "" {
		h.set(":authority", r.hostLiteral)
	}
	if t := r.perTryTimeout; t > 0 {
		h.set("x-envoy-expected-rq-timeout-ms", strconv.FormatInt(t.Milliseconds(), 10))
	} else if r.timeout > 0 {
		h.set("x-envoy-expected-rq-timeout-ms", strconv.FormatInt(r.timeout.Milliseconds(), 10))
	}
	// RetryStateImpl::create consumes the retry headers; the stand-in does not honour them.
	for _, k := range []string{"x-envoy-retry-on", "x-envoy-retry-grpc-on", "x-envoy-max-retries",
		"x-envoy-hedge-on-per-try-timeout", "x-envoy-retriable-header-names",
		"x-envoy-retriable-status-codes", "x-envoy-upstream-rq-per-try-timeout-ms"} {
		h.remove(k)
	}
	if r.retry != nil {
		rt.retry = newRetryState(r.retry, h, x.e.inc)
		rt.buffering = rt.retry.on != 0 // RetryState::enabled()
	}
	rt.upHeaders = h
	rt.startAttempt(eos)
	if eos {
		rt.requestComplete()
	}
}

// data is Router::decodeData: the body goes to the current attempt and, while retries
// are possible, into the buffer they re-send from.
func (rt *router) data(p []byte, eos bool) {
	x := rt.x
	if x.finished || x.replying || rt.route == nil {
		return
	}
	if rt.buffering && len(rt.buf)+len(p) > x.cfg.bufferLimit {
		// Too large to retry: give up on retries (Envoy bootstrap notes).
		x.e.inc("retry_or_shadow_abandoned")
		rt.retry, rt.buffering, rt.buf = nil, false, nil
		if rt.att == nil {
			x.localReply(http.StatusInsufficientStorage, "exceeded request buffer limit while retrying upstream",
				"request_payload_exceeded_retry_buffer_limit", rt.modifyHeaders)
			return
		}
	}
	if rt.att != nil {
		rt.att.first.data(append([]byte(nil), p...), eos)
	}
	if rt.buffering {
		rt.buf = append(rt.buf, p...)
	}
	if eos {
		rt.requestComplete()
	}
}

// requestComplete: the whole request reached the router; the route timeout starts now,
// and the per-try timers once the attempt's connection is also ready.
func (rt *router) requestComplete() {
	x := rt.x
	rt.reqDone = true
	if rt.upstreamDone || rt.att == nil {
		return
	}
	if t := rt.route.timeout; t > 0 {
		rt.routeTimer = x.startTimer(RouteTimeout, t, func() {
			rt.upstreamTimeout("upstream_response_timeout")
		})
	}
	if rt.att.poolReady {
		rt.att.armPerTry()
	}
}

// startAttempt creates an UpstreamRequest: host selection, connection, upstream filters.
// A retry re-sends the buffered body (doRetry).
func (rt *router) startAttempt(eos bool) {
	x := rt.x
	h := selectHost(rt.cluster, rt.retry, rt.isRetry)
	if h == nil {
		x.localReply(http.StatusServiceUnavailable, "no healthy upstream", "no_healthy_upstream", rt.modifyHeaders)
		return
	}
	x.attempts++
	if rt.route.vh.attemptCountRequest {
		rt.upHeaders.set("x-envoy-attempt-count", strconv.Itoa(x.attempts))
	}
	if rt.retry != nil {
		rt.retry.onHostAttempted(h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &attempt{rt: rt, n: x.attempts, host: h, ctx: ctx, cancel: cancel, started: time.Now()}
	rt.att, rt.last = a, a
	a.first = a.buildChain(rt.filters)
	a.connect()
	if rt.isRetry {
		eos = rt.reqDone && len(rt.buf) == 0
	}
	a.first.headers(rt.upHeaders, eos)
	if rt.isRetry && !eos && a == rt.att && len(rt.buf) > 0 {
		a.first.data(append([]byte(nil), rt.buf...), rt.reqDone)
	}
}

// connect is the connection pool's newStream, started at once, in parallel with the
// upstream filters (UpstreamRequest::acceptHeadersFromRouter). Each attempt gets its own
// connection.
func (a *attempt) connect() {
	x := a.rt.x
	dial := loopbackDialer(a.host)
	timeout := a.host.cluster.connectTimeout
	go func() {
		ctx, cancel := context.WithTimeout(a.ctx, timeout)
		conn, err := dial(ctx, "")
		cancel()
		if !x.post(func() { a.onPool(conn, err) }) && conn != nil {
			_ = conn.Close()
		}
	}()
}

// onPool is onPoolReady / onPoolFailure.
func (a *attempt) onPool(conn net.Conn, err error) {
	rt := a.rt
	if a.dead || a != rt.att || rt.x.finished || rt.x.replying {
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	if err != nil {
		rt.x.e.inc("upstream_cx_connect_fail")
		rt.onUpstreamReset(a, resetConnectFailure)
		return
	}
	a.conn, a.poolReady = conn, true
	if rt.route.autoHost && a.host.hostname != "" {
		// The endpoint's hostname, even when pointed at loopback. The router's headers are
		// shared, so a later attempt's upstream filters see this attempt's host (Envoy router: upstream_http_filters).
		rt.upHeaders.set(":authority", a.host.hostname)
	}
	if rt.reqDone {
		a.armPerTry()
	}
	a.send()
}

// armPerTry is setupPerTryTimeout: after the whole request and a connection.
func (a *attempt) armPerTry() {
	if a.timersArmed {
		return
	}
	a.timersArmed = true
	rt := a.rt
	if t := rt.route.perTryTimeout; t > 0 {
		a.perTry = rt.x.startTimer(PerTryTimeout, t, func() { rt.onPerTryTimeout(a) })
	}
	a.resetIdle()
}

func (a *attempt) resetIdle() {
	rt := a.rt
	if t := rt.route.perTryIdleTimeout; t > 0 && a.timersArmed && !rt.upstreamDone {
		a.perTryIdle.cancel()
		a.perTryIdle = rt.x.startTimer(PerTryIdleTimeout, t, func() { rt.onPerTryIdleTimeout(a) })
	}
}

// headers and data make the attempt the last stage of its upstream filter chain: the
// upstream codec.
func (a *attempt) headers(_ *headerMap, eos bool) {
	if a.dead {
		return
	}
	a.gotHdrs, a.hdrsEOS = true, eos
	if !eos {
		a.pipe = newBodyPipe()
	}
	a.send()
}

func (a *attempt) data(p []byte, eos bool) {
	if a.dead || a.pipe == nil {
		return
	}
	a.pipe.write(p)
	if eos {
		a.pipe.close(nil)
	}
}

// send encodes the request on the attempt's connection once the filters released it and
// the connection is ready.
func (a *attempt) send() {
	if a.sent || a.dead || !a.gotHdrs || !a.poolReady {
		return
	}
	a.sent = true
	rt := a.rt
	x := rt.x
	var body io.ReadCloser = http.NoBody
	length := int64(0)
	if !a.hdrsEOS {
		body = a.pipe
		length = -1
		if cl, ok := rt.upHeaders.get("content-length"); ok {
			if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
				length = n
			}
		}
		if length == 0 {
			body = http.NoBody // Go would send a 0 length with a body as chunked
		}
	}
	req := upstreamRequest(a.ctx, rt.upHeaders, body, length)
	conn := a.conn
	var once sync.Once
	tr := &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			var c net.Conn
			once.Do(func() { c = conn })
			if c == nil {
				return nil, errors.New("devfront: attempt connection already used")
			}
			return c, nil
		},
		DisableCompression:  true, // Envoy never adds accept-encoding
		MaxIdleConnsPerHost: -1,   // the connection closes with the attempt (no "Connection: close")
	}
	go func() {
		resp, err := tr.RoundTrip(req)
		if !x.post(func() { rt.onResponse(a, resp, err) }) && resp != nil {
			_ = resp.Body.Close()
		}
	}()
}

// kill resets the attempt: its connection, its body and its upstream filters' streams.
func (a *attempt) kill() {
	if a.dead {
		return
	}
	a.dead = true
	a.cancel()
	for _, f := range a.filters {
		f.stop()
	}
	if a.pipe != nil {
		a.pipe.close(errors.New("devfront: upstream request reset"))
	}
	if a.resp != nil {
		_ = a.resp.Body.Close()
	}
	if a.conn != nil {
		_ = a.conn.Close() // also when the transport owns it: this is a reset
	}
	a.perTry.cancel()
	a.perTryIdle.cancel()
}

// upstreamRequest converts Envoy request headers into an HTTP/1.1 request.
func upstreamRequest(ctx context.Context, h *headerMap, body io.ReadCloser, length int64) *http.Request {
	authority := h.value(":authority")
	host := authority
	if host == "" {
		host = "upstream"
	}
	req := &http.Request{
		Method: h.value(":method"), URL: &url.URL{Scheme: "http", Host: host, Opaque: h.value(":path")},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: authority,
		Header: http.Header{}, Body: body, ContentLength: length,
	}
	for _, e := range h.e {
		if strings.HasPrefix(e.k, ":") || hopByHop[e.k] || e.k == "host" || e.k == "content-length" {
			continue
		}
		k := http.CanonicalHeaderKey(e.k)
		req.Header[k] = append(req.Header[k], e.v)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = nil // Go would add its own; Envoy adds none
	}
	return req.WithContext(ctx)
}

// onResponse is the attempt's response headers reaching the router (onUpstreamHeaders),
// or its failure before them.
func (rt *router) onResponse(a *attempt, resp *http.Response, err error) {
	x := rt.x
	if a != rt.att || a.dead || x.finished || x.replying {
		if resp != nil {
			_ = resp.Body.Close()
		}
		return
	}
	x.activity()
	if err != nil {
		rt.onUpstreamReset(a, resetConnectionTermination)
		return
	}
	a.resp = resp
	a.resetIdle()
	// The response passes the upstream filters first. Their ext_proc instances process no
	// response (SKIP/NONE), so each closes its stream now (noExternalProcess, Envoy ext_proc: one gRPC stream per HTTP request).
	for _, f := range a.filters {
		f.closeStream()
	}
	h := &headerMap{}
	h.add(":status", strconv.Itoa(resp.StatusCode))
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		if lk == "connection" || lk == "keep-alive" || lk == "proxy-connection" {
			continue
		}
		for _, v := range resp.Header[k] {
			h.add(lk, v)
		}
	}
	if slices.Contains(resp.TransferEncoding, "chunked") {
		// An HTTP/1.1 upstream's transfer-encoding reaches the filters; the HCM strips it
		// later (Envoy ext_proc API: HeaderValue.raw_value). Processors must ignore it.
		h.add("transfer-encoding", "chunked")
	}
	for i := len(rt.filters) - 1; i >= 0; i-- {
		if hm := rt.filters[i].headerMutation; hm != nil {
			x.applyHeaderOps(h, hm.response)
		}
	}
	if rt.retry != nil {
		d := rt.retry.fromHeaders(h)
		if d == retryWithBackoff {
			rt.retry.rateLimitFrom(h, time.Now())
		}
		if rt.retry.shouldRetry(d) == retryYes {
			rt.scheduleRetry(a)
			return
		}
		rt.retry, rt.buffering, rt.buf = nil, false, nil // retry_state_.reset(): this response goes downstream
	}
	h.set("x-envoy-upstream-service-time", strconv.FormatInt(time.Since(a.started).Milliseconds(), 10))
	applyHeaderOps(h, rt.route.headerLevels(), false)
	rt.modifyHeaders(h)
	eos := resp.Body == http.NoBody || resp.ContentLength == 0
	rt.respStarted = true
	if eos {
		rt.upstreamComplete()
	} else {
		rt.respSrc = newSource(x, resp.Body, x.e.opts.ResponseChunks, rt.onData)
	}
	x.encodeHeaders(h, eos)
}

// modifyHeaders adds what the router adds to every response it produces, proxied or
// local: x-envoy-attempt-count with include_attempt_count_in_response.
func (rt *router) modifyHeaders(h *headerMap) {
	if rt.route != nil && rt.route.vh.attemptCountResponse {
		h.set("x-envoy-attempt-count", strconv.Itoa(rt.x.attempts))
	}
}

func (rt *router) onData(ps []piece, err error) {
	x := rt.x
	if err != nil {
		x.resetStream("upstream_reset_after_response_started{remote_reset}")
		return
	}
	for _, p := range ps {
		if x.finished || x.replying {
			return
		}
		x.activity()
		if p.eos {
			rt.upstreamComplete()
		} else if rt.att != nil {
			rt.att.resetIdle()
		}
		x.encodeData(p.data, p.eos)
	}
}

func (rt *router) upstreamComplete() {
	rt.upstreamDone = true
	rt.routeTimer.cancel()
	if a := rt.att; a != nil {
		a.perTry.cancel()
		a.perTryIdle.cancel()
		if a.resp != nil {
			_ = a.resp.Body.Close()
		}
	}
}

// scheduleRetry resets the attempt and arms the back-off timer for the next one.
func (rt *router) scheduleRetry(a *attempt) {
	a.kill()
	rt.att = nil
	rt.backoff = rt.x.startTimer(RetryBackoff, rt.retry.backoff(), rt.doRetry)
}

// doRetry is Router::doRetry, when the back-off timer fires.
func (rt *router) doRetry() {
	rt.isRetry = true
	// "Clusters can technically get removed by CDS during a retry": Envoy looks the
	// cluster up again and answers 503 no_healthy_upstream if it is gone; an updated
	// cluster serves the retry with its new hosts and filters.
	c := rt.x.e.config().clusters[rt.x.cluster]
	if c == nil {
		rt.x.localReply(http.StatusServiceUnavailable, "no healthy upstream", "no_healthy_upstream", rt.modifyHeaders)
		return
	}
	if c != rt.cluster {
		rt.cluster, rt.filters = c, c.filters
		if !c.hasFilters {
			rt.filters = rt.x.cfg.routerFilters
		}
	}
	rt.startAttempt(false)
}

// maybeRetryReset decides on a retry after the attempt failed before response headers.
func (rt *router) maybeRetryReset(a *attempt, r resetReason) bool {
	if rt.respStarted || rt.retry == nil {
		return false
	}
	rt.reqStarted = rt.reqStarted || a.sent
	if rt.retry.shouldRetry(rt.retry.fromReset(r, rt.reqStarted)) != retryYes {
		return false
	}
	rt.scheduleRetry(a)
	return true
}

// onUpstreamReset: the attempt failed before response headers (a connection failure or
// a reset); retried if the policy allows, else a 503.
func (rt *router) onUpstreamReset(a *attempt, r resetReason) {
	if rt.maybeRetryReset(a, r) {
		return
	}
	retried := ""
	if rt.isRetry {
		retried = "retried and the latest "
	}
	rt.x.localReply(http.StatusServiceUnavailable,
		"upstream connect error or disconnect/reset before headers. "+retried+"reset reason: "+r.text(),
		"upstream_reset_before_response_started{"+r.details()+"}", rt.modifyHeaders)
}

// onPerTryTimeout is ignored once the response started downstream.
func (rt *router) onPerTryTimeout(a *attempt) {
	if rt.respStarted {
		rt.x.e.hook(hookPerTryIgnored)
		return
	}
	if a != rt.att {
		return
	}
	rt.x.e.inc("upstream_rq_per_try_timeout")
	rt.perTryTimeoutCommon(a, "upstream_per_try_timeout")
}

func (rt *router) onPerTryIdleTimeout(a *attempt) {
	if a != rt.att {
		return
	}
	rt.x.e.inc("upstream_rq_per_try_idle_timeout")
	rt.perTryTimeoutCommon(a, "upstream_per_try_idle_timeout")
}

// perTryTimeoutCommon resets the attempt and retries it as a local reset; else a 504, or
// a reset once the response started.
func (rt *router) perTryTimeoutCommon(a *attempt, details string) {
	if rt.maybeRetryReset(a, resetLocal) {
		return
	}
	a.kill()
	if rt.respStarted {
		rt.x.resetStream(details)
		return
	}
	rt.x.localReply(http.StatusGatewayTimeout, "upstream request timeout", details, rt.modifyHeaders)
}

// upstreamTimeout is the route timeout: never retried.
func (rt *router) upstreamTimeout(details string) {
	x := rt.x
	x.e.inc("upstream_rq_timeout")
	if rt.respStarted {
		x.resetStream(details)
		return
	}
	x.localReply(http.StatusGatewayTimeout, "upstream request timeout", details, rt.modifyHeaders)
}

// abort resets the upstream request (local reply or end of stream).
func (rt *router) abort() {
	if rt.att != nil {
		rt.att.kill()
	}
	rt.routeTimer.cancel()
	rt.backoff.cancel()
}

// bodyPipe is an unbounded pipe: writes never block the exchange goroutine.
type bodyPipe struct {
	mu     sync.Mutex
	cond   *sync.Cond
	bufs   [][]byte
	closed bool
	err    error
}

func newBodyPipe() *bodyPipe {
	p := &bodyPipe{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *bodyPipe) write(b []byte) {
	if len(b) == 0 {
		return
	}
	p.mu.Lock()
	if !p.closed {
		p.bufs = append(p.bufs, append([]byte(nil), b...))
	}
	p.mu.Unlock()
	p.cond.Broadcast()
}

// close ends the body: err nil is a clean end of stream.
func (p *bodyPipe) close(err error) {
	p.mu.Lock()
	if !p.closed {
		p.closed, p.err = true, err
		if err != nil {
			p.bufs = nil
		}
	}
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *bodyPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.bufs) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.bufs) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		return 0, io.EOF
	}
	n := copy(b, p.bufs[0])
	if n == len(p.bufs[0]) {
		p.bufs = p.bufs[1:]
	} else {
		p.bufs[0] = p.bufs[0][n:]
	}
	return n, nil
}

// Close is the transport giving up on the body.
func (p *bodyPipe) Close() error {
	p.close(errors.New("devfront: body closed"))
	return nil
}
