package devfront

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

const attributesKey = "envoy.filters.http.ext_proc"

type (
	bodyMode = extprocv3.ProcessingMode_BodySendMode
	pmode    = extprocv3.ProcessingMode
)

const (
	modeNone     = extprocv3.ProcessingMode_NONE
	modeStreamed = extprocv3.ProcessingMode_STREAMED
	modeBuffered = extprocv3.ProcessingMode_BUFFERED
	modePartial  = extprocv3.ProcessingMode_BUFFERED_PARTIAL
	modeSkip     = extprocv3.ProcessingMode_SKIP
	modeSend     = extprocv3.ProcessingMode_SEND
)

// filter is one ext_proc filter instance: one HTTP request, at most one gRPC stream
// (Envoy ext_proc: one gRPC stream per HTTP request), a state machine per direction (Envoy ext_proc: request and response directions interleave). In upstream placement (Envoy router: upstream_http_filters)
// there is one instance per attempt; only its request path is driven.
type filter struct {
	x                *exchange
	cfg              *extProcConfig
	up               *attempt         // the attempt, in upstream placement; nil downstream
	conn             *grpc.ClientConn // nil: the gRPC client cannot be created
	statPrefix       string
	dec, enc         *dirState
	stream           *procStream
	complete         bool // Envoy's processing_complete_: the processor is out of the loop
	protocolSent     bool
	failureModeAllow bool
	forwardNS        []string
	receiveNS        []string
}

func newFilter(x *exchange, initial *route) (*filter, error) {
	cfg := x.cfg.extProc
	f := &filter{x: x, cfg: cfg, conn: x.e.processorConn(cfg), failureModeAllow: cfg.failureModeAllow,
		forwardNS: cfg.forwardNS, receiveNS: cfg.receiveNS}
	f.dec = &dirState{f: f, isReq: true, sink: x.rt}
	f.enc = &dirState{f: f, sink: x.cw}
	f.dec.setMode(cfg.mode)
	f.enc.setMode(cfg.mode)
	if initial == nil {
		return f, nil
	}
	// ExtProcPerRoute, merged once from the initial route (Envoy ext_proc API: CommonResponse.clear_route_cache): virtual host, then
	// route; the more specific level wins field by field.
	prs, err := initial.extProcPerRoute(cfg.filterName)
	if err != nil {
		return nil, err
	}
	var mode *pmode
	disabled := false
	for _, pr := range prs {
		disabled = pr.GetDisabled()
		if o := pr.GetOverrides(); o != nil {
			if o.GetProcessingMode() != nil {
				mode = o.GetProcessingMode()
			}
			if v := o.GetFailureModeAllow(); v != nil && x.cfg.version >= 35 {
				f.failureModeAllow = v.GetValue()
			}
			if mo := o.GetMetadataOptions(); mo != nil {
				if mo.GetForwardingNamespaces() != nil {
					f.forwardNS = mo.GetForwardingNamespaces().GetUntyped()
				}
				if mo.GetReceivingNamespaces() != nil {
					f.receiveNS = mo.GetReceivingNamespaces().GetUntyped()
				}
			}
		}
	}
	switch {
	case disabled:
		off := &pmode{RequestHeaderMode: modeSkip, ResponseHeaderMode: modeSkip}
		f.dec.setMode(off)
		f.enc.setMode(off)
	case mode != nil:
		f.dec.setMode(mode)
		f.enc.setMode(mode)
	}
	return f, nil
}

// newUpstreamFilter is the attempt's instance of an upstream ext_proc filter, feeding
// sink. Per-route overrides are not merged upstream.
func newUpstreamFilter(x *exchange, a *attempt, cfg *extProcConfig, sink stage) *filter {
	f := &filter{x: x, cfg: cfg, up: a, conn: x.e.processorConn(cfg), statPrefix: "upstream.",
		failureModeAllow: cfg.failureModeAllow, forwardNS: cfg.forwardNS, receiveNS: cfg.receiveNS}
	f.dec = &dirState{f: f, isReq: true, sink: sink}
	f.enc = &dirState{f: f, sink: discard{}}
	f.dec.setMode(cfg.mode)
	f.enc.setMode(cfg.mode)
	return f
}

func (f *filter) inc(name string) { f.x.e.inc(f.statPrefix + name) }

func (f *filter) hook(ev string) {
	if f.up == nil {
		f.x.e.hook(ev)
	}
}

