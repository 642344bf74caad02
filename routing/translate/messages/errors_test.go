package messages

import (
	"encoding/json"
	"testing"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
)

func TestTypeForStatus(t *testing.T) {
	for status, want := range map[int]string{
		400: TypeInvalidRequest, 401: TypeAuthentication, 402: TypeBilling, 403: TypePermission,
		404: TypeNotFound, 409: TypeInvalidRequest, 413: TypeRequestTooLarge, 422: TypeInvalidRequest,
		429: TypeRateLimit, 500: TypeAPI, 502: TypeAPI, 503: TypeAPI, 504: TypeTimeout, 529: TypeOverloaded,
	} {
		if got := TypeForStatus(status); got != want {
			t.Errorf("TypeForStatus(%d) = %s, want %s", status, got, want)
		}
	}
}

func TestErrorBody(t *testing.T) {
	e := &Error{Status: 429, Message: `slow "down"`}
	const body = `{"type":"error","error":{"type":"rate_limit_error","message":"slow \"down\""}}`
	if string(e.Body()) != body {
		t.Fatalf("Body() = %s", e.Body())
	}
	if string(e.Event()) != "event: error\ndata: "+body+"\n\n" {
		t.Fatalf("Event() = %q", e.Event())
	}
	if e.Error() != `429 rate_limit_error: slow "down"` {
		t.Fatalf("Error() = %q", e.Error())
	}
	bad := &Error{Status: 400, Message: "bad \xff byte"}
	if !json.Valid(bad.Body()) {
		t.Fatalf("invalid UTF-8 made invalid JSON: %s", bad.Body())
	}
}

func TestFromOpenAI(t *testing.T) {
	tests := []struct {
		in       *oaierror.Error
		status   int
		typ, msg string
	}{
		{oaierror.InvalidAPIKey(), 401, TypeAuthentication, oaierror.InvalidAPIKey().Message + " (invalid_api_key)"},
		{oaierror.ModelNotFound("x"), 404, TypeNotFound, `The model "x" does not exist or you do not have access to it. (model_not_found)`},
		{oaierror.InvalidRequest("unsupported_parameter", "n", "n is not supported (unsupported_parameter)."), 400, TypeInvalidRequest,
			"n is not supported (unsupported_parameter)."},
		{&oaierror.Error{Status: 429, Type: oaierror.TypeRateLimit, Message: "slow"}, 429, TypeRateLimit, "slow"},
		{oaierror.Internal(503, "", "no upstream"), 503, TypeAPI, "no upstream"},
	}
	for _, tt := range tests {
		got := FromOpenAI(tt.in)
		if got.Status != tt.status || got.typ() != tt.typ || got.Message != tt.msg || got.Param != tt.in.Param {
			t.Errorf("FromOpenAI(%v) = %+v", tt.in, got)
		}
	}
}

func TestFromOpenAIBody(t *testing.T) {
	tests := []struct {
		status     int
		body       []byte
		wantStatus int
		typ, msg   string
	}{
		{429, readFixture(t, "openai/error_429.json"), 429, TypeRateLimit, ""},
		{500, readFixture(t, "openai/error_500.json"), 500, TypeAPI, ""},
		{400, readFixture(t, "openai/error_400_context_length.json"), 400, TypeInvalidRequest, ""},
		{502, []byte("<html>Bad Gateway</html>"), 502, TypeAPI, "The provider returned HTTP 502."},
		{200, []byte(`{"error":"weird"}`), 502, TypeAPI, "weird"},
		// Azure OpenAI's own shape: the code is the status, not repeated.
		{401, []byte(`{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`), 401, TypeAuthentication,
			"Access denied due to invalid subscription key or wrong API endpoint."},
		{429, []byte(`{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 7 seconds."}}`),
			429, TypeRateLimit, "Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 7 seconds."},
		// Azure's filtered prompt: a named code is kept.
		{400, []byte(`{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400}}`),
			400, TypeInvalidRequest, "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. (content_filter)"},
	}
	for _, tt := range tests {
		got := FromOpenAIBody(tt.status, tt.body)
		if got.Status != tt.wantStatus || got.typ() != tt.typ || got.Message == "" || (tt.msg != "" && got.Message != tt.msg) {
			t.Errorf("FromOpenAIBody(%d, %.40s) = %+v", tt.status, tt.body, got)
		}
	}
}
