package bedrock

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/anthropic"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

const claude = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

// TestRequestFeatures covers cache_control, response_format and thinking:
// the expected bodies are written from the Converse reference (ContentBlock,
// SystemContentBlock and Tool unions with cachePoint; ToolChoice;
// additionalModelRequestFields; ReasoningContentBlock).
func TestRequestFeatures(t *testing.T) {
	tests := []struct {
		name, model, in, want string
	}{
		{
			name: "cache_control on system, user, assistant, tool calls and tool messages",
			in: `{"messages":[
				{"role":"system","content":[{"type":"text","text":"Long rules.","cache_control":{"type":"ephemeral"}},{"type":"text","text":"Tail."}]},
				{"role":"developer","content":"Dev notes.","cache_control":{"type":"ephemeral","ttl":"1h"}},
				{"role":"user","content":[{"type":"text","text":"Doc","cache_control":{"type":"ephemeral","ttl":"5m"}},
					{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="},"cache_control":{"type":"ephemeral"}}]},
				{"role":"assistant","content":[{"type":"text","text":"Calling.","cache_control":{"type":"ephemeral"}}],
					"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"},"cache_control":{"type":"ephemeral"}}]},
				{"role":"tool","tool_call_id":"t1","content":"r1","cache_control":{"type":"ephemeral"}},
				{"role":"user","content":"More","cache_control":{"type":"ephemeral"}}]}`,
			want: `{"system":[{"text":"Long rules."},{"cachePoint":{"type":"default"}},{"text":"Tail."},{"text":"Dev notes."},{"cachePoint":{"type":"default","ttl":"1h"}}],
				"messages":[
				{"role":"user","content":[{"text":"Doc"},{"cachePoint":{"type":"default","ttl":"5m"}},{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}},{"cachePoint":{"type":"default"}}]},
				{"role":"assistant","content":[{"text":"Calling."},{"cachePoint":{"type":"default"}},{"toolUse":{"toolUseId":"t1","name":"f","input":{}}},{"cachePoint":{"type":"default"}}]},
				{"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"text":"r1"}]}},{"cachePoint":{"type":"default"}},{"text":"More"},{"cachePoint":{"type":"default"}}]}],
				"inferenceConfig":{"maxTokens":4096}}`,
		},
		{
			name: "cache_control on a tool message's text part marks the result; results stay first",
			in: `{"messages":[{"role":"user","content":"Q"},
				{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f"}},{"id":"b","type":"function","function":{"name":"f"}}]},
				{"role":"tool","tool_call_id":"a","content":[{"type":"text","text":"ra","cache_control":{"type":"ephemeral"}}]},
				{"role":"user","content":"Then"},
				{"role":"tool","tool_call_id":"b","content":"rb"}]}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Q"}]},
				{"role":"assistant","content":[{"toolUse":{"toolUseId":"a","name":"f","input":{}}},{"toolUse":{"toolUseId":"b","name":"f","input":{}}}]},
				{"role":"user","content":[{"toolResult":{"toolUseId":"a","content":[{"text":"ra"}]}},{"cachePoint":{"type":"default"}},
					{"toolResult":{"toolUseId":"b","content":[{"text":"rb"}]}},{"text":"Then"}]}],
				"inferenceConfig":{"maxTokens":4096}}`,
		},
		{
			name: "cache_control on tools, on the tool or its function",
			in: `{"messages":[{"role":"user","content":"Hi"}],"tools":[
				{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}},
				{"type":"function","function":{"name":"g","cache_control":{"type":"ephemeral","ttl":"1h"}}},
				{"type":"function","function":{"name":"h"}}]}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}},{"cachePoint":{"type":"default"}},
					{"toolSpec":{"name":"g","inputSchema":{"json":{"type":"object","properties":{}}}}},{"cachePoint":{"type":"default","ttl":"1h"}},
					{"toolSpec":{"name":"h","inputSchema":{"json":{"type":"object","properties":{}}}}}]}}`,
		},
		{
			name: "response_format json_schema is a forced tool",
			in: `{"messages":[{"role":"user","content":"Weather?"}],"response_format":{"type":"json_schema","json_schema":{"name":"weather","strict":true,
				"schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}}}}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Weather?"}]}],"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"tollgate_json_object","description":"Respond with a JSON object that matches the schema.",
					"inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}}}}],
					"toolChoice":{"tool":{"name":"tollgate_json_object"}}}}`,
		},
		{
			name: "response_format json_schema with a description and an untyped schema",
			in:   `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","description":"A greeting.","schema":{"properties":{"g":{"type":"string"}}}}}}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"tollgate_json_object","description":"A greeting.","inputSchema":{"json":{"type":"object","properties":{"g":{"type":"string"}}}}}}],
					"toolChoice":{"tool":{"name":"tollgate_json_object"}}}}`,
		},
		{
			name: "response_format json_schema next to client tools: either a tool call or the answer",
			in: `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},
				"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto"}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}},
					{"toolSpec":{"name":"tollgate_json_object","description":"Respond with a JSON object that matches the schema.","inputSchema":{"json":{"type":"object"}}}}],
					"toolChoice":{"any":{}}}}`,
		},
		{
			name: "response_format json_schema with a client tool forced: the client's choice stands",
			in: `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},
				"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}}],"toolChoice":{"any":{}}}}`,
		},
		{
			name: "response_format json_schema with tool_choice none: only the answer tool, forced",
			in: `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},
				"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"tollgate_json_object","description":"Respond with a JSON object that matches the schema.","inputSchema":{"json":{"type":"object"}}}}],
					"toolChoice":{"tool":{"name":"tollgate_json_object"}}}}`,
		},
		{
			name:  "response_format json_object, and text ignored",
			model: "amazon.nova-pro-v1:0",
			in:    `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_object"},"tools":[],"reasoning_effort":"none","thinking":{"type":"disabled"}}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096},
				"toolConfig":{"tools":[{"toolSpec":{"name":"tollgate_json_object","description":"Respond with a JSON object.","inputSchema":{"json":{"type":"object"}}}}],
					"toolChoice":{"tool":{"name":"tollgate_json_object"}}}}`,
		},
		{
			name: "reasoning_effort is a thinking budget",
			in:   `{"messages":[{"role":"user","content":"Hi"}],"reasoning_effort":"medium","max_completion_tokens":20000,"response_format":{"type":"text"}}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":20000},
				"additionalModelRequestFields":{"thinking":{"type":"enabled","budget_tokens":8192}}}`,
		},
		{
			name: "reasoning_effort budget capped at half of max tokens",
			in:   `{"messages":[{"role":"user","content":"Hi"}],"reasoning_effort":"high"}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":4096},
				"additionalModelRequestFields":{"thinking":{"type":"enabled","budget_tokens":2048}}}`,
		},
		{
			name: "thinking object as given",
			in:   `{"messages":[{"role":"user","content":"Hi"}],"thinking":{"type":"enabled","budget_tokens":3000,"display":"summarized"},"max_tokens":8000}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":8000},
				"additionalModelRequestFields":{"thinking":{"type":"enabled","budget_tokens":3000,"display":"summarized"}}}`,
		},
		{
			name: "thinking replayed first in the assistant turn",
			in: `{"messages":[{"role":"user","content":"Hi"},
				{"role":"assistant","content":"Hello","reasoning_content":"ignored","thinking_blocks":[{"type":"thinking","thinking":"Greet.","signature":"sig1"}]},
				{"role":"assistant","content":[{"type":"redacted_thinking","data":"UmVkYWN0ZWQ="},{"type":"text","text":"Again"}]},
				{"role":"user","content":"Bye"}],"thinking":{"type":"adaptive"}}`,
			want: `{"messages":[{"role":"user","content":[{"text":"Hi"}]},
				{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"Greet.","signature":"sig1"}}},{"text":"Hello"},
					{"reasoningContent":{"redactedContent":"UmVkYWN0ZWQ="}},{"text":"Again"}]},
				{"role":"user","content":[{"text":"Bye"}]}],"inferenceConfig":{"maxTokens":4096},
				"additionalModelRequestFields":{"thinking":{"type":"adaptive"}}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			model := tc.model
			if model == "" {
				model = claude
			}
			out, err := schema().Request([]byte(tc.in), model, translate.RequestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := canon(t, string(out)), canon(t, tc.want); got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestRequestFeaturesRefused(t *testing.T) {
	tests := []struct{ name, in, param string }{
		{"json_object with thinking", `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_object"},"thinking":{"type":"enabled","budget_tokens":1024}}`, "response_format"},
		{"json_schema with tools and thinking", `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"schema":{}}},"tools":[{"type":"function","function":{"name":"f"}}],"thinking":{"type":"adaptive"}}`, "response_format"},
		{"json_schema with reasoning_effort", `{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_schema","json_schema":{"schema":{}}},"reasoning_effort":"low"}`, "response_format"},
		{"reasoning_effort with thinking", `{"messages":[{"role":"user","content":"Hi"}],"reasoning_effort":"low","thinking":{"type":"adaptive"}}`, "reasoning_effort"},
		{"reasoning_effort value", `{"messages":[{"role":"user","content":"Hi"}],"reasoning_effort":"extreme"}`, "reasoning_effort"},
		{"reasoning_effort without room", `{"messages":[{"role":"user","content":"Hi"}],"reasoning_effort":"low","max_tokens":1024}`, "reasoning_effort"},
		{"thinking enabled without budget", `{"messages":[{"role":"user","content":"Hi"}],"thinking":{"type":"enabled"}}`, "thinking.budget_tokens"},
		{"thinking type", `{"messages":[{"role":"user","content":"Hi"}],"thinking":{"type":"on"}}`, "thinking.type"},
		{"thinking unknown key", `{"messages":[{"role":"user","content":"Hi"}],"thinking":{"type":"adaptive","effort":"x"}}`, "thinking.effort"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema().Request([]byte(tc.in), claude, translate.RequestOptions{})
			var oe *oaierror.Error
			if !errors.As(err, &oe) || oe.Status != 400 || oe.Param != tc.param {
				t.Fatalf("err %v, want a 400 on %s", err, tc.param)
			}
		})
	}
}

