package bedrock

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

func schema() *Schema { return &Schema{Now: func() time.Time { return time.Unix(1764000000, 0) }} }

// canon re-encodes JSON so that comparisons ignore key order and spacing.
func canon(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRequest(t *testing.T) {
	tests := []struct {
		name, in, want string
		opts           translate.RequestOptions
	}{
		{
			name: "system, user, sampling, stop",
			in: `{"model":"x","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"No lists."}]},
				{"role":"user","content":"Hi"}],"temperature":0.2,"top_p":0.9,"stop":["END",""],"max_tokens":100,"stream":true,
				"stream_options":{"include_usage":true},"seed":null,"user":"u1","frequency_penalty":0}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"system":[{"text":"Be brief."},{"text":"No lists."}],
				"inferenceConfig":{"maxTokens":100,"temperature":0.2,"topP":0.9,"stopSequences":["END"]}}`,
		},
		{
			name: "default max tokens from options",
			in:   `{"messages":[{"role":"user","content":"Hi"}]}`,
			opts: translate.RequestOptions{DefaultMaxTokens: 777},
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":777}}`,
		},
		{
			name: "max_completion_tokens wins; image data URL",
			in: `{"max_tokens":5,"max_completion_tokens":9,"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}]}`,
			want: `{"messages":[{"role":"user","content":[{"text":"What is this?"},{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}}]}],
				"inferenceConfig":{"maxTokens":9}}`,
		},
		{
			name: "tools, tool calls and results, merged turns",
			in: `{"messages":[{"role":"user","content":"Weather in Paris and Rome?"},
				{"role":"assistant","content":null,"tool_calls":[
					{"id":"tooluse_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
					{"id":"tooluse_2","type":"function","function":{"name":"get_weather","arguments":""}}]},
				{"role":"tool","tool_call_id":"tooluse_1","content":"18C"},
				{"role":"tool","tool_call_id":"tooluse_2","content":[{"type":"text","text":"21C"}]},
				{"role":"user","content":"Thanks"}],
				"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather by city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
					{"type":"function","function":{"name":"now"}}],
				"tool_choice":"required"}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Weather in Paris and Rome?"}]},
				{"role":"assistant","content":[{"toolUse":{"toolUseId":"tooluse_1","name":"get_weather","input":{"city":"Paris"}}},{"toolUse":{"toolUseId":"tooluse_2","name":"get_weather","input":{}}}]},
				{"role":"user","content":[{"toolResult":{"toolUseId":"tooluse_1","content":[{"text":"18C"}]}},{"toolResult":{"toolUseId":"tooluse_2","content":[{"text":"21C"}]}},{"text":"Thanks"}]}],
				"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","description":"Weather by city","inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}},
					{"toolSpec":{"name":"now","inputSchema":{"json":{"type":"object","properties":{}}}}}],"toolChoice":{"any":{}}}}`,
		},
		{
			name: "tool_choice function",
			in:   `{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}}],"toolChoice":{"tool":{"name":"f"}}}}`,
		},
		{
			name: "tool parameters without a type get type object",
			in:   `{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}},{"type":"function","function":{"name":"g","parameters":{"properties":{"a":{"type":"string"}}}}}]}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}},{"toolSpec":{"name":"g","inputSchema":{"json":{"type":"object","properties":{"a":{"type":"string"}}}}}}]}}`,
		},
		{
			name: "tool_choice none offers no tools",
			in:   `{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := schema().Request([]byte(tc.in), "anthropic.claude-sonnet-4-5-20250929-v1:0", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := canon(t, string(out)), canon(t, tc.want); got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestRequestRefused(t *testing.T) {
	tests := []struct{ name, in, param string }{
		{"n", `{"messages":[{"role":"user","content":"Hi"}],"n":2}`, "n"},
		{"logprobs", `{"messages":[{"role":"user","content":"Hi"}],"logprobs":true}`, "logprobs"},
		{"json_schema without schema", `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema"}}`, "response_format.json_schema.schema"},
		{"http image", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"image type", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AAAA"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"audio part", `{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages[0].content[0].type"},
		{"bad role", `{"messages":[{"role":"robot","content":"Hi"}]}`, "messages[0].role"},
		{"no messages", `{"messages":[]}`, "messages"},
		{"bad arguments", `{"messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"tool without id", `{"messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{"max_tokens", `{"messages":[{"role":"user","content":"Hi"}],"max_tokens":0}`, "max_tokens"},
		{"non-function tool", `{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{"functions", `{"messages":[{"role":"user","content":"Hi"}],"functions":[]}`, "functions"},
		{"seed", `{"messages":[{"role":"user","content":"Hi"}],"seed":1}`, "seed"},
		{"audio out", `{"messages":[{"role":"user","content":"Hi"}],"modalities":["text","audio"]}`, "modalities"},
		{"unknown field", `{"messages":[{"role":"user","content":"Hi"}],"future":1}`, "future"},
		{"json_object with tools", `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}]}`, "response_format"},
		{"json_schema of an array", `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"array"}}}}`, "response_format.json_schema.schema"},
		{"response_format type", `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"yaml"}}`, "response_format.type"},
		{"reasoning_effort on a model other than Claude", `{"messages":[{"role":"user","content":"Hi"}],"reasoning_effort":"low"}`, "reasoning_effort"},
		{"thinking on a model other than Claude", `{"messages":[{"role":"user","content":"Hi"}],"thinking":{"type":"adaptive"}}`, "thinking"},
		{"reserved tool name", `{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"tollgate_json_object"}}]}`, "tools[0].function.name"},
		{"cache_control ttl", `{"messages":[{"role":"user","content":[{"type":"text","text":"Hi","cache_control":{"type":"ephemeral","ttl":"2h"}}]}]}`, "messages[0].content[0].cache_control.ttl"},
		{"cache_control type", `{"messages":[{"role":"user","content":"Hi","cache_control":{"type":"persistent"}}]}`, "messages[0].cache_control.type"},
		{"cache_control not an object", `{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"f"},"cache_control":true}]}`, "tools[0].cache_control"},
		{"thinking without signature", `{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"A","thinking_blocks":[{"type":"thinking","thinking":"x"}]}]}`, "messages[1].thinking_blocks[0].signature"},
		{"parallel_tool_calls false", `{"messages":[{"role":"user","content":"Hi"}],"parallel_tool_calls":false}`, "parallel_tool_calls"},
		{"store", `{"messages":[{"role":"user","content":"Hi"}],"store":true}`, "store"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema().Request([]byte(tc.in), "m", translate.RequestOptions{})
			var oe *oaierror.Error
			if !errors.As(err, &oe) || oe.Status != 400 || oe.Param != tc.param {
				t.Fatalf("err %v, want a 400 on %s", err, tc.param)
			}
		})
	}
}

func TestPath(t *testing.T) {
	s := schema()
	if p, ok := s.ModelPath("/chat/completions", "anthropic.claude-sonnet-4-5-20250929-v1:0", false); !ok || p != "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse" {
		t.Fatal(p)
	}
	if p, _ := s.ModelPath("/chat/completions", "arn:aws:bedrock:us-east-1:123:inference-profile/us.x", true); p != "/model/arn:aws:bedrock:us-east-1:123:inference-profile%2Fus.x/converse-stream" {
		t.Fatal(p)
	}
	if _, ok := s.ModelPath("/embeddings", "m", false); ok {
		t.Fatal("embeddings offered")
	}
	if _, ok := s.Path("/embeddings"); ok {
		t.Fatal("embeddings offered")
	}
}

func TestResponse(t *testing.T) {
	body := `{"output":{"message":{"role":"assistant","content":[{"text":"It is "},{"reasoningContent":{"reasoningText":{"text":"hmm"}}},{"text":"18C."},
		{"toolUse":{"toolUseId":"tooluse_9","name":"log","input":{ "a" : [1, 2] }}}]}},
		"stopReason":"tool_use","usage":{"inputTokens":20,"outputTokens":7,"totalTokens":57,"cacheReadInputTokens":10,"cacheWriteInputTokens":20},"metrics":{"latencyMs":300}}`
	out, u, ok, err := schema().Response([]byte(body), "claude-on-bedrock")
	if err != nil || !ok {
		t.Fatal(err, ok)
	}
	want := usage.Usage{PromptTokens: 50, CompletionTokens: 7, TotalTokens: 57, CachedTokens: 10, CacheWrite5mTokens: 20} // Bedrock's cache TTL is 5 minutes
	if u != want {
		t.Fatalf("usage %+v, want %+v", u, want)
	}
	r := gjson.ParseBytes(out)
	if r.Get("model").Str != "claude-on-bedrock" || r.Get("object").Str != "chat.completion" || r.Get("created").Int() != 1764000000 ||
		r.Get("choices.0.message.content").Str != "It is 18C." || r.Get("choices.0.finish_reason").Str != "tool_calls" ||
		r.Get("choices.0.message.tool_calls.0.function.arguments").Str != `{"a":[1,2]}` ||
		r.Get("choices.0.message.tool_calls.0.id").Str != "tooluse_9" || r.Get("usage.prompt_tokens_details.cached_tokens").Int() != 10 ||
		!strings.HasPrefix(r.Get("id").Str, "chatcmpl-") {
		t.Fatalf("%s", out)
	}
	for _, bad := range []string{`{`, `[]`, `{"output":{}}`} {
		if _, _, _, err := schema().Response([]byte(bad), "m"); err == nil {
			t.Fatalf("%s accepted", bad)
		}
	}
	if _, _, ok, _ := schema().Response([]byte(`{"output":{"message":{"content":[]}},"usage":{"inputTokens":-1}}`), "m"); ok {
		t.Fatal("negative usage accepted")
	}
}

func TestError(t *testing.T) {
	tests := []struct {
		status     int
		body       string
		wantStatus int
		wantType   string
	}{
		{429, `{"message":"Too many requests, please wait before trying again."}`, 429, oaierror.TypeRateLimit},
		{400, `{"message":"Malformed input request"}`, 400, oaierror.TypeInvalidRequest},
		{424, `{"message":"Model error"}`, 400, oaierror.TypeInvalidRequest},
		{403, `{"Message":"User is not authorized"}`, 403, oaierror.TypePermission},
		{404, `{"message":"Could not resolve the foundation model"}`, 404, oaierror.TypeNotFound},
		{408, `{"message":"timeout"}`, 504, oaierror.TypeServer},
		{500, `{"message":"Internal"}`, 500, oaierror.TypeServer},
		{503, `<html>`, 503, oaierror.TypeServer},
		{302, ``, 502, oaierror.TypeServer},
	}
	for _, tc := range tests {
		status, body := schema().Error(tc.status, []byte(tc.body))
		r := gjson.ParseBytes(body)
		if status != tc.wantStatus || r.Get("error.type").Str != tc.wantType || r.Get("error.message").Str == "" {
			t.Errorf("%d %s → %d %s", tc.status, tc.body, status, body)
		}
	}
}
