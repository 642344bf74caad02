package extproc

import (
	"bytes"
	"strconv"
	"unsafe"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// bodyReader consumes a response body, chunk by chunk, and may rewrite it.
type bodyReader interface {
	// chunk returns the bytes to send in place of p, and whether they differ
	// from p (if not, the reply carries no body mutation).
	chunk(p []byte, eos bool) (out []byte, changed bool)
	// usage is the response's final usage, when the provider reported it.
	usage() (usage.Usage, bool)
	// partial is whatever usage arrived, final or not, for an estimate.
	partial() (usage.Usage, bool)
	// received is how many bytes of completion text arrived, for an
	// estimate when the provider's usage never did.
	received() int
	// outcome says how a body that reached its end ended for the client:
	// "" when complete, outcomeIncomplete when the provider's stream ended
	// without its end marker or with an error event, outcomeTerminated
	// when the gateway ended it (guardrail, budget).
	outcome() string
}

func (x *exchange) onResponseHeaders(m *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	h := headersOf(m.GetHeaders())
	x.rec.upstreamHeaders = x.srv.now()
	x.rec.status, _ = strconv.Atoi(h.get(":status"))
	reply := &extprocv3.ProcessingResponse{}
	var mu mutation
	removeMatching(h, &mu, strippedDownstream)
	mu.set("x-tollgate-request-id", x.rec.requestID)
	x.rateLimitHeaders(&mu)
	if x.stream && x.rec.status == 200 && x.isStreamBody(h.get("content-type")) {
		// Stream SSE through as it comes (spec §2.8). content-length was not
		// removed by Envoy at header time because the configured mode was
		// BUFFERED, so remove it here (spec §3.1). The headers leave now, so
		// usage and cost travel in an SSE comment at the end instead.
		reply.ModeOverride = streamingMode
		mu.remove("content-length")
		mu.set("server-timing", x.serverTiming())
		if tr := x.target.Provider.Translator; tr != nil {
			mu.set("content-type", "text/event-stream; charset=utf-8")
			x.body = x.translatedStream(tr)
		} else {
			x.body = &sseReader{x: x, stripUsage: x.injectedUsage, guard: newOutputGuard(x.guard)}
		}
	} else {
		// Buffered (spec §1.3): the headers are held until the body reply,
		// which adds the metering headers.
		x.body = &jsonReader{x: x}
	}
	if m.GetEndOfStream() {
		x.respEnded = true
		x.meteringHeaders(&mu)
	}
	reply.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: headersReply(&mu, false)}
	return reply
}

func (x *exchange) onResponseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if x.rec.firstByte.IsZero() {
		x.rec.firstByte = x.srv.now()
	}
	common := &extprocv3.CommonResponse{}
	if x.body != nil {
		out, changed := x.body.chunk(b.GetBody(), b.GetEndOfStream())
		if changed {
			common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}}
		} else {
			out = b.GetBody()
		}
		x.traceBody(out, b.GetEndOfStream())
	}
	if b.GetEndOfStream() {
		x.respEnded = true
	}
	if jr, buffered := x.body.(*jsonReader); buffered && b.GetEndOfStream() {
		// Header mutations in a BUFFERED body reply still apply: the
		// response headers are held until this reply (spec §2.3).
		mu := jr.headers
		x.meteringHeaders(&mu)
		common.HeaderMutation = mu.m
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{Response: common},
	}}
}

// jsonReader reads usage from a buffered JSON response. Envoy sends the whole
// body in one message (BUFFERED); chunks are still accumulated in case a
// future mode splits it.
type jsonReader struct {
	x       *exchange
	buf     []byte
	u       usage.Usage
	ok      bool
	text    int
	headers mutation // set by a translation, applied with the body reply
}

