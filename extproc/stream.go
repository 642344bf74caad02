package extproc

import (
	"bytes"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/openai"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// maxEventSize bounds one buffered SSE event (or event-stream message), so a
// hostile or broken upstream cannot make the processor buffer without limit.
const maxEventSize = 4 << 20

// streamMeter is all a stream reader asks of its request's meter.
type streamMeter interface {
	// budgetSpent reports whether a budget ran out mid-stream, counting
	// received bytes of completion text at the estimate's rate.
	budgetSpent(received int) bool
	// endComment settles the meter and returns the SSE comment carrying
	// its figures.
	endComment() []byte
}

// eventSource cuts a provider's stream into events: SSE (sseSource) or AWS
// event-stream messages (eventStreamSource).
type eventSource interface {
	// feed takes the next chunk; eos marks the last.
	feed(p []byte, eos bool)
	// next returns the next complete event; Raw is set only for SSE.
	next() (sse.Event, bool)
	// drained is called once next reported no more events for the chunk.
	drained(eos bool)
	// err reports that the stream can no longer be read (an oversized or
	// corrupt event).
	err() error
	// rest is what arrived but forms no complete event.
	rest() []byte
}

// streamReader reads every streamed response, whatever its schema: the
// source cuts the provider's stream into events, the schema's Stream
// translates each one into OpenAI chunks (a translate.RawStream passes an
// unchanged event on as its raw bytes), and the reader adds what every
// stream needs once: the mid-stream budget check, output guardrails, the
// metering comment before data: [DONE] (or at the end), and the
// incomplete-stream tail, which the Stream's End writes.
//
// Each reply carries the events completed by that chunk and holds back an
// incomplete one until it completes.
type streamReader struct {
	x      streamMeter
	st     translate.Stream
	raw    translate.RawStream // st, when it passes events through raw
	counts textRaw             // raw, when it counts completion text as it reads an event
	src    eventSource
	guard  *outputGuard
	textOf func(data []byte) int // bytes of completion text in one provider event

	post    sse.Scanner // re-reads output events for the guard
	scratch []byte      // the guard's rewritten events
	out     []byte
	text    int // bytes of completion text received

	commented  bool // the metering comment was sent
	ended      bool // the stream's end was written; drop what follows
	terminated bool // the gateway ended the stream; drop what follows
	passing    bool // a raw stream became unreadable: the rest passes as it comes
	complete   bool // End reported a clean end

	replies *chunkReplies // allocated on the first reply, then reused
}

// chunkReplies are a stream's replies to its body chunks, allocated once
// and reused for every chunk. That is safe because the serve loop sends
// each reply before it reads the next message, and Send has encoded the
// reply by the time it returns (the codec copies response bodies,
// internal/grpccodec): nothing holds a reply, or out, past its Send.
type chunkReplies struct {
	pass, mutate         extprocv3.ProcessingResponse
	passBody, mutateBody extprocv3.ProcessingResponse_ResponseBody
	passResp, mutateResp extprocv3.BodyResponse
	common               extprocv3.CommonResponse
	mutation             extprocv3.BodyMutation
	body                 extprocv3.BodyMutation_Body
}

// reply is the reply to a chunk: an empty BodyResponse when the chunk
// passes as it came, else one whose body mutation is out.
func (r *streamReader) reply(out []byte, changed bool) *extprocv3.ProcessingResponse {
	c := r.replies
	if c == nil {
		c = &chunkReplies{}
		c.pass.Response, c.passBody.ResponseBody = &c.passBody, &c.passResp
		c.mutate.Response, c.mutateBody.ResponseBody = &c.mutateBody, &c.mutateResp
		c.mutateResp.Response, c.common.BodyMutation, c.mutation.Mutation = &c.common, &c.mutation, &c.body
		r.replies = c
	}
	if !changed {
		return &c.pass
	}
	c.body.Body = out
	return &c.mutate
}

// newStreamReader returns the reader of a stream in schema s's framing.
func (x *exchange) newStreamReader(s translate.Schema) *streamReader {
	includeUsage := x.clientUsage
	if translate.IsVerbatim(s) {
		includeUsage = !x.injectedUsage // only what the gateway itself added is removed
	}
	return newStreamReader(x, s, x.target.Model, includeUsage, newOutputGuard(x.guard))
}

func newStreamReader(m streamMeter, s translate.Schema, model string, includeUsage bool, g *outputGuard) *streamReader {
	r := &streamReader{x: m, st: s.NewStream(model, includeUsage), guard: g}
	r.raw, _ = r.st.(translate.RawStream)
	r.counts, _ = r.st.(textRaw)
	switch {
	case translate.FramingOf(s) == translate.FramingEventStream:
		r.src = newEventStreamSource()
		r.textOf = eventStreamText
	case r.raw != nil:
		r.src = &sseSource{all: true}
		r.textOf = openAIText
	default:
		r.src = &sseSource{}
		r.textOf = sseText
	}
	if c, ok := r.st.(textCounter); ok {
		r.textOf = c.completionText
	}
	return r
}

// textCounter is a Stream that counts its provider events' completion text
// itself where the framing's default counter would misread them (Messages
// streams: native Anthropic events, or chat chunks under a non-OpenAI
// output), so the mid-stream budget check and a cut stream's estimate see it.
type textCounter interface {
	completionText(data []byte) int
}

// textRaw is a RawStream that counts an event's completion text in the
// pass that reads it (the OpenAI pass-through stream), so the event is read
// once, not once to count and once to pass.
type textRaw interface {
	RawText(out, raw, data []byte) ([]byte, int)
}

// init gives a reader built as a bare literal (tests) the identity schema.
func (r *streamReader) init() {
	if r.src == nil {
		*r = *newStreamReader(r.x, openai.Passthrough{}, "", true, r.guard)
	}
}

func (r *streamReader) chunk(p []byte, eos bool) ([]byte, bool) {
	r.init()
	if r.terminated || r.ended {
		return nil, true // an empty body drops the chunk (Envoy ext_proc API: BodyMutation)
	}
	if r.passing {
		return nil, false
	}
	r.out = r.out[:0]
	if r.x.budgetSpent(r.text) {
		// Already-complete events went out with earlier chunks; this chunk
		// and everything after it are replaced by the error event.
		r.terminated = true
		return append(r.out, budgetEvent(r.st)...), true
	}
	r.src.feed(p, eos)
	for {
		ev, more := r.src.next()
		if !more {
			break
		}
		if r.counts == nil {
			r.text += r.textOf(ev.Data)
		}
		if r.emit(ev) {
			r.terminated = true // a guardrail ended the stream; nothing after its error event
			return r.out, true
		}
	}
	r.src.drained(eos)
	if r.src.err() != nil {
		if r.raw != nil {
			// An oversized event made us give up reading this stream; it
			// and the rest pass through as they come: nothing is lost.
			r.passing = true
			return append(r.out, r.src.rest()...), true
		}
		// A provider event too large or corrupt to translate: end the
		// client's stream honestly rather than pass bytes it cannot parse.
		eos = true
	}
	if eos {
		if r.raw != nil {
			r.out = append(r.out, r.src.rest()...)
		}
		r.end()
	}
	// A chunk of whole events that all pass unchanged (the common case of a
	// pass-through stream) needs no body mutation: Envoy sends the bytes it
	// has, and the reply is as small as the null processor's.
	return r.out, !bytes.Equal(r.out, p)
}

// emit translates one provider event, guards the output and puts the
// metering comment before [DONE]. It reports whether a guardrail ended the
// stream.
func (r *streamReader) emit(ev sse.Event) (blocked bool) {
	start := len(r.out)
	marker := false
	if r.raw != nil {
		was, _ := r.raw.State()
		if r.counts != nil {
			var n int
			r.out, n = r.counts.RawText(r.out, ev.Raw, ev.Data)
			r.text += n
		} else {
			r.out = r.raw.Raw(r.out, ev.Raw, ev.Data)
		}
		done, _ := r.raw.State()
		marker = done && !was
	} else {
		r.out = r.st.Event(r.out, ev.Name, ev.Data)
	}
	if r.guard != nil && len(r.out) > start {
		if r.out, blocked = r.guardOutput(r.out, start); blocked {
			return true
		}
	}
	if r.commented {
		return false
	}
	at := -1
	if marker {
		at = start
	} else if r.raw == nil {
		if i := bytes.Index(r.out[start:], doneLine); i >= 0 {
			at = start + i
		}
	}
	if at >= 0 {
		r.commented = true
		r.out = insertAt(r.out, at, r.x.endComment())
	}
	return false
}

var doneLine = []byte("data: [DONE]")

// end closes the client's stream: the metering comment if [DONE] did not
// carry it, then the Stream's ending (the incomplete-stream error event when
// the provider's stream did not end cleanly).
func (r *streamReader) end() {
	if !r.commented {
		r.commented = true
		r.out = append(r.out, r.x.endComment()...)
	}
	r.out, r.complete = r.st.End(r.out)
	r.ended = true
}

// guardOutput runs the output guard over the OpenAI events appended to out
// after start. An event's data is replaced where it stands, so its framing
// is kept; a guardrail that blocks replaces the event and all after it with
// its error event.
func (r *streamReader) guardOutput(out []byte, start int) ([]byte, bool) {
	r.post.Reset()
	r.post.Feed(out[start:])
	r.post.Finish()
	rewritten := r.scratch[:0]
	defer func() { r.scratch = rewritten[:0] }()
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
		if i := bytes.Index(ev.Raw, ev.Data); i >= 0 {
			rewritten = append(rewritten, ev.Raw[:i]...)
			rewritten = append(rewritten, data...)
			rewritten = append(rewritten, ev.Raw[i+len(ev.Data):]...)
		} else { // several data lines
			rewritten = translate.AppendData(rewritten, data)
		}
	}
	return append(out[:start], rewritten...), false
}