// localReply is sendLocalReply for the filter's errors and ImmediateResponses. In
// upstream placement Envoy ≤1.35 (and most likely 1.36) drops it: the attempt stalls with
// its headers held until a per-try, route or idle timeout fires (Envoy ext_proc API: ImmediateResponse; Envoy ext_proc: message_timeout and failure_mode_allow).
func (f *filter) localReply(code int, body, details string, mutate func(*headerMap)) {
	if f.up != nil {
		f.inc("send_immediate_resp_upstream_ignored")
		f.x.e.hook(hookUpstreamDrop)
		return
	}
	f.x.localReply(code, body, details, mutate)
}

// openStream opens the gRPC stream lazily, on the first message (Envoy ext_proc: one gRPC stream per HTTP request). false means
// "continue without the processor".
func (f *filter) openStream() bool {
	if f.complete {
		return false
	}
	if f.stream != nil {
		return true
	}
	if f.conn == nil {
		f.complete = true // the client could not be created: silently fail open (Envoy ext_proc: message_timeout and failure_mode_allow)
		return false
	}
	var s *procStream
	s = openProcStream(f.x, f.conn, f.cfg.initialMetadata,
		func(m *extprocsvc.ProcessingResponse) { f.onMessage(s, m) },
		func(st *status.Status) { f.onStreamEnd(s, st) })
	f.stream = s
	f.inc("streams_started")
	return true
}

// closeStream resets the stream; Envoy never half-closes (Envoy ext_proc: one gRPC stream per HTTP request).
func (f *filter) closeStream() {
	if f.stream != nil {
		f.stream.cancel()
		f.stream = nil
		f.inc("streams_closed")
	}
}

// stop takes the processor out of the loop for a local reply or a reset.
func (f *filter) stop() {
	f.complete = true
	f.dec.finishCall(cbIdle)
	f.enc.finishCall(cbIdle)
	f.closeStream()
}

func (f *filter) send(d *dirState, req *extprocsvc.ProcessingRequest) {
	req.MetadataContext = f.x.forwardedMetadata(f.forwardNS) // on every message (Envoy ext_proc API: HeaderValue.raw_value)
	attrs := f.cfg.requestAttrs
	if !d.isReq {
		attrs = f.cfg.respAttrs
	}
	if !d.sentAttrs && len(attrs) > 0 {
		d.sentAttrs = true // once per direction, on its first message (Envoy ext_proc API: HeaderValue.raw_value; Envoy ext_proc: request_attributes)
		req.Attributes = map[string]*structpb.Struct{attributesKey: f.x.attributes(attrs, f.up)}
	}
	if f.x.cfg.version >= 34 && !f.protocolSent {
		f.protocolSent = true // first message of the stream only (1.34+)
		req.ProtocolConfig = &extprocsvc.ProtocolConfiguration{
			RequestBodyMode:                         f.dec.bodyMode,
			ResponseBodyMode:                        f.enc.bodyMode,
			SendBodyWithoutWaitingForHeaderResponse: f.cfg.sendBodyWithoutWaiting,
		}
	}
	f.stream.send(req)
	f.inc("stream_msgs_sent")
}

type spuriousError string

func (e spuriousError) Error() string { return string(e) }