// TestSameAsAnthropic holds the Bedrock translation to the Anthropic one
// where the client should see no difference: the thinking budget a
// reasoning_effort buys on a Claude model without adaptive thinking, and
// which response_format combinations are refused.
func TestSameAsAnthropic(t *testing.T) {
	var a anthropic.Schema
	for _, effort := range []string{"minimal", "low", "medium", "high", "xhigh", "max"} {
		for _, maxTokens := range []int{1024, 1500, 2049, 4096, 20000, 100000} {
			in := `{"messages":[{"role":"user","content":"Hi"}],"reasoning_effort":"` + effort + `","max_tokens":` + strconv.Itoa(maxTokens) + `}`
			ab, aerr := a.Request([]byte(in), "claude-sonnet-4-5-20250929", translate.RequestOptions{})
			bb, berr := schema().Request([]byte(in), claude, translate.RequestOptions{})
			if (aerr == nil) != (berr == nil) {
				t.Fatalf("%s %d: anthropic err %v, bedrock err %v", effort, maxTokens, aerr, berr)
			}
			if aerr != nil {
				continue
			}
			if ag, bg := gjson.GetBytes(ab, "thinking").Raw, gjson.GetBytes(bb, "additionalModelRequestFields.thinking").Raw; canon(t, ag) != canon(t, bg) {
				t.Fatalf("%s %d: anthropic thinking %s, bedrock %s", effort, maxTokens, ag, bg)
			}
		}
	}
	for _, in := range []string{
		`{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}]}`,
		`{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_object"},"reasoning_effort":"low"}`,
		`{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"tollgate_json_object"}}]}`,
	} {
		_, aerr := a.Request([]byte(in), "claude-sonnet-4-5-20250929", translate.RequestOptions{})
		_, berr := schema().Request([]byte(in), claude, translate.RequestOptions{})
		var ae, be *oaierror.Error
		if !errors.As(aerr, &ae) || !errors.As(berr, &be) || ae.Param != be.Param || ae.Code != be.Code {
			t.Fatalf("%s: anthropic %v, bedrock %v", in, aerr, berr)
		}
	}
}

