package wire

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/usage"
)

func TestParseDataURL(t *testing.T) {
	tests := []struct {
		in          string
		media, data string
		ok          bool
	}{
		{"data:image/png;base64,AAAA", "image/png", "AAAA", true},
		{"DATA:Image/JPEG;charset=x;BASE64,QQ==", "image/jpeg", "QQ==", true},
		{"data:image/png,AAAA", "", "", false},       // not base64
		{"data:image/png;base64,", "", "", false},    // no data
		{"data:;base64,AAAA", "", "", false},         // no media type
		{"data:image/png;base64AAAA", "", "", false}, // no comma
		{"https://example.com/a.png", "", "", false},
		{"data", "", "", false},
	}
	for _, tt := range tests {
		media, data, ok := ParseDataURL(tt.in)
		if ok != tt.ok || ok && (media != tt.media || data != tt.data) {
			t.Errorf("ParseDataURL(%q) = %q, %q, %v; want %q, %q, %v", tt.in, media, data, ok, tt.media, tt.data, tt.ok)
		}
	}
}

func TestAppendUsage(t *testing.T) {
	u := usage.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, CachedTokens: 3, ReasoningTokens: 2}
	got := string(AppendUsage([]byte("x"), u))
	want := `x{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}`
	if got != want {
		t.Errorf("AppendUsage = %s\nwant %s", got, want)
	}
}

func TestAppendToolCall(t *testing.T) {
	tests := []struct {
		input, want string
	}{
		{`{"a": 1, "b": [1, 2]}`, `{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":1,\"b\":[1,2]}"}}`},
		{`null`, `{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}}`},
		{``, `{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}}`},
	}
	for _, tt := range tests {
		if got := string(AppendToolCall(nil, "t1", "f", gjson.Parse(tt.input))); got != tt.want {
			t.Errorf("AppendToolCall(%s) = %s\nwant %s", tt.input, got, tt.want)
		}
	}
}
