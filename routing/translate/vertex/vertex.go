// Package vertex is Google Vertex AI's schema. One Vertex provider serves two
// wire formats, chosen by the model id:
//
//   - Claude models ("claude-…", e.g. claude-sonnet-4-5@20250929) go through
//     the Anthropic publisher's rawPredict / streamRawPredict endpoints with
//     the Anthropic Messages translation, the model removed from the body
//     (it is in the path) and anthropic_version vertex-2023-10-16 in the body
//     (https://docs.cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude);
//   - every other model (Gemini: "google/gemini-2.5-flash") goes through
//     Vertex's OpenAI-compatible chat completions endpoint, untranslated
//     (https://docs.cloud.google.com/vertex-ai/generative-ai/docs/start/openai).
//
// Paths are below the provider's base path /v1/projects/{project}/locations/{location}.
// The access token is minted by the processor, not here.
package vertex

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/anthropic"
	"github.com/tollgate-ai/tollgate/routing/translate/openai"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// AnthropicVersion is the anthropic_version Vertex AI requires in the body.
const AnthropicVersion = "vertex-2023-10-16"

// Schema is the Vertex AI schema. The zero value is ready to use and safe for
// concurrent use.
type Schema struct {
	claude anthropic.Schema
	gemini openai.Schema
}

var (
	_ translate.Schema    = (*Schema)(nil)
	_ translate.ModelPath = (*Schema)(nil)
)

// IsClaude reports whether a model id is served through rawPredict.
func IsClaude(model string) bool { return strings.HasPrefix(model, "claude-") }

// Path offers chat completions only.
func (s *Schema) Path(endpointSuffix string) (string, bool) {
	if endpointSuffix == "/chat/completions" {
		return "/endpoints/openapi/chat/completions", true
	}
	return "", false
}

// ModelPath is the publisher endpoint for Claude models, the OpenAI endpoint
// for the others.
func (s *Schema) ModelPath(endpointSuffix, model string, stream bool) (string, bool) {
	if endpointSuffix != "/chat/completions" {
		return "", false
	}
	if !IsClaude(model) {
		return "/endpoints/openapi/chat/completions", true
	}
	op := ":rawPredict"
	if stream {
		op = ":streamRawPredict"
	}
	return "/publishers/anthropic/models/" + url.PathEscape(model) + op, true
}

// Headers returns nil: the Anthropic version travels in the body, and the
// credential is minted by the processor.
func (s *Schema) Headers() [][2]string { return nil }

// Request translates for Claude, or sets the model for the OpenAI endpoint.
// On the OpenAI endpoint a stream always asks for usage (the processor does
// not inject it for translated providers), and the stream translator removes
// it again when the client did not ask.
func (s *Schema) Request(body []byte, model string, opts translate.RequestOptions) ([]byte, error) {
	if !IsClaude(model) {
		out, err := s.gemini.Request(body, model, opts)
		if err != nil || !opts.Stream {
			return out, err
		}
		if so := gjson.GetBytes(out, "stream_options"); so.Exists() && !so.IsObject() {
			return sjson.SetRawBytes(out, "stream_options", []byte(`{"include_usage":true}`))
		}
		return sjson.SetBytes(out, "stream_options.include_usage", true)
	}
	out, err := s.claude.Request(body, model, opts)
	if err != nil {
		return nil, err
	}
	if out, err = sjson.DeleteBytes(out, "model"); err != nil {
		return nil, oaierror.Internal(500, "rewrite_failed", "The gateway could not rewrite the request body.")
	}
	if out, err = sjson.SetBytes(out, "anthropic_version", AnthropicVersion); err != nil {
		return nil, oaierror.Internal(500, "rewrite_failed", "The gateway could not rewrite the request body.")
	}
	return out, nil
}

// Response translates a Claude message, or passes an OpenAI completion.
func (s *Schema) Response(body []byte, model string) ([]byte, usage.Usage, bool, error) {
	if IsClaude(model) {
		return s.claude.Response(body, model)
	}
	return s.gemini.Response(body, model)
}

// NewStream returns the Anthropic or OpenAI stream translator.
func (s *Schema) NewStream(model string, includeUsage bool) translate.Stream {
	if IsClaude(model) {
		return s.claude.NewStream(model, includeUsage)
	}
	return s.gemini.NewStream(model, includeUsage)
}

// Error translates Vertex errors. rawPredict may pass Anthropic's own error
// body through; everything else is Google's {"error":{"code","message",
// "status"}} (sometimes wrapped in a one-element array), and the OpenAI
// endpoint may answer in OpenAI's shape already.
func (s *Schema) Error(status int, body []byte) (int, []byte) {
	js := byteview.String(body)
	root := gjson.Parse(js)
	if root.IsArray() {
		root = root.Get("0")
	}
	if root.Get("type").String() == "error" {
		return s.claude.Error(status, body)
	}
	msg := root.Get("error.message").String()
	e := &oaierror.Error{Status: status, Type: oaierror.TypeInvalidRequest, Message: msg}
	switch {
	case status == 429:
		e.Type, e.Code = oaierror.TypeRateLimit, "rate_limit_exceeded"
	case status == 401:
		e.Code = "invalid_api_key"
	case status == 403:
		e.Type = oaierror.TypePermission
	case status == 404:
		e.Type = oaierror.TypeNotFound
	case status >= 400 && status < 500:
	case status >= 500 && status < 600:
		e.Type = oaierror.TypeServer
	default:
		e.Status, e.Type = 502, oaierror.TypeServer
	}
	if e.Message == "" {
		e.Message = "The provider returned HTTP " + strconv.Itoa(status) + "."
		if st := root.Get("error.status").String(); st != "" {
			e.Message = "The provider returned HTTP " + strconv.Itoa(status) + " (" + st + ")."
		}
	}
	return e.Status, e.Body()
}
