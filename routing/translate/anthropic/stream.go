package anthropic

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// NewStream returns the translator for one Messages API event stream.
func (s *Schema) NewStream(model string, includeUsage bool) translate.Stream {
	return &stream{model: model, includeUsage: includeUsage, created: s.now()}
}

// Stream states.
const (
	fresh  = iota // nothing sent to the client yet
	open          // the role chunk went out
	done          // message_stop: [DONE] went out
	failed        // an error event went out
)

// stream turns Anthropic's typed events into chat.completion.chunk events:
//
//	message_start                       → role chunk {"role":"assistant","content":""}
//	content_block_start  (tool_use)     → tool call chunk with id, name, "arguments":""
//	content_block_delta  (text_delta)   → {"content": text}
//	content_block_delta  (input_json_delta) → {"tool_calls":[{"index":n,"function":{"arguments": fragment}}]}
//	content_block_delta  (thinking_delta)   → {"reasoning_content": text}
//	content_block_stop   (thinking)         → {"thinking_blocks":[{"type":"thinking","thinking","signature"}]}
//	content_block_start  (redacted_thinking) → {"thinking_blocks":[{"type":"redacted_thinking","data"}]}
//	message_delta        (stop_reason)  → finish chunk
//	message_stop                        → usage chunk (if asked for), data: [DONE]
//	error                               → data: {"error":{...}}
//
// Events are dispatched on their JSON "type", which Anthropic keeps equal to
// the event name; ping, citations and unknown events or deltas produce
// nothing. The tool_use block of the response_format json_object tool
// streams as content, and its tool_use stop as finish_reason "stop". A
// thinking block's complete text and signature go out once more, as
// thinking_blocks, when it ends: that is what a client replays. Every chunk carries the same id, created and model,
// taken from message_start.
type stream struct {
	model        string // reported when message_start names none
	includeUsage bool
	created      int64
	state        int
	finished     bool // the finish chunk went out

	w wire.Chunks

	tools map[int64]int // Anthropic tool_use block index → position in calls
	calls []toolCall
	// json is the json_object tool's block, streamed as content.
	json struct {
		index      int64
		open, text bool   // the block started; some content went out
		input      string // non-empty input from content_block_start
		seen       bool   // the block appeared: the answer is content
	}
	// thoughts are the thinking blocks being streamed, by block index.
	thoughts  map[int64]*thought
	reasoning int64 // output_tokens_details.thinking_tokens
	u         usage.Anthropic
	usageOK   bool // some usage was read
	// final is set once the usage is the message's own total: by
	// message_delta's cumulative usage, or at message_stop. message_start's
	// output_tokens is a placeholder (1-4), so a stream cut before either
	// has only partial usage.
	final bool
}

// thought is one thinking block being streamed.
type thought struct {
	text      []byte
	signature string
}

// toolCall is one tool_use block being streamed as an OpenAI tool call.
type toolCall struct {
	args  bool   // an arguments fragment went out
	input string // non-empty input from content_block_start, if any
}

func (t *stream) Event(out []byte, name, data []byte) []byte {
	if t.state >= done {
		return out
	}
	js := byteview.String(data)
	ev := gjson.Parse(js)
	if !ev.IsObject() {
		return out
	}
	typ := ev.Get("type").String()
	if typ == "" {
		typ = string(name)
	}
	switch typ {
	case "message_start":
		if t.state == fresh {
			msg := ev.Get("message")
			t.readUsage(msg.Get("usage"))
			out = t.open(out, msg.Get("id").String(), msg.Get("model").String())
		}
	case "content_block_start":
		out = t.blockStart(out, ev)
	case "content_block_delta":
		out = t.blockDelta(out, ev)
	case "content_block_stop":
		out = t.blockStop(out, ev)
	case "message_delta":
		if t.readUsage(ev.Get("usage")) {
			t.final = true
		}
		if stop := ev.Get("delta.stop_reason"); stop.Type == gjson.String {
			reason := finishReason(stop.Str)
			if reason == "tool_calls" && t.json.seen && len(t.calls) == 0 {
				reason = "stop"
			}
			out = t.finish(out, reason)
		}
	case "message_stop":
		t.final = t.usageOK
		out = t.finish(out, "stop")
		if t.includeUsage && t.usageOK {
			out = t.w.Usage(out, t.openAIUsage())
		}
		out = append(out, "data: [DONE]\n\n"...)
		t.state = done
	case "error":
		e := ev.Get("error")
		out = appendErrorEvent(out, e.Get("type").String(), e.Get("message").String())
		t.state = failed
	}
	return out
}

