package responses

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/anthropic"
)

const fixtures = "../../../test/testdata/fixtures/"

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(fixtures + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sameJSON fails unless got and want are the same JSON value.
func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestTranslateRequestFixtures(t *testing.T) {
	tests := []struct {
		fixture, want string
		stream        bool
	}{
		{"openai/responses_request_basic.json", `{"model":"o4-mini","max_completion_tokens":512,"reasoning_effort":"low",
			"messages":[{"role":"system","content":"Answer in one sentence."},{"role":"user","content":"What is an API gateway?"}]}`, false},
		{"openai/responses_request_tools.json", `{"model":"gpt-4.1-mini",
			"messages":[
				{"role":"system","content":"You are a terse weather assistant."},
				{"role":"user","content":[
					{"type":"text","text":"Compare the current weather in Lisbon and Porto, in Celsius. This is the view from my window:"},
					{"type":"image_url","image_url":{"url":"https://example.com/window.jpg","detail":"low"}}]},
				{"role":"assistant","content":null,"tool_calls":[{"id":"call_Rk3TfV9bZq1LmW8yXc2NdH5e","type":"function",
					"function":{"name":"get_current_weather","arguments":"{\"city\":\"Lisbon\",\"unit\":\"celsius\"}"}}]},
				{"role":"tool","tool_call_id":"call_Rk3TfV9bZq1LmW8yXc2NdH5e","content":"{\"temperature\":21,\"conditions\":\"sunny\"}"}],
			"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Get the current weather for one city.",
				"parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Lisbon"},
					"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false},
				"strict":true}}],
			"tool_choice":"auto","parallel_tool_calls":true,"temperature":0.2,
			"stream":true,"stream_options":{"include_usage":true}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			r, err := TranslateRequest(readFixture(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, r.Chat, tt.want)
			if r.Stream != tt.stream {
				t.Fatalf("Stream = %v", r.Stream)
			}
		})
	}
}

func TestTranslateRequest(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"string input", `{"model":"m","input":"hi"}`,
			`{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"bare message items and roles", `{"input":[{"role":"developer","content":"be brief"},{"role":"user","content":"hi"},
			{"role":"assistant","content":"hello"},{"type":"message","role":"system","content":[{"type":"input_text","text":"sys"}]}]}`,
			`{"messages":[{"role":"developer","content":"be brief"},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},
			{"role":"system","content":[{"type":"text","text":"sys"}]}]}`},
		{"replayed assistant output joins text and takes the calls after it",
			`{"input":[{"role":"user","content":"weather?"},
			{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Let me ","annotations":[]},{"type":"output_text","text":"check."}]},
			{"type":"function_call","id":"fc_1","call_id":"c1","name":"w","arguments":"{}"},
			{"type":"function_call","call_id":"c2","name":"w","arguments":"{\"a\":1}"},
			{"type":"function_call_output","call_id":"c1","output":"sun"},
			{"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"rain"}]}]}`,
			`{"messages":[{"role":"user","content":"weather?"},
			{"role":"assistant","content":"Let me check.","tool_calls":[
				{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}},
				{"id":"c2","type":"function","function":{"name":"w","arguments":"{\"a\":1}"}}]},
			{"role":"tool","tool_call_id":"c1","content":"sun"},
			{"role":"tool","tool_call_id":"c2","content":[{"type":"text","text":"rain"}]}]}`},
		{"function call without a preceding assistant message", `{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":""}]}`,
			`{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":""}}]}]}`},
		{"reasoning items are skipped", `{"input":[{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"xyz"},{"role":"user","content":"hi"}]}`,
			`{"messages":[{"role":"user","content":"hi"}]}`},
		{"file data", `{"input":[{"role":"user","content":[{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,AAAA"}]}]}`,
			`{"messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,AAAA","filename":"a.pdf"}}]}]}`},
		{"tool choice function", `{"input":"x","tool_choice":{"type":"function","name":"f"}}`,
			`{"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"f"}}}`},
		{"tool choice required, tool without parameters or strict", `{"input":"x","tool_choice":"required","tools":[{"type":"function","name":"f"}]}`,
			`{"messages":[{"role":"user","content":"x"}],"tool_choice":"required","tools":[{"type":"function","function":{"name":"f"}}]}`},
		{"json schema", `{"input":"x","text":{"format":{"type":"json_schema","name":"out","description":"d","schema":{"type":"object"},"strict":true},"verbosity":"low"}}`,
			`{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"out","description":"d","schema":{"type":"object"},"strict":true}},"verbosity":"low"}`},
		{"json object", `{"input":"x","text":{"format":{"type":"json_object"}}}`,
			`{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`},
		{"text format sends nothing", `{"input":"x","text":{"format":{"type":"text"}}}`,
			`{"messages":[{"role":"user","content":"x"}]}`},
		{"passthrough fields", `{"input":"x","temperature":0,"top_p":0.5,"user":"u","safety_identifier":"s","prompt_cache_key":"k","service_tier":"flex","prompt_cache_retention":"24h","parallel_tool_calls":false}`,
			`{"messages":[{"role":"user","content":"x"}],"temperature":0,"top_p":0.5,"user":"u","safety_identifier":"s","prompt_cache_key":"k","service_tier":"flex","prompt_cache_retention":"24h","parallel_tool_calls":false}`},
		{"ignored fields", `{"input":"x","metadata":{"a":"b"},"reasoning":{"summary":"auto"},"store":false,"background":false,"include":[],"truncation":"disabled","stream_options":{"include_obfuscation":false},"max_tool_calls":3,"tools":[],"previous_response_id":null}`,
			`{"messages":[{"role":"user","content":"x"}]}`},
		{"stream false", `{"input":"x","stream":false}`, `{"messages":[{"role":"user","content":"x"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := TranslateRequest([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, r.Chat, tt.want)
		})
	}
}

func TestTranslateRequestRefusals(t *testing.T) {
	tests := []struct {
		name, in, param string
		unsupported     bool
	}{
		{"previous_response_id", `{"input":"x","previous_response_id":"resp_1"}`, "previous_response_id", true},
		{"conversation", `{"input":"x","conversation":"conv_1"}`, "conversation", true},
		{"store true", `{"input":"x","store":true}`, "store", true},
		{"background", `{"input":"x","background":true}`, "background", true},
		{"include", `{"input":"x","include":["reasoning.encrypted_content"]}`, "include", true},
		{"prompt", `{"prompt":{"id":"pmpt_1"}}`, "prompt", true},
		{"truncation auto", `{"input":"x","truncation":"auto"}`, "truncation", true},
		{"top_logprobs", `{"input":"x","top_logprobs":2}`, "top_logprobs", true},
		{"unknown field", `{"input":"x","frobnicate":1}`, "frobnicate", true},
		{"web search tool", `{"input":"x","tools":[{"type":"function","name":"f"},{"type":"web_search"}]}`, "tools[1].type", true},
		{"file search tool", `{"input":"x","tools":[{"type":"file_search","vector_store_ids":["vs"]}]}`, "tools[0].type", true},
		{"code interpreter tool", `{"input":"x","tools":[{"type":"code_interpreter","container":{"type":"auto"}}]}`, "tools[0].type", true},
		{"custom tool", `{"input":"x","tools":[{"type":"custom","name":"c"}]}`, "tools[0].type", true},
		{"hosted tool choice", `{"input":"x","tool_choice":{"type":"web_search_preview"}}`, "tool_choice", true},
		{"allowed tools choice", `{"input":"x","tool_choice":{"type":"allowed_tools","mode":"auto","tools":[]}}`, "tool_choice", true},
		{"item reference", `{"input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0].type", true},
		{"hosted call item", `{"input":[{"role":"user","content":"x"},{"type":"web_search_call","id":"ws","status":"completed"}]}`, "input[1].type", true},
		{"image by file id", `{"input":[{"role":"user","content":[{"type":"input_image","file_id":"file_1"}]}]}`, "input[0].content[0].file_id", true},
		{"file by id", `{"input":[{"role":"user","content":[{"type":"input_file","file_id":"file_1"}]}]}`, "input[0].content[0]", true},
		{"audio part", `{"input":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "input[0].content[0].type", true},
		{"image in tool output", `{"input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_image","image_url":"https://x"}]}]}`, "input[0].output[0]", true},

		{"not json", `{"input":`, "", false},
		{"not an object", `[1]`, "", false},
		{"no input", `{"model":"m"}`, "input", false},
		{"empty input", `{"input":[]}`, "input", false},
		{"input number", `{"input":1}`, "input", false},
		{"bad role", `{"input":[{"role":"tool","content":"x"}]}`, "input[0].role", false},
		{"item without type", `{"input":[{"content":"x"}]}`, "input[0].type", false},
		{"call without call_id", `{"input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0].call_id", false},
		{"arguments not a string", `{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":{}}]}`, "input[0].arguments", false},
		{"instructions not a string", `{"input":"x","instructions":["a"]}`, "instructions", false},
		{"max_output_tokens zero", `{"input":"x","max_output_tokens":0}`, "max_output_tokens", false},
		{"max_output_tokens fraction", `{"input":"x","max_output_tokens":1.5}`, "max_output_tokens", false},
		{"temperature string", `{"input":"x","temperature":"1"}`, "temperature", false},
		{"tool without name", `{"input":"x","tools":[{"type":"function"}]}`, "tools[0].name", false},
		{"bad tool choice", `{"input":"x","tool_choice":"any"}`, "tool_choice", false},
		{"schema without name", `{"input":"x","text":{"format":{"type":"json_schema","schema":{}}}}`, "text.format.name", false},
		{"unknown format", `{"input":"x","text":{"format":{"type":"yaml"}}}`, "text.format.type", false},
		{"effort not a string", `{"input":"x","reasoning":{"effort":1}}`, "reasoning.effort", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := TranslateRequest([]byte(tt.in))
			if err == nil {
				t.Fatalf("translated: %s", r.Chat)
			}
			var e *oaierror.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *oaierror.Error", err, err)
			}
			if e.Status != 400 || e.Type != oaierror.TypeInvalidRequest || e.Param != tt.param {
				t.Fatalf("got %d %s param %q, want 400 param %q (%s)", e.Status, e.Type, e.Param, tt.param, e.Message)
			}
			if Unsupported(err) != tt.unsupported {
				t.Fatalf("Unsupported = %v (code %s)", !tt.unsupported, e.Code)
			}
			if !json.Valid(e.Body()) {
				t.Fatalf("error body not JSON: %s", e.Body())
			}
		})
	}
}

// TestChainsIntoAnthropic runs translated requests through the Anthropic
// translator, as the gateway will for a /v1/responses request to Claude.
func TestChainsIntoAnthropic(t *testing.T) {
	for _, f := range []string{"openai/responses_request_basic.json", "openai/responses_request_tools.json"} {
		r, err := TranslateRequest(readFixture(t, f))
		if err != nil {
			t.Fatal(err)
		}
		// A current model: its thinking is adaptive, so the fixture's small
		// max_output_tokens with reasoning effort is a valid request (older
		// models need a thinking budget of at least 1024 below the limit).
		out, err := (&anthropic.Schema{}).Request(r.Chat, "claude-sonnet-4-6", translate.RequestOptions{Stream: r.Stream})
		if err != nil {
			t.Fatalf("%s: %v\nchat: %s", f, err, r.Chat)
		}
		m := gjson.ParseBytes(out)
		if m.Get("system").String() == "" || !m.Get("messages").IsArray() || m.Get("stream").Bool() != r.Stream {
			t.Fatalf("%s: unexpected Anthropic request %s", f, out)
		}
	}
}