func (r *jsonReader) chunk(p []byte, eos bool) ([]byte, bool) {
	data := p
	if len(r.buf) > 0 || !eos {
		r.buf = append(r.buf, p...)
		data = r.buf
	}
	if !eos {
		return nil, false
	}
	r.buf = nil
	changed := false
	if tr := r.x.target.Provider; tr != nil && tr.Translator != nil && r.x.rec.status != 0 {
		data, changed = r.translate(tr.Translator, data), true
	} else if r.x.endpoint == routing.EndpointTranscriptions {
		r.u, r.ok = transcriptionUsage(data)
	} else {
		r.u, r.ok = usage.FromOpenAI(data)
		if !r.ok {
			r.text = len(gjson.Get(view(data), "choices.0.message.content").Str)
		}
	}
	if g := newOutputGuard(r.x.guard); g != nil && r.x.rec.status >= 200 && r.x.rec.status < 300 {
		out, err := g.response(data)
		if err != nil {
			e := guardError(err)
			out = e.Body()
			r.headers.set(":status", strconv.Itoa(e.Status))
			r.x.rec.status = e.Status
		}
		r.headers.set("content-type", "application/json")
		r.headers.setContentLength(len(out))
		return out, true
	}
	return data, changed
}

// translate turns a provider's whole response into OpenAI's format. The
// body changes length, and in BUFFERED mode Envoy kept content-length, so
// the reply sets the exact new one (spec §3.1); an error's status is mapped
// too (a :status mutation is allowed on responses, spec §2.3).
func (r *jsonReader) translate(tr translate.Schema, data []byte) []byte {
	status := r.x.rec.status
	var out []byte
	if status >= 200 && status < 300 {
		var err error
		out, r.u, r.ok, err = tr.Response(data, r.x.target.Model)
		if err != nil {
			status, out = 502, oaierror.Internal(502, "bad_provider_response", "The provider's response could not be read.").Body()
		}
	} else {
		status, out = tr.Error(status, data)
	}
	if status != r.x.rec.status {
		r.headers.set(":status", strconv.Itoa(status))
		r.x.rec.status = status
	}
	if !r.ok {
		r.text = len(gjson.Get(view(out), "choices.0.message.content").Str)
	}
	r.headers.set("content-type", "application/json")
	r.headers.setContentLength(len(out))
	return out
}

func (r *jsonReader) usage() (usage.Usage, bool)   { return r.u, r.ok }
func (r *jsonReader) partial() (usage.Usage, bool) { return r.u, r.ok }
func (r *jsonReader) received() int                { return r.text }
func (r *jsonReader) outcome() string              { return "" }

// maxEventSize bounds one buffered SSE event, so a hostile or broken
// upstream cannot make the processor buffer without limit.
const maxEventSize = 4 << 20

// sseReader reads usage from an SSE stream of chat completion chunks.
//
// It re-frames the stream: each reply carries the events completed by that
// chunk, byte for byte as the provider sent them, and holds back an
// incomplete one until it completes. That lets it put the metering comment
// just before "data: [DONE]" and end a stream cleanly when a budget runs out.
// With stripUsage (the gateway added include_usage) it also drops the
// usage-only chunk and the usage key of the others, so the client sees
// exactly the stream it asked for.
type sseReader struct {
	x          *exchange
	guard      *outputGuard
	sc         sse.Scanner
	stripUsage bool
	out        []byte
	u          usage.Usage
	ok         bool
	text       int  // bytes of completion text seen
	commented  bool // the metering comment was sent
	terminated bool // the stream was ended early; drop what follows
	complete   bool // data: [DONE] arrived
	errored    bool // the provider sent an error event
}

