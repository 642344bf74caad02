package standin

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
// the route (re-resolving after a route-cache clear, spec §2.5), and proxies to the
// cluster over HTTP/1.1.
//
// Each upstream request is an attempt; the request body is kept (up to the buffer
// limit) in retryBody so that retries, priorities and per-attempt upstream filters can be
// added as further attempts without changing the downstream side.
type router struct {
	x         *exchange
	route     *route
	cluster   *cluster
	upHeaders *headerMap // request headers as sent upstream

	body      *bodyPipe // request body of the current attempt
	retryBody []byte
	reqDone   bool

	att          *attempt
	respSrc      *source
	respStarted  bool // response headers were passed to the encoder filters
	upstreamDone bool

	routeTimer, perTry, perTryIdle *xtimer
}

type attempt struct {
	cancel  context.CancelFunc
	started time.Time
	resp    *http.Response
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
	c := x.cfg.clusters[name]
	if c == nil {
		x.localReply(r.clusterNotFoundCode, "", "cluster_not_found", nil)
		return
	}
	x.cluster = name
	rt.route, rt.cluster = r, c

	// finalizeRequestHeaders: route, virtual host, route configuration.
	applyHeaderOps(h, r.headerLevels(), true)
	if r.prefixRewrite != "" && r.prefix != "" {
		if p := h.value(":path"); strings.HasPrefix(p, r.prefix) {
			h.set(":path", r.prefixRewrite+p[len(r.prefix):])
		}
	}
	switch {
	case r.hostLiteral != "":
		h.set(":authority", r.hostLiteral)
	case r.autoHost && c.hostname != "":
		h.set(":authority", c.hostname) // the endpoint's hostname, even when pointed at loopback
	}
	if t := r.perTryTimeout; t > 0 {
		h.set("x-envoy-expected-rq-timeout-ms", strconv.FormatInt(t.Milliseconds(), 10))
	} else if r.timeout > 0 {
		h.set("x-envoy-expected-rq-timeout-ms", strconv.FormatInt(r.timeout.Milliseconds(), 10))
	}
	rt.upHeaders = h
	rt.startAttempt(eos)
	if eos {
		rt.requestComplete()
	}
}

func (rt *router) data(p []byte, eos bool) {
	if rt.body == nil || rt.x.finished {
		return
	}
	if len(rt.retryBody) <= rt.x.cfg.bufferLimit {
		rt.retryBody = append(rt.retryBody, p...)
	}
	rt.body.write(p)
	if eos {
		rt.body.close(nil)
		rt.requestComplete()
	}
}

// requestComplete: the whole request reached the router; the route timeout and the
// per-try timeout start now.
func (rt *router) requestComplete() {
	x := rt.x
	rt.reqDone = true
	if rt.upstreamDone {
		return
	}
	if t := rt.route.timeout; t > 0 {
		rt.routeTimer = x.startTimer(RouteTimeout, t, func() {
			rt.upstreamTimeout("upstream_response_timeout")
		})
	}
	if t := rt.route.perTryTimeout; t > 0 {
		rt.perTry = x.startTimer(PerTryTimeout, t, func() {
			rt.upstreamTimeout("upstream_per_try_timeout")
		})
	}
}

func (rt *router) startAttempt(eos bool) {
	x := rt.x
	x.attempts++
	ctx, cancel := context.WithCancel(context.Background())
	a := &attempt{cancel: cancel, started: time.Now()}
	rt.att = a
	var body io.ReadCloser = http.NoBody
	length := int64(0)
	if !eos {
		rt.body = newBodyPipe()
		body = rt.body
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
	req := upstreamRequest(ctx, rt.upHeaders, body, length)
	rt.armPerTryIdle()
	tr := x.e.upstream[rt.cluster.name]
	go func() {
		resp, err := tr.RoundTrip(req)
		if !x.post(func() { rt.onResponse(a, resp, err) }) && resp != nil {
			_ = resp.Body.Close()
		}
	}()
}

func (rt *router) armPerTryIdle() {
	rt.perTryIdle.cancel()
	if t := rt.route.perTryIdleTimeout; t > 0 && !rt.upstreamDone {
		rt.perTryIdle = rt.x.startTimer(PerTryIdleTimeout, t, func() {
			rt.upstreamTimeout("upstream_per_try_idle_timeout")
		})
	}
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

func (rt *router) onResponse(a *attempt, resp *http.Response, err error) {
	x := rt.x
	if a != rt.att || x.finished || x.replying {
		if resp != nil {
			_ = resp.Body.Close()
		}
		return
	}
	x.activity()
	if err != nil {
		rt.upstreamFailed(err)
		return
	}
	a.resp = resp
	rt.armPerTryIdle()
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
		// later (spec §1.2). Processors must ignore it.
		h.add("transfer-encoding", "chunked")
	}
	h.set("x-envoy-upstream-service-time", strconv.FormatInt(time.Since(a.started).Milliseconds(), 10))
	applyHeaderOps(h, rt.route.headerLevels(), false)
	eos := resp.Body == http.NoBody || resp.ContentLength == 0
	rt.respStarted = true
	if eos {
		rt.upstreamComplete()
	} else {
		rt.respSrc = newSource(x, resp.Body, x.e.opts.ResponseChunks, rt.onData)
	}
	x.encodeHeaders(h, eos)
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
		} else {
			rt.armPerTryIdle()
		}
		x.encodeData(p.data, p.eos)
	}
}

func (rt *router) upstreamComplete() {
	rt.upstreamDone = true
	rt.routeTimer.cancel()
	rt.perTry.cancel()
	rt.perTryIdle.cancel()
}

// upstreamFailed: the attempt failed before response headers.
func (rt *router) upstreamFailed(err error) {
	reason := "connection_termination"
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		reason = "connection_failure"
	}
	rt.x.localReply(http.StatusServiceUnavailable,
		"upstream connect error or disconnect/reset before headers. reset reason: "+strings.ReplaceAll(reason, "_", " "),
		"upstream_reset_before_response_started{"+reason+"}", nil)
}

func (rt *router) upstreamTimeout(details string) {
	x := rt.x
	if rt.respStarted {
		x.resetStream(details)
		return
	}
	x.e.inc("upstream_rq_timeout")
	x.localReply(http.StatusGatewayTimeout, "upstream request timeout", details, nil)
}

// abort resets the upstream request (local reply or end of stream).
func (rt *router) abort() {
	if rt.att != nil {
		rt.att.cancel()
		if rt.att.resp != nil {
			_ = rt.att.resp.Body.Close()
		}
	}
	if rt.body != nil {
		rt.body.close(errors.New("standin: request reset"))
	}
	rt.routeTimer.cancel()
	rt.perTry.cancel()
	rt.perTryIdle.cancel()
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
	p.close(errors.New("standin: body closed"))
	return nil
}
