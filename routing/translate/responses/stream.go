package responses

import (
	"bytes"
	"github.com/tollgate-ai/tollgate/internal/byteview"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// MaxEventSize bounds one buffered chat chunk event in [Stream.Feed].
const MaxEventSize = 4 << 20

// Stream translates one Chat Completions chunk stream
// (chat.completion.chunk events, as OpenAI-compatible providers and the
// gateway's chat translators produce them) into the Responses API event
// stream, for a request translated by [TranslateRequest]:
//
//	first chunk                → response.created, response.in_progress
//	delta.content              → (response.output_item.added message,
//	                              response.content_part.added output_text)
//	                              response.output_text.delta
//	delta.refusal              → the same with a refusal part and
//	                              response.refusal.delta
//	delta.tool_calls (new)     → response.output_item.added function_call
//	delta.tool_calls arguments → response.function_call_arguments.delta
//	finish_reason              → for each open item: response.output_text.done
//	                              (response.refusal.done),
//	                              response.content_part.done or
//	                              response.function_call_arguments.done, then
//	                              response.output_item.done
//	data: [DONE] after finish  → response.completed with usage, or
//	                              response.incomplete (finish_reason length:
//	                              max_output_tokens; content_filter)
//	data: {"error":…}          → response.failed
//
// Every event is written as "event: <type>\ndata: <json>\n\n" with a
// sequence_number counting from 0. A stream that ends without a
// finish_reason and [DONE] (cut, or an upstream error) always ends with
// response.failed, never with response.completed. Nothing follows the
// terminal event.
//
// A Stream is not safe for concurrent use.
type Stream struct {
	s        *state
	seq      int64
	started  bool
	finished bool // a finish_reason arrived and the items are closed
	terminal bool // the terminal event went out

	msg    *item         // the open message item, nil if none
	msgPos int           // its position in s.items
	calls  map[int64]int // chat tool call index → position in s.items
	last   int           // position of the last function call opened, -1 if none

	sc  sse.Scanner
	buf []byte // scratch for one event's JSON
}

// NewStream returns the translator for the response to req's chat stream.
func (req *Request) NewStream(opts Options) *Stream {
	t := &Stream{s: newState(req, opts), calls: map[int64]int{}, last: -1}
	t.sc.MaxEventSize = MaxEventSize
	return t
}

// Feed consumes raw chat stream bytes, cut anywhere, and appends the
// Responses events now complete to out.
func (t *Stream) Feed(out, p []byte) []byte {
	t.sc.Feed(p)
	return t.drain(out)
}

func (t *Stream) drain(out []byte) []byte {
	for {
		ev, ok := t.sc.Next()
		if !ok {
			break
		}
		if ev.Data != nil {
			out = t.Event(out, ev.Name, ev.Data)
		}
	}
	if t.sc.Err() != nil && !t.terminal {
		out = t.fail(out, "server_error", "The provider sent a stream event too large to read.")
	}
	return out
}

// Event consumes one complete chat SSE event (its name, unused, and data)
// and appends the Responses events it produces to out.
func (t *Stream) Event(out []byte, _, data []byte) []byte {
	if t.terminal {
		return out
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]")) {
		if !t.finished {
			return t.fail(out, "server_error", "The provider's stream ended before the response was complete.")
		}
		return t.complete(out)
	}
	js := byteview.String(data)
	if !gjson.Valid(js) {
		return out // not JSON: nothing a chat chunk could mean
	}
	ev := gjson.Parse(js)
	if !ev.IsObject() {
		return out
	}
	if e := ev.Get("error"); wire.Present(e) {
		code := e.Get("code").Str
		if code == "" {
			code = "server_error"
		}
		msg := e.Get("message").Str
		if msg == "" {
			msg = "The provider reported an error."
		}
		return t.fail(out, strings.Clone(code), strings.Clone(msg))
	}
	if u, ok := usage.FromOpenAI(data); ok {
		t.s.u, t.s.usageOK = u, true // a running total: keep the last
	}
	choices := ev.Get("choices")
	if !t.started {
		if len(choices.Array()) == 0 {
			// Azure opens with a choice-less prompt_filter_results chunk
			// whose id and model are empty: wait for a real one.
			return out
		}
		out = t.start(out, ev)
	}
	choices.ForEach(func(_, c gjson.Result) bool {
		if c.Get("index").Int() != 0 || t.finished {
			return true // the translated request asks for one choice
		}
		d := c.Get("delta")
		if v := d.Get("content"); v.Type == gjson.String && v.Str != "" {
			out = t.text(out, v.Str, false)
		}
		if v := d.Get("refusal"); v.Type == gjson.String && v.Str != "" {
			out = t.text(out, v.Str, true)
		}
		d.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			out = t.toolCall(out, tc)
			return true
		})
		if f := c.Get("finish_reason"); f.Type == gjson.String && f.Str != "" {
			t.s.finish(f.Str)
			out = t.closeItems(out)
			t.finished = true
		}
		return true
	})
	return out
}

