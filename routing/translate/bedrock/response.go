package bedrock

import (
	"errors"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Response translates a Converse response,
// {"output":{"message":{"role","content":[...]}},"stopReason","usage"},
// into a chat.completion. Text blocks are concatenated into the content;
// toolUse blocks become tool_calls with the input as compact JSON
// arguments; reasoning and other blocks are left out.
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

	var text []byte
	texts, calls := 0, 0
	blocks := content.Array()
	for _, b := range blocks {
		if t := b.Get("text"); t.Type == gjson.String {
			text = append(text, t.Str...)
			texts++
		} else if b.Get("toolUse").IsObject() {
			calls++
		}
	}
	if texts > 0 || calls == 0 {
		out = oaierror.AppendString(out, string(text))
	} else {
		out = append(out, "null"...)
	}
	out = append(out, `,"refusal":null`...)
	if calls > 0 {
		out = append(out, `,"tool_calls":[`...)
		i := 0
		for _, b := range blocks {
			tu := b.Get("toolUse")
			if !tu.IsObject() {
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
	out = append(out, `},"logprobs":null,"finish_reason":"`...)
	out = append(out, finishReason(root.Get("stopReason").String())...)
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
