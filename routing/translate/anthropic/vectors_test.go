package anthropic

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
)

// The vectors below are the kinds of case other gateways' translator tests
// check (peer vectors), written here from the two wire formats: OpenAI chat
// completions on one side, Anthropic Messages on the other. Each request case
// is one client body and the exact Anthropic body, or the exact refusal.

// msg is the conversation most request vectors share.
const msg = `"messages":[{"role":"user","content":"hi"}]`

func TestVectorRequests(t *testing.T) {
	tests := []struct {
		name  string
		model string // default "claude-opus-4-6"
		opts  translate.RequestOptions
		in    string
		want  string
	}{
		{
			name: "tool parameters {} get type object",
			in:   `{` + msg + `,"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,"tools":[{"name":"f","input_schema":{"type":"object"}}]}`,
		},
		{
			name: "tool parameters without type keep their properties",
			in:   `{` + msg + `,"tools":[{"type":"function","function":{"name":"f","parameters":{ "properties":{"a":{"type":"string"}},"required":["a"] }}}]}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,"tools":[{"name":"f","input_schema":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}}]}`,
		},
		{
			name: "cache_control on a tool definition (either level), strict kept",
			in: `{` + msg + `,"tools":[
				{"type":"function","function":{"name":"f","parameters":{"type":"object"},"strict":true},"cache_control":{"type":"ephemeral"}},
				{"type":"function","function":{"name":"g","cache_control":{"type":"ephemeral","ttl":"1h"}}}]}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,"tools":[
				{"name":"f","input_schema":{"type":"object"},"strict":true,"cache_control":{"type":"ephemeral"}},
				{"name":"g","input_schema":{"type":"object","properties":{}},"cache_control":{"type":"ephemeral","ttl":"1h"}}]}`,
		},
		{
			name: "cache_control on assistant tool_calls, tool messages and string contents",
			in: `{"messages":[
				{"role":"system","content":"sys","cache_control":{"type":"ephemeral"}},
				{"role":"user","content":"weather?","cache_control":{"type":"ephemeral"}},
				{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{}"},"cache_control":{"type":"ephemeral"}}]},
				{"role":"tool","tool_call_id":"c1","content":"sunny","cache_control":{"type":"ephemeral"}}]}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,
				"system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral"}}],
				"messages":[
				{"role":"user","content":[{"type":"text","text":"weather?","cache_control":{"type":"ephemeral"}}]},
				{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"get","input":{},"cache_control":{"type":"ephemeral"}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":"sunny","cache_control":{"type":"ephemeral"}}]}]}`,
		},
		{
			name: "PDF data URL in image_url is a document block",
			in:   `{"messages":[{"role":"user","content":[{"type":"text","text":"sum up"},{"type":"image_url","image_url":{"url":"data:application/pdf;base64,JVBERi0=","detail":"auto"},"cache_control":{"type":"ephemeral"}}]}]}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"sum up"},
				{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="},"cache_control":{"type":"ephemeral"}}]}]}`,
		},
		{
			name: "response_format json_schema is output_config.format",
			in: `{` + msg + `,"response_format":{"type":"json_schema","json_schema":{"name":"city","strict":true,
				"schema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}}}}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,
				"output_config":{"format":{"type":"json_schema","schema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}}}}`,
		},
		{
			name: "response_format json_object is a forced tool",
			in:   `{` + msg + `,"response_format":{"type":"json_object"}}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,
				"tools":[{"name":"tollgate_json_object","description":"Respond with a JSON object.","input_schema":{"type":"object"}}],
				"tool_choice":{"type":"tool","name":"tollgate_json_object"}}`,
		},
		{
			name: "json_schema with reasoning_effort on an adaptive model",
			in:   `{` + msg + `,"reasoning_effort":"high","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,"thinking":{"type":"adaptive"},
				"output_config":{"effort":"high","format":{"type":"json_schema","schema":{"type":"object"}}}}`,
		},
		{
			name: "reasoning_effort minimal is adaptive thinking at low effort",
			in:   `{` + msg + `,"reasoning_effort":"minimal"}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,"thinking":{"type":"adaptive"},"output_config":{"effort":"low"}}`,
		},
		{
			name:  "reasoning_effort on a model without adaptive thinking is a budget",
			model: "claude-sonnet-4-5-20250929",
			in:    `{` + msg + `,"reasoning_effort":"medium","max_completion_tokens":20000}`,
			want:  `{"model":"claude-sonnet-4-5-20250929","max_tokens":20000,` + msg + `,"thinking":{"type":"enabled","budget_tokens":8192}}`,
		},
		{
			name:  "the budget leaves half of max_tokens for the answer (Vertex model id)",
			model: "claude-sonnet-4-5@20250929",
			in:    `{` + msg + `,"reasoning_effort":"high"}`,
			want:  `{"model":"claude-sonnet-4-5@20250929","max_tokens":4096,` + msg + `,"thinking":{"type":"enabled","budget_tokens":2048}}`,
		},
		{
			name:  "Claude 3.7 gets a budget",
			model: "claude-3-7-sonnet-latest",
			in:    `{` + msg + `,"reasoning_effort":"low","max_tokens":3000}`,
			want:  `{"model":"claude-3-7-sonnet-latest","max_tokens":3000,` + msg + `,"thinking":{"type":"enabled","budget_tokens":1500}}`,
		},
		{
			name: "reasoning_effort none sends nothing",
			in:   `{` + msg + `,"reasoning_effort":"none"}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `}`,
		},
		{
			name:  "thinking enabled passes, reasoning_effort becomes effort",
			model: "claude-opus-4-5",
			in:    `{` + msg + `,"max_tokens":16000,"thinking":{"type":"enabled","budget_tokens":10000},"reasoning_effort":"medium"}`,
			want:  `{"model":"claude-opus-4-5","max_tokens":16000,` + msg + `,"thinking":{"type":"enabled","budget_tokens":10000},"output_config":{"effort":"medium"}}`,
		},
		{
			name: "thinking adaptive with display",
			in:   `{` + msg + `,"thinking":{"type":"adaptive","display":"summarized"}}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,"thinking":{"type":"adaptive","display":"summarized"}}`,
		},
		{
			name: "json_object with thinking disabled",
			in:   `{` + msg + `,"thinking":{"type":"disabled"},"response_format":{"type":"json_object"}}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,
				"tools":[{"name":"tollgate_json_object","description":"Respond with a JSON object.","input_schema":{"type":"object"}}],
				"tool_choice":{"type":"tool","name":"tollgate_json_object"},"thinking":{"type":"disabled"}}`,
		},
		{
			name: "assistant thinking replayed first: thinking_blocks and thinking parts; reasoning_content ignored",
			in: `{"messages":[{"role":"user","content":"q"},
				{"role":"assistant","content":[{"type":"thinking","thinking":"also","signature":"s2"},{"type":"text","text":"calling"}],
				 "reasoning_content":"first","thinking_blocks":[{"type":"thinking","thinking":"first","signature":"s1"},{"type":"redacted_thinking","data":"enc"}],
				 "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
				{"role":"tool","tool_call_id":"c","content":"ok"}],"thinking":{"type":"enabled","budget_tokens":2000},"max_tokens":5000}`,
			want: `{"model":"claude-opus-4-6","max_tokens":5000,"messages":[{"role":"user","content":"q"},
				{"role":"assistant","content":[{"type":"thinking","thinking":"first","signature":"s1"},{"type":"redacted_thinking","data":"enc"},
					{"type":"thinking","thinking":"also","signature":"s2"},{"type":"text","text":"calling"},
					{"type":"tool_use","id":"c","name":"f","input":{"a":1}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":"ok"}]}],
				"thinking":{"type":"enabled","budget_tokens":2000}}`,
		},
		{
			name: "max_tokens defaults; user is metadata.user_id; store false, metadata and stream_options ignored",
			opts: translate.RequestOptions{Stream: true},
			in:   `{` + msg + `,"user":"u1","store":false,"metadata":{"k":"v"},"stream":true,"stream_options":{"include_usage":true}}`,
			want: `{"model":"claude-opus-4-6","max_tokens":4096,` + msg + `,"stream":true,"metadata":{"user_id":"u1"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := tt.model
			if model == "" {
				model = "claude-opus-4-6"
			}
			got, err := testSchema.Request([]byte(tt.in), model, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, []byte(tt.want))
		})
	}
}

func TestVectorRefusals(t *testing.T) {
	tests := []struct {
		name  string
		model string // default "claude-opus-4-6"
		in    string
		code  string
		param string
	}{
		{"seed", "", `{` + msg + `,"seed":7}`, "unsupported_parameter", "seed"},
		{"store true", "", `{` + msg + `,"store":true}`, "unsupported_parameter", "store"},
		{"unknown field", "", `{` + msg + `,"future_field":{"x":1}}`, "unsupported_parameter", "future_field"},
		{"frequency_penalty", "", `{` + msg + `,"frequency_penalty":0.5}`, "unsupported_parameter", "frequency_penalty"},
		{"presence_penalty", "", `{` + msg + `,"presence_penalty":-1}`, "unsupported_parameter", "presence_penalty"},
		{"logit_bias", "", `{` + msg + `,"logit_bias":{"50256":-100}}`, "unsupported_parameter", "logit_bias"},
		{"top_logprobs", "", `{` + msg + `,"top_logprobs":3}`, "unsupported_parameter", "top_logprobs"},
		{"verbosity", "", `{` + msg + `,"verbosity":"low"}`, "unsupported_parameter", "verbosity"},
		{"service_tier flex", "", `{` + msg + `,"service_tier":"flex"}`, "unsupported_parameter", "service_tier"},
		{"web_search_options", "", `{` + msg + `,"web_search_options":{}}`, "unsupported_parameter", "web_search_options"},
		{"functions", "", `{` + msg + `,"functions":[{"name":"f"}]}`, "unsupported_parameter", "functions"},
		{"audio", "", `{` + msg + `,"audio":{"voice":"alloy","format":"mp3"}}`, "unsupported_parameter", "audio"},
		{"n 2", "", `{` + msg + `,"n":2}`, "unsupported_value", "n"},
		{"logprobs", "", `{` + msg + `,"logprobs":true}`, "unsupported_value", "logprobs"},
		{"bare function tool_choice", "", `{` + msg + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"function"}`, "invalid_value", "tool_choice"},
		{"json_object with tools", "", `{` + msg + `,"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}]}`, "unsupported_parameter", "response_format"},
		{"json_object with thinking", "", `{` + msg + `,"response_format":{"type":"json_object"},"reasoning_effort":"low"}`, "unsupported_parameter", "response_format"},
		{"unknown response_format type", "", `{` + msg + `,"response_format":{"type":"yaml"}}`, "invalid_value", "response_format.type"},
		{"response_format not an object", "", `{` + msg + `,"response_format":"json"}`, "invalid_type", "response_format"},
		{"bad reasoning_effort", "", `{` + msg + `,"reasoning_effort":"extreme"}`, "invalid_value", "reasoning_effort"},
		{"budget cannot fit", "claude-sonnet-4-5", `{` + msg + `,"reasoning_effort":"low","max_tokens":1000}`, "invalid_value", "reasoning_effort"},
		{"thinking enabled without budget", "", `{` + msg + `,"thinking":{"type":"enabled"}}`, "invalid_value", "thinking.budget_tokens"},
		{"thinking budget on adaptive", "", `{` + msg + `,"thinking":{"type":"adaptive","budget_tokens":1024}}`, "invalid_value", "thinking.budget_tokens"},
		{"thinking unknown type", "", `{` + msg + `,"thinking":{"type":"deep"}}`, "invalid_value", "thinking.type"},
		{"thinking unknown key", "", `{` + msg + `,"thinking":{"type":"adaptive","depth":3}}`, "unsupported_parameter", "thinking.depth"},
		{"thinking not an object", "", `{` + msg + `,"thinking":true}`, "invalid_type", "thinking"},
		{"replayed thinking without signature", "", `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"thinking","thinking":"x"}]}]}`, "invalid_value", "messages[1].content[0].signature"},
		{"thinking_blocks not an array", "", `{"messages":[{"role":"user","content":"q"},{"role":"assistant","thinking_blocks":{}}]}`, "invalid_type", "messages[1].thinking_blocks"},
		{"redacted thinking without data", "", `{"messages":[{"role":"user","content":"q"},{"role":"assistant","thinking_blocks":[{"type":"redacted_thinking"}]}]}`, "invalid_value", "messages[1].thinking_blocks[0].data"},
		{"reserved tool name", "", `{` + msg + `,"tools":[{"type":"function","function":{"name":"tollgate_json_object"}}]}`, "invalid_value", "tools[0].function.name"},
		{"json_schema without schema", "", `{` + msg + `,"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, "invalid_value", "response_format.json_schema.schema"},
		{"PDF data URL not base64", "", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:application/pdf,abc"}}]}]}`, "invalid_value", "messages[0].content[0].image_url.url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := tt.model
			if model == "" {
				model = "claude-opus-4-6"
			}
			out, err := testSchema.Request([]byte(tt.in), model, translate.RequestOptions{})
			var oe *oaierror.Error
			if !errors.As(err, &oe) {
				t.Fatalf("got %s, %v; want an *oaierror.Error", out, err)
			}
			if oe.Status != 400 || oe.Type != oaierror.TypeInvalidRequest || oe.Code != tt.code || oe.Param != tt.param || oe.Message == "" {
				t.Fatalf("got %+v, want 400 %s param %q", oe, tt.code, tt.param)
			}
			var body struct {
				Error struct{ Message, Type, Param, Code string }
			}
			if err := json.Unmarshal(oe.Body(), &body); err != nil || body.Error.Param != tt.param || body.Error.Code != tt.code {
				t.Fatalf("error body %s: %v", oe.Body(), err)
			}
		})
	}
}

func TestVectorResponses(t *testing.T) {
	tests := []struct {
		name string
		in   string // Anthropic message
		want string // chat.completion
	}{
		{
			name: "thinking is reasoning_content and thinking_blocks; thinking tokens are reasoning tokens",
			in: `{"type":"message","id":"msg_1","model":"claude-opus-4-6","content":[
				{"type":"thinking","thinking":"Let me think.","signature":"sig1"},
				{"type":"redacted_thinking","data":"enc"},
				{"type":"thinking","thinking":" More.","signature":"sig2"},
				{"type":"text","text":"42"}],"stop_reason":"end_turn",
				"usage":{"input_tokens":10,"output_tokens":50,"output_tokens_details":{"thinking_tokens":40}}}`,
			want: `{"id":"msg_1","object":"chat.completion","created":1795300400,"model":"claude-opus-4-6",
				"choices":[{"index":0,"message":{"role":"assistant","content":"42","refusal":null,
					"reasoning_content":"Let me think. More.",
					"thinking_blocks":[{"type":"thinking","thinking":"Let me think.","signature":"sig1"},{"type":"redacted_thinking","data":"enc"},{"type":"thinking","thinking":" More.","signature":"sig2"}]},
					"logprobs":null,"finish_reason":"stop"}],
				"usage":{"prompt_tokens":10,"completion_tokens":50,"total_tokens":60,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":40}}}`,
		},
		{
			name: "the json_object tool's input is the content, finish_reason stop",
			in: `{"type":"message","id":"msg_2","model":"claude-opus-4-6","content":[
				{"type":"tool_use","id":"toolu_1","name":"tollgate_json_object","input":{ "city": "Lisbon", "n": [1, 2] }}],
				"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":7}}`,
			want: `{"id":"msg_2","object":"chat.completion","created":1795300400,"model":"claude-opus-4-6",
				"choices":[{"index":0,"message":{"role":"assistant","content":"{\"city\":\"Lisbon\",\"n\":[1,2]}","refusal":null},
					"logprobs":null,"finish_reason":"stop"}],
				"usage":{"prompt_tokens":3,"completion_tokens":7,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
		},
		{
			name: "structured output (json_schema) is plain text",
			in: `{"type":"message","id":"msg_3","model":"claude-opus-4-6","content":[{"type":"text","text":"{\"name\":\"Lisbon\"}"}],
				"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}`,
			want: `{"id":"msg_3","object":"chat.completion","created":1795300400,"model":"claude-opus-4-6",
				"choices":[{"index":0,"message":{"role":"assistant","content":"{\"name\":\"Lisbon\"}","refusal":null},
					"logprobs":null,"finish_reason":"stop"}],
				"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
		},
		{
			name: "thinking tokens above output tokens are capped",
			in: `{"type":"message","id":"msg_4","model":"m","content":[{"type":"text","text":"x"}],"stop_reason":"max_tokens",
				"usage":{"input_tokens":1,"output_tokens":2,"output_tokens_details":{"thinking_tokens":9}}}`,
			want: `{"id":"msg_4","object":"chat.completion","created":1795300400,"model":"m",
				"choices":[{"index":0,"message":{"role":"assistant","content":"x","refusal":null},"logprobs":null,"finish_reason":"length"}],
				"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":2}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, u, ok, err := testSchema.Response([]byte(tt.in), "fallback")
			if err != nil || !ok {
				t.Fatalf("Response: %v, usage %v", err, ok)
			}
			sameJSON(t, got, []byte(tt.want))
			var w struct {
				Usage struct {
					Details struct {
						Reasoning int64 `json:"reasoning_tokens"`
					} `json:"completion_tokens_details"`
				}
			}
			if err := json.Unmarshal([]byte(tt.want), &w); err != nil || u.ReasoningTokens != w.Usage.Details.Reasoning {
				t.Fatalf("metered reasoning tokens %d, want %d (%v)", u.ReasoningTokens, w.Usage.Details.Reasoning, err)
			}
		})
	}
}

// streamStart is a message_start event.
const streamStart = `{"type":"message_start","message":{"id":"msg_s","type":"message","role":"assistant","model":"claude-opus-4-6","content":[],"stop_reason":null,"usage":{"input_tokens":12,"output_tokens":1}}}`

func TestVectorStreams(t *testing.T) {
	tests := []struct {
		name      string
		events    []string
		want      []string // each chunk's choices[0] (delta and finish_reason) or usage, then [DONE]
		reasoning int64
	}{
		{
			name: "thinking streams as reasoning_content, then its block; usage has reasoning tokens",
			events: []string{streamStart,
				`{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me "}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"think."}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}`,
				`{"type":"content_block_stop","index":0}`,
				`{"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"enc"}}`,
				`{"type":"content_block_stop","index":1}`,
				`{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}`,
				`{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"42"}}`,
				`{"type":"content_block_stop","index":2}`,
				`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":30,"output_tokens_details":{"thinking_tokens":25}}}`,
				`{"type":"message_stop"}`},
			want: []string{
				`{"delta":{"role":"assistant","content":""},"finish_reason":null}`,
				`{"delta":{"reasoning_content":"Let me "},"finish_reason":null}`,
				`{"delta":{"reasoning_content":"think."},"finish_reason":null}`,
				`{"delta":{"thinking_blocks":[{"type":"thinking","thinking":"Let me think.","signature":"sig"}]},"finish_reason":null}`,
				`{"delta":{"thinking_blocks":[{"type":"redacted_thinking","data":"enc"}]},"finish_reason":null}`,
				`{"delta":{"content":"42"},"finish_reason":null}`,
				`{"delta":{},"finish_reason":"stop"}`,
				`{"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":25}}}`,
				`[DONE]`},
			reasoning: 25,
		},
		{
			name: "the json_object tool streams as content and stops",
			events: []string{streamStart,
				`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"tollgate_json_object","input":{}}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\": "}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"1}"}}`,
				`{"type":"content_block_stop","index":0}`,
				`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}`,
				`{"type":"message_stop"}`},
			want: []string{
				`{"delta":{"role":"assistant","content":""},"finish_reason":null}`,
				`{"delta":{"content":"{\"a\": "},"finish_reason":null}`,
				`{"delta":{"content":"1}"},"finish_reason":null}`,
				`{"delta":{},"finish_reason":"stop"}`,
				`{"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
				`[DONE]`},
		},
		{
			name: "a json_object tool with no input fragments is {}",
			events: []string{streamStart,
				`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"tollgate_json_object","input":{}}}`,
				`{"type":"content_block_stop","index":0}`,
				`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}`,
				`{"type":"message_stop"}`},
			want: []string{
				`{"delta":{"role":"assistant","content":""},"finish_reason":null}`,
				`{"delta":{"content":"{}"},"finish_reason":null}`,
				`{"delta":{},"finish_reason":"stop"}`,
				`{"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
				`[DONE]`},
		},
		{
			name: "an error event after thinking ends the stream with an OpenAI error",
			events: []string{streamStart,
				`{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}`,
				`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`},
			want: []string{
				`{"delta":{"role":"assistant","content":""},"finish_reason":null}`,
				`{"delta":{"reasoning_content":"hm"},"finish_reason":null}`,
				`{"error":{"message":"Overloaded","type":"server_error","param":null,"code":null}}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []byte
			for _, e := range tt.events {
				in = append(in, "data: "+e+"\n\n"...)
			}
			r := translateStream(t, [][]byte{in}, true)
			lines := dataLines(t, r.out)
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d events, want %d:\n%s", len(lines), len(tt.want), r.out)
			}
			for i, l := range lines {
				if l == "[DONE]" || strings.HasPrefix(l, `{"error"`) {
					if tt.want[i] == "[DONE]" {
						if l != "[DONE]" {
							t.Fatalf("event %d: %s, want [DONE]", i, l)
						}
						continue
					}
					sameJSON(t, []byte(l), []byte(tt.want[i]))
					continue
				}
				var c struct {
					Choices []json.RawMessage
					Usage   json.RawMessage
				}
				if err := json.Unmarshal([]byte(l), &c); err != nil {
					t.Fatal(err)
				}
				var got []byte
				switch {
				case len(c.Choices) == 1:
					var ch map[string]any
					_ = json.Unmarshal(c.Choices[0], &ch)
					got, _ = json.Marshal(map[string]any{"delta": ch["delta"], "finish_reason": ch["finish_reason"]})
				default:
					got, _ = json.Marshal(map[string]json.RawMessage{"usage": c.Usage})
				}
				sameJSON(t, got, []byte(tt.want[i]))
			}
			if u, ok := r.partial, r.usageOK; ok && u.ReasoningTokens != tt.reasoning {
				t.Fatalf("metered reasoning tokens %d, want %d", u.ReasoningTokens, tt.reasoning)
			}
		})
	}
}

func TestVectorErrors(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   int
		wantJS string
	}{
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"thinking: adaptive is not supported for this model"},"request_id":"req_1"}`, 400,
			`{"error":{"message":"thinking: adaptive is not supported for this model","type":"invalid_request_error","param":null,"code":null}}`},
		{529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, 503,
			`{"error":{"message":"Overloaded","type":"server_error","param":null,"code":null}}`},
		{429, `{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}`, 429,
			`{"error":{"message":"slow","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}`},
	}
	for _, tt := range tests {
		status, body := testSchema.Error(tt.status, []byte(tt.body))
		if status != tt.want {
			t.Errorf("%d: status %d, want %d", tt.status, status, tt.want)
		}
		sameJSON(t, body, []byte(tt.wantJS))
	}
}

// TestFieldTable checks that every chat completions request field OpenAI
// documents is in the table, so that none is refused as unknown by mistake
// (and none is passed without a decision).
func TestFieldTable(t *testing.T) {
	openAIFields := []string{"messages", "model", "audio", "frequency_penalty", "function_call", "functions",
		"logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
		"parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_retention",
		"reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store",
		"stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
		"verbosity", "web_search_options"}
	unknown := wire.UnknownField("x").(*oaierror.Error).Message
	unknown = strings.TrimPrefix(unknown, "Unrecognized request argument supplied: x")
	for _, name := range append(openAIFields, "thinking", "top_k") {
		err := checkField(name, gjson.Parse(`"x"`))
		var oe *oaierror.Error
		if errors.As(err, &oe) && strings.HasSuffix(oe.Message, unknown) {
			t.Errorf("%s is refused as unknown", name)
		}
	}
}
