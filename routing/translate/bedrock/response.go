package bedrock

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

// Response translates a Converse response,
// {"output":{"message":{"role","content":[...]}},"stopReason","usage"},
// into a chat.completion. Text blocks are concatenated into the content;
// toolUse blocks become tool_calls with the input as compact JSON
// arguments, except the response_format tool (jsonTool), whose input is the
// content (and whose tool_use stop is finish_reason "stop");
// reasoningContent blocks become reasoning_content (their text,
// concatenated) and thinking_blocks ({"type":"thinking","thinking",
// "signature"} or {"type":"redacted_thinking","data"}, the shape the
// Anthropic translation returns, which a client sends back to replay them).
// Other blocks are left out. Converse reports no reasoning token count, so
// reasoning_tokens stays 0.
func (s *Schema) Response(body []byte, model string) ([]byte, usage.Usage, bool, error) {
	js := byteview.String(body)
	if !gjson.Valid(js) {
		return nil, usage.Usage{}, false, errors.New("bedrock: response body is not valid JSON")
	}
	root := gjson.Parse(js)
	content := root.Get("output.message.content")
	if !root.IsObject() || !content.IsArray() {
		return nil, usage.Usage{}, false, errors.New("bedrock: response has no output.message.content array")
	}
	out := make([]byte, 0, len(body)+256)
	out = append(out, `{"id":`...)
	out = oaierror.AppendString(out, wire.NewID())
	out = append(out, `,"object":"chat.completion","created":`...)
	out = strconv.AppendInt(out, s.now(), 10)
	out = append(out, `,"model":`...)
	out = oaierror.AppendString(out, model)
	out = append(out, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)

	var text, reasoning, thinking []byte
	texts, calls, thoughts := 0, 0, 0
	jsonAnswer := false
	blocks := content.Array()
	for _, b := range blocks {
		if t := b.Get("text"); t.Type == gjson.String {
			text = append(text, t.Str...)
			texts++
		} else if tu := b.Get("toolUse"); tu.IsObject() {
			if tu.Get("name").String() == jsonTool {
				text = append(text, compactObject(tu.Get("input"))...)
				texts++
				jsonAnswer = true
				continue
			}
			calls++
		} else if rc := b.Get("reasoningContent"); rc.IsObject() {
			if rt := rc.Get("reasoningText"); rt.IsObject() {
				reasoning = append(reasoning, rt.Get("text").String()...)
				thinking = wire.AppendThinkingBlock(sep(thinking), rt.Get("text").String(), rt.Get("signature").String())
				thoughts++
			} else if rd := rc.Get("redactedContent"); rd.Type == gjson.String {
				thinking = wire.AppendRedactedBlock(sep(thinking), rd.Str)
				thoughts++
			}
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
		for _, b := range blocks {
			tu := b.Get("toolUse")
			if !tu.IsObject() || tu.Get("name").String() == jsonTool {
				continue
			}
			if i > 0 {
				out = append(out, ',')
			}
			i++
			out = wire.AppendToolCall(out, tu.Get("toolUseId").String(), tu.Get("name").String(), tu.Get("input"))
		}
		out = append(out, ']')
	}
	reason := finishReason(root.Get("stopReason").String())
	if jsonAnswer && calls == 0 && reason == "tool_calls" {
		reason = "stop"
	}
	out = append(out, `},"logprobs":null,"finish_reason":"`...)
	out = append(out, reason...)
	out = append(out, `"}]`...)

	var u usage.Usage
	a, ok := readUsage(usage.Anthropic{}, root.Get("usage"))
	if ok {
		u = a.OpenAI()
		out = append(out, `,"usage":`...)
		out = wire.AppendUsage(out, u)
	}
	return append(out, '}'), u, ok, nil
}

// compactObject is an object's JSON without insignificant space, "{}" for
// anything else.
func compactObject(r gjson.Result) string {
	if !r.IsObject() {
		return "{}"
	}
	return string(pretty.Ugly([]byte(r.Raw)))
}

func sep(b []byte) []byte {
	if len(b) > 0 {
		return append(b, ',')
	}
	return b
}