func (r *streamReader) usage() (usage.Usage, bool) {
	r.init()
	return r.st.Usage()
}

func (r *streamReader) partial() (usage.Usage, bool) {
	r.init()
	return r.st.Partial()
}
func (r *streamReader) received() int { return r.text }

func (r *streamReader) outcome() string {
	r.init()
	if r.terminated {
		return outcomeTerminated
	}
	if r.raw != nil {
		// A raw stream may be read to its end without End (an unreadable
		// event): its own markers say how it ended.
		if done, errored := r.raw.State(); !done || errored {
			return outcomeIncomplete
		}
		return ""
	}
	if !r.complete {
		return outcomeIncomplete
	}
	return ""
}

// streamError is the trace's error.type for a pass-through stream that
// failed ("stream_error": the provider sent an error event) or was cut short
// ("stream_incomplete"); "" otherwise.
func (r *streamReader) streamError() string {
	r.init()
	if r.raw == nil || r.terminated {
		return ""
	}
	switch done, errored := r.raw.State(); {
	case errored:
		return "stream_error"
	case !done:
		return "stream_incomplete"
	}
	return ""
}

// incompleteEvent ends a stream the provider cut short, in OpenAI's error
// format, which SDKs raise as an error.
var incompleteEvent = openai.IncompleteEvent

