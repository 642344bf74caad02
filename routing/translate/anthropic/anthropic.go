// Package anthropic translates between the OpenAI Chat Completions API and
// Anthropic's Messages API (POST /v1/messages, anthropic-version 2023-06-01).
//
// Requests are rebuilt from the OpenAI fields this package knows (see
// [Schema.Request]); responses, SSE streams and errors are rewritten into
// OpenAI's shapes so that an unmodified OpenAI SDK can talk to Claude. The
// per-event stream path reads with gjson and writes JSON by hand: it runs for
// every streamed token.
package anthropic

import (
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
)

// Version is the anthropic-version header sent upstream. The official SDKs
// still send it; later versions change request validation.
const Version = "2023-06-01"

// DefaultMaxTokens is the output limit sent when neither the client nor
// RequestOptions.DefaultMaxTokens sets one: Anthropic requires max_tokens,
// and every current Claude model allows at least this many.
const DefaultMaxTokens = 4096

// Schema is the Anthropic Messages schema. The zero value is ready to use and
// safe for concurrent use.
type Schema struct {
	// Now returns the current time, the "created" of translated responses;
	// nil means time.Now.
	Now func() time.Time
}

var _ translate.Schema = (*Schema)(nil)

// Path maps the chat endpoint to Anthropic's /messages. Anthropic offers no
// embeddings, and its /models answers in a different shape.
func (s *Schema) Path(endpointSuffix string) (string, bool) {
	if endpointSuffix == "/chat/completions" {
		return "/messages", true
	}
	return "", false
}

// Headers returns the anthropic-version header.
func (s *Schema) Headers() [][2]string {
	return [][2]string{{"anthropic-version", Version}}
}

func (s *Schema) now() int64 { return wire.Unix(s.Now) }

// Error translates an Anthropic error response, {"type":"error","error":
// {"type","message"},"request_id"}, into an OpenAI error. The status follows
// Anthropic's, except that 529 overloaded becomes 503 (which OpenAI clients
// know as "retry later") and anything outside 4xx/5xx becomes 502. A body in
// another shape (an HTML page from a proxy) keeps only the status.
func (s *Schema) Error(status int, body []byte) (int, []byte) {
	js := byteview.String(body)
	typ := gjson.Get(js, "error.type").String()
	msg := gjson.Get(js, "error.message").String()
	e := openAIError(status, typ, msg)
	return e.Status, e.Body()
}

// openAIError maps an Anthropic HTTP status (0 for an in-stream error event)
// and error type to an OpenAI error.
func openAIError(status int, typ, msg string) *oaierror.Error {
	if status == 0 {
		status = statusOf(typ)
	}
	e := &oaierror.Error{Status: status, Type: oaierror.TypeInvalidRequest, Message: msg}
	switch {
	case status == 529 || typ == "overloaded_error":
		e.Status, e.Type = 503, oaierror.TypeServer
	case status == 401:
		e.Code = "invalid_api_key"
	case status == 402:
		e.Code = "insufficient_quota"
	case status == 403:
		e.Type = oaierror.TypePermission
	case status == 404:
		e.Type = oaierror.TypeNotFound
	case status == 413:
		e.Code = "request_too_large"
	case status == 429:
		e.Type, e.Code = oaierror.TypeRateLimit, "rate_limit_exceeded"
	case status >= 400 && status < 500:
	case status >= 500 && status < 600:
		e.Type = oaierror.TypeServer
	default:
		e.Status, e.Type = 502, oaierror.TypeServer
	}
	if e.Message == "" {
		e.Message = "The provider returned HTTP " + strconv.Itoa(status) + "."
		if typ != "" {
			e.Message = "The provider returned HTTP " + strconv.Itoa(status) + " (" + typ + ")."
		}
	}
	return e
}

// statusOf is the HTTP status Anthropic uses for an error type; stream error
// events carry only the type.
func statusOf(typ string) int {
	switch typ {
	case "invalid_request_error":
		return 400
	case "authentication_error":
		return 401
	case "billing_error":
		return 402
	case "permission_error":
		return 403
	case "not_found_error":
		return 404
	case "request_too_large":
		return 413
	case "rate_limit_error":
		return 429
	case "timeout_error":
		return 504
	case "overloaded_error":
		return 529
	}
	return 500
}

// finishReason maps an Anthropic stop_reason to an OpenAI finish_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	// end_turn, stop_sequence, pause_turn (a server tool paused the turn:
	// the text so far is a complete answer) and future reasons.
	return "stop"
}
