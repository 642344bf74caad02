package responses

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

func basicRequest(t *testing.T) *Request {
	t.Helper()
	r, err := TranslateRequest(readFixture(t, "openai/responses_request_basic.json"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResponseFixture(t *testing.T) {
	req := basicRequest(t)
	out, u, ok, err := req.Response(readFixture(t, "openai/chat_response.json"), Options{})
	if err != nil || !ok {
		t.Fatalf("err %v ok %v", err, ok)
	}
	want := usage.Usage{PromptTokens: 1342, CompletionTokens: 286, TotalTokens: 1628, CachedTokens: 1152, ReasoningTokens: 192}
	if u != want {
		t.Fatalf("usage %+v", u)
	}
	r := sdkResponse(t, out)
	if r.ID != "resp_Dk4vQm7TzR2bW9sXyN1cLpE8aHfUo" || r.Object != "response" || r.Status != "completed" ||
		r.CreatedAt != 1795300212 || r.Model != "o4-mini-2025-04-16" {
		t.Fatalf("header fields: %s", out)
	}
	if !strings.HasPrefix(r.OutputText(), "An API gateway is the single entry point") {
		t.Fatalf("output text %q", r.OutputText())
	}
	msg := r.Output[0].AsMessage()
	if len(r.Output) != 1 || msg.Type != "message" || msg.Role != "assistant" || msg.Status != "completed" || !strings.HasPrefix(msg.ID, "msg_") {
		t.Fatalf("output %s", out)
	}
	ru := r.Usage
	if ru.InputTokens != 1342 || ru.InputTokensDetails.CachedTokens != 1152 || ru.OutputTokens != 286 ||
		ru.OutputTokensDetails.ReasoningTokens != 192 || ru.TotalTokens != 1628 {
		t.Fatalf("usage %+v", ru)
	}
	// The request's settings are repeated back, as OpenAI does.
	if r.Instructions.OfString != "Answer in one sentence." || r.MaxOutputTokens != 512 || r.Reasoning.Effort != "low" {
		t.Fatalf("echo: %s", out)
	}
	// The native body's usage reads the same as the chat body's.
	if nu, ok := usage.FromResponses(out); !ok || nu != want {
		t.Fatalf("FromResponses on translated body: %+v %v", nu, ok)
	}
}

func TestResponse(t *testing.T) {
	tools, err := TranslateRequest(readFixture(t, "openai/responses_request_tools.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, chat string
		check      func(t *testing.T, out []byte)
	}{
		{"tool calls after text", `{"id":"chatcmpl-a1","created":5,"model":"m","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"Checking.",
			"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_current_weather","arguments":"{\"city\":\"Porto\"}"}},
			{"id":"call_2","type":"function","function":{"name":"get_current_weather","arguments":"{}"}}]}}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`,
			func(t *testing.T, out []byte) {
				r := sdkResponse(t, out)
				if len(r.Output) != 3 || r.OutputText() != "Checking." || r.Status != "completed" {
					t.Fatalf("%s", out)
				}
				fc := r.Output[1].AsFunctionCall()
				if fc.Type != "function_call" || fc.CallID != "call_1" || fc.Name != "get_current_weather" || fc.Arguments != `{"city":"Porto"}` || fc.Status != "completed" {
					t.Fatalf("call %+v", fc)
				}
				if r.Output[2].AsFunctionCall().CallID != "call_2" || r.Output[0].ID == r.Output[1].ID || r.Output[1].ID == r.Output[2].ID {
					t.Fatalf("%s", out)
				}
				if r.Temperature != 0.2 || len(r.Tools) != 1 || r.Tools[0].Name != "get_current_weather" || !r.ParallelToolCalls {
					t.Fatalf("echo %s", out)
				}
			}},
		{"length is incomplete", `{"id":"chatcmpl-a2","choices":[{"index":0,"finish_reason":"length","message":{"role":"assistant","content":"Half"}}]}`,
			func(t *testing.T, out []byte) {
				r := sdkResponse(t, out)
				if r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens" || r.Output[0].Status != "incomplete" {
					t.Fatalf("%s", out)
				}
				if gjson.GetBytes(out, "usage").Type != gjson.Null {
					t.Fatalf("usage should be null without chat usage: %s", out)
				}
			}},
		{"content filter is incomplete", `{"id":"chatcmpl-a3","choices":[{"index":0,"finish_reason":"content_filter","message":{"role":"assistant","content":null}}]}`,
			func(t *testing.T, out []byte) {
				r := sdkResponse(t, out)
				if r.Status != "incomplete" || r.IncompleteDetails.Reason != "content_filter" || len(r.Output) != 0 {
					t.Fatalf("%s", out)
				}
			}},
		{"refusal", `{"id":"chatcmpl-a4","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":null,"refusal":"I can't help with that."}}]}`,
			func(t *testing.T, out []byte) {
				r := sdkResponse(t, out)
				c := r.Output[0].AsMessage().Content
				if len(c) != 1 || c[0].Type != "refusal" || c[0].Refusal != "I can't help with that." {
					t.Fatalf("%s", out)
				}
			}},
		{"odd upstream id is replaced", `{"id":"a b\"c","choices":[{"index":0,"finish_reason":"stop","message":{"content":"x"}}]}`,
			func(t *testing.T, out []byte) {
				id := gjson.GetBytes(out, "id").Str
				if !strings.HasPrefix(id, "resp_") || !safeID(strings.TrimPrefix(id, "resp_")) || gjson.GetBytes(out, "created_at").Int() == 0 {
					t.Fatalf("%s", out)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, _, err := tools.Response([]byte(tt.chat), Options{})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, out)
		})
	}
}

func TestResponseOptions(t *testing.T) {
	out, _, _, err := (&Request{}).Response([]byte(`{"choices":[{"index":0,"finish_reason":"stop","message":{"content":"x"}}]}`),
		Options{ID: "resp_fixed", CreatedAt: 42})
	if err != nil {
		t.Fatal(err)
	}
	if gjson.GetBytes(out, "id").Str != "resp_fixed" || gjson.GetBytes(out, "created_at").Int() != 42 ||
		gjson.GetBytes(out, "output.0.id").Str != "msg_fixed_0" {
		t.Fatalf("%s", out)
	}
	// A nil request (no echo) is still a complete response object.
	out, _, _, err = (*Request)(nil).Response([]byte(`{"choices":[{"index":0,"message":{"content":"x"}}]}`), Options{})
	if err != nil || sdkResponse(t, out).OutputText() != "x" {
		t.Fatalf("%v %s", err, out)
	}
}

func TestResponseNotACompletion(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `{"choices":[]}`, `{"object":"list"}`, `"x"`} {
		_, _, _, err := basicRequest(t).Response([]byte(body), Options{})
		e, ok := err.(*oaierror.Error)
		if !ok || e.Status != 502 {
			t.Fatalf("%q: %v", body, err)
		}
	}
}