// sseSource reads SSE events. Without all, comments and events without data
// are skipped: they mean nothing to a translator.
type sseSource struct {
	sc  sse.Scanner
	all bool
}

func (s *sseSource) feed(p []byte, eos bool) {
	if s.sc.MaxEventSize == 0 {
		s.sc.MaxEventSize = maxEventSize
	}
	s.sc.Feed(p)
	if eos {
		s.sc.Finish()
	}
}

func (s *sseSource) next() (sse.Event, bool) {
	for {
		ev, more := s.sc.Next()
		if !more || s.all || !ev.IsComment() && ev.Data != nil {
			return ev, more
		}
	}
}

func (s *sseSource) drained(bool) {}
func (s *sseSource) err() error   { return s.sc.Err() }
func (s *sseSource) rest() []byte { return s.sc.Rest() }

// openAIText counts the completion text of an OpenAI chunk.
func openAIText(data []byte) int { return openai.ChunkText(data) }

// sseText counts the completion text of a translated SSE stream's event:
// Anthropic's deltas, or the OpenAI chunks of a provider whose stream is
// translated without being raw (Gemini on Vertex AI's OpenAI endpoint).
func sseText(data []byte) int {
	if n := deltaText(data); n > 0 {
		return n
	}
	return openAIText(data)
}

// deltaText counts the completion text of an SSE provider event that puts
// it under "delta" (Anthropic's text and partial_json deltas).
func deltaText(data []byte) int {
	d := gjson.Get(view(data), "delta")
	if !d.Exists() {
		return 0
	}
	return len(d.Get("text").Str) + len(d.Get("partial_json").Str)
}

// insertAt inserts ins into b at i.
func insertAt(b []byte, i int, ins []byte) []byte {
	b = append(b, ins...)
	copy(b[i+len(ins):], b[i:len(b)-len(ins)])
	copy(b[i:], ins)
	return b
}
