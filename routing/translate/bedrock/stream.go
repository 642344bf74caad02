package bedrock

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// NewStream returns the translator for one ConverseStream response. Its
// events come from the processor's event-stream decoder (see
// translate.FramingEventStream).
func (s *Schema) NewStream(model string, includeUsage bool) translate.Stream {
	return &stream{model: model, includeUsage: includeUsage, created: s.now()}
}

// Stream states.
const (
	fresh  = iota // nothing sent to the client yet
	open          // the role chunk went out
	done          // the stream ended cleanly: [DONE] went out
	failed        // an error event went out
)

// stream turns ConverseStream events into chat.completion.chunk events:
//
//	messageStart                         → role chunk
//	contentBlockStart (start.toolUse)    → tool call chunk with id, name, "arguments":""
//	contentBlockDelta (delta.text)       → {"content": text}
//	contentBlockDelta (delta.toolUse)    → tool call arguments fragment
//	contentBlockDelta (delta.reasoningContent.text) → {"reasoning_content": text}
//	contentBlockDelta (delta.reasoningContent.redactedContent) → {"thinking_blocks":[{"type":"redacted_thinking","data"}]}
//	contentBlockStop                     → "{}" arguments for a tool that streamed none;
//	                                       {"thinking_blocks":[{"type":"thinking","thinking","signature"}]} after reasoning text
//	messageStop       (stopReason)       → finish chunk
//	metadata          (usage)            → usage chunk (if asked for), data: [DONE]
//	exception:*                          → data: {"error":{...}}
//
// Bedrock sends metadata, with the usage, after messageStop: the stream is
// complete only then. The toolUse block of the response_format tool
// (jsonTool) streams as content, and its tool_use stop as finish_reason
// "stop". A reasoning block's complete text and signature go out once more,
// as thinking_blocks, when it ends: that is what a client replays, as with
// the Anthropic translation. Unknown events and deltas produce nothing.
type stream struct {
	model        string
	includeUsage bool
	created      int64
	state        int
	finished     bool // the finish chunk went out

	w wire.Chunks

	tools map[int64]int // contentBlockIndex → position in calls
	calls []bool        // whether an arguments fragment went out
	// json is the response_format tool's block, streamed as content.
	json struct {
		index      int64
		open, text bool // the block started; some content went out
		seen       bool // the block appeared: the answer is content
	}
	// thoughts are the reasoning blocks being streamed, by block index.
	thoughts map[int64]*thought

	u       usage.Anthropic
	usageOK bool
}

func (t *stream) Event(out []byte, name, data []byte) []byte {
	if t.state >= done {
		return out
	}
	ev := gjson.Parse(byteview.String(data))
	if exc, ok := strings.CutPrefix(string(name), translate.ExceptionPrefix); ok {
		t.state = failed
		return appendErrorEvent(out, exc, ev.Get("message").String())
	}
	if !ev.IsObject() {
		return out
	}
	switch string(name) {
	case "messageStart":
		out = t.open(out)
	case "contentBlockStart":
		out = t.blockStart(out, ev)
	case "contentBlockDelta":
		out = t.blockDelta(out, ev)
	case "contentBlockStop":
		out = t.blockStop(out, ev)
	case "messageStop":
		reason := finishReason(ev.Get("stopReason").String())
		if reason == "tool_calls" && t.json.seen && len(t.calls) == 0 {
			reason = "stop"
		}
		out = t.finish(out, reason)
	case "metadata":
		if u, ok := readUsage(t.u, ev.Get("usage")); ok {
			t.u, t.usageOK = u, true
		}
		out = t.finish(out, "stop")
		if t.includeUsage && t.usageOK {
			out = t.w.Usage(out, t.u.OpenAI())
		}
		out = append(out, "data: [DONE]\n\n"...)
		t.state = done
	}
	return out
}

// open builds the shared chunk prefix and emits the role chunk, once.
func (t *stream) open(out []byte) []byte {
	if t.state != fresh {
		return out
	}
	t.state = open
	return t.w.Open(out, wire.NewID(), t.model, t.created, t.includeUsage)
}

