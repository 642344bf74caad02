package messages

import (
	"crypto/rand"
	"strconv"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Stream translates one Chat Completions chunk stream into the Messages
// event stream the Anthropic SDKs parse
// (https://docs.anthropic.com/en/docs/build-with-claude/streaming):
//
//	first chunk                → message_start (usage zero: OpenAI reports it last), ping
//	delta.reasoning_content    → thinking block: content_block_start, thinking_delta…
//	delta.content / refusal    → text block: content_block_start, text_delta…
//	delta.tool_calls[i] w/ id  → tool_use block: content_block_start (input {}),
//	                             then input_json_delta per arguments fragment
//	finish_reason              → content_block_stop for every open block
//	                             (a later content_filter one, Azure's
//	                             asynchronous filter, makes it a refusal)
//	[DONE] (or the stream end after a finish_reason)
//	                           → message_delta (stop_reason, cumulative usage), message_stop
//	{"error":{…}} chunk        → event: error
//
// A text or thinking block closes when another block starts. Tool blocks
// stay open until text follows or the choice finishes, so parallel calls
// whose fragments interleave (some providers send them so) still reach the
// right block; Anthropic streams allow open blocks to interleave. A stream
// that ends without a finish_reason, or with an error, ends with an error
// event and never with message_stop, so no client mistakes it for complete.
//
// Only choice 0 is read: the translated request never asks for more. It is
// not safe for concurrent use.
type Stream struct {
	model string
	id    string
	state int

	blocks   int           // content blocks started so far: the next block's index
	cur      int           // index of the open text or thinking block, -1 if none
	curKind  string        // "text" or "thinking"
	tools    map[int64]int // provider tool call index → block index
	lastTool int64
	open     []int // indices of open tool_use blocks, in start order
	stop     string
	refused  bool

	u       usage.Usage
	usageOK bool
}

// Stream states.
const (
	streamFresh    = iota // nothing sent
	streamOpen            // message_start sent
	streamFinished        // finish_reason seen; waiting for usage and [DONE]
	streamDone            // message_stop sent
	streamFailed          // an error event sent
)

// NewStream returns the translator for one streamed response. model is
// reported when the provider's chunks name none.
func NewStream(model string) *Stream {
	return &Stream{model: model, cur: -1, tools: map[int64]int{}}
}

// Event consumes the data of one upstream SSE event (comment-only events
// need not be passed) and appends the Anthropic SSE bytes the client should
// receive to out.
func (s *Stream) Event(out, data []byte) []byte {
	if s.state >= streamDone {
		return out
	}
	js := unsafe.String(unsafe.SliceData(data), len(data)) // read only during this call
	if js == "[DONE]" {
		return s.finish(out)
	}
	if !gjson.Valid(js) {
		return out // not a chunk: nothing a client could use
	}
	chunk := gjson.Parse(js)
	if !chunk.IsObject() {
		return out
	}
	if e := chunk.Get("error"); e.Exists() && e.Type != gjson.Null {
		err := openAIErrorObject(e)
		err.Type = streamErrorType(e)
		if err.Message == "" {
			err.Message = "The provider reported an error during the stream."
		}
		return s.fail(out, err)
	}
	if u, ok := usage.FromOpenAI(data); ok {
		s.u, s.usageOK = u, true
	}
	choice := chunk.Get("choices.#(index==0)")
	if !choice.Exists() {
		choice = chunk.Get("choices.0")
	}
	if s.state == streamFresh && (choice.Exists() || s.usageOK) {
		out = s.start(out, chunk)
	}
	if s.state == streamFinished && choice.Get("finish_reason").Str == "content_filter" {
		// Azure OpenAI's asynchronous filter judges the text after the
		// model finished: its verdict comes in a later chunk.
		s.stop = "refusal"
	}
	if s.state != streamOpen || !choice.IsObject() {
		return out
	}
	return s.choice(out, choice)
}

// start sends message_start and a ping.
func (s *Stream) start(out []byte, chunk gjson.Result) []byte {
	s.state = streamOpen
	s.id = messageID(chunk.Get("id").String())
	if m := chunk.Get("model").String(); m != "" {
		s.model = m
	}
	out = append(out, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"...)
	out = oaierror.AppendString(out, s.id)
	out = append(out, `,"type":"message","role":"assistant","model":`...)
	out = oaierror.AppendString(out, s.model)
	out = append(out, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}`+"\n\n"...)
	return append(out, "event: ping\ndata: {\"type\":\"ping\"}\n\n"...)
}

// choice translates the delta and finish_reason of choice 0.
func (s *Stream) choice(out []byte, c gjson.Result) []byte {
	d := c.Get("delta")
	if r := reasoning(d); r != "" {
		out = s.deltaText(out, "thinking", r)
	}
	if t := d.Get("content"); t.Type == gjson.String && t.Str != "" {
		out = s.deltaText(out, "text", t.Str)
	}
	if t := d.Get("refusal"); t.Type == gjson.String && t.Str != "" {
		s.refused = true
		out = s.deltaText(out, "text", t.Str)
	}
	var failed bool
	d.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		out, failed = s.toolDelta(out, tc)
		return !failed
	})
	if failed {
		return out
	}
	if f := c.Get("finish_reason"); f.Type == gjson.String && f.Str != "" {
		out = s.closeAll(out)
		s.stop = stopReason(f.Str)
		if s.refused {
			s.stop = "refusal"
		}
		s.state = streamFinished
	}
	return out
}

// deltaText appends text to the open block of kind ("text" or "thinking"),
// starting one (and closing what is open) when needed.
func (s *Stream) deltaText(out []byte, kind, text string) []byte {
	if s.cur < 0 || s.curKind != kind {
		out = s.closeAll(out)
		s.cur, s.curKind = s.blocks, kind
		s.blocks++
		out = blockStart(out, s.cur)
		if kind == "text" {
			out = append(out, `"type":"text","text":""}}`+"\n\n"...)
		} else {
			out = append(out, `"type":"thinking","thinking":"","signature":""}}`+"\n\n"...)
		}
	}
	out = deltaStart(out, s.cur)
	if kind == "text" {
		out = append(out, `"type":"text_delta","text":`...)
	} else {
		out = append(out, `"type":"thinking_delta","thinking":`...)
	}
	out = oaierror.AppendString(out, text)
	return append(out, "}}\n\n"...)
}

// noIndex numbers tool calls that arrive without an index, apart from
// indexed ones.
const noIndex = 1 << 32

// toolDelta handles one tool_calls entry of a delta. It
// reports true when the stream failed.
func (s *Stream) toolDelta(out []byte, tc gjson.Result) ([]byte, bool) {
	id := tc.Get("id").String()
	args := tc.Get("function.arguments").String()
	var idx int64
	if i := tc.Get("index"); i.Exists() {
		idx = i.Int()
	} else if id != "" {
		idx = noIndex + int64(len(s.tools)) // a new call (Gemini omits index)
	} else {
		idx = s.lastTool // a fragment of the call started last
	}
	block, known := s.tools[idx]
	if !known {
		if s.cur >= 0 {
			out = s.closeAll(out)
		}
		if id == "" {
			id = "toolu_" + rand.Text()
		}
		block = s.blocks
		s.blocks++
		s.tools[idx] = block
		s.lastTool = idx
		s.open = append(s.open, block)
		out = blockStart(out, block)
		out = append(out, `"type":"tool_use","id":`...)
		out = oaierror.AppendString(out, id)
		out = append(out, `,"name":`...)
		out = oaierror.AppendString(out, tc.Get("function.name").String())
		out = append(out, `,"input":{}}}`+"\n\n"...)
	} else if !s.isOpen(block) {
		return s.fail(out, &Error{Type: TypeAPI, Message: "The provider continued a tool call after other content; the stream cannot be translated."}), true
	}
	if args == "" {
		return out, false
	}
	out = deltaStart(out, block)
	out = append(out, `"type":"input_json_delta","partial_json":`...)
	out = oaierror.AppendString(out, args)
	return append(out, "}}\n\n"...), false
}

func (s *Stream) isOpen(block int) bool {
	for _, b := range s.open {
		if b == block {
			return true
		}
	}
	return false
}

func blockStart(out []byte, index int) []byte {
	out = append(out, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":"...)
	out = strconv.AppendInt(out, int64(index), 10)
	return append(out, `,"content_block":{`...)
}

func deltaStart(out []byte, index int) []byte {
	out = append(out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"...)
	out = strconv.AppendInt(out, int64(index), 10)
	return append(out, `,"delta":{`...)
}

func blockStop(out []byte, index int) []byte {
	out = append(out, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
	out = strconv.AppendInt(out, int64(index), 10)
	return append(out, "}\n\n"...)
}

// closeAll stops the open text or thinking block and every open tool block.
func (s *Stream) closeAll(out []byte) []byte {
	if s.cur >= 0 {
		out = blockStop(out, s.cur)
		s.cur = -1
	}
	for _, b := range s.open {
		out = blockStop(out, b)
	}
	s.open = s.open[:0]
	return out
}

// finish ends a stream at [DONE]: complete if the choice finished.
func (s *Stream) finish(out []byte) []byte {
	if s.state != streamFinished {
		return s.fail(out, cutError())
	}
	s.state = streamDone
	u := messageUsage(s.u)
	out = append(out, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"...)
	out = oaierror.AppendString(out, s.stop)
	out = append(out, `,"stop_sequence":null},"usage":{"input_tokens":`...)
	out = strconv.AppendInt(out, u.InputTokens, 10)
	out = append(out, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":`...)
	out = strconv.AppendInt(out, u.CacheReadInputTokens, 10)
	out = append(out, `,"output_tokens":`...)
	out = strconv.AppendInt(out, u.OutputTokens, 10)
	out = append(out, "}}\n\n"...)
	return append(out, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
}

func cutError() *Error {
	return &Error{Type: TypeAPI, Message: "The provider's stream ended before the response was complete."}
}

// fail ends the stream with an error event.
func (s *Stream) fail(out []byte, e *Error) []byte {
	s.state = streamFailed
	return append(out, e.Event()...)
}

// End is called once when the upstream stream ends. It appends what closes
// the client's stream and reports whether the response completed: a stream
// that finished (finish_reason seen) without [DONE] is closed normally;
// one cut before its finish_reason ends with an error event.
func (s *Stream) End(out []byte) ([]byte, bool) {
	switch s.state {
	case streamDone:
		return out, true
	case streamFailed:
		return out, false
	case streamFinished:
		return s.finish(out), true
	}
	return s.fail(out, cutError()), false
}

// Usage returns the last usage the provider reported in the stream (with
// include_usage, the final one); ok is false if none was seen.
func (s *Stream) Usage() (usage.Usage, bool) { return s.u, s.usageOK }