// End is called once when the chat stream ends. It appends the terminal
// event if none went out yet — response.failed, as the stream was cut — and
// reports whether the response completed (response.completed or
// response.incomplete went out).
func (t *Stream) End(out []byte) (_ []byte, complete bool) {
	t.sc.Finish()
	out = t.drain(out)
	if !t.terminal {
		out = t.fail(out, "server_error", "The provider's stream ended before the response was complete.")
	}
	return out, t.s.status == statusCompleted || t.s.status == statusIncomplete
}

// Usage returns the usage of the chat stream's usage chunk (the request asks
// for stream_options.include_usage), ok false if none arrived.
func (t *Stream) Usage() (usage.Usage, bool) { return t.s.u, t.s.usageOK }

// ResponseID is the id of the response being streamed, set once the first
// event went out.
func (t *Stream) ResponseID() string { return t.s.id }

func (t *Stream) start(out []byte, chunk gjson.Result) []byte {
	t.started = true
	t.s.identify(chunk)
	out = t.responseEvent(out, "response.created")
	return t.responseEvent(out, "response.in_progress")
}

// text appends a content or refusal delta, opening the message item and
// the part first when needed.
func (t *Stream) text(out []byte, delta string, refusal bool) []byte {
	if t.msg == nil {
		t.msg = t.s.newItem(kindMessage)
		t.msgPos = len(t.s.items) - 1
		out = t.itemEvent(out, "response.output_item.added", t.msgPos, t.msg, statusInProgress)
	}
	it, idx := t.msg, t.msgPos
	if refusal {
		if !it.hasRef {
			it.hasRef, it.refIdx = true, it.parts()
			out = t.partEvent(out, "response.content_part.added", idx, it, it.refIdx, true, "")
		}
		it.refusal.WriteString(delta)
		out = t.deltaEvent(out, "response.refusal.delta", idx, it, it.refIdx, delta)
		return out
	}
	if !it.hasText {
		it.hasText, it.textIdx = true, it.parts()
		out = t.partEvent(out, "response.content_part.added", idx, it, it.textIdx, false, "")
	}
	it.text.WriteString(delta)
	return t.deltaEvent(out, "response.output_text.delta", idx, it, it.textIdx, delta)
}

// toolCall appends one tool_calls delta entry. A call is new when its index
// is new; Gemini's calls carry no index, so there a new id is a new call.
func (t *Stream) toolCall(out []byte, tc gjson.Result) []byte {
	id := tc.Get("id").Str
	pos, opened := -1, false
	if ix := tc.Get("index"); ix.Type == gjson.Number {
		var ok bool
		if pos, ok = t.calls[ix.Int()]; !ok {
			pos, opened = t.openCall(tc), true
			t.calls[ix.Int()] = pos
		}
	} else if t.last >= 0 && (id == "" || id == t.s.items[t.last].callID) {
		pos = t.last
	} else {
		pos, opened = t.openCall(tc), true
	}
	if opened {
		out = t.itemEvent(out, "response.output_item.added", pos, t.s.items[pos], statusInProgress)
	}
	t.last = pos
	it := t.s.items[pos]
	if it.name == "" {
		it.name = strings.Clone(tc.Get("function.name").Str)
	}
	if a := tc.Get("function.arguments"); a.Type == gjson.String && a.Str != "" {
		it.args.WriteString(a.Str)
		out = t.argsDelta(out, pos, it, a.Str)
	}
	return out
}

func (t *Stream) openCall(tc gjson.Result) int {
	it := t.s.newItem(kindFunctionCall)
	it.callID = strings.Clone(tc.Get("id").Str) // data aliases the scanner's buffer
	if it.callID == "" {
		it.callID = "call_" + it.id
	}
	it.name = strings.Clone(tc.Get("function.name").Str)
	return len(t.s.items) - 1
}

// closeItems sends the done events of every item, in output order.
func (t *Stream) closeItems(out []byte) []byte {
	status := t.s.itemStatus()
	for pos, it := range t.s.items {
		if it.done {
			continue
		}
		it.done = true
		if it.kind == kindFunctionCall {
			out = t.argsDone(out, pos, it)
		} else {
			// Parts close in the order they opened.
			for ci := 0; ci < it.parts(); ci++ {
				ref := it.hasRef && ci == it.refIdx
				if ref {
					out = t.doneEvent(out, "response.refusal.done", pos, it, ci, "refusal", it.refusal.String())
				} else {
					out = t.doneEvent(out, "response.output_text.done", pos, it, ci, "text", it.text.String())
				}
				out = t.partEvent(out, "response.content_part.done", pos, it, ci, ref, status)
			}
		}
		out = t.itemEvent(out, "response.output_item.done", pos, it, status)
	}
	t.msg = nil
	return out
}

func (t *Stream) complete(out []byte) []byte {
	typ := "response.completed"
	if t.s.status == statusIncomplete {
		typ = "response.incomplete"
	}
	t.terminal = true
	return t.responseEvent(out, typ)
}