func (t *stream) blockStart(out []byte, ev gjson.Result) []byte {
	tu := ev.Get("start.toolUse")
	idx := ev.Get("contentBlockIndex")
	if !tu.IsObject() || idx.Type != gjson.Number {
		return out
	}
	if tu.Get("name").String() == jsonTool && !t.json.open {
		t.json.index, t.json.open, t.json.seen = idx.Int(), true, true
		return t.open(out)
	}
	if _, dup := t.tools[idx.Int()]; dup {
		return out
	}
	out = t.open(out)
	if t.tools == nil {
		t.tools = make(map[int64]int)
	}
	n := len(t.calls)
	t.tools[idx.Int()] = n
	t.calls = append(t.calls, false)
	return t.w.ToolCall(out, n, tu.Get("toolUseId").String(), tu.Get("name").String())
}

func (t *stream) blockDelta(out []byte, ev gjson.Result) []byte {
	d := ev.Get("delta")
	if text := d.Get("text"); text.Type == gjson.String {
		if text.Str == "" {
			return out
		}
		return t.w.Content(t.open(out), text.Str)
	}
	if in := d.Get("toolUse.input"); in.Type == gjson.String && in.Str != "" {
		if t.json.open && ev.Get("contentBlockIndex").Int() == t.json.index {
			t.json.text = true
			return t.w.Content(t.open(out), in.Str)
		}
		n, ok := t.tools[ev.Get("contentBlockIndex").Int()]
		if !ok {
			return out
		}
		t.calls[n] = true
		return t.w.Arguments(out, n, in.Str)
	}
	if rc := d.Get("reasoningContent"); rc.IsObject() {
		return t.reasoning(out, ev.Get("contentBlockIndex"), rc)
	}
	return out // citations and future deltas
}

// thought is one reasoning block being streamed.
type thought struct {
	text      []byte
	signature string
}

// reasoning handles a reasoningContent delta: a text fragment goes out at
// once, a signature is kept for the block's end, redacted content goes out
// whole as a thinking block of its own.
func (t *stream) reasoning(out []byte, idx, rc gjson.Result) []byte {
	if rd := rc.Get("redactedContent"); rd.Type == gjson.String {
		d := wire.AppendRedactedBlock(append([]byte(nil), `{"thinking_blocks":[`...), rd.Str)
		return t.w.Delta(t.open(out), append(d, "]}"...))
	}
	if idx.Type != gjson.Number {
		return out
	}
	th := t.thoughts[idx.Int()]
	if th == nil {
		if t.thoughts == nil {
			t.thoughts = make(map[int64]*thought)
		}
		th = &thought{}
		t.thoughts[idx.Int()] = th
	}
	if sig := rc.Get("signature"); sig.Type == gjson.String {
		th.signature += sig.Str
	}
	text := rc.Get("text")
	if text.Type != gjson.String || text.Str == "" {
		return out
	}
	th.text = append(th.text, text.Str...)
	return t.w.Reasoning(t.open(out), text.Str)
}

// blockStop gives a tool call that streamed no input "{}" as arguments, as
// OpenAI does, so arguments always parse.
func (t *stream) blockStop(out []byte, ev gjson.Result) []byte {
	idx := ev.Get("contentBlockIndex").Int()
	if th := t.thoughts[idx]; th != nil {
		delete(t.thoughts, idx)
		d := wire.AppendThinkingBlock(append([]byte(nil), `{"thinking_blocks":[`...), string(th.text), th.signature)
		return t.w.Delta(t.open(out), append(d, "]}"...))
	}
	if t.json.open && idx == t.json.index {
		t.json.open = false
		if t.json.text {
			return out
		}
		return t.w.Content(t.open(out), "{}")
	}
	n, ok := t.tools[idx]
	if !ok || t.calls[n] {
		return out
	}
	t.calls[n] = true
	return t.w.Arguments(out, n, "{}")
}

func (t *stream) finish(out []byte, reason string) []byte {
	if t.finished {
		return out
	}
	t.finished = true
	return t.w.Finish(t.open(out), reason)
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

func (t *stream) Usage() (usage.Usage, bool) { return t.u.OpenAI(), t.usageOK }

// Partial is Usage: ConverseStream reports usage once, in its final
// metadata event, so there are no partial counts to meter a cut stream by.
func (t *stream) Partial() (usage.Usage, bool) { return t.Usage() }

// appendErrorEvent appends the OpenAI-format error event that ends a failed
// stream. An empty exception is a stream cut short: a server error.
func appendErrorEvent(out []byte, exception, msg string) []byte {
	status := 502
	if exception != "" {
		status = 0
	}
	if msg == "" {
		msg = "The provider reported an error."
	}
	out = append(out, "data: "...)
	out = append(out, openAIError(status, exception, msg).Body()...)
	return append(out, "\n\n"...)
}
