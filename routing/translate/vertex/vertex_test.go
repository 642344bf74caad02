package vertex

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/translate"
)

func TestPaths(t *testing.T) {
	var s Schema
	tests := []struct {
		model  string
		stream bool
		want   string
	}{
		{"claude-sonnet-4-5@20250929", false, "/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"},
		{"claude-sonnet-4-5@20250929", true, "/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"},
		{"google/gemini-2.5-flash", true, "/endpoints/openapi/chat/completions"},
	}
	for _, tc := range tests {
		if got, ok := s.ModelPath("/chat/completions", tc.model, tc.stream); !ok || got != tc.want {
			t.Errorf("%s stream=%v: %s", tc.model, tc.stream, got)
		}
	}
	if _, ok := s.ModelPath("/embeddings", "google/gemini-2.5-flash", false); ok {
		t.Error("embeddings offered")
	}
}

func TestRequest(t *testing.T) {
	var s Schema
	in := []byte(`{"model":"vertex-claude","stream":true,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}`)
	out, err := s.Request(in, "claude-sonnet-4-5@20250929", translate.RequestOptions{Stream: true, DefaultMaxTokens: 300})
	if err != nil {
		t.Fatal(err)
	}
	r := gjson.ParseBytes(out)
	if r.Get("model").Exists() || r.Get("anthropic_version").Str != AnthropicVersion || r.Get("system").Str != "Be brief." ||
		r.Get("max_tokens").Int() != 300 || !r.Get("stream").Bool() {
		t.Fatalf("claude body %s", out)
	}

	out, err = s.Request(in, "google/gemini-2.5-flash", translate.RequestOptions{Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	r = gjson.ParseBytes(out)
	if r.Get("model").Str != "google/gemini-2.5-flash" || !r.Get("stream_options.include_usage").Bool() || r.Get("messages.0.role").Str != "system" {
		t.Fatalf("gemini body %s", out)
	}
	out, _ = s.Request([]byte(`{"model":"x","messages":[],"stream_options":null}`), "google/gemini-2.5-flash", translate.RequestOptions{})
	if gjson.GetBytes(out, "stream_options.include_usage").Exists() {
		t.Fatalf("usage asked for a non-stream: %s", out)
	}
}

func TestError(t *testing.T) {
	var s Schema
	tests := []struct {
		status     int
		body       string
		wantStatus int
		wantType   string
	}{
		{429, `{"error":{"code":429,"message":"Resource exhausted. Please try again later.","status":"RESOURCE_EXHAUSTED"}}`, 429, "rate_limit_error"},
		{400, `[{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}]`, 400, "invalid_request_error"},
		{403, `{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}`, 403, "permission_error"},
		{529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, 503, "server_error"},
		{500, `<html>`, 500, "server_error"},
	}
	for _, tc := range tests {
		status, body := s.Error(tc.status, []byte(tc.body))
		if status != tc.wantStatus || gjson.GetBytes(body, "error.type").Str != tc.wantType || gjson.GetBytes(body, "error.message").Str == "" {
			t.Errorf("%d %s → %d %s", tc.status, tc.body, status, body)
		}
	}
}