// readUsage folds a usage object into the running usage and reports
// whether it held any.
func (t *stream) readUsage(r gjson.Result) bool {
	if r.IsObject() {
		if u, ok := usage.FromAnthropic(t.u, []byte(r.Raw)); ok {
			t.u, t.usageOK = u, true
			t.reasoning = thinkingTokens(r, t.reasoning)
			return true
		}
	}
	return false
}

// open builds the shared chunk prefix and emits the role chunk. Events that
// arrive before message_start (a broken upstream) open the stream with a
// generated id.
func (t *stream) open(out []byte, id, model string) []byte {
	if t.state != fresh {
		return out
	}
	t.state = open
	if id == "" {
		id = wire.NewID()
	}
	if model == "" {
		model = t.model
	}
	return t.w.Open(out, id, model, t.created, t.includeUsage)
}

func (t *stream) blockStart(out []byte, ev gjson.Result) []byte {
	b := ev.Get("content_block")
	idx := ev.Get("index")
	switch b.Get("type").String() {
	case "tool_use":
	case "text":
		// Text blocks start empty in practice; never lose text if not.
		return t.text(out, b.Get("text").String())
	case "thinking":
		if idx.Type != gjson.Number {
			return out
		}
		if t.thoughts == nil {
			t.thoughts = make(map[int64]*thought)
		}
		th := &thought{}
		t.thoughts[idx.Int()] = th
		if text := b.Get("thinking").String(); text != "" {
			th.text = append(th.text, text...)
			out = t.w.Reasoning(t.open(out, "", ""), text)
		}
		return out
	case "redacted_thinking":
		d := wire.AppendRedactedBlock(append([]byte(nil), `{"thinking_blocks":[`...), b.Get("data").String())
		return t.w.Delta(t.open(out, "", ""), append(d, "]}"...))
	default:
		return out // server tools and their results are not shown
	}
	if idx.Type != gjson.Number {
		return out
	}
	if b.Get("name").String() == jsonTool && !t.json.open {
		t.json.index, t.json.open, t.json.seen = idx.Int(), true, true
		if in := b.Get("input"); nonEmptyObject(in) {
			t.json.input = compactObject(in)
		}
		return t.open(out, "", "")
	}
	if _, dup := t.tools[idx.Int()]; dup {
		return out
	}
	out = t.open(out, "", "")
	if t.tools == nil {
		t.tools = make(map[int64]int)
	}
	n := len(t.calls)
	t.tools[idx.Int()] = n
	var call toolCall
	if in := b.Get("input"); nonEmptyObject(in) {
		call.input = strings.Clone(in.Raw) // data is the caller's buffer
	}
	t.calls = append(t.calls, call)
	return t.w.ToolCall(out, n, b.Get("id").String(), b.Get("name").String())
}

