package messages

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
)

// Anthropic error types (https://docs.anthropic.com/en/api/errors).
const (
	TypeInvalidRequest  = "invalid_request_error" // 400 and any other 4xx
	TypeAuthentication  = "authentication_error"  // 401
	TypeBilling         = "billing_error"         // 402
	TypePermission      = "permission_error"      // 403
	TypeNotFound        = "not_found_error"       // 404
	TypeRequestTooLarge = "request_too_large"     // 413
	TypeRateLimit       = "rate_limit_error"      // 429
	TypeAPI             = "api_error"             // 500 and any other 5xx
	TypeTimeout         = "timeout_error"         // 504
	TypeOverloaded      = "overloaded_error"      // 529
)

// Error is a refusal on /v1/messages in Anthropic's error format,
//
//	{"type":"error","error":{"type":"…","message":"…"}}
//
// which the Anthropic SDKs decode into their typed API error. Every refusal
// on this endpoint, the gateway's own included, must be sent in this shape.
type Error struct {
	Status  int    // HTTP status
	Type    string // Anthropic error type; empty means TypeForStatus(Status)
	Param   string // offending request field, for logs and tests; also named in Message
	Message string // human-readable; never contains secrets or prompt text
}

func (e *Error) Error() string {
	return strconv.Itoa(e.Status) + " " + e.typ() + ": " + e.Message
}

func (e *Error) typ() string {
	if e.Type != "" {
		return e.Type
	}
	return TypeForStatus(e.Status)
}

// Body returns the JSON body of the error.
func (e *Error) Body() []byte {
	b := make([]byte, 0, 64+len(e.Message))
	b = append(b, `{"type":"error","error":{"type":`...)
	b = oaierror.AppendString(b, e.typ())
	b = append(b, `,"message":`...)
	b = oaierror.AppendString(b, e.Message)
	return append(b, "}}"...)
}

// Event returns the error as a terminal Anthropic SSE event, "event: error",
// for a stream that already answered HTTP 200.
func (e *Error) Event() []byte {
	b := append([]byte("event: error\ndata: "), e.Body()...)
	return append(b, "\n\n"...)
}

// TypeForStatus is the Anthropic error type for an HTTP status.
func TypeForStatus(status int) string {
	switch status {
	case 400:
		return TypeInvalidRequest
	case 401:
		return TypeAuthentication
	case 402:
		return TypeBilling
	case 403:
		return TypePermission
	case 404:
		return TypeNotFound
	case 413:
		return TypeRequestTooLarge
	case 429:
		return TypeRateLimit
	case 504:
		return TypeTimeout
	case 529:
		return TypeOverloaded
	}
	if status >= 400 && status < 500 {
		return TypeInvalidRequest
	}
	return TypeAPI
}

// invalid is the 400 for a request field this package cannot accept.
func invalid(param, msg string) *Error {
	return &Error{Status: 400, Type: TypeInvalidRequest, Param: param, Message: param + ": " + msg}
}

// unsupported is the 400 for a valid Anthropic field that has no equivalent
// at the target provider: refused, never silently dropped.
func unsupported(param string) *Error {
	return &Error{Status: 400, Type: TypeInvalidRequest, Param: param,
		Message: param + ": not supported for this model's provider (the gateway translates this request to OpenAI Chat Completions)."}
}

// FromOpenAI converts one of the gateway's own refusals, built in OpenAI's
// format, into Anthropic's. The status and message are kept; the type
// follows the status (OpenAI answers a bad key with invalid_request_error,
// Anthropic with authentication_error). An OpenAI code the message does not
// already show is appended, so "model_not_found" or "guardrail_blocked" stay
// visible to a client that can no longer read the code field.
func FromOpenAI(e *oaierror.Error) *Error {
	msg := e.Message
	if e.Code != "" && !strings.Contains(msg, e.Code) {
		msg += " (" + e.Code + ")"
	}
	return &Error{Status: e.Status, Type: TypeForStatus(e.Status), Param: e.Param, Message: msg}
}

// FromOpenAIBody converts an OpenAI-schema provider's error response
// (non-2xx status and body) into Anthropic's format. A body that is not
// OpenAI's error shape (an HTML page from a proxy) keeps only the status.
// Statuses outside 4xx/5xx become 502 api_error.
func FromOpenAIBody(status int, body []byte) *Error {
	if status < 400 || status > 599 {
		status = 502
	}
	e := openAIErrorObject(gjson.GetBytes(body, "error"))
	e.Status = status
	e.Type = TypeForStatus(status)
	if e.Message == "" {
		e.Message = "The provider returned HTTP " + strconv.Itoa(status) + "."
	}
	return e
}

// openAIErrorObject reads OpenAI's {"message","type","code","param"} error
// object, which may also arrive as an in-stream chunk; Status is unset.
func openAIErrorObject(obj gjson.Result) *Error {
	e := &Error{}
	if !obj.IsObject() {
		if obj.Type == gjson.String { // some servers send "error":"text"
			e.Message = obj.Str
		}
		return e
	}
	e.Message = obj.Get("message").String()
	e.Param = obj.Get("param").String()
	if c := obj.Get("code").String(); c != "" && e.Message != "" && !strings.Contains(e.Message, c) && statusCode(c) == 0 {
		e.Message += " (" + c + ")"
	}
	return e
}

// statusCode is the HTTP status an error code names, else 0. Azure
// OpenAI's own errors ({"error":{"code":"429","message":…}}) carry the
// status as their code: the status and the Anthropic type already say it.
func statusCode(code string) int {
	if len(code) != 3 {
		return 0
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 400 || n > 599 {
		return 0
	}
	return n
}

// streamErrorType is the Anthropic type for an in-stream OpenAI error, which
// carries no HTTP status: judged from its type and code.
func streamErrorType(obj gjson.Result) string {
	t, c := obj.Get("type").String(), obj.Get("code").String()
	if status := statusCode(c); status != 0 { // Azure's: the code is the status
		return TypeForStatus(status)
	}
	switch {
	case t == "rate_limit_error" || t == "tokens" || t == "requests" || c == "rate_limit_exceeded":
		return TypeRateLimit
	case c == "insufficient_quota" || t == "insufficient_quota":
		return TypeBilling
	case t == "invalid_request_error":
		return TypeInvalidRequest
	case t == "authentication_error":
		return TypeAuthentication
	case t == "permission_error":
		return TypePermission
	case t == "not_found_error":
		return TypeNotFound
	}
	return TypeAPI
}
