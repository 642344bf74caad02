package anthropic

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/tidwall/sjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
)

// sameJSON compares two JSON documents semantically.
func sameJSON(tb testing.TB, got, want []byte) {
	tb.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		tb.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		tb.Fatalf("want invalid JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		tb.Fatalf("JSON differs\n got: %s\nwant: %s", got, want)
	}
}

func mustSet(tb testing.TB, b []byte, path string, v any) []byte {
	tb.Helper()
	b, err := sjson.SetBytes(b, path, v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestRequestFixtures translates the OpenAI request fixtures and compares
// them with their Anthropic counterparts.
func TestRequestFixtures(t *testing.T) {
	t.Run("stream request = messages_request.json streamed", func(t *testing.T) {
		got, err := testSchema.Request(readFixture(t, "openai/chat_request_stream.json"), "claude-sonnet-4-5", translate.RequestOptions{Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		want := readFixture(t, "anthropic/messages_request.json")
		want = mustSet(t, want, "max_tokens", 128) // max_completion_tokens of the OpenAI request
		want = mustSet(t, want, "stream", true)
		sameJSON(t, got, want)
	})
	t.Run("basic request: reasoning_effort low is adaptive thinking at low effort", func(t *testing.T) {
		got, err := testSchema.Request(readFixture(t, "openai/chat_request_basic.json"), "claude-sonnet-4-6", translate.RequestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, got, []byte(`{"model":"claude-sonnet-4-6","max_tokens":512,
			"system":"You are a concise assistant for an internal platform team.",
			"messages":[{"role":"user","content":"In one sentence, what does an API gateway do?"}],
			"thinking":{"type":"adaptive"},"output_config":{"effort":"low"}}`))
	})
	t.Run("tools request = messages_request_tools.json tools", func(t *testing.T) {
		got, err := testSchema.Request(readFixture(t, "openai/chat_request_tools.json"), "claude-sonnet-4-5", translate.RequestOptions{Stream: true, DefaultMaxTokens: 1024})
		if err != nil {
			t.Fatal(err)
		}
		want := readFixture(t, "anthropic/messages_request_tools.json")
		// The OpenAI fixture's schema is strict-mode: it says additionalProperties false.
		want = mustSet(t, want, "tools.0.input_schema.additionalProperties", false)
		want = mustSet(t, want, "tools.0.strict", true)
		want = mustSet(t, want, "messages.0.content", "Compare the current weather in Lisbon and Porto, in Celsius.")
		want, _ = sjson.DeleteBytes(want, "system")
		sameJSON(t, got, want)
	})
}

func TestRequest(t *testing.T) {
	tests := []struct {
		name string
		opts translate.RequestOptions
		in   string // OpenAI request; "model" is always replaced by "claude"
		want string // Anthropic request
	}{
		{
			name: "minimal, default max_tokens",
			in:   `{"model":"x","messages":[{"role":"user","content":"hi"}]}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "configured default max_tokens",
			opts: translate.RequestOptions{DefaultMaxTokens: 300},
			in:   `{"model":"x","messages":[{"role":"user","content":"hi"}]}`,
			want: `{"model":"claude","max_tokens":300,"messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "max_tokens wins over the default, max_completion_tokens over max_tokens",
			opts: translate.RequestOptions{DefaultMaxTokens: 300},
			in:   `{"model":"x","max_tokens":100,"max_completion_tokens":200,"messages":[{"role":"user","content":"hi"}]}`,
			want: `{"model":"claude","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "legacy max_tokens, null max_completion_tokens",
			in:   `{"model":"x","max_tokens":100,"max_completion_tokens":null,"messages":[{"role":"user","content":"hi"}]}`,
			want: `{"model":"claude","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "several system and developer messages become blocks, wherever they are",
			in: `{"model":"x","messages":[
				{"role":"system","content":"one"},
				{"role":"developer","content":[{"type":"text","text":"two"},{"type":"text","text":""}]},
				{"role":"user","content":"hi"},
				{"role":"system","content":"three"}]}`,
			want: `{"model":"claude","max_tokens":4096,
				"system":[{"type":"text","text":"one"},{"type":"text","text":"two"},{"type":"text","text":"three"}],
				"messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "cache_control on system and user parts is kept",
			in: `{"model":"x","messages":[
				{"role":"system","content":[{"type":"text","text":"long","cache_control":{"type":"ephemeral"}}]},
				{"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral","ttl":"1h"}}]}]}`,
			want: `{"model":"claude","max_tokens":4096,
				"system":[{"type":"text","text":"long","cache_control":{"type":"ephemeral"}}],
				"messages":[{"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral","ttl":"1h"}}]}]}`,
		},
		{
			name: "multi-part user content with images and a PDF",
			in: `{"model":"x","messages":[{"role":"user","content":[
				{"type":"text","text":"what is this?"},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}},
				{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}},
				{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}]}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":[
				{"type":"text","text":"what is this?"},
				{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
				{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}},
				{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}]}]}`,
		},
		{
			name: "tool round trip: tool_use, tool_results first in a merged user turn",
			in: `{"model":"x","messages":[
				{"role":"user","content":"weather in Lisbon and Porto?"},
				{"role":"assistant","content":"Checking.","tool_calls":[
					{"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"city\":\"Lisbon\"}"}},
					{"id":"call_2","type":"function","function":{"name":"get","arguments":" {\"city\": \"Porto\"} "}}]},
				{"role":"tool","tool_call_id":"call_1","content":"18C"},
				{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"15C"}]},
				{"role":"user","content":"and tomorrow?"}]}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[
				{"role":"user","content":"weather in Lisbon and Porto?"},
				{"role":"assistant","content":[
					{"type":"text","text":"Checking."},
					{"type":"tool_use","id":"call_1","name":"get","input":{"city":"Lisbon"}},
					{"type":"tool_use","id":"call_2","name":"get","input":{"city":"Porto"}}]},
				{"role":"user","content":[
					{"type":"tool_result","tool_use_id":"call_1","content":"18C"},
					{"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"15C"}]},
					{"type":"text","text":"and tomorrow?"}]}]}`,
		},
		{
			name: "assistant with null content and empty arguments; empty tool result",
			in: `{"model":"x","messages":[
				{"role":"user","content":"time?"},
				{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"now","arguments":""}}]},
				{"role":"tool","tool_call_id":"c","content":""}]}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[
				{"role":"user","content":"time?"},
				{"role":"assistant","content":[{"type":"tool_use","id":"c","name":"now","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"c"}]}]}`,
		},
		{
			name: "consecutive same-role messages merge; empty ones vanish",
			in: `{"model":"x","messages":[
				{"role":"user","content":"a"},
				{"role":"assistant","content":""},
				{"role":"user","content":[{"type":"text","text":"b"}]},
				{"role":"assistant","content":[{"type":"text","text":"c"},{"type":"refusal","refusal":"no"}]},
				{"role":"assistant","content":"d"}]}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[
				{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
				{"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]}]}`,
		},
		{
			name: "tools, tool_choice required, parallel off",
			in: `{"model":"x","messages":[{"role":"user","content":"hi"}],
				"tools":[{"type":"function","function":{"name":"f","description":"does f","parameters":{"type":"object","properties":{"a":{"type":"string"}}},"strict":true}},
				         {"type":"function","function":{"name":"g"}}],
				"tool_choice":"required","parallel_tool_calls":false}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}],
				"tools":[{"name":"f","description":"does f","input_schema":{"type":"object","properties":{"a":{"type":"string"}}},"strict":true},
				         {"name":"g","input_schema":{"type":"object","properties":{}}}],
				"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`,
		},
		{
			name: "tool_choice none",
			in:   `{"model":"x","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none","parallel_tool_calls":false}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"none"}}`,
		},
		{
			name: "tool_choice function",
			in:   `{"model":"x","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"tool","name":"f"}}`,
		},
		{
			name: "parallel off without tool_choice",
			in:   `{"model":"x","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"parallel_tool_calls":false}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`,
		},
		{
			name: "tool_choice without tools is dropped",
			in:   `{"model":"x","messages":[{"role":"user","content":"hi"}],"tools":[],"tool_choice":"auto","parallel_tool_calls":true}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "stop string",
			in:   `{"model":"x","messages":[{"role":"user","content":"hi"}],"stop":"END"}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}],"stop_sequences":["END"]}`,
		},
		{
			name: "stop array, empty strings skipped",
			in:   `{"model":"x","messages":[{"role":"user","content":"hi"}],"stop":["a","","b"]}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}],"stop_sequences":["a","b"]}`,
		},
		{
			name: "sampling, stream, user; harmless fields and defaults ignored",
			opts: translate.RequestOptions{Stream: true},
			in: `{"model":"x","messages":[{"role":"user","content":"hi","name":"bob"}],"temperature":0.5,"top_p":0.9,"top_k":40,
				"stream":true,"stream_options":{"include_usage":true},"user":"u-42","n":1,"seed":null,
				"frequency_penalty":0,"presence_penalty":0,"logit_bias":{},"logprobs":false,"top_logprobs":0,
				"response_format":{"type":"text"},"metadata":{"a":"b"},"store":false,"service_tier":"auto",
				"verbosity":"medium","prompt_cache_key":"k","prediction":{"type":"content","content":"x"},
				"reasoning_effort":"none","stop":null}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}],
				"temperature":0.5,"top_p":0.9,"top_k":40,"stream":true,"metadata":{"user_id":"u-42"}}`,
		},
		{
			name: "safety_identifier wins over user",
			in:   `{"model":"x","messages":[{"role":"user","content":"hi"}],"user":"old","safety_identifier":"hash-1"}`,
			want: `{"model":"claude","max_tokens":4096,"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"hash-1"}}`,
		},
		{
			name: "escapes survive",
			in:   `{"model":"x","messages":[{"role":"system","content":"q\"\\\n\u00e9"},{"role":"user","content":"\ud83d\ude00 \u2028"}]}`,
			want: `{"model":"claude","max_tokens":4096,"system":"q\"\\\n\u00e9","messages":[{"role":"user","content":"\ud83d\ude00 \u2028"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testSchema.Request([]byte(tt.in), "claude", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, []byte(tt.want))
		})
	}
}

func TestRequestErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		param string
	}{
		{"not JSON", `{"model":`, ""},
		{"not an object", `[]`, ""},
		{"no messages", `{"model":"x"}`, "messages"},
		{"only system", `{"messages":[{"role":"system","content":"s"}]}`, "messages"},
		{"unknown role", `{"messages":[{"role":"function","content":"s"}]}`, "messages[0].role"},
		{"message not object", `{"messages":["hi"]}`, "messages[0]"},
		{"content number", `{"messages":[{"role":"user","content":5}]}`, "messages[0].content"},
		{"n > 1", `{"n":2,"messages":[{"role":"user","content":"hi"}]}`, "n"},
		{"json_schema without schema", `{"response_format":{"type":"json_schema","json_schema":{}},"messages":[{"role":"user","content":"hi"}]}`, "response_format.json_schema.schema"},
		{"logprobs", `{"logprobs":true,"messages":[{"role":"user","content":"hi"}]}`, "logprobs"},
		{"functions", `{"functions":[{"name":"f"}],"messages":[{"role":"user","content":"hi"}]}`, "functions"},
		{"audio out", `{"modalities":["text","audio"],"messages":[{"role":"user","content":"hi"}]}`, "modalities"},
		{"custom tool", `{"tools":[{"type":"custom","custom":{"name":"x"}}],"messages":[{"role":"user","content":"hi"}]}`, "tools[0].type"},
		{"tool without name", `{"tools":[{"type":"function","function":{}}],"messages":[{"role":"user","content":"hi"}]}`, "tools[0].function.name"},
		{"tool params not object", `{"tools":[{"type":"function","function":{"name":"f","parameters":"x"}}],"messages":[{"role":"user","content":"hi"}]}`, "tools[0].function.parameters"},
		{"bad tool_choice", `{"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes","messages":[{"role":"user","content":"hi"}]}`, "tool_choice"},
		{"allowed_tools", `{"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"allowed_tools"},"messages":[{"role":"user","content":"hi"}]}`, "tool_choice"},
		{"input_audio", `{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		{"file_id", `{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}`, "messages[0].content[0].file"},
		{"non-PDF file", `{"messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:text/plain;base64,aGk="}}]}]}`, "messages[0].content[0].file.file_data"},
		{"ftp image", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"data URL not base64", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"data URL not image", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/html;base64,abc"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"image in system", `{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]},{"role":"user","content":"hi"}]}`, "messages[0].content[0].type"},
		{"tool message without id", `{"messages":[{"role":"user","content":"hi"},{"role":"tool","content":"x"}]}`, "messages[1].tool_call_id"},
		{"tool call without id", `{"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, "messages[0].tool_calls[0].id"},
		{"tool call arguments not an object", `{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"tool call arguments not JSON", `{"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"max_tokens zero", `{"max_tokens":0,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens"},
		{"max_completion_tokens fraction", `{"max_completion_tokens":1.5,"messages":[{"role":"user","content":"hi"}]}`, "max_completion_tokens"},
		{"temperature string", `{"temperature":"0.2","messages":[{"role":"user","content":"hi"}]}`, "temperature"},
		{"stop number", `{"stop":5,"messages":[{"role":"user","content":"hi"}]}`, "stop"},
		{"stop array of numbers", `{"stop":[5],"messages":[{"role":"user","content":"hi"}]}`, "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := testSchema.Request([]byte(tt.in), "claude", translate.RequestOptions{})
			var oe *oaierror.Error
			if !errors.As(err, &oe) {
				t.Fatalf("got %s, %v; want an *oaierror.Error", out, err)
			}
			if oe.Status != 400 || oe.Type != oaierror.TypeInvalidRequest || oe.Param != tt.param || oe.Message == "" {
				t.Fatalf("got %+v, want 400 invalid_request_error param %q", oe, tt.param)
			}
			if !json.Valid(oe.Body()) {
				t.Fatalf("error body %s is not JSON", oe.Body())
			}
		})
	}
}

