package anthropic

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/routing/usage"
)

func TestResponseFixture(t *testing.T) {
	out, u, ok, err := testSchema.Response(readFixture(t, "anthropic/messages_response.json"), "fallback")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, out, []byte(`{"id":"msg_01HkT7qWv3ZbN9xR2pLmC4sD","object":"chat.completion","created":1795300400,
		"model":"claude-sonnet-4-5-20250929",
		"choices":[{"index":0,"message":{"role":"assistant","refusal":null,
			"content":"An API gateway is the single entry point that authenticates, rate-limits and routes client requests to the right backend service."},
			"logprobs":null,"finish_reason":"stop"}],
		"usage":{"prompt_tokens":2094,"completion_tokens":29,"total_tokens":2123,
			"prompt_tokens_details":{"cached_tokens":2048},"completion_tokens_details":{"reasoning_tokens":0}}}`))
	want := usage.Usage{PromptTokens: 2094, CompletionTokens: 29, TotalTokens: 2123, CachedTokens: 2048}
	if !ok || u != want {
		t.Fatalf("usage %+v %v, want %+v", u, ok, want)
	}
	// The lead's OpenAI reader must see the same usage in the translated body.
	if got, ok := usage.FromOpenAI(out); !ok || got != want {
		t.Fatalf("FromOpenAI(out) = %+v %v", got, ok)
	}
}

func TestResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		usageOK bool
	}{
		{
			name: "thinking, two texts and two tools; cache writes count as prompt",
			in: `{"type":"message","id":"msg_1","model":"claude-x","content":[
				{"type":"thinking","thinking":"hmm","signature":"s"},
				{"type":"text","text":"Let me check "},
				{"type":"text","text":"both."},
				{"type":"tool_use","id":"toolu_1","name":"get","input":{ "city" : "Lisbon" }},
				{"type":"server_tool_use","id":"srv","name":"web_search","input":{"q":"x"}},
				{"type":"tool_use","id":"toolu_2","name":"now","input":{}}],
				"stop_reason":"tool_use",
				"usage":{"input_tokens":10,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"output_tokens":5}}`,
			want: `{"id":"msg_1","object":"chat.completion","created":1795300400,"model":"claude-x",
				"choices":[{"index":0,"message":{"role":"assistant","refusal":null,"content":"Let me check both.",
					"reasoning_content":"hmm","thinking_blocks":[{"type":"thinking","thinking":"hmm","signature":"s"}],
					"tool_calls":[
						{"id":"toolu_1","type":"function","function":{"name":"get","arguments":"{\"city\":\"Lisbon\"}"}},
						{"id":"toolu_2","type":"function","function":{"name":"now","arguments":"{}"}}]},
					"logprobs":null,"finish_reason":"tool_calls"}],
				"usage":{"prompt_tokens":1110,"completion_tokens":5,"total_tokens":1115,
					"prompt_tokens_details":{"cached_tokens":1000},"completion_tokens_details":{"reasoning_tokens":0}}}`,
			usageOK: true,
		},
		{
			name: "tools only: content null; no usage, no id, no model",
			in:   `{"type":"message","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":[1,2]}}],"stop_reason":"max_tokens"}`,
			want: `{"id":"GENERATED","object":"chat.completion","created":1795300400,"model":"fallback",
				"choices":[{"index":0,"message":{"role":"assistant","refusal":null,"content":null,
					"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},
					"logprobs":null,"finish_reason":"length"}]}`,
		},
		{
			name: "empty content, refusal",
			in:   `{"type":"message","id":"m","model":"c","content":[],"stop_reason":"refusal","usage":{"input_tokens":3,"output_tokens":0}}`,
			want: `{"id":"m","object":"chat.completion","created":1795300400,"model":"c",
				"choices":[{"index":0,"message":{"role":"assistant","refusal":null,"content":""},"logprobs":null,"finish_reason":"content_filter"}],
				"usage":{"prompt_tokens":3,"completion_tokens":0,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
			usageOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, ok, err := testSchema.Response([]byte(tt.in), "fallback")
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.usageOK {
				t.Fatalf("usage ok %v, want %v", ok, tt.usageOK)
			}
			want := tt.want
			if strings.Contains(want, "GENERATED") {
				var got struct{ ID string }
				if err := json.Unmarshal(out, &got); err != nil || !strings.HasPrefix(got.ID, "chatcmpl-") {
					t.Fatalf("generated id %q (%v)", got.ID, err)
				}
				want = strings.Replace(want, "GENERATED", got.ID, 1)
			}
			sameJSON(t, out, []byte(want))
		})
	}
}

func TestResponseErrors(t *testing.T) {
	for _, in := range []string{``, `{"type":"message"`, `[]`, `{"type":"error","error":{}}`, `{"type":"message","content":"x"}`} {
		if out, _, _, err := testSchema.Response([]byte(in), "m"); err == nil {
			t.Errorf("Response(%q) = %s, want an error", in, out)
		}
	}
}

func TestError(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   int
		wantJS string
	}{
		{401, string(readFixture(t, "anthropic/error_401.json")), 401,
			`{"error":{"message":"invalid x-api-key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`},
		{529, string(readFixture(t, "anthropic/error_529_overloaded.json")), 503,
			`{"error":{"message":"Overloaded","type":"server_error","param":null,"code":null}}`},
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}`, 400,
			`{"error":{"message":"max_tokens: too big","type":"invalid_request_error","param":null,"code":null}}`},
		{402, `{"type":"error","error":{"type":"billing_error","message":"pay"}}`, 402,
			`{"error":{"message":"pay","type":"invalid_request_error","param":null,"code":"insufficient_quota"}}`},
		{403, `{"type":"error","error":{"type":"permission_error","message":"no"}}`, 403,
			`{"error":{"message":"no","type":"permission_error","param":null,"code":null}}`},
		{404, `{"type":"error","error":{"type":"not_found_error","message":"model: x"}}`, 404,
			`{"error":{"message":"model: x","type":"not_found_error","param":null,"code":null}}`},
		{413, `{"type":"error","error":{"type":"request_too_large","message":"big"}}`, 413,
			`{"error":{"message":"big","type":"invalid_request_error","param":null,"code":"request_too_large"}}`},
		{500, `{"type":"error","error":{"type":"api_error","message":"oops"}}`, 500,
			`{"error":{"message":"oops","type":"server_error","param":null,"code":null}}`},
		{504, `<html>gateway timeout</html>`, 504,
			`{"error":{"message":"The provider returned HTTP 504.","type":"server_error","param":null,"code":null}}`},
		{503, `{"type":"error","error":{"type":"overloaded_error"}}`, 503,
			`{"error":{"message":"The provider returned HTTP 503 (overloaded_error).","type":"server_error","param":null,"code":null}}`},
		{302, ``, 502,
			`{"error":{"message":"The provider returned HTTP 302.","type":"server_error","param":null,"code":null}}`},
	}
	for _, tt := range tests {
		status, body := testSchema.Error(tt.status, []byte(tt.body))
		if status != tt.want {
			t.Errorf("%d: status %d, want %d", tt.status, status, tt.want)
		}
		sameJSON(t, body, []byte(tt.wantJS))
	}
}

func TestPathAndHeaders(t *testing.T) {
	if p, ok := testSchema.Path("/chat/completions"); !ok || p != "/messages" {
		t.Errorf("chat: %q %v", p, ok)
	}
	for _, e := range []string{"/embeddings", "/models", "/audio/transcriptions", ""} {
		if p, ok := testSchema.Path(e); ok {
			t.Errorf("%s: %q, want not offered", e, p)
		}
	}
	if h := testSchema.Headers(); len(h) != 1 || h[0] != [2]string{"anthropic-version", "2023-06-01"} {
		t.Errorf("headers %q", h)
	}
}