// onMessage is Filter::onReceiveMessage.
func (f *filter) onMessage(s *procStream, m *extprocsvc.ProcessingResponse) {
	if s != f.stream || f.complete {
		return // ignored after processing completed
	}
	if d := m.GetOverrideMessageTimeout(); d != nil {
		f.onNewTimeout(d) // every other field is ignored (Envoy ext_proc API: ProcessingResponse; Envoy ext_proc API: ProcessingResponse.mode_override)
		return
	}
	if mo := m.GetModeOverride(); mo != nil && f.cfg.allowModeOverride && !f.cfg.sendBodyWithoutWaiting &&
		(f.dec.cb == cbHeaders || f.enc.cb == cbHeaders) {
		f.overrideMode(mo)
	}
	var err error
	switch r := m.GetResponse().(type) {
	case *extprocsvc.ProcessingResponse_RequestHeaders:
		f.setMetadata(m)
		err = f.dec.handleHeaders(r.RequestHeaders.GetResponse())
	case *extprocsvc.ProcessingResponse_ResponseHeaders:
		f.setMetadata(m)
		err = f.enc.handleHeaders(r.ResponseHeaders.GetResponse())
	case *extprocsvc.ProcessingResponse_RequestBody:
		f.setMetadata(m)
		err = f.dec.handleBody(r.RequestBody.GetResponse())
	case *extprocsvc.ProcessingResponse_ResponseBody:
		f.setMetadata(m)
		err = f.enc.handleBody(r.ResponseBody.GetResponse())
	case *extprocsvc.ProcessingResponse_RequestTrailers, *extprocsvc.ProcessingResponse_ResponseTrailers:
		f.setMetadata(m)
		err = spuriousError("spurious message") // trailers are never sent (SKIP only)
	case *extprocsvc.ProcessingResponse_ImmediateResponse:
		if f.cfg.disableImmediateResponse {
			err = spuriousError("unhandled immediate response due to config disabled it")
			break
		}
		f.setMetadata(m)
		f.inc("stream_msgs_received")
		f.stop()
		f.immediateResponse(r.ImmediateResponse)
		return
	default:
		err = spuriousError("unhandled message")
	}
	var sp spuriousError
	switch {
	case err == nil:
		f.inc("stream_msgs_received")
	case errors.As(err, &sp):
		f.inc("spurious_msgs_received")
		if f.failureModeAllow || f.x.cfg.version < 35 {
			// Ignore the reply and the processor for the rest of the request (≤1.34, or
			// fail-open); 1.35+ counts it as failure_mode_allowed (Envoy ext_proc: message_timeout and failure_mode_allow).
			if f.x.cfg.version >= 35 {
				f.inc("failure_mode_allowed")
			}
			f.closeStream()
			f.complete = true
			f.clearAsyncState()
			return
		}
		f.errorReply(string(sp))
	default:
		f.inc("stream_msgs_received")
		f.errorReply(mutationDetails(err))
	}
}

// errorReply is handleErrorResponse: a local reply with status_on_error (1.36+) or 500,
// empty body.
func (f *filter) errorReply(details string) {
	f.stop()
	f.localReply(f.statusOnError(), "", noSpace(details), nil)
}

func (f *filter) statusOnError() int {
	if f.x.cfg.version >= 36 {
		return f.cfg.statusOnError
	}
	return http.StatusInternalServerError
}

// onStreamEnd handles the processor ending the stream: OK means "continue without me"
// whatever failure_mode_allow says (Envoy ext_proc: one gRPC stream per HTTP request); anything else is a failure (Envoy ext_proc: message_timeout and failure_mode_allow).
func (f *filter) onStreamEnd(s *procStream, st *status.Status) {
	if s != f.stream {
		return
	}
	if st.Code() != codes.OK {
		f.inc("streams_failed")
	}
	if f.complete {
		return
	}
	if st.Code() == codes.OK || f.failureModeAllow {
		if st.Code() != codes.OK {
			f.inc("failure_mode_allowed")
		}
		f.complete = true
		f.closeStream()
		f.clearAsyncState()
		return
	}
	f.stop()
	f.localReply(f.statusOnError(), "",
		noSpace(fmt.Sprintf("ext_proc_error_gRPC_error_%d{%s}", st.Code(), st.Message())), nil)
}

func (f *filter) onMessageTimeout() {
	f.inc("message_timeouts")
	if f.failureModeAllow {
		f.complete = true
		f.closeStream()
		f.inc("failure_mode_allowed")
		f.clearAsyncState()
		return
	}
	// Always 504; status_on_error does not apply (Envoy ext_proc: message_timeout and failure_mode_allow).
	f.stop()
	f.localReply(http.StatusGatewayTimeout, "", "ext_proc_error_per-message_timeout_exceeded", nil)
}

// onNewTimeout is override_message_timeout (Envoy ext_proc API: ProcessingResponse.mode_override).
func (f *filter) onNewTimeout(pd *durationpb.Duration) {
	d := pd.AsDuration().Truncate(time.Millisecond)
	if pd.CheckValid() != nil || d < time.Millisecond || d > f.cfg.maxMessageTimeout {
		f.inc("override_message_timeout_ignored")
		return
	}
	restartedDec := f.dec.restartTimer(d)
	restartedEnc := f.enc.restartTimer(d)
	if !restartedDec && !restartedEnc {
		f.inc("override_message_timeout_ignored")
		return
	}
	f.inc("override_message_timeout_received")
}

