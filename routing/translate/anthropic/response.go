package anthropic

import (
	"errors"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Response translates a Messages API response into a chat.completion. Text
// blocks are concatenated into the message content; tool_use blocks become
// tool_calls with the input as compact JSON arguments; thinking, server tool
// and other blocks are left out. The id is the Anthropic message id.
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

	var text []byte
	texts, calls := 0, 0
	for _, b := range content.Array() {
		switch b.Get("type").String() {
		case "text":
			text = append(text, b.Get("text").String()...)
			texts++
		case "tool_use":
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
		for _, b := range content.Array() {
			if b.Get("type").String() != "tool_use" {
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
	out = append(out, `},"logprobs":null,"finish_reason":"`...)
	out = append(out, finishReason(msg.Get("stop_reason").String())...)
	out = append(out, `"}]`...)

	var u usage.Usage
	a, ok := usage.FromAnthropic(usage.Anthropic{}, []byte(msg.Get("usage").Raw))
	if ok {
		u = a.OpenAI()
		out = append(out, `,"usage":`...)
		out = wire.AppendUsage(out, u)
	}
	return append(out, '}'), u, ok, nil
}
