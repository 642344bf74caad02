// Package bedrock translates between the OpenAI Chat Completions API and
// Amazon Bedrock's Converse API (POST /model/{modelId}/converse) and
// ConverseStream API (POST /model/{modelId}/converse-stream), whose stream is
// framed as application/vnd.amazon.eventstream rather than SSE.
//
// Wire formats follow AWS's API reference:
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and
// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html.
// Requests are signed by the processor (SigV4), not here: a translator is pure.
package bedrock

import (
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// DefaultMaxTokens is sent as inferenceConfig.maxTokens when neither the
// client nor RequestOptions.DefaultMaxTokens sets one. Bedrock does not
// require it, but Claude models on Bedrock otherwise use a small default.
const DefaultMaxTokens = 4096

// Schema is the Bedrock Converse schema. The zero value is ready to use and
// safe for concurrent use.
type Schema struct {
	// Now returns the current time, the "created" of translated responses;
	// nil means time.Now.
	Now func() time.Time
}

var (
	_ translate.Schema    = (*Schema)(nil)
	_ translate.ModelPath = (*Schema)(nil)
	_ translate.Framed    = (*Schema)(nil)
)

// Path reports whether the endpoint is offered: only chat completions.
// The path itself depends on the model and on streaming (see ModelPath).
func (s *Schema) Path(endpointSuffix string) (string, bool) {
	if endpointSuffix == "/chat/completions" {
		return "/converse", true
	}
	return "", false
}

// ModelPath is /model/{modelId}/converse, or /converse-stream for a stream.
// The model id is path-escaped: inference profile ARNs contain '/'.
func (s *Schema) ModelPath(endpointSuffix, model string, stream bool) (string, bool) {
	if endpointSuffix != "/chat/completions" {
		return "", false
	}
	op := "/converse"
	if stream {
		op = "/converse-stream"
	}
	return "/model/" + url.PathEscape(model) + op, true
}

// Framing is AWS event-stream framing for ConverseStream responses.
func (s *Schema) Framing() translate.Framing { return translate.FramingEventStream }

// Headers returns the content type; the credential (a SigV4 signature) is
// added by the processor after the last body mutation.
func (s *Schema) Headers() [][2]string {
	return [][2]string{{"content-type", "application/json"}}
}

func (s *Schema) now() int64 { return wire.Unix(s.Now) }

// Error translates a Bedrock error response into an OpenAI error. Bedrock
// answers errors with a status, an x-amzn-ErrorType header and a body
// {"message": "..."} (some services say "Message"); the status alone decides
// the mapping: 429 ThrottlingException stays 429; 400 ValidationException and
// 424 ModelErrorException become 400; 401/403 AccessDenied and
// UnrecognizedClient stay; 404 ResourceNotFound stays; 408 ModelTimeout
// becomes 504; other 5xx stay 5xx; anything else becomes 502.
func (s *Schema) Error(status int, body []byte) (int, []byte) {
	js := byteview.String(body)
	msg := gjson.Get(js, "message").String()
	if msg == "" {
		msg = gjson.Get(js, "Message").String()
	}
	e := openAIError(status, "", msg)
	return e.Status, e.Body()
}

// openAIError maps a Bedrock HTTP status, or for an in-stream exception its
// type (status 0), to an OpenAI error.
func openAIError(status int, exception, msg string) *oaierror.Error {
	if status == 0 {
		status = exceptionStatus(exception)
	}
	e := &oaierror.Error{Status: status, Type: oaierror.TypeInvalidRequest, Message: msg}
	switch {
	case status == 429:
		e.Type, e.Code = oaierror.TypeRateLimit, "rate_limit_exceeded"
	case status == 424, status == 400:
		e.Status = 400
	case status == 401:
		e.Code = "invalid_api_key"
	case status == 403:
		e.Type = oaierror.TypePermission
	case status == 404:
		e.Type = oaierror.TypeNotFound
	case status == 408:
		e.Status, e.Type = 504, oaierror.TypeServer
	case status >= 400 && status < 500:
	case status >= 500 && status < 600:
		e.Type = oaierror.TypeServer
	default:
		e.Status, e.Type = 502, oaierror.TypeServer
	}
	if e.Message == "" {
		e.Message = "The provider returned HTTP " + strconv.Itoa(status) + "."
		if exception != "" {
			e.Message = "The provider reported " + exception + "."
		}
	}
	return e
}

// exceptionStatus is the HTTP status Bedrock documents for an exception
// type; stream exceptions carry only the type.
func exceptionStatus(exception string) int {
	switch exception {
	case "throttlingException", "ThrottlingException":
		return 429
	case "validationException", "ValidationException":
		return 400
	case "modelStreamErrorException", "ModelStreamErrorException", "modelErrorException", "ModelErrorException":
		return 424
	case "modelTimeoutException", "ModelTimeoutException":
		return 408
	case "serviceUnavailableException", "ServiceUnavailableException":
		return 503
	case "accessDeniedException", "AccessDeniedException":
		return 403
	}
	return 500
}

// finishReason maps a Converse stopReason to an OpenAI finish_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "guardrail_intervened", "content_filtered":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence and future reasons
}

// readUsage reads a Converse TokenUsage object on top of prev, with the rules
// of usage.FromOpenAI: a count must be a whole number in [0, 2^53], and at
// least one must be present. Bedrock reports inputTokens apart from cache
// reads and writes, exactly as Anthropic does, so the Anthropic arithmetic
// gives OpenAI's prompt_tokens.
func readUsage(prev usage.Anthropic, r gjson.Result) (usage.Anthropic, bool) {
	if !r.IsObject() {
		return prev, false
	}
	next := prev
	dst := [...]*int64{&next.InputTokens, &next.CacheCreationInputTokens, &next.CacheReadInputTokens, &next.OutputTokens}
	paths := [...]string{"inputTokens", "cacheWriteInputTokens", "cacheReadInputTokens", "outputTokens"}
	seen := false
	for i, path := range paths {
		n, present, ok := count(r, path)
		if !ok {
			return prev, false
		}
		if present {
			*dst[i], seen = n, true
		}
	}
	if !seen {
		return prev, false
	}
	return next, true
}

// count reads one whole-number count.
func count(r gjson.Result, path string) (n int64, present, ok bool) {
	v := r.Get(path)
	if !v.Exists() || v.Type == gjson.Null {
		return 0, false, true
	}
	if v.Type != gjson.Number || v.Num < 0 || v.Num > 1<<53 || v.Num != math.Trunc(v.Num) {
		return 0, true, false
	}
	return int64(v.Num), true, true
}