func TestResponseJSON(t *testing.T) {
	b, err := os.ReadFile(fixtures + "converse_response_json.json")
	if err != nil {
		t.Fatal(err)
	}
	out, u, ok, err := schema().Response(b, "m")
	if err != nil || !ok {
		t.Fatal(err, ok)
	}
	r := gjson.ParseBytes(out)
	if r.Get("choices.0.message.content").Str != `{"city":"Paris","temperature_c":18}` || r.Get("choices.0.message.tool_calls").Exists() ||
		r.Get("choices.0.finish_reason").Str != "stop" || u.CompletionTokens != 24 {
		t.Fatalf("%s", out)
	}
}

func TestResponseReasoning(t *testing.T) {
	b, err := os.ReadFile(fixtures + "converse_response_reasoning.json")
	if err != nil {
		t.Fatal(err)
	}
	out, u, ok, err := schema().Response(b, "m")
	if err != nil || !ok {
		t.Fatal(err, ok)
	}
	m := gjson.GetBytes(out, "choices.0.message")
	want := `[{"type":"thinking","thinking":"The user greets me. A short greeting back fits.","signature":"EqoBCkgIBxABGAIiQL2zvFkq3mYj0TfXwUcR8nPv1hBaDsK5oQ"},` +
		`{"type":"redacted_thinking","data":"RXhhbXBsZSByZWRhY3RlZCB0aGlua2luZw=="}]`
	if m.Get("content").Str != "Hello! How can I help?" || m.Get("reasoning_content").Str != "The user greets me. A short greeting back fits." ||
		m.Get("thinking_blocks").Raw != want {
		t.Fatalf("%s", out)
	}
	// Converse reports no reasoning token count.
	if u != (usage.Usage{PromptTokens: 40, CompletionTokens: 61, TotalTokens: 101}) {
		t.Fatalf("usage %+v", u)
	}
	// What came back replays as it went out.
	in := `{"messages":[{"role":"user","content":"Hi"},` + m.Raw + `,{"role":"user","content":"Bye"}],"thinking":{"type":"adaptive"}}`
	req, err := schema().Request([]byte(in), claude, translate.RequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := gjson.GetBytes(req, "messages.1.content").Raw
	if canon(t, got) != canon(t, `[{"reasoningContent":{"reasoningText":{"text":"The user greets me. A short greeting back fits.","signature":"EqoBCkgIBxABGAIiQL2zvFkq3mYj0TfXwUcR8nPv1hBaDsK5oQ"}}},`+
		`{"reasoningContent":{"redactedContent":"RXhhbXBsZSByZWRhY3RlZCB0aGlua2luZw=="}},{"text":"Hello! How can I help?"}]`) {
		t.Fatalf("replayed %s", got)
	}
}

func TestStreamJSON(t *testing.T) {
	got, ok := run(schema().NewStream("m", false), readEvents(t, "converse_stream_json.jsonl"))
	if !ok {
		t.Fatal(got)
	}
	var text strings.Builder
	finish := ""
	for _, c := range chunks(t, got) {
		if c == "[DONE]" {
			continue
		}
		if gjson.Get(c, "choices.0.delta.tool_calls").Exists() {
			t.Fatalf("tool call chunk %s", c)
		}
		text.WriteString(gjson.Get(c, "choices.0.delta.content").Str)
		if f := gjson.Get(c, "choices.0.finish_reason").Str; f != "" {
			finish = f
		}
	}
	if text.String() != `{"city": "Paris", "temperature_c": 18}` || finish != "stop" {
		t.Fatalf("content %q finish %q", text.String(), finish)
	}
}

func TestStreamJSONWithoutInput(t *testing.T) {
	evs := []event{
		{"messageStart", `{"role":"assistant"}`},
		{"contentBlockStart", `{"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"t1","name":"tollgate_json_object"}}}`},
		{"contentBlockStop", `{"contentBlockIndex":0}`},
		{"messageStop", `{"stopReason":"tool_use"}`},
		{"metadata", `{"usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}`},
	}
	got, _ := run(schema().NewStream("m", false), evs)
	if !strings.Contains(got, `"delta":{"content":"{}"}`) || !strings.Contains(got, `"finish_reason":"stop"`) {
		t.Fatalf("%s", got)
	}
}

func TestStreamReasoning(t *testing.T) {
	got, ok := run(schema().NewStream("m", true), readEvents(t, "converse_stream_reasoning.jsonl"))
	if !ok {
		t.Fatal(got)
	}
	var deltas []string
	for _, c := range chunks(t, got) {
		if d := gjson.Get(c, "choices.0.delta"); d.Exists() && !d.Get("role").Exists() && d.Raw != "{}" {
			deltas = append(deltas, d.Raw)
		}
	}
	want := []string{
		`{"reasoning_content":"The user greets me. "}`,
		`{"reasoning_content":"A short greeting back fits."}`,
		`{"thinking_blocks":[{"type":"thinking","thinking":"The user greets me. A short greeting back fits.","signature":"EqoBCkgIBxABGAIiQL2zvFkq3mYj0TfXwUcR8nPv1hBaDsK5oQ"}]}`,
		`{"content":"Hello!"}`,
		`{"content":" How can I help?"}`,
	}
	if strings.Join(deltas, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(deltas, "\n"), strings.Join(want, "\n"))
	}

	evs := []event{
		{"messageStart", `{"role":"assistant"}`},
		{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"reasoningContent":{"redactedContent":"UmVk"}}}`},
		{"contentBlockStop", `{"contentBlockIndex":0}`},
	}
	got, _ = run(schema().NewStream("m", false), evs)
	if strings.Count(got, `"thinking_blocks":[{"type":"redacted_thinking","data":"UmVk"}]`) != 1 {
		t.Fatalf("%s", got)
	}
}
