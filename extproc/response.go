package extproc

import (
	"bytes"
	"strconv"
	"strings"
	"unsafe"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/extproc/sse"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// bodyReader consumes a response body, chunk by chunk, and may rewrite it.
type bodyReader interface {
	// chunk returns the bytes to send in place of p, and whether they differ
	// from p (if not, the reply carries no body mutation).
	chunk(p []byte, eos bool) (out []byte, changed bool)
	usage() (usage.Usage, bool)
}

func (x *exchange) onResponseHeaders(m *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	h := headersOf(m.GetHeaders())
	x.rec.upstreamHeaders = x.srv.now()
	x.rec.status, _ = strconv.Atoi(h.get(":status"))
	reply := &extprocv3.ProcessingResponse{}
	var mu mutation
	if x.stream && x.rec.status == 200 && strings.HasPrefix(h.get("content-type"), "text/event-stream") {
		// Stream SSE through as it comes (spec §2.8). content-length was not
		// removed by Envoy at header time because the configured mode was
		// BUFFERED, so remove it here (spec §3.1).
		reply.ModeOverride = streamingMode
		mu.remove("content-length")
		x.body = &sseReader{rewrite: x.injectedUsage}
	} else if x.rec.status == 200 {
		x.body = &jsonReader{}
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
		if out, changed := x.body.chunk(b.GetBody(), b.GetEndOfStream()); changed {
			common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}}
		}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{Response: common},
	}}
}

// jsonReader reads usage from a buffered JSON response. Envoy sends the whole
// body in one message (BUFFERED); chunks are still accumulated in case a
// future mode splits it.
type jsonReader struct {
	buf []byte
	u   usage.Usage
	ok  bool
}

func (r *jsonReader) chunk(p []byte, eos bool) ([]byte, bool) {
	data := p
	if len(r.buf) > 0 || !eos {
		r.buf = append(r.buf, p...)
		data = r.buf
	}
	if eos {
		r.u, r.ok = usage.FromOpenAI(data)
		r.buf = nil
	}
	return nil, false
}

func (r *jsonReader) usage() (usage.Usage, bool) { return r.u, r.ok }

// sseReader reads usage from an SSE stream of chat completion chunks.
//
// Without rewrite it only observes: the reply carries no body mutation and
// the client receives the provider's bytes untouched. With rewrite (the
// gateway added include_usage) it re-frames the stream: complete events are
// emitted as they complete, the usage-only chunk is dropped and the usage key
// removed from the others, so the client sees exactly the stream it asked for.
// maxEventSize bounds one buffered SSE event, so a hostile or broken
// upstream cannot make the processor buffer without limit.
const maxEventSize = 4 << 20

type sseReader struct {
	sc      sse.Scanner
	rewrite bool
	out     []byte
	u       usage.Usage
	ok      bool
}

func (r *sseReader) chunk(p []byte, eos bool) ([]byte, bool) {
	if r.sc.MaxEventSize == 0 {
		r.sc.MaxEventSize = maxEventSize
	}
	if r.sc.Err() != nil {
		// An oversized event made us give up reading this stream; the rest
		// passes through as it comes.
		return nil, false
	}
	r.sc.Feed(p)
	if eos {
		r.sc.Finish()
	}
	r.out = r.out[:0]
	for {
		ev, more := r.sc.Next()
		if !more {
			break
		}
		r.inspect(ev)
	}
	if !r.rewrite {
		return nil, false
	}
	if eos || r.sc.Err() != nil {
		// An incomplete trailing event (or everything held back behind an
		// oversized one) is passed on as it came: nothing is ever lost.
		r.out = append(r.out, r.sc.Rest()...)
	}
	return r.out, true
}

// inspect records usage from one event and, in rewrite mode, appends what the
// client should receive for it to r.out.
func (r *sseReader) inspect(ev sse.Event) {
	data := ev.Data
	if len(data) == 0 || data[0] != '{' { // comments, [DONE], non-JSON
		r.emit(ev.Raw)
		return
	}
	u := gjson.Get(view(data), "usage")
	if !u.Exists() {
		r.emit(ev.Raw)
		return
	}
	if u.IsObject() {
		// Providers may repeat usage (Gemini sends it on content chunks);
		// the last one is the total.
		if got, ok := usage.FromOpenAI(data); ok {
			r.u, r.ok = got, true
		}
	}
	if !r.rewrite {
		return
	}
	if u.IsObject() && !gjson.Get(view(data), "choices.0").Exists() {
		return // the usage-only chunk ("choices":[]) the client did not ask for
	}
	i := bytes.Index(ev.Raw, data)
	stripped, err := sjson.DeleteBytes(data, "usage")
	if err != nil || i < 0 { // multi-line data is not how chat completions stream
		r.out = append(r.out, ev.Raw...)
		return
	}
	r.out = append(r.out, ev.Raw[:i]...)
	r.out = append(r.out, stripped...)
	r.out = append(r.out, ev.Raw[i+len(data):]...)
}

func (r *sseReader) emit(raw []byte) {
	if r.rewrite {
		r.out = append(r.out, raw...)
	}
}

func (r *sseReader) usage() (usage.Usage, bool) { return r.u, r.ok }

func zapProvider(name string) zap.Field { return zap.String("provider", name) }

// view reads b as a string without copying it. gjson.GetBytes copies its
// results to keep them valid; results here are used only while the event's
// bytes are alive, so the copy per chunk is avoidable.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