func (t *stream) blockDelta(out []byte, ev gjson.Result) []byte {
	d := ev.Get("delta")
	switch d.Get("type").String() {
	case "text_delta":
		return t.text(out, d.Get("text").String())
	case "thinking_delta":
		text := d.Get("thinking").String()
		if th := t.thoughts[ev.Get("index").Int()]; th != nil {
			th.text = append(th.text, text...)
		}
		if text == "" {
			return out
		}
		return t.w.Reasoning(t.open(out, "", ""), text)
	case "signature_delta":
		if th := t.thoughts[ev.Get("index").Int()]; th != nil {
			th.signature += d.Get("signature").String()
		}
		return out
	case "input_json_delta":
		if t.json.open && ev.Get("index").Int() == t.json.index {
			frag := d.Get("partial_json").String()
			if frag == "" {
				return out
			}
			t.json.text = true
			return t.w.Content(t.open(out, "", ""), frag)
		}
		n, ok := t.tools[ev.Get("index").Int()]
		if !ok {
			return out // a server tool's input, or a block never started
		}
		frag := d.Get("partial_json").String()
		if frag == "" {
			return out
		}
		t.calls[n].args = true
		return t.w.Arguments(out, n, frag)
	}
	return out
}

func (t *stream) text(out []byte, text string) []byte {
	if text == "" {
		return out
	}
	return t.w.Content(t.open(out, "", ""), text)
}

// blockStop makes sure every tool call has arguments that parse as JSON: a
// tool without parameters may stream no fragment at all, and OpenAI sends
// "{}" then.
func (t *stream) blockStop(out []byte, ev gjson.Result) []byte {
	idx := ev.Get("index").Int()
	if th := t.thoughts[idx]; th != nil {
		delete(t.thoughts, idx)
		d := append([]byte(nil), `{"thinking_blocks":[`...)
		d = wire.AppendThinkingBlock(d, string(th.text), th.signature)
		return t.w.Delta(t.open(out, "", ""), append(d, "]}"...))
	}
	if t.json.open && idx == t.json.index {
		t.json.open = false
		if t.json.text {
			return out
		}
		if t.json.input != "" {
			return t.w.Content(t.open(out, "", ""), t.json.input)
		}
		return t.w.Content(t.open(out, "", ""), "{}")
	}
	n, ok := t.tools[idx]
	if !ok || t.calls[n].args {
		return out
	}
	t.calls[n].args = true
	args := t.calls[n].input
	if args == "" {
		args = "{}"
	}
	return t.w.Arguments(out, n, args)
}

// finish emits the finish chunk, once.
func (t *stream) finish(out []byte, reason string) []byte {
	if t.finished {
		return out
	}
	t.finished = true
	return t.w.Finish(t.open(out, "", ""), reason)
}

func (t *stream) End(out []byte) ([]byte, bool) {
	switch t.state {
	case done:
		return out, true
	case failed:
		return out, false
	}
	t.state = failed
	return appendErrorEvent(out, "", "The provider's response stream ended before the response was complete."), false
}

// Usage is the message's usage once it is final (message_delta or
// message_stop arrived).
func (t *stream) Usage() (usage.Usage, bool) { return t.openAIUsage(), t.usageOK && t.final }

// openAIUsage is the usage so far in OpenAI's terms, thinking tokens as
// reasoning tokens.
func (t *stream) openAIUsage() usage.Usage {
	u := t.u.OpenAI()
	u.ReasoningTokens = min(t.reasoning, u.CompletionTokens)
	return u
}

// Partial is whatever usage arrived, final or not: after a cut, the input
// counts of message_start are exact while its output count is not.
func (t *stream) Partial() (usage.Usage, bool) { return t.openAIUsage(), t.usageOK }

// appendErrorEvent appends the OpenAI-format error event that ends a failed
// stream; OpenAI SDKs raise an error for any event whose data has "error".
// An empty typ is a stream cut short, reported as a server error.
func appendErrorEvent(out []byte, typ, msg string) []byte {
	status := 502
	if typ != "" {
		status = 0
	}
	if msg == "" {
		msg = "The provider reported an error."
	}
	out = append(out, "data: "...)
	out = append(out, openAIError(status, typ, msg).Body()...)
	return append(out, "\n\n"...)
}

func nonEmptyObject(r gjson.Result) bool {
	if !r.IsObject() {
		return false
	}
	keys := false
	r.ForEach(func(_, _ gjson.Result) bool {
		keys = true
		return false
	})
	return keys
}
