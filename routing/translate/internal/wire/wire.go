// Package wire holds the small helpers the Anthropic-shaped translators
// (anthropic, bedrock) share: request validation errors, data URL parsing,
// the OpenAI usage object and completion ids. Each is exactly the same logic
// in both; what differs per provider (error mapping, field names) stays in
// the provider's package.
package wire

import (
	"crypto/rand"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/pretty"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Unix is now's time (time.Now when nil) in Unix seconds: the "created" of
// translated responses.
func Unix(now func() time.Time) int64 {
	if now != nil {
		return now().Unix()
	}
	return time.Now().Unix()
}

// NewID returns a chat completion id for responses that carry none usable.
func NewID() string { return "chatcmpl-" + rand.Text() }

// Present reports whether a field is set to something other than null.
func Present(r gjson.Result) bool { return r.Exists() && r.Type != gjson.Null }

// RequestObject parses a client's request body, which must be a JSON
// object. The result views body: body must outlive it unchanged.
func RequestObject(body []byte) (gjson.Result, error) {
	js := byteview.String(body)
	if !gjson.Valid(js) {
		return gjson.Result{}, InvalidBody("", "The request body is not valid JSON.")
	}
	root := gjson.Parse(js)
	if !root.IsObject() {
		return gjson.Result{}, InvalidBody("", "The request body must be a JSON object.")
	}
	return root, nil
}

// InvalidBody is a 400 invalid_value error about param.
func InvalidBody(param, msg string) error {
	return oaierror.InvalidRequest("invalid_value", param, msg)
}

// InvalidType is a 400 invalid_type error: param must be want.
func InvalidType(param, want string) error {
	return oaierror.InvalidRequest("invalid_type", param, param+" must be "+want+".")
}

// Unsupported is a 400 unsupported_value error about param.
func Unsupported(param, msg string) error {
	return oaierror.InvalidRequest("unsupported_value", param, msg)
}

// ParseDataURL splits "data:<media>[;params];base64,<data>"; the scheme and
// ";base64" match case-insensitively and media is lower-cased.
func ParseDataURL(s string) (media, data string, ok bool) {
	if !hasPrefixFold(s, "data:") {
		return "", "", false
	}
	meta, data, ok := strings.Cut(s[len("data:"):], ",")
	if !ok {
		return "", "", false
	}
	meta, isB64 := cutSuffixFold(meta, ";base64")
	if !isB64 || data == "" {
		return "", "", false
	}
	media, _, _ = strings.Cut(meta, ";")
	media = strings.ToLower(strings.TrimSpace(media))
	return media, data, media != ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// AppendToolCall appends one element of a message's tool_calls. The
// arguments are the input object as compact JSON, "{}" when input is not an
// object.
func AppendToolCall(out []byte, id, name string, input gjson.Result) []byte {
	out = append(out, `{"id":`...)
	out = oaierror.AppendString(out, id)
	out = append(out, `,"type":"function","function":{"name":`...)
	out = oaierror.AppendString(out, name)
	out = append(out, `,"arguments":`...)
	args := "{}"
	if input.IsObject() {
		args = string(pretty.Ugly([]byte(input.Raw)))
	}
	out = oaierror.AppendString(out, args)
	return append(out, "}}"...)
}

// AppendUsage appends an OpenAI usage object.
func AppendUsage(out []byte, u usage.Usage) []byte {
	out = append(out, `{"prompt_tokens":`...)
	out = strconv.AppendInt(out, u.PromptTokens, 10)
	out = append(out, `,"completion_tokens":`...)
	out = strconv.AppendInt(out, u.CompletionTokens, 10)
	out = append(out, `,"total_tokens":`...)
	out = strconv.AppendInt(out, u.TotalTokens, 10)
	out = append(out, `,"prompt_tokens_details":{"cached_tokens":`...)
	out = strconv.AppendInt(out, u.CachedTokens, 10)
	out = append(out, `},"completion_tokens_details":{"reasoning_tokens":`...)
	out = strconv.AppendInt(out, u.ReasoningTokens, 10)
	return append(out, "}}"...)
}

// UnsupportedParam is a 400 unsupported_parameter error: the provider has
// no way to honour param, and dropping it would silently change the answer.
func UnsupportedParam(param, msg string) error {
	return oaierror.InvalidRequest("unsupported_parameter", param, msg)
}
