package usage

import "testing"

func TestFromResponses(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Usage
		ok   bool
	}{
		{"full", `{"object":"response","usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":6},"output_tokens":8,"output_tokens_details":{"reasoning_tokens":5},"total_tokens":18}}`,
			Usage{PromptTokens: 10, CompletionTokens: 8, TotalTokens: 18, CachedTokens: 6, ReasoningTokens: 5}, true},
		{"total computed", `{"usage":{"input_tokens":3,"output_tokens":4}}`, Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}, true},
		{"null details", `{"usage":{"input_tokens":3,"input_tokens_details":null,"output_tokens_details":{"reasoning_tokens":null}}}`, Usage{PromptTokens: 3, TotalTokens: 3}, true},
		{"chat names only", `{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, Usage{}, false},
		{"null", `{"usage":null}`, Usage{}, false},
		{"empty", `{"usage":{}}`, Usage{}, false},
		{"negative", `{"usage":{"input_tokens":-1}}`, Usage{}, false},
		{"fraction detail", `{"usage":{"input_tokens":1,"input_tokens_details":{"cached_tokens":0.5}}}`, Usage{}, false},
		{"string", `{"usage":{"output_tokens":"4"}}`, Usage{}, false},
		{"truncated", `{"usage":{"input_tokens":1`, Usage{}, false},
		{"no body", ``, Usage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromResponses([]byte(tt.body))
			if ok != tt.ok || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	u, ok := FromResponses(readFixture(t, "openai/responses_response.json"))
	if !ok || u != (Usage{PromptTokens: 1342, CompletionTokens: 286, TotalTokens: 1628, CachedTokens: 1152, ReasoningTokens: 192}) {
		t.Fatalf("fixture: %+v %v", u, ok)
	}
}
