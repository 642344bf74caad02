package cache

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

const fixtures = "../../test/testdata/fixtures/openai"

// sseData returns the data of each event of an SSE body, [DONE] included.
func sseData(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if d, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: ")); ok {
			out = append(out, bytes.Clone(d))
		}
	}
	return out
}

func TestReplayParsesInOpenAIGo(t *testing.T) {
	cases := []struct {
		name, body string
		usage      bool
	}{
		{"text with usage", `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"message":{"role":"assistant","content":"Hello \"there\"\n"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`, true},
		{"text without usage", `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`, false},
		{"pretty-printed usage", "{\"id\":\"chatcmpl-3\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\n  \"prompt_tokens\": 9,\n  \"completion_tokens\": 1,\n  \"total_tokens\": 10\n}}", true},
		{"tool calls", `{"id":"chatcmpl-2","object":"chat.completion","created":1700000001,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30}}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want openai.ChatCompletion
			if err := json.Unmarshal([]byte(c.body), &want); err != nil {
				t.Fatal(err)
			}
			stream := Replay([]byte(c.body), c.usage)
			events := sseData(t, stream)
			if string(events[len(events)-1]) != "[DONE]" {
				t.Fatalf("stream does not end with [DONE]:\n%s", stream)
			}
			var acc openai.ChatCompletionAccumulator
			usageChunks := 0
			for _, d := range events[:len(events)-1] {
				var ch openai.ChatCompletionChunk
				if err := json.Unmarshal(d, &ch); err != nil {
					t.Fatalf("chunk %s: %v", d, err)
				}
				if ch.JSON.Usage.Valid() && ch.Usage.TotalTokens > 0 {
					usageChunks++
				}
				if !acc.AddChunk(ch) {
					t.Fatalf("accumulator refused chunk %s", d)
				}
			}
			if c.usage != (usageChunks == 1) {
				t.Errorf("usage chunks = %d with include_usage %v", usageChunks, c.usage)
			}
			got := acc.Choices[0]
			if got.Message.Content != want.Choices[0].Message.Content || got.FinishReason != want.Choices[0].FinishReason {
				t.Errorf("replayed %q/%q, stored %q/%q", got.Message.Content, got.FinishReason, want.Choices[0].Message.Content, want.Choices[0].FinishReason)
			}
			if len(got.Message.ToolCalls) != len(want.Choices[0].Message.ToolCalls) {
				t.Fatalf("tool calls %d, want %d", len(got.Message.ToolCalls), len(want.Choices[0].Message.ToolCalls))
			}
			for i, tc := range got.Message.ToolCalls {
				w := want.Choices[0].Message.ToolCalls[i]
				if tc.ID != w.ID || tc.Function.Name != w.Function.Name || tc.Function.Arguments != w.Function.Arguments {
					t.Errorf("tool call %d = %+v, want %+v", i, tc.Function, w.Function)
				}
			}
			if c.usage && acc.Usage.TotalTokens != want.Usage.TotalTokens {
				t.Errorf("usage %d, want %d", acc.Usage.TotalTokens, want.Usage.TotalTokens)
			}
		})
	}
}

// A streamed answer rebuilt by the Accumulator, replayed, and rebuilt again
// is the same body: what a streaming miss stores is what a hit serves.
func TestAccumulatorRoundTrip(t *testing.T) {
	for _, name := range []string{"chat_stream.sse", "chat_stream_tool_calls.sse", "chat_stream_reasoning.sse"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(fixtures, name))
			if err != nil {
				t.Fatal(err)
			}
			var a Accumulator
			for _, d := range sseData(t, raw) {
				if string(d) != "[DONE]" {
					a.Add(d)
				}
			}
			body, ok := a.Body()
			if !ok {
				t.Fatalf("complete stream %s not accumulated", name)
			}
			var cc openai.ChatCompletion
			if err := json.Unmarshal(body, &cc); err != nil || len(cc.Choices) == 0 || cc.Usage.TotalTokens == 0 {
				t.Fatalf("accumulated body %s: %v", body, err)
			}
			var b Accumulator
			for _, d := range sseData(t, Replay(body, true)) {
				if string(d) != "[DONE]" {
					b.Add(d)
				}
			}
			again, ok := b.Body()
			if !ok || !bytes.Equal(again, body) {
				t.Errorf("round trip changed the body:\n%s\n%s", body, again)
			}
		})
	}
}

func TestAccumulatorRefusesIncomplete(t *testing.T) {
	cases := map[string][]string{
		"no finish_reason": {`{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}`, `{"id":"c","choices":[],"usage":{"total_tokens":1}}`},
		"no usage":         {`{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}`},
		"error event":      {`{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}],"usage":{"total_tokens":1}}`, `{"error":{"message":"cut"}}`},
		"nothing":          {},
	}
	for name, events := range cases {
		t.Run(name, func(t *testing.T) {
			var a Accumulator
			for _, e := range events {
				a.Add([]byte(e))
			}
			if body, ok := a.Body(); ok {
				t.Errorf("incomplete stream accumulated: %s", body)
			}
		})
	}
}

func FuzzAccumulator(f *testing.F) {
	f.Add([]byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"Hi","tool_calls":[{"index":0,"id":"x","function":{"name":"f","arguments":"{"}}]},"finish_reason":"stop"}],"usage":{"total_tokens":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Accumulator
		a.Add(data)
		if body, ok := a.Body(); ok && !json.Valid(body) {
			t.Fatalf("invalid body %s", body)
		}
		if body, ok := a.Body(); ok {
			if s := Replay(body, true); !strings.HasSuffix(string(s), "data: [DONE]\n\n") {
				t.Fatalf("replay without [DONE]: %s", s)
			}
		}
	})
}
