package wire

import (
	"strconv"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Chunks writes the chat.completion.chunk SSE events of one translated
// stream. The JSON every chunk shares is built once, by Open; each other
// method appends one event to out. It keeps no stream state: when to open
// or finish is the translator's business.
type Chunks struct {
	prefix    []byte // `data: {"id":…,"choices":[`
	tail      []byte // closes a content chunk after its delta
	usageNull bool   // the client asked for include_usage
}

// Open builds the shared prefix and appends the role chunk
// {"role":"assistant","content":""}.
func (c *Chunks) Open(out []byte, id, model string, created int64, includeUsage bool) []byte {
	c.prefix = append(c.prefix[:0], `data: {"id":`...)
	c.prefix = oaierror.AppendString(c.prefix, id)
	c.prefix = append(c.prefix, `,"object":"chat.completion.chunk","created":`...)
	c.prefix = strconv.AppendInt(c.prefix, created, 10)
	c.prefix = append(c.prefix, `,"model":`...)
	c.prefix = oaierror.AppendString(c.prefix, model)
	c.prefix = append(c.prefix, `,"choices":[`...)
	c.tail = append(c.tail[:0], `,"logprobs":null,"finish_reason":null}]`...)
	c.usageNull = includeUsage
	if includeUsage {
		// OpenAI's shape: with include_usage every chunk has "usage":null.
		c.tail = append(c.tail, `,"usage":null`...)
	}
	c.tail = append(c.tail, "}\n\n"...)
	out = c.delta(out)
	out = append(out, `{"role":"assistant","content":""}`...)
	return append(out, c.tail...)
}

// delta starts a content chunk; the caller appends the delta object and
// c.tail.
func (c *Chunks) delta(out []byte) []byte {
	out = append(out, c.prefix...)
	return append(out, `{"index":0,"delta":`...)
}

// Content appends a {"content": text} chunk.
func (c *Chunks) Content(out []byte, text string) []byte {
	out = c.delta(out)
	out = append(out, `{"content":`...)
	out = oaierror.AppendString(out, text)
	out = append(out, '}')
	return append(out, c.tail...)
}

// Reasoning appends a {"reasoning_content": text} chunk: thinking text, in
// the field DeepSeek, vLLM and LiteLLM use for it.
func (c *Chunks) Reasoning(out []byte, text string) []byte {
	out = c.delta(out)
	out = append(out, `{"reasoning_content":`...)
	out = oaierror.AppendString(out, text)
	out = append(out, '}')
	return append(out, c.tail...)
}

// Delta appends a chunk whose delta is the JSON object delta.
func (c *Chunks) Delta(out []byte, delta []byte) []byte {
	out = c.delta(out)
	out = append(out, delta...)
	return append(out, c.tail...)
}

// ToolCall appends the chunk that starts tool call n, with empty arguments.
func (c *Chunks) ToolCall(out []byte, n int, id, name string) []byte {
	out = c.delta(out)
	out = append(out, `{"tool_calls":[{"index":`...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, `,"id":`...)
	out = oaierror.AppendString(out, id)
	out = append(out, `,"type":"function","function":{"name":`...)
	out = oaierror.AppendString(out, name)
	out = append(out, `,"arguments":""}}]}`...)
	return append(out, c.tail...)
}

// Arguments appends a fragment of tool call n's arguments.
func (c *Chunks) Arguments(out []byte, n int, frag string) []byte {
	out = c.delta(out)
	out = append(out, `{"tool_calls":[{"index":`...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, `,"function":{"arguments":`...)
	out = oaierror.AppendString(out, frag)
	out = append(out, `}}]}`...)
	return append(out, c.tail...)
}

// Finish appends the chunk with an empty delta and finish_reason reason
// (a JSON-safe constant).
func (c *Chunks) Finish(out []byte, reason string) []byte {
	out = c.delta(out)
	out = append(out, `{},"logprobs":null,"finish_reason":"`...)
	out = append(out, reason...)
	out = append(out, `"}]`...)
	if c.usageNull {
		out = append(out, `,"usage":null`...)
	}
	return append(out, "}\n\n"...)
}

// Usage appends the include_usage chunk: no choices, the usage object.
func (c *Chunks) Usage(out []byte, u usage.Usage) []byte {
	out = append(out, c.prefix...)
	out = append(out, `],"usage":`...)
	out = AppendUsage(out, u)
	return append(out, "}\n\n"...)
}
