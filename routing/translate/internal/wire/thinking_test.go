package wire

import (
	"testing"

	"github.com/tidwall/gjson"
)

func TestEnabledThinking(t *testing.T) {
	for _, tc := range []struct {
		effort    string
		maxTokens int64
		want      string // "" means refused
	}{
		{"minimal", 100000, `{"type":"enabled","budget_tokens":2048}`},
		{"low", 100000, `{"type":"enabled","budget_tokens":2048}`},
		{"medium", 100000, `{"type":"enabled","budget_tokens":8192}`},
		{"high", 100000, `{"type":"enabled","budget_tokens":16384}`},
		{"xhigh", 100000, `{"type":"enabled","budget_tokens":32768}`},
		{"max", 100000, `{"type":"enabled","budget_tokens":32768}`},
		{"high", 4096, `{"type":"enabled","budget_tokens":2048}`}, // half of max_tokens
		{"high", 1500, `{"type":"enabled","budget_tokens":1024}`}, // never below 1024
		{"low", 1024, ""}, // no room for the answer
	} {
		got, err := EnabledThinking(tc.effort, tc.maxTokens)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s/%d: %s, want a refusal", tc.effort, tc.maxTokens, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s/%d: %s, %v; want %s", tc.effort, tc.maxTokens, got, err, tc.want)
		}
	}
}

func TestThinkingObject(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means refused
	}{
		{`{"type":"enabled","budget_tokens":2048}`, `{"type":"enabled","budget_tokens":2048}`},
		{`{"budget_tokens":4096,"type":"enabled","display":"summarized"}`, `{"type":"enabled","budget_tokens":4096,"display":"summarized"}`},
		{`{"type":"adaptive"}`, `{"type":"adaptive"}`},
		{`{"type":"disabled"}`, `{"type":"disabled"}`},
		{`{"type":"enabled"}`, ""},
		{`{"type":"adaptive","budget_tokens":10}`, ""},
		{`{"type":"enabled","budget_tokens":1.5}`, ""},
		{`{"type":"enabled","budget_tokens":2048,"extra":1}`, ""},
		{`{"type":"sometimes"}`, ""},
		{`"enabled"`, ""},
	} {
		got, err := ThinkingObject(gjson.Parse(tc.in))
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: %s, want a refusal", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
