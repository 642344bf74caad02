package messages

import (
	"errors"
	"strings"
	"testing"
)

func TestFromChatFixtures(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"openai/chat_response.json", `{"id":"msg_Dk4vQm7TzR2bW9sXyN1cLpE8aHfUo","type":"message","role":"assistant","model":"o4-mini-2025-04-16",
			"content":[{"type":"text","text":"An API gateway is the single entry point that receives client requests, applies cross-cutting policy such as authentication, rate limiting and routing, and forwards each request to the right backend service."}],
			"stop_reason":"end_turn","stop_sequence":null,
			"usage":{"input_tokens":190,"cache_creation_input_tokens":0,"cache_read_input_tokens":1152,"output_tokens":286}}`},
		{"openai/chat_response_reasoning_tools.json", `{"id":"msg_9c4e2a7b3f1d4b6a","type":"message","role":"assistant","model":"deepseek-reasoner",
			"content":[{"type":"thinking","thinking":"The user wants live weather, so call the tool.","signature":""},
			{"type":"text","text":"Checking the weather in Lisbon."},
			{"type":"tool_use","id":"call_00_Hx4kT9mQ2vB7","name":"get_current_weather","input":{"city":"Lisbon","unit":"celsius"}}],
			"stop_reason":"tool_use","stop_sequence":null,
			"usage":{"input_tokens":54,"cache_creation_input_tokens":0,"cache_read_input_tokens":256,"output_tokens":58}}`},
		// Azure OpenAI: content_filter_results and prompt_filter_results
		// are not Anthropic's; a call answers with content null.
		{"azure_openai/chat_response.json", `{"id":"msg_Dk51bT6qWm2xZr8Kc4vNg0PsYh7Ej","type":"message","role":"assistant","model":"gpt-4.1-mini-2025-04-14",
			"content":[{"type":"text","text":"An API gateway is the single entry point that authenticates, rate-limits and routes client requests to backend services."}],
			"stop_reason":"end_turn","stop_sequence":null,
			"usage":{"input_tokens":31,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":24}}`},
		{"azure_openai/chat_response_tool_calls.json", `{"id":"msg_Dk53Wn4TbR8yZq2Lm6Vc0XpHs9Fa1","type":"message","role":"assistant","model":"gpt-4.1-mini-2025-04-14",
			"content":[{"type":"tool_use","id":"call_Az7qL2mVx9RtK4pWc1NbY8sD","name":"get_current_weather","input":{"city":"Lisbon","unit":"celsius"}}],
			"stop_reason":"tool_use","stop_sequence":null,
			"usage":{"input_tokens":84,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":19}}`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := FromChat(readFixture(t, tt.file), "fallback")
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, tt.want)
		})
	}
}

func TestFromChatCases(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"length, no usage, model fallback", `{"id":"chatcmpl-x","choices":[{"message":{"content":"a"},"finish_reason":"length"}]}`,
			`{"id":"msg_x","type":"message","role":"assistant","model":"fallback","content":[{"type":"text","text":"a"}],
			"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
		{"refusal", `{"id":"chatcmpl-x","model":"m","choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}`,
			`{"id":"msg_x","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"I can't help with that."}],
			"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
		{"content filter, reasoning field, empty arguments", `{"id":"chatcmpl-x","model":"m","choices":[{"message":{"content":"","reasoning":"r",
			"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":"content_filter"}]}`,
			`{"id":"msg_x","type":"message","role":"assistant","model":"m","content":[{"type":"thinking","thinking":"r","signature":""},
			{"type":"tool_use","id":"c","name":"f","input":{}}],
			"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
		{"empty message", `{"id":"chatcmpl-x","model":"m","choices":[{"message":{"content":null},"finish_reason":"stop"}]}`,
			`{"id":"msg_x","type":"message","role":"assistant","model":"m","content":[],
			"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromChat([]byte(tt.in), "fallback")
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, tt.want)
		})
	}
}

func TestFromChatMakesID(t *testing.T) {
	got, err := FromChat([]byte(`{"choices":[{"message":{"content":"a"},"finish_reason":"stop"}]}`), "m")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `"id":"msg_`) {
		t.Fatalf("no msg_ id in %s", got)
	}
}

func TestFromChatRejects(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"choices":[]}`, `{"choices":[1]}`,
		`{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{\"a\":"}}]}}]}`,
		`{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1]"}}]}}]}`,
	} {
		if out, err := FromChat([]byte(in), "m"); !errors.Is(err, ErrProviderBody) {
			t.Errorf("FromChat(%q) = %s, %v; want ErrProviderBody", in, out, err)
		}
	}
}
