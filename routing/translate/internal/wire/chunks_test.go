package wire

import (
	"testing"

	"github.com/tollgate-ai/tollgate/routing/usage"
)

func TestChunks(t *testing.T) {
	const pre = `data: {"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[`
	tests := []struct {
		name         string
		includeUsage bool
		write        func(c *Chunks, out []byte) []byte
		want         string
	}{
		{"role", false, func(c *Chunks, out []byte) []byte { return out },
			pre + `{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n"},
		{"content with usage null", true, func(c *Chunks, out []byte) []byte { return c.Content(out[:0], "hi\"") },
			pre + `{"index":0,"delta":{"content":"hi\""},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n"},
		{"tool call", false, func(c *Chunks, out []byte) []byte { return c.ToolCall(out[:0], 1, "t1", "f") },
			pre + `{"index":0,"delta":{"tool_calls":[{"index":1,"id":"t1","type":"function","function":{"name":"f","arguments":""}}]},"logprobs":null,"finish_reason":null}]}` + "\n\n"},
		{"arguments", false, func(c *Chunks, out []byte) []byte { return c.Arguments(out[:0], 0, `{"a":1}`) },
			pre + `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]},"logprobs":null,"finish_reason":null}]}` + "\n\n"},
		{"finish", true, func(c *Chunks, out []byte) []byte { return c.Finish(out[:0], "stop") },
			pre + `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}` + "\n\n"},
		{"usage", true, func(c *Chunks, out []byte) []byte {
			return c.Usage(out[:0], usage.Usage{PromptTokens: 1, TotalTokens: 1})
		},
			pre + `],"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}` + "\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Chunks
			out := c.Open(nil, "c1", "m", 7, tt.includeUsage)
			if got := string(tt.write(&c, out)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