func FuzzRequest(f *testing.F) {
	for _, name := range []string{"openai/chat_request_basic.json", "openai/chat_request_stream.json", "openai/chat_request_tools.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c","content":"x"}],"stop":["a"],"tool_choice":"required","tools":[{"type":"function","function":{"name":"f"}}]}`))
	f.Add([]byte(`{"messages":[{"role":"system","content":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]},{"role":"user","content":"\u0000\ud800"}]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":"q"},{"role":"assistant","thinking_blocks":[{"type":"thinking","thinking":"t","signature":"s"}],"content":[{"type":"redacted_thinking","data":"d"}]}],"reasoning_effort":"high","response_format":{"type":"json_schema","json_schema":{"schema":{}}},"tools":[{"type":"function","function":{"name":"f","parameters":{}},"cache_control":{"type":"ephemeral"}}]}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:application/pdf;base64,JVBE"}}]}],"thinking":{"type":"enabled","budget_tokens":2000},"max_tokens":1,"response_format":{"type":"json_object"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := testSchema.Request(body, "claude", translate.RequestOptions{Stream: len(body)%2 == 0})
		if err != nil {
			var oe *oaierror.Error
			if !errors.As(err, &oe) || oe.Status != 400 {
				t.Fatalf("error %v is not a 400 *oaierror.Error", err)
			}
			return
		}
		var req struct {
			Model     string            `json:"model"`
			MaxTokens int               `json:"max_tokens"`
			Messages  []json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(out, &req); err != nil {
			t.Fatalf("output %s is not valid JSON: %v", out, err)
		}
		if req.Model != "claude" || req.MaxTokens < 1 || len(req.Messages) == 0 {
			t.Fatalf("output %s lacks model, max_tokens or messages", out)
		}
	})
}