func (r *sseReader) chunk(p []byte, eos bool) ([]byte, bool) {
	if r.sc.MaxEventSize == 0 {
		r.sc.MaxEventSize = maxEventSize
	}
	if r.terminated {
		return nil, true // an empty body drops the chunk (spec §2.4)
	}
	if r.sc.Err() != nil {
		// An oversized event made us give up reading this stream; the rest
		// passes through as it comes.
		return nil, false
	}
	if r.x.budgetSpent(r.text) {
		// Already-complete events went out with earlier chunks; this chunk
		// and everything after it are replaced by the error event.
		r.terminated = true
		return append(r.out[:0], budgetErrorEvent...), true
	}
	r.sc.Feed(p)
	if eos {
		r.sc.Finish()
	}
	r.out = r.out[:0]
	for !r.terminated {
		ev, more := r.sc.Next()
		if !more {
			break
		}
		r.inspect(ev)
	}
	if r.terminated {
		return r.out, true // a guardrail ended the stream; nothing after its error event
	}
	if r.sc.Err() != nil {
		// Everything held back behind the oversized event goes on as it came:
		// nothing is ever lost.
		r.out = append(r.out, r.sc.Rest()...)
		return r.out, true
	}
	if eos {
		r.out = append(r.out, r.sc.Rest()...)
		if !r.commented {
			r.commented = true
			r.out = append(r.out, r.x.meterComment()...)
		}
		if !r.complete && !r.errored {
			// The provider ended the stream without [DONE]: never let that
			// look like a complete answer.
			r.out = append(r.out, incompleteEvent...)
		}
	}
	return r.out, true
}

// incompleteEvent ends a stream the provider cut short, in OpenAI's error
// format, which SDKs raise as an error.
var incompleteEvent = []byte(`data: {"error":{"message":"The provider's stream ended before the response was complete.","type":"server_error","param":null,"code":"stream_incomplete"}}` + "\n\n")

var doneData = []byte("[DONE]")

// inspect records usage and text from one event and appends what the client
// should receive for it to r.out.
func (r *sseReader) inspect(ev sse.Event) {
	data := ev.Data
	if len(data) == 0 || data[0] != '{' { // comments, [DONE], non-JSON
		if bytes.Equal(data, doneData) {
			r.complete = true
			if !r.commented {
				r.commented = true
				r.out = append(r.out, r.x.meterComment()...)
			}
		}
		r.out = append(r.out, ev.Raw...)
		return
	}
	js := view(data)
	if gjson.Get(js, "error").Exists() {
		r.errored = true
	}
	if c := gjson.Get(js, "choices.0.delta"); c.Exists() {
		r.text += len(c.Get("content").Str) + len(c.Get("refusal").Str) + len(c.Get("tool_calls.0.function.arguments").Str)
	}
	u := gjson.Get(js, "usage")
	if u.IsObject() {
		// Providers may repeat usage (Gemini sends it on content chunks);
		// the last one is the total.
		if got, ok := usage.FromOpenAI(data); ok {
			r.u, r.ok = got, true
		}
	}
	if r.stripUsage && u.IsObject() && !gjson.Get(js, "choices.0").Exists() {
		return // the usage-only chunk ("choices":[]) the client did not ask for
	}
	if (!r.stripUsage || !u.Exists()) && r.guard == nil {
		r.out = append(r.out, ev.Raw...)
		return
	}
	out := data
	if r.stripUsage && u.Exists() {
		if b, err := sjson.DeleteBytes(out, "usage"); err == nil {
			out = b
		}
	}
	if r.guard != nil {
		b, err := r.guard.chunk(out)
		if err != nil {
			r.out = append(r.out, guardErrorEvent(err)...)
			r.terminated = true
			return
		}
		out = b
	}
	i := bytes.Index(ev.Raw, data)
	if i < 0 { // multi-line data is not how chat completions stream
		r.out = append(r.out, ev.Raw...)
		return
	}
	r.out = append(r.out, ev.Raw[:i]...)
	r.out = append(r.out, out...)
	r.out = append(r.out, ev.Raw[i+len(data):]...)
}

func (r *sseReader) usage() (usage.Usage, bool)   { return r.u, r.ok }
func (r *sseReader) partial() (usage.Usage, bool) { return r.u, r.ok }

func (r *sseReader) outcome() string {
	switch {
	case r.terminated:
		return outcomeTerminated
	case !r.complete || r.errored:
		return outcomeIncomplete
	}
	return ""
}

// translatingReader turns a provider's SSE stream into OpenAI chat
// completion chunks through the provider's translator, event by event.
type translatingReader struct {
	x          *exchange
	guard      *outputGuard
	post       sse.Scanner // re-reads the translator's output for the guard
	st         translate.Stream
	sc         sse.Scanner
	out        []byte
	text       int
	commented  bool
	ended      bool
	complete   bool // the provider's stream ended cleanly
	terminated bool
}