// overrideMode applies a mode_override received while a headers reply is awaited
// (Envoy ext_proc API: ProcessingResponse.mode_override).
func (f *filter) overrideMode(mo *pmode) {
	eff := mo
	v34 := f.x.cfg.version >= 34
	if v34 {
		// DEFAULT header/trailer modes keep the filter-level configuration; body modes are
		// literal.
		base := f.cfg.mode
		eff = &pmode{
			RequestHeaderMode:   pick(mo.GetRequestHeaderMode(), base.GetRequestHeaderMode()),
			ResponseHeaderMode:  pick(mo.GetResponseHeaderMode(), base.GetResponseHeaderMode()),
			RequestTrailerMode:  pick(mo.GetRequestTrailerMode(), base.GetRequestTrailerMode()),
			ResponseTrailerMode: pick(mo.GetResponseTrailerMode(), base.GetResponseTrailerMode()),
			RequestBodyMode:     mo.GetRequestBodyMode(),
			ResponseBodyMode:    mo.GetResponseBodyMode(),
		}
	}
	if len(f.cfg.allowedOverrides) > 0 && !slices.ContainsFunc(f.cfg.allowedOverrides, func(a *pmode) bool {
		return (v34 || eff.GetRequestHeaderMode() == a.GetRequestHeaderMode()) &&
			eff.GetRequestBodyMode() == a.GetRequestBodyMode() &&
			eff.GetRequestTrailerMode() == a.GetRequestTrailerMode() &&
			eff.GetResponseHeaderMode() == a.GetResponseHeaderMode() &&
			eff.GetResponseBodyMode() == a.GetResponseBodyMode() &&
			eff.GetResponseTrailerMode() == a.GetResponseTrailerMode()
	}) {
		return // not in allowed_override_modes: ignored
	}
	f.dec.setMode(eff)
	f.enc.setMode(eff)
}

func pick(v, base extprocv3.ProcessingMode_HeaderSendMode) extprocv3.ProcessingMode_HeaderSendMode {
	if v == extprocv3.ProcessingMode_DEFAULT {
		return base
	}
	return v
}

// setMetadata merges dynamic_metadata for the receiving namespaces (Envoy ext_proc API: ProcessingResponse.dynamic_metadata).
func (f *filter) setMetadata(m *extprocsvc.ProcessingResponse) {
	dm := m.GetDynamicMetadata()
	if dm == nil || len(f.receiveNS) == 0 {
		return
	}
	for ns, v := range dm.GetFields() {
		if !slices.Contains(f.receiveNS, ns) {
			continue
		}
		cur := f.x.meta[ns]
		if cur == nil {
			cur = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			f.x.meta[ns] = cur
		}
		// A non-object value counts as an empty struct. MergeFrom replaces per key.
		for k, fv := range v.GetStructValue().GetFields() {
			cur.Fields[k] = proto.Clone(fv).(*structpb.Value)
		}
	}
}

// immediateResponse is sendImmediateResponse (Envoy ext_proc API: ImmediateResponse).
func (f *filter) immediateResponse(ir *extprocsvc.ImmediateResponse) {
	code := http.StatusOK
	if ir.GetStatus() != nil {
		code = int(ir.GetStatus().GetCode())
	}
	if code < 200 {
		code = http.StatusOK
	}
	mutate := func(h *headerMap) {
		if ir.GetHeaders() != nil {
			// Errors here are only logged by Envoy; the reply goes out regardless.
			_ = applyHeaderMutation(ir.GetHeaders(), h, f.cfg.checker, f.x.cfg.limits, false, false,
				func() { f.inc("rejected_header_mutations") })
		}
	}
	f.localReply(code, string(ir.GetBody()), noSpace(ir.GetDetails()), mutate)
}

func (f *filter) clearAsyncState() {
	f.dec.clearAsyncState()
	f.enc.clearAsyncState()
}

type cbState int

const (
	cbIdle cbState = iota
	cbHeaders
	cbBufferedBody
	cbStreamedBody
	cbPartialBody
)

type queued struct {
	data []byte
	eos  bool
}

// dirState is Envoy's ProcessorState for one direction, together with the part of the
// filter manager that holds and releases that direction's headers and data.
type dirState struct {
	f     *filter
	isReq bool
	sink  stage

	sendHeaders, sendTrailers bool
	bodyMode                  bodyMode

	cb                 cbState
	timer              *xtimer
	newTimeoutReceived bool
	headersPending     bool       // a headers message awaits its reply
	hdrs               *headerMap // mutable headers (Envoy's headers_); nil once gone
	all                *headerMap // this direction's headers
	noBody             bool       // headers carried end_stream
	complete           bool       // end of stream seen (complete_body_available_)
	paused             bool       // something is held: continue when done
	headersPassed      bool
	eosPassed          bool
	held               []byte // the filter manager's buffer (bufferedData())
	heldData           bool   // a data callback was buffered, possibly empty
	queue              []queued
	queuedBytes        int
	pendingOut         []queued // data released before the headers (filter-manager order)
	bodyReplaced       bool
	partialDone        bool
	sentAttrs          bool
	watermark          bool // stop reading this direction's body
}

