package fakeprovider

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/tidwall/gjson"
)

// TestAzureResponses: the v1 Responses API answers with the Responses
// fixtures, needs no api-version, checks the key and the model, and the
// deployment form has no Responses operation.
func TestAzureResponses(t *testing.T) {
	s := startFake(t, Azure)
	ctx := testCtx(t)
	key := map[string]string{"Api-Key": testKey, "Content-Type": "application/json"}
	plain := call{method: "POST", path: "/openai/v1/responses", header: key, body: fixture(t, "openai/responses_request_basic.json")}
	stream := plain.with(nil, []byte(`{"model":"gw-mini","input":"hi","stream":true}`))
	tools := plain.with(nil, []byte(`{"model":"gw-mini","input":"hi","stream":true,"tools":[{"type":"function","name":"f","parameters":{}}]}`))
	for _, tc := range []struct {
		name    string
		c       call
		status  int
		fixture string // the body, when 200
		errPath string // gjson path into the error, when not 200
		errWant string
	}{
		{"plain", plain, 200, "openai/responses_response.json", "", ""},
		{"stream", stream, 200, "openai/responses_stream.sse", "", ""},
		{"stream with tools", tools, 200, "openai/responses_stream_tool_call.sse", "", ""},
		{"bearer token", plain.with(map[string]string{"Api-Key": "", "Authorization": "Bearer " + testKey}, nil), 200, "openai/responses_response.json", "", ""},
		{"wrong key", plain.with(map[string]string{"Api-Key": "nope"}, nil), 401, "", "error.code", "401"},
		{"no model", plain.with(nil, []byte(`{"input":"hi"}`)), 400, "", "error.param", "model"},
		{"deployment form", call{method: "POST", path: "/openai/deployments/gw-mini/responses?api-version=2024-10-21", header: key, body: plain.body},
			404, "", "error.code", "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.do(ctx, s.URL())
			if r.err != nil || r.status != tc.status {
				t.Fatalf("status %d (err %v), want %d; body %s", r.status, r.err, tc.status, r.body)
			}
			if tc.status != http.StatusOK {
				if got := gjson.GetBytes(r.body, tc.errPath).String(); got != tc.errWant {
					t.Fatalf("%s = %q, want %q (body %s)", tc.errPath, got, tc.errWant, r.body)
				}
				return
			}
			if !bytes.Equal(r.body, fixture(t, tc.fixture)) {
				t.Fatalf("body differs from %s:\n%s", tc.fixture, r.body)
			}
			if r.header.Get("Apim-Request-Id") == "" {
				t.Fatal("no apim-request-id")
			}
		})
	}
}

// TestAzureToolCalls: a chat request with tools is answered with the
// function call, streamed or not; once its last message is the tool's
// result, with the text answer.
func TestAzureToolCalls(t *testing.T) {
	s := startFake(t, Azure)
	ctx := testCtx(t)
	key := map[string]string{"Api-Key": testKey, "Content-Type": "application/json"}
	const (
		tools    = `"tools":[{"type":"function","function":{"name":"get_current_weather","parameters":{"type":"object"}}}]`
		ask      = `{"role":"user","content":"Weather in Lisbon?"}`
		called   = `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_current_weather","arguments":"{}"}}]}`
		answered = `{"role":"tool","tool_call_id":"call_1","content":"18C"}`
	)
	for _, tc := range []struct {
		name, body, fixture string
	}{
		{"call", `{"model":"m",` + tools + `,"messages":[` + ask + `]}`, "azure_openai/chat_response_tool_calls.json"},
		{"streamed call", `{"model":"m","stream":true,"stream_options":{"include_usage":true},` + tools + `,"messages":[` + ask + `]}`,
			"azure_openai/chat_stream_tool_calls.sse"},
		{"result", `{"model":"m",` + tools + `,"messages":[` + ask + `,` + called + `,` + answered + `]}`, "azure_openai/chat_response.json"},
		{"streamed result", `{"model":"m","stream":true,"stream_options":{"include_usage":true},` + tools + `,"messages":[` + ask + `,` + called + `,` + answered + `]}`,
			"azure_openai/chat_stream.sse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := call{method: "POST", path: "/openai/deployments/gw-mini/chat/completions?api-version=2024-10-21", header: key, body: []byte(tc.body)}
			r := c.do(ctx, s.URL())
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("status %d (err %v); body %s", r.status, r.err, r.body)
			}
			if !bytes.Equal(r.body, fixture(t, tc.fixture)) {
				t.Fatalf("body differs from %s:\n%s", tc.fixture, r.body)
			}
		})
	}
	// Without include_usage the streamed call has no usage chunk.
	c := call{method: "POST", path: "/openai/deployments/gw-mini/chat/completions?api-version=2024-10-21", header: key,
		body: []byte(`{"model":"m","stream":true,` + tools + `,"messages":[` + ask + `]}`)}
	if r := c.do(ctx, s.URL()); r.err != nil || bytes.Contains(r.body, []byte(`"total_tokens"`)) || !bytes.Contains(r.body, []byte("Lisbon")) {
		t.Fatalf("no-usage stream (err %v): %s", r.err, r.body)
	}
}
