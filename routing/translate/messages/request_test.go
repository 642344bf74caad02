package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
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

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestToChatFixtures(t *testing.T) {
	tests := []struct {
		file, model, want string
	}{
		{"anthropic/messages_request.json", "gpt-4o-mini", `{"model":"gpt-4o-mini","max_completion_tokens":1024,"temperature":0.2,
			"messages":[{"role":"system","content":"You are a concise assistant for an internal platform team."},
			{"role":"user","content":"In one sentence, what does an API gateway do?"}]}`},
		{"anthropic/messages_request_tools.json", "", `{"model":"claude-sonnet-4-5","max_completion_tokens":1024,
			"stream":true,"stream_options":{"include_usage":true},"tool_choice":"auto",
			"messages":[{"role":"system","content":"You are a weather assistant. Use tools for live data."},
			{"role":"user","content":"What's the weather in Lisbon right now, in Celsius?"}],
			"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Get the current weather for one city.",
			"parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Lisbon"},
			"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"]}}}]}`},
		{"anthropic/messages_request_agent.json", "gpt-5", `{"model":"gpt-5","max_completion_tokens":16000,
			"stop":["</done>"],"stream":true,"stream_options":{"include_usage":true},
			"reasoning_effort":"medium","user":"user_5f2c9e_account_81ab_session_4d7e",
			"tool_choice":"auto","parallel_tool_calls":false,
			"messages":[
			{"role":"system","content":"You are an interactive CLI coding agent.\nWorking directory: /home/dev/shop"},
			{"role":"user","content":[{"type":"text","text":"Why does the checkout page look broken? Screenshot attached."},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}}]},
			{"role":"assistant","content":"Let me read the stylesheet.","tool_calls":[{"id":"toolu_01Fz8bQx3MvN7kRp2YcW5tHa","type":"function",
				"function":{"name":"Read","arguments":"{\"file_path\":\"/home/dev/shop/web/checkout.css\"}"}}]},
			{"role":"tool","tool_call_id":"toolu_01Fz8bQx3MvN7kRp2YcW5tHa","content":"1\t.cart { display: grid; }\n2\t.cart > li { width: 120%; }"},
			{"role":"user","content":"Also check the layout at mobile width."}],
			"tools":[{"type":"function","function":{"name":"Read","description":"Reads a file from the local filesystem.",
				"parameters":{"type":"object","properties":{"file_path":{"type":"string","description":"The absolute path to the file to read"}},
				"required":["file_path"],"additionalProperties":false}}},
				{"type":"function","function":{"name":"Screenshot","description":"Takes a screenshot of the running app.",
				"parameters":{"properties":{},"type":"object"}}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ToChat(readFixture(t, tt.file), RequestOptions{Model: tt.model})
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, tt.want)
		})
	}
}

// req builds a minimal valid request with extra top-level fields.
func req(extra string) string {
	b := `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

func TestToChatFields(t *testing.T) {
	const base = `"model":"m","max_completion_tokens":10`
	const hi = `{"role":"user","content":"hi"}`
	tests := []struct {
		name, in, want string
	}{
		{"minimal", req(""), `{` + base + `,"messages":[` + hi + `]}`},
		{"nulls are absent", req(`"temperature":null,"system":null`), `{` + base + `,"messages":[` + hi + `]}`},
		{"sampling", req(`"temperature":0.7,"top_p":0.9`), `{` + base + `,"temperature":0.7,"top_p":0.9,"messages":[` + hi + `]}`},
		{"stop sequences", req(`"stop_sequences":["a","b"]`), `{` + base + `,"stop":["a","b"],"messages":[` + hi + `]}`},
		{"stream false", req(`"stream":false`), `{` + base + `,"messages":[` + hi + `]}`},
		{"ignored", req(`"service_tier":"auto","cache_control":{"type":"ephemeral"}`), `{` + base + `,"messages":[` + hi + `]}`},
		{"metadata without user", req(`"metadata":{}`), `{` + base + `,"messages":[` + hi + `]}`},
		{"tool choice any", req(`"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"}`),
			`{` + base + `,"messages":[` + hi + `],"tool_choice":"required","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}`},
		{"tool choice tool", req(`"tools":[{"type":"custom","name":"f","input_schema":{"type":"object"},"strict":true}],"tool_choice":{"type":"tool","name":"f"}`),
			`{` + base + `,"messages":[` + hi + `],"tool_choice":{"type":"function","function":{"name":"f"}},"tools":[{"type":"function","function":{"name":"f","strict":true,"parameters":{"type":"object"}}}]}`},
		{"tool choice none", req(`"tool_choice":{"type":"none"}`), `{` + base + `,"messages":[` + hi + `],"tool_choice":"none"}`},
		{"parallel off without tools is dropped", req(`"tool_choice":{"type":"auto","disable_parallel_tool_use":true}`),
			`{` + base + `,"messages":[` + hi + `],"tool_choice":"auto"}`},
		{"thinking low", req(`"thinking":{"type":"enabled","budget_tokens":1024}`), `{` + base + `,"reasoning_effort":"low","messages":[` + hi + `]}`},
		{"thinking medium", req(`"thinking":{"type":"enabled","budget_tokens":4096}`), `{` + base + `,"reasoning_effort":"medium","messages":[` + hi + `]}`},
		{"thinking high", req(`"thinking":{"type":"enabled","budget_tokens":31999}`), `{` + base + `,"reasoning_effort":"high","messages":[` + hi + `]}`},
		{"thinking disabled", req(`"thinking":{"type":"disabled"}`), `{` + base + `,"messages":[` + hi + `]}`},
		{"thinking adaptive", req(`"thinking":{"type":"adaptive"}`), `{` + base + `,"messages":[` + hi + `]}`},
		{"effort wins over thinking", req(`"thinking":{"type":"enabled","budget_tokens":1024},"output_config":{"effort":"max"}`),
			`{` + base + `,"reasoning_effort":"high","messages":[` + hi + `]}`},
		{"structured output", req(`"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}`),
			`{` + base + `,"response_format":{"type":"json_schema","json_schema":{"name":"output","schema":{"type":"object"}}},"messages":[` + hi + `]}`},
		{"html is not escaped", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"<b>&</b>"}]}`,
			`{` + base + `,"messages":[{"role":"user","content":"<b>&</b>"}]}`},
		{"image url and pdf", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[
			{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},
			{"type":"document","title":"r.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}},
			{"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain"}}]}]}`,
			`{` + base + `,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}},
			{"type":"file","file":{"filename":"r.pdf","file_data":"data:application/pdf;base64,JVBERi0="}},{"type":"text","text":"plain"}]}]}`},
		{"tool results first, their images after", `{"model":"m","max_tokens":10,"messages":[
			{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":{}},{"type":"tool_use","id":"b","name":"f"}]},
			{"role":"user","content":[{"type":"text","text":"look"},
			{"type":"tool_result","tool_use_id":"a","content":"ok","is_error":true},
			{"type":"tool_result","tool_use_id":"b","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]}]}]}`,
			`{` + base + `,"messages":[{"role":"assistant","content":null,"tool_calls":[
			{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"b","type":"function","function":{"name":"f","arguments":"{}"}}]},
			{"role":"tool","tool_call_id":"a","content":"ok"},{"role":"tool","tool_call_id":"b","content":""},
			{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}},{"type":"text","text":"look"}]}]}`},
		{"empty tool result", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a"}]}]}`,
			`{` + base + `,"messages":[{"role":"tool","tool_call_id":"a","content":""}]}`},
		{"empty content array", `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[]}]}`,
			`{` + base + `,"messages":[{"role":"user","content":""}]}`},
		{"assistant text blocks concatenate, thinking dropped", `{"model":"m","max_tokens":10,"messages":[{"role":"assistant","content":[
			{"type":"redacted_thinking","data":"x"},{"type":"text","text":"a","citations":[]},{"type":"text","text":"b"}]}]}`,
			`{` + base + `,"messages":[{"role":"assistant","content":"ab"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ToChat([]byte(tt.in), RequestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, tt.want)
		})
	}
}

// TestToChatRefusals checks that what cannot be translated is a 400 in
// Anthropic's format naming the field, never a silent drop.
func TestToChatRefusals(t *testing.T) {
	tests := []struct {
		name, in, param string
	}{
		{"not json", `{`, ""},
		{"not an object", `[1]`, ""},
		{"top_k", (req(`"top_k":5`)), "top_k"},
		{"unknown field", (req(`"container":"c"`)), "container"},
		{"mcp servers", (req(`"mcp_servers":[]`)), "mcp_servers"},
		{"missing max_tokens", `{"model":"m","messages":[]}`, "max_tokens"},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[]}`, "max_tokens"},
		{"fractional max_tokens", `{"model":"m","max_tokens":1.5,"messages":[]}`, "max_tokens"},
		{"missing messages", `{"model":"m","max_tokens":1}`, "messages"},
		{"missing model", `{"max_tokens":1,"messages":[]}`, "model"},
		{"null model", `{"model":null,"max_tokens":1,"messages":[]}`, "model"},
		{"temperature string", (req(`"temperature":"hot"`)), "temperature"},
		{"server tool", (req(`"tools":[{"type":"web_search_20250305","name":"web_search"}]`)), `tools.0 (type "web_search_20250305")`},
		{"tool without schema", (req(`"tools":[{"name":"f"}]`)), "tools.0.input_schema"},
		{"tool unknown key", (req(`"tools":[{"name":"f","input_schema":{},"input_examples":[]}]`)), "tools.0.input_examples"},
		{"tool_choice bad", (req(`"tool_choice":{"type":"sometimes"}`)), "tool_choice.type"},
		{"tool_choice tool without name", (req(`"tool_choice":{"type":"tool"}`)), "tool_choice.name"},
		{"thinking without budget", (req(`"thinking":{"type":"enabled"}`)), "thinking.budget_tokens"},
		{"thinking bad type", (req(`"thinking":{"type":"maybe"}`)), "thinking.type"},
		{"effort bad", (req(`"output_config":{"effort":"extreme"}`)), "output_config.effort"},
		{"output format json_object", (req(`"output_config":{"format":{"type":"json_object"}}`)), "output_config.format"},
		{"system number", (req(`"system":5`)), "system"},
		{"system image block", (req(`"system":[{"type":"image"}]`)), "system.0"},
		{"role system", `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}`, "messages.0.role"},
		{"content missing", `{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}`, "messages.0.content"},
		{"content number", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":1}]}`, "messages.0.content"},
		{"image file source", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`,
			`messages.0.content.0.source.type "file"`},
		{"document url", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"u"}}]}]}`,
			`messages.0.content.0.source (only base64 PDF and text documents translate)`},
		{"search result", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"search_result"}]}]}`,
			`messages.0.content.0 (a "search_result" block)`},
		{"tool_use bad input", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":[1]}]}]}`,
			"messages.0.content.0.input"},
		{"server_tool_use", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"server_tool_use"}]}]}`,
			`messages.0.content.0 (a "server_tool_use" block)`},
		{"tool_result document", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"document"}]}]}]}`,
			`messages.0.content.0.content.0 (a "document" block in a tool result)`},
		{"tool_result without id", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}`,
			"messages.0.content.0.tool_use_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ToChat([]byte(tt.in), RequestOptions{Model: ""})
			if err == nil {
				t.Fatalf("translated to %s, want a refusal", out)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if e.Status != 400 || e.Type != TypeInvalidRequest || e.Param != tt.param {
				t.Fatalf("got %d %s param %q, want 400 invalid_request_error param %q", e.Status, e.Type, e.Param, tt.param)
			}
			if tt.param != "" && !strings.Contains(e.Message, tt.param) {
				t.Fatalf("message %q does not name %q", e.Message, tt.param)
			}
			if !bytes.HasPrefix(e.Body(), []byte(`{"type":"error","error":{"type":"invalid_request_error","message":`)) {
				t.Fatalf("body %s", e.Body())
			}
		})
	}
}

// TestToChatModelOption checks that the model option replaces the client's
// model and satisfies a request that names none.
func TestToChatModelOption(t *testing.T) {
	out, err := ToChat([]byte(`{"max_tokens":5,"messages":[]}`), RequestOptions{Model: "gpt-4.1"})
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, out, `{"model":"gpt-4.1","max_completion_tokens":5,"messages":[]}`)
}