func (d *dirState) setMode(m *pmode) {
	if d.isReq {
		d.sendHeaders = m.GetRequestHeaderMode() != modeSkip
		d.sendTrailers = m.GetRequestTrailerMode() == modeSend
		d.bodyMode = m.GetRequestBodyMode()
	} else {
		d.sendHeaders = m.GetResponseHeaderMode() != modeSkip
		d.sendTrailers = m.GetResponseTrailerMode() == modeSend
		d.bodyMode = m.GetResponseBodyMode()
	}
}

// shouldRemoveContentLength: Envoy frames the body itself in these modes (Envoy ext_proc: content-length after a body mutation).
func (d *dirState) shouldRemoveContentLength() bool {
	return d.bodyMode == modeStreamed || d.bodyMode == modePartial ||
		d.bodyMode == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED ||
		(d.bodyMode == modeBuffered && !d.sendHeaders)
}

func (d *dirState) limit() int { return d.f.x.cfg.bufferLimit }

// startCall arms the message timer for a message just sent; each send restarts it.
func (d *dirState) startCall(s cbState) {
	d.cb = s
	d.timer.cancel()
	d.timer = d.f.x.startTimer(MessageTimeout, d.f.cfg.messageTimeout, d.f.onMessageTimeout)
	d.newTimeoutReceived = false
}

// finishCall stops the message timer, even when other STREAMED chunks are still
// outstanding: Envoy re-arms it only on the next send.
func (d *dirState) finishCall(next cbState) {
	d.cb = next
	d.timer.cancel()
	d.newTimeoutReceived = false
}

func (d *dirState) restartTimer(t time.Duration) bool {
	if !d.timer.active() || d.newTimeoutReceived {
		return false // once per outstanding message (Envoy ext_proc API: ProcessingResponse.mode_override)
	}
	d.timer.cancel()
	d.timer = d.f.x.startTimer(MessageTimeout, t, d.f.onMessageTimeout)
	d.newTimeoutReceived = true
	return true
}

func (d *dirState) newRequest() *extprocsvc.ProcessingRequest {
	return &extprocsvc.ProcessingRequest{}
}

func (d *dirState) sendHeadersMsg(eos bool) {
	req := d.newRequest()
	hh := &extprocsvc.HttpHeaders{Headers: d.all.proto(), EndOfStream: eos}
	if d.isReq {
		req.Request = &extprocsvc.ProcessingRequest_RequestHeaders{RequestHeaders: hh}
	} else {
		req.Request = &extprocsvc.ProcessingRequest_ResponseHeaders{ResponseHeaders: hh}
	}
	d.startCall(cbHeaders)
	d.f.send(d, req)
}

func (d *dirState) sendBodyMsg(p []byte, eos bool, s cbState) {
	req := d.newRequest()
	hb := &extprocsvc.HttpBody{Body: append([]byte(nil), p...), EndOfStream: eos}
	if d.isReq {
		req.Request = &extprocsvc.ProcessingRequest_RequestBody{RequestBody: hb}
	} else {
		req.Request = &extprocsvc.ProcessingRequest_ResponseBody{ResponseBody: hb}
	}
	d.startCall(s)
	d.f.send(d, req)
}

// onHeaders is decodeHeaders / encodeHeaders.
func (d *dirState) onHeaders(h *headerMap, eos bool) {
	f := d.f
	d.all = h
	d.noBody = eos
	if eos {
		d.complete = true
	}
	if d.sendHeaders && f.openStream() {
		// Headers SEND: pause everything until the reply (Envoy ext_proc: processing_mode message order).
		d.hdrs = h
		d.headersPending = true
		d.paused = true
		d.sendHeadersMsg(eos)
	}
	// Removed after the message was built: the processor still sees content-length.
	if !f.complete && d.shouldRemoveContentLength() {
		h.remove("content-length")
	}
	if !d.paused {
		d.release()
	}
}