// fail ends the stream with response.failed.
func (t *Stream) fail(out []byte, code, msg string) []byte {
	if !t.started {
		t.started = true
		t.s.identify(gjson.Result{})
		out = t.responseEvent(out, "response.created")
	}
	t.s.status, t.s.errCode, t.s.errMsg = statusFailed, code, msg
	t.terminal = true
	return t.responseEvent(out, "response.failed")
}

// Event writers. Each builds the JSON in t.buf and frames it.

func (t *Stream) begin(typ string) {
	t.buf = append(t.buf[:0], `{"type":`...)
	t.buf = oaierror.AppendString(t.buf, typ)
	t.buf = append(t.buf, `,"sequence_number":`...)
	t.buf = strconv.AppendInt(t.buf, t.seq, 10)
	t.seq++
}

func (t *Stream) emit(out []byte, typ string) []byte {
	t.buf = append(t.buf, '}')
	out = append(out, "event: "...)
	out = append(out, typ...)
	out = append(out, "\ndata: "...)
	out = append(out, t.buf...)
	return append(out, "\n\n"...)
}

func (t *Stream) responseEvent(out []byte, typ string) []byte {
	t.begin(typ)
	t.buf = append(t.buf, `,"response":`...)
	t.buf = t.s.appendResponse(t.buf)
	return t.emit(out, typ)
}

func (t *Stream) itemRef(pos int, it *item) {
	t.buf = append(t.buf, `,"item_id":`...)
	t.buf = oaierror.AppendString(t.buf, it.id)
	t.buf = append(t.buf, `,"output_index":`...)
	t.buf = strconv.AppendInt(t.buf, int64(pos), 10)
}

func (t *Stream) itemEvent(out []byte, typ string, pos int, it *item, status string) []byte {
	t.begin(typ)
	t.buf = append(t.buf, `,"output_index":`...)
	t.buf = strconv.AppendInt(t.buf, int64(pos), 10)
	t.buf = append(t.buf, `,"item":`...)
	if status == statusInProgress && it.kind == kindMessage {
		// Announced empty; its parts follow.
		t.buf = append(t.buf, `{"id":`...)
		t.buf = oaierror.AppendString(t.buf, it.id)
		t.buf = append(t.buf, `,"type":"message","status":"in_progress","role":"assistant","content":[]}`...)
	} else {
		t.buf = it.appendItem(t.buf, status)
	}
	return t.emit(out, typ)
}

func (t *Stream) partEvent(out []byte, typ string, pos int, it *item, ci int, refusal bool, status string) []byte {
	t.begin(typ)
	t.itemRef(pos, it)
	t.buf = append(t.buf, `,"content_index":`...)
	t.buf = strconv.AppendInt(t.buf, int64(ci), 10)
	t.buf = append(t.buf, `,"part":`...)
	switch {
	case refusal && status == "":
		t.buf = appendRefusalPart(t.buf, "")
	case refusal:
		t.buf = appendRefusalPart(t.buf, it.refusal.String())
	case status == "":
		t.buf = appendTextPart(t.buf, "")
	default:
		t.buf = appendTextPart(t.buf, it.text.String())
	}
	return t.emit(out, typ)
}

func (t *Stream) deltaEvent(out []byte, typ string, pos int, it *item, ci int, delta string) []byte {
	t.begin(typ)
	t.itemRef(pos, it)
	t.buf = append(t.buf, `,"content_index":`...)
	t.buf = strconv.AppendInt(t.buf, int64(ci), 10)
	t.buf = append(t.buf, `,"delta":`...)
	t.buf = oaierror.AppendString(t.buf, delta)
	if typ == "response.output_text.delta" {
		t.buf = append(t.buf, `,"logprobs":[]`...)
	}
	return t.emit(out, typ)
}

func (t *Stream) doneEvent(out []byte, typ string, pos int, it *item, ci int, field, text string) []byte {
	t.begin(typ)
	t.itemRef(pos, it)
	t.buf = append(t.buf, `,"content_index":`...)
	t.buf = strconv.AppendInt(t.buf, int64(ci), 10)
	t.buf = append(t.buf, `,"`...)
	t.buf = append(t.buf, field...)
	t.buf = append(t.buf, `":`...)
	t.buf = oaierror.AppendString(t.buf, text)
	if field == "text" {
		t.buf = append(t.buf, `,"logprobs":[]`...)
	}
	return t.emit(out, typ)
}

func (t *Stream) argsDelta(out []byte, pos int, it *item, delta string) []byte {
	const typ = "response.function_call_arguments.delta"
	t.begin(typ)
	t.itemRef(pos, it)
	t.buf = append(t.buf, `,"delta":`...)
	t.buf = oaierror.AppendString(t.buf, delta)
	return t.emit(out, typ)
}

func (t *Stream) argsDone(out []byte, pos int, it *item) []byte {
	const typ = "response.function_call_arguments.done"
	t.begin(typ)
	t.itemRef(pos, it)
	t.buf = append(t.buf, `,"name":`...)
	t.buf = oaierror.AppendString(t.buf, it.name)
	t.buf = append(t.buf, `,"arguments":`...)
	t.buf = oaierror.AppendString(t.buf, it.args.String())
	return t.emit(out, typ)
}
