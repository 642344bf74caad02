package fakeprovider

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Echo answers an OpenAI chat request with its last user message as the
// completion: whole for a non-streamed request, in 5-byte content deltas for
// a streamed one (with a usage chunk when include_usage is set). It lets
// tests see what the provider received come back through the gateway, e.g.
// a redacted placeholder that the gateway must restore. Other kinds answer
// normally.
func Echo() Failure { return Failure{kind: failEcho} }

const failEcho failureKind = 100

func echoReply(body []byte, normal reply) reply {
	var text string
	gjson.GetBytes(body, "messages").ForEach(func(_, m gjson.Result) bool {
		if m.Get("role").Str == "user" && m.Get("content").Type == gjson.String {
			text = m.Get("content").Str
		}
		return true
	})
	h := normal.header.Clone()
	if !gjson.GetBytes(body, "stream").Bool() {
		out := []byte(`{"id":"chatcmpl-echo","object":"chat.completion","created":1795300000,"model":"echo","choices":[{"index":0,"message":{"role":"assistant","content":"","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":10,"total_tokens":20}}`)
		out, _ = sjson.SetBytes(out, "choices.0.message.content", text)
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(out)))
		return reply{status: http.StatusOK, header: h, chunks: [][]byte{out}}
	}
	chunk := func(delta, finish string) []byte {
		c := []byte(`{"id":"chatcmpl-echo","object":"chat.completion.chunk","created":1795300000,"model":"echo","choices":[{"index":0,"delta":{},"finish_reason":null}]}`)
		if delta != "" {
			c, _ = sjson.SetRawBytes(c, "choices.0.delta", []byte(delta))
		}
		if finish != "" {
			c, _ = sjson.SetBytes(c, "choices.0.finish_reason", finish)
		}
		return []byte(fmt.Sprintf("data: %s\n\n", c))
	}
	events := [][]byte{chunk(`{"role":"assistant","content":""}`, "")}
	for i := 0; i < len(text); i += 5 {
		d, _ := sjson.Set(`{}`, "content", text[i:min(i+5, len(text))])
		events = append(events, chunk(d, ""))
	}
	events = append(events, chunk("", "stop"))
	if gjson.GetBytes(body, "stream_options.include_usage").Bool() {
		events = append(events, []byte(`data: {"id":"chatcmpl-echo","object":"chat.completion.chunk","created":1795300000,"model":"echo","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":10,"total_tokens":20}}`+"\n\n"))
	}
	events = append(events, []byte("data: [DONE]\n\n"))
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Del("Content-Length")
	return reply{status: http.StatusOK, header: h, chunks: events, stream: true}
}