// onData is decodeData / encodeData (Filter::onData).
func (d *dirState) onData(p []byte, eos bool) {
	f := d.f
	if eos {
		d.complete = true
	}
	if d.bodyReplaced {
		// CONTINUE_AND_REPLACE drains the original body (Envoy ext_proc API: CommonResponse.status).
		if eos {
			d.pass(nil, true)
		}
		return
	}
	if f.complete {
		d.passThrough(p, eos)
		return
	}
	if d.cb == cbHeaders && !(d.bodyMode == modeStreamed && f.cfg.sendBodyWithoutWaiting) {
		// Held until the headers reply, with a watermark (Envoy ext_proc: processing_mode message order).
		d.hold(p)
		d.paused = true
		d.watermark = true
		if d.isReq {
			f.hook(hookRequestHeld)
		} else {
			f.hook(hookResponseHeld)
		}
		return
	}
	switch d.bodyMode {
	case modeBuffered:
		d.hold(p)
		d.paused = true
		if len(d.held) > d.limit() {
			d.tooLarge()
			return
		}
		if eos {
			if !f.openStream() {
				d.continueIfNecessary()
				return
			}
			d.sendBodyMsg(d.held, true, cbBufferedBody) // one message, after the headers reply
		}
	case modeStreamed:
		if !f.openStream() {
			d.passThrough(p, eos)
			return
		}
		d.sendChunk(p, eos) // pipelined: no waiting for the previous reply
		if eos {
			d.paused = true
		}
	case modePartial:
		d.onPartialData(p, eos)
	default:
		d.passThrough(p, eos)
	}
}

func (d *dirState) hold(p []byte) {
	d.held = append(d.held, p...)
	d.heldData = true
}

func (d *dirState) sendChunk(p []byte, eos bool) {
	d.queue = append(d.queue, queued{data: p, eos: eos})
	d.queuedBytes += len(p)
	if d.queuedBytes > d.limit() {
		d.watermark = true
	}
	d.sendBodyMsg(p, eos, cbStreamedBody)
}

func (d *dirState) onPartialData(p []byte, eos bool) {
	f := d.f
	if d.partialDone {
		d.hdrs = nil
		d.passThrough(p, eos)
		return
	}
	d.queue = append(d.queue, queued{data: p, eos: eos})
	d.queuedBytes += len(p)
	d.paused = true
	if d.cb == cbPartialBody {
		return // queued for after the reply
	}
	if eos || d.queuedBytes > d.limit() {
		if !f.openStream() {
			all := d.consolidate()
			d.passThrough(all.data, all.eos)
			return
		}
		all := d.consolidateInPlace()
		d.sendBodyMsg(all.data, all.eos, cbPartialBody)
	}
}

// consolidateInPlace merges the queue into one chunk that stays queued (the message
// about to be sent for it).
func (d *dirState) consolidateInPlace() queued {
	n := d.queuedBytes
	all := d.consolidate()
	d.queue, d.queuedBytes = []queued{all}, n
	return all
}

func (d *dirState) consolidate() queued {
	var all queued
	for _, q := range d.queue {
		all.data = append(all.data, q.data...)
		all.eos = q.eos
	}
	d.queue = nil
	d.queuedBytes = 0
	return all
}

// passThrough continues data while the processor is out of the loop.
func (d *dirState) passThrough(p []byte, eos bool) {
	if d.paused {
		d.hold(p)
		d.continueIfNecessary()
		return
	}
	if len(p) > 0 || eos {
		d.pass(p, eos)
	}
}

func (d *dirState) continueIfNecessary() {
	if !d.paused {
		return
	}
	d.paused = false
	d.release()
}

// release passes the headers (once) and any held data to the next stage, as the filter
// manager does when a stopped filter continues.
func (d *dirState) release() {
	if !d.headersPassed {
		d.headersPassed = true
		eos := d.noBody && !d.heldData && len(d.queue) == 0
		d.sink.headers(d.all, eos)
		if eos {
			d.eosPassed = true
			return
		}
		out := d.pendingOut
		d.pendingOut = nil
		for _, q := range out {
			d.pass(q.data, q.eos)
		}
	}
	if len(d.held) > 0 || (d.complete && len(d.queue) == 0 && !d.eosPassed) {
		p := d.held
		d.held, d.heldData = nil, false
		d.pass(p, d.complete && len(d.queue) == 0)
	}
}

func (d *dirState) pass(p []byte, eos bool) {
	if d.eosPassed {
		return
	}
	if !d.headersPassed {
		d.pendingOut = append(d.pendingOut, queued{data: p, eos: eos})
		return
	}
	if eos {
		d.eosPassed = true
	}
	d.sink.data(p, eos)
}

