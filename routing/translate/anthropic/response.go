package anthropic

import (
	"errors"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/pretty"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Response translates a Messages API response into a chat.completion. Text
// blocks are concatenated into the message content; tool_use blocks become
// tool_calls with the input as compact JSON arguments, except the
// response_format json_object tool, whose input is the content (and whose
// tool_use stop is finish_reason "stop"); thinking blocks become
// reasoning_content (their text, concatenated) and thinking_blocks (each
// block as Anthropic sent it, signature included, which a client sends back
// on the assistant message to replay it). Server tool and other blocks are
// left out. The id is the Anthropic message id.
func (s *Schema) Response(body []byte, model string) ([]byte, usage.Usage, bool, error) {
	js := byteview.String(body)
	if !gjson.Valid(js) {
		return nil, usage.Usage{}, false, errors.New("anthropic: response body is not valid JSON")
	}
	msg := gjson.Parse(js)
	if !msg.IsObject() || msg.Get("type").String() != "message" {
		return nil, usage.Usage{}, false, errors.New("anthropic: response body is not a message")
	}
	content := msg.Get("content")
	if !content.IsArray() {
		return nil, usage.Usage{}, false, errors.New("anthropic: response message has no content array")
	}

	out := make([]byte, 0, len(body)+256)
	out = append(out, `{"id":`...)
	if id := msg.Get("id").String(); id != "" {
		out = oaierror.AppendString(out, id)
	} else {
		out = oaierror.AppendString(out, wire.NewID())
	}
	out = append(out, `,"object":"chat.completion","created":`...)
	out = strconv.AppendInt(out, s.now(), 10)
	out = append(out, `,"model":`...)
	if m := msg.Get("model").String(); m != "" {
		model = m
	}
	out = oaierror.AppendString(out, model)
	out = append(out, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)

	var text, reasoning, thinking []byte
	texts, calls, thoughts := 0, 0, 0
	jsonAnswer := false
	for _, b := range content.Array() {
		switch b.Get("type").String() {
		case "text":
			text = append(text, b.Get("text").String()...)
			texts++
		case "tool_use":
			if b.Get("name").String() == jsonTool {
				text = append(text, compactObject(b.Get("input"))...)
				texts++
				jsonAnswer = true
				continue
			}
			calls++
		case "thinking":
			reasoning = append(reasoning, b.Get("thinking").String()...)
			thinking = wire.AppendThinkingBlock(sep(thinking), b.Get("thinking").String(), b.Get("signature").String())
			thoughts++
		case "redacted_thinking":
			thinking = wire.AppendRedactedBlock(sep(thinking), b.Get("data").String())
			thoughts++
		}
	}
	if texts > 0 || calls == 0 {
		out = oaierror.AppendString(out, string(text))
	} else {
		out = append(out, "null"...)
	}
	out = append(out, `,"refusal":null`...)
	if thoughts > 0 {
		out = append(out, `,"reasoning_content":`...)
		out = oaierror.AppendString(out, string(reasoning))
		out = append(out, `,"thinking_blocks":[`...)
		out = append(out, thinking...)
		out = append(out, ']')
	}
	if calls > 0 {
		out = append(out, `,"tool_calls":[`...)
		i := 0
		for _, b := range content.Array() {
			if b.Get("type").String() != "tool_use" || b.Get("name").String() == jsonTool {
				continue
			}
			if i > 0 {
				out = append(out, ',')
			}
			i++
			out = wire.AppendToolCall(out, b.Get("id").String(), b.Get("name").String(), b.Get("input"))
		}
		out = append(out, ']')
	}
	reason := finishReason(msg.Get("stop_reason").String())
	if jsonAnswer && calls == 0 && reason == "tool_calls" {
		reason = "stop"
	}
	out = append(out, `},"logprobs":null,"finish_reason":"`...)
	out = append(out, reason...)
	out = append(out, `"}]`...)

	var u usage.Usage
	a, ok := usage.FromAnthropic(usage.Anthropic{}, []byte(msg.Get("usage").Raw))
	if ok {
		u = a.OpenAI()
		u.ReasoningTokens = min(thinkingTokens(msg.Get("usage"), 0), u.CompletionTokens)
		out = append(out, `,"usage":`...)
		out = wire.AppendUsage(out, u)
	}
	return append(out, '}'), u, ok, nil
}

// thinkingTokens reads usage.output_tokens_details.thinking_tokens, the part
// of output_tokens spent thinking, or returns prev when it is absent or not
// a count.
func thinkingTokens(usage gjson.Result, prev int64) int64 {
	n := usage.Get("output_tokens_details.thinking_tokens")
	if n.Type != gjson.Number || n.Num < 0 || n.Num > 1<<53 || n.Num != float64(int64(n.Num)) {
		return prev
	}
	return int64(n.Num)
}

// compactObject is an object's JSON without insignificant space, "{}" for
// anything else.
func compactObject(r gjson.Result) string {
	if !r.IsObject() {
		return "{}"
	}
	return string(pretty.Ugly([]byte(r.Raw)))
}