var doneLine = []byte("data: [DONE]")

func (r *translatingReader) chunk(p []byte, eos bool) ([]byte, bool) {
	if r.sc.MaxEventSize == 0 {
		r.sc.MaxEventSize = maxEventSize
	}
	if out, stop := r.stopped(); stop {
		return out, true
	}
	r.sc.Feed(p)
	if eos {
		r.sc.Finish()
	}
	for {
		ev, more := r.sc.Next()
		if !more {
			break
		}
		if ev.IsComment() || ev.Data == nil {
			continue // pings and keep-alives mean nothing to an OpenAI client
		}
		if d := gjson.Get(view(ev.Data), "delta"); d.Exists() {
			r.text += len(d.Get("text").Str) + len(d.Get("partial_json").Str)
		}
		if r.emit(ev.Name, ev.Data) {
			r.terminated = true
			return r.out, true
		}
	}
	if r.sc.Err() != nil {
		// A provider event too large to translate: end the client's stream
		// honestly rather than pass bytes it cannot parse.
		eos = true
	}
	if eos {
		r.complete = r.end()
	}
	return r.out, true
}

// stopped starts a chunk: after the stream ended or was terminated the
// chunk is dropped (nil), and a spent budget terminates the stream with the
// budget error event. Otherwise it resets r.out and reports false.
func (r *translatingReader) stopped() ([]byte, bool) {
	if r.terminated || r.ended {
		return nil, true // an empty body drops the chunk (spec §2.4)
	}
	r.out = r.out[:0]
	if r.x.budgetSpent(r.text) {
		r.terminated = true
		return append(r.out, budgetErrorEvent...), true
	}
	return nil, false
}

// end closes the client's stream: the metering comment if [DONE] did not
// carry it, then the translator's ending. It reports whether the provider's
// stream ended cleanly.
func (r *translatingReader) end() (complete bool) {
	if !r.commented {
		r.commented = true
		r.out = append(r.out, r.x.meterComment()...)
	}
	r.out, complete = r.st.End(r.out)
	r.ended = true
	return complete
}

// guardOutput runs the output guard over the OpenAI events the translator
// appended to out after start, rewriting them in place.
func (r *translatingReader) guardOutput(out []byte, start int) ([]byte, bool) {
	r.post.Reset()
	r.post.Feed(out[start:])
	r.post.Finish()
	var rewritten []byte
	for {
		ev, more := r.post.Next()
		if !more {
			break
		}
		if len(ev.Data) == 0 || ev.Data[0] != '{' {
			rewritten = append(rewritten, ev.Raw...)
			continue
		}
		data, err := r.guard.chunk(ev.Data)
		if err != nil {
			return append(append(out[:start], rewritten...), guardErrorEvent(err)...), true
		}
		rewritten = append(rewritten, "data: "...)
		rewritten = append(rewritten, data...)
		rewritten = append(rewritten, "\n\n"...)
	}
	return append(out[:start], rewritten...), false
}

func (r *translatingReader) usage() (usage.Usage, bool)   { return r.st.Usage() }
func (r *translatingReader) partial() (usage.Usage, bool) { return r.st.Partial() }
func (r *translatingReader) received() int                { return r.text }

func (r *translatingReader) outcome() string {
	switch {
	case r.terminated:
		return outcomeTerminated
	case !r.complete:
		return outcomeIncomplete
	}
	return ""
}

// insertAt inserts ins into b at i.
func insertAt(b []byte, i int, ins []byte) []byte {
	b = append(b, ins...)
	copy(b[i+len(ins):], b[i:len(b)-len(ins)])
	copy(b[i:], ins)
	return b
}
func (r *sseReader) received() int { return r.text }

func zapProvider(name string) zap.Field { return zap.String("provider", name) }

// view reads b as a string without copying it. gjson.GetBytes copies its
// results to keep them valid; results here are used only while the event's
// bytes are alive, so the copy per chunk is avoidable.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