// tooLarge: a BUFFERED body over the buffer limit (Envoy ext_proc: BUFFERED bodies and the buffer limit). The stand-in checks every
// chunk, including the last; real Envoy may let a final codec chunk slip past the limit.
func (d *dirState) tooLarge() {
	x := d.f.x
	if d.isReq {
		x.e.inc("downstream_rq_too_large")
		x.localReply(http.StatusRequestEntityTooLarge, "Payload Too Large", "request_payload_too_large", nil)
		return
	}
	x.e.inc("rs_too_large")
	x.localReply(http.StatusInternalServerError, "Internal Server Error", "response_payload_too_large", nil)
}

func (d *dirState) mutate(cr *extprocsvc.CommonResponse) error {
	return applyHeaderMutation(cr.GetHeaderMutation(), d.hdrs, d.f.cfg.checker, d.f.x.cfg.limits,
		cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE, d.shouldRemoveContentLength(),
		func() { d.f.inc("rejected_header_mutations") })
}

// handleHeaders is ProcessorState::handleHeadersResponse.
func (d *dirState) handleHeaders(cr *extprocsvc.CommonResponse) error {
	f := d.f
	streamedEarly := d.cb == cbStreamedBody && f.cfg.sendBodyWithoutWaiting && d.headersPending
	if d.cb != cbHeaders && !streamedEarly {
		return spuriousError("spurious message")
	}
	if cr.GetHeaderMutation() != nil {
		if err := d.mutate(cr); err != nil {
			return err
		}
	}
	d.clearRouteCache(cr)
	if d.isReq {
		defer f.hook(hookReqHeadersDone)
	}
	replace := cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE
	if d.cb == cbHeaders || replace {
		d.finishCall(cbIdle)
	} else {
		d.finishCall(d.cb)
	}
	d.headersPending = false
	if replace {
		// CONTINUE_AND_REPLACE (Envoy ext_proc API: CommonResponse.status): replace the body, stop this direction.
		if bm := cr.GetBodyMutation(); bm != nil {
			d.all.remove("content-length")
			d.bodyReplaced = true
			d.held = applyBodyMutation(bm, d.held)
			d.heldData = true
		}
		d.queue, d.queuedBytes = nil, 0
		d.bodyMode = modeNone
		d.sendTrailers = false
		d.watermark = false
	} else if !d.noBody {
		switch {
		case d.complete && d.bodyMode != modeNone:
			if d.cb != cbStreamedBody {
				if d.heldData {
					// The whole body arrived during the headers call: whatever the body
					// mode, Envoy sends it as one buffered message and keeps the headers.
					if d.bodyMode == modeBuffered && len(d.held) > d.limit() {
						d.tooLarge()
						return nil
					}
					d.sendBodyMsg(d.held, true, cbBufferedBody)
					d.watermark = false
					return nil
				}
			} else {
				d.sendHeldStreamed(true)
				return nil
			}
		case d.bodyMode == modeBuffered:
			d.watermark = false // headers stay held until the body reply (Envoy ext_proc: processing_mode message order)
			return nil
		case d.bodyMode == modeStreamed:
			d.sendHeldStreamed(false)
			return nil
		case d.bodyMode == modePartial:
			if len(d.held) > 0 {
				d.queue = append(d.queue, queued{data: d.held})
				d.queuedBytes += len(d.held)
				d.held, d.heldData = nil, false
			}
			if d.queuedBytes > d.limit() {
				all := d.consolidateInPlace()
				d.sendBodyMsg(all.data, false, cbPartialBody)
			} else {
				d.watermark = false
			}
			return nil
		}
	}
	d.hdrs = nil
	d.continueIfNecessary()
	d.watermark = false
	return nil
}

// sendHeldStreamed sends the data held during the headers call as one consolidated chunk
// and lets the headers go (Envoy ext_proc: processing_mode message order).
func (d *dirState) sendHeldStreamed(eos bool) {
	if len(d.held) > 0 {
		p := d.held
		d.held, d.heldData = nil, false
		d.sendChunk(p, eos)
	}
	if d.queuedBytes < d.limit()/2 {
		d.watermark = false
	}
	d.continueIfNecessary()
}

// handleBody is ProcessorState::handleBodyResponse.
func (d *dirState) handleBody(cr *extprocsvc.CommonResponse) error {
	f := d.f
	shouldContinue := false
	switch d.cb {
	case cbBufferedBody:
		if cr.GetHeaderMutation() != nil && d.hdrs != nil {
			if err := d.mutate(cr); err != nil {
				return err
			}
		}
		if bm := cr.GetBodyMutation(); bm != nil {
			// Header mutations in the same reply were applied first (Envoy ext_proc: content-length after a body mutation).
			if d.hdrs != nil {
				if cl, ok := d.hdrs.get("content-length"); ok {
					if n, err := strconv.ParseUint(cl, 10, 64); err == nil && n != uint64(len(bm.GetBody())) {
						return mutationError("mismatch between content length and the length of the mutated body")
					}
				}
			}
			d.held = applyBodyMutation(bm, d.held)
		}
		d.watermark = false
		d.finishCall(cbIdle)
		shouldContinue = true
	case cbStreamedBody:
		if f.cfg.sendBodyWithoutWaiting && d.hdrs != nil && cr.GetHeaderMutation() != nil {
			if err := d.mutate(cr); err != nil {
				return err
			}
		} // otherwise header mutations are ignored: the headers are gone (Envoy ext_proc API: HeaderMutation)
		c := d.queue[0]
		d.queue = d.queue[1:]
		d.queuedBytes -= len(c.data)
		data := c.data
		if bm := cr.GetBodyMutation(); bm != nil {
			data = applyBodyMutation(bm, data)
		}
		shouldContinue = c.eos
		if len(data) > 0 || c.eos {
			d.pass(data, c.eos)
		}
		if d.queuedBytes < d.limit()/2 {
			d.watermark = false
		}
		if len(d.queue) == 0 {
			d.finishCall(cbIdle)
		} else {
			d.finishCall(cbStreamedBody)
		}
	case cbPartialBody:
		if cr.GetHeaderMutation() != nil && d.hdrs != nil {
			if err := d.mutate(cr); err != nil {
				return err
			}
		}
		sent := d.queue[0]
		d.queue = d.queue[1:]
		d.queuedBytes -= len(sent.data)
		data := sent.data
		if bm := cr.GetBodyMutation(); bm != nil {
			data = applyBodyMutation(bm, data)
		}
		// Pass the processed chunk, then what queued up during the call; the headers go
		// first when the filter continues below.
		if len(data) > 0 || sent.eos {
			d.pass(data, sent.eos)
		}
		if len(d.queue) > 0 {
			rest := d.consolidate()
			d.pass(rest.data, rest.eos)
		}
		d.watermark = false
		d.finishCall(cbIdle)
		d.partialDone = true
		shouldContinue = true
	default:
		return spuriousError("spurious message")
	}
	d.clearRouteCache(cr)
	d.hdrs = nil
	if shouldContinue {
		d.continueIfNecessary()
	}
	return nil
}

func applyBodyMutation(bm *extprocsvc.BodyMutation, buf []byte) []byte {
	switch m := bm.GetMutation().(type) {
	case *extprocsvc.BodyMutation_Body:
		return append([]byte(nil), m.Body...)
	case *extprocsvc.BodyMutation_ClearBody:
		if m.ClearBody {
			return nil
		}
	}
	return buf
}

// clearRouteCache is DecodingProcessorState::clearRouteCache (Envoy ext_proc API: CommonResponse.clear_route_cache); the response
// path ignores the flag.
func (d *dirState) clearRouteCache(cr *extprocsvc.CommonResponse) {
	if !d.isReq {
		return
	}
	flag := cr.GetClearRouteCache()
	if d.f.up != nil {
		// "Upstream HTTP filters cannot change route or cluster" (Envoy ext_proc API: CommonResponse.clear_route_cache; Envoy router: upstream_http_filters).
		if flag {
			d.f.inc("clear_route_cache_upstream_ignored")
		}
		return
	}
	if cr.GetHeaderMutation() == nil {
		if flag {
			d.f.inc("clear_route_cache_ignored")
		}
		return
	}
	switch d.f.cfg.routeCacheAction {
	case extprocv3.ExternalProcessor_CLEAR:
		d.f.x.clearRouteCache()
	case extprocv3.ExternalProcessor_RETAIN:
		if flag {
			d.f.inc("clear_route_cache_disabled")
		}
	default:
		if flag {
			d.f.x.clearRouteCache()
		}
	}
}

// clearAsyncState gives up on outstanding replies and releases what was held.
func (d *dirState) clearAsyncState() {
	d.finishCall(cbIdle)
	d.headersPending = false
	if len(d.queue) > 0 {
		all := d.consolidate()
		d.pass(all.data, all.eos)
	}
	d.watermark = false
	d.continueIfNecessary()
}
