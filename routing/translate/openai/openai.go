// Package openai is the identity schema, for providers that speak the OpenAI
// API themselves: OpenAI, Gemini's OpenAI-compatible endpoint, Mistral,
// Ollama, vLLM, OpenRouter. Bodies pass through untouched except for the
// model name, so fields the gateway does not know reach the provider as the
// client sent them; streams are re-framed event by event so that a stream
// cut short ends, for the client, with an error event rather than silence.
package openai

import (
	"bytes"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Schema is the identity schema. The zero value is ready to use.
type Schema struct{}

var _ translate.Schema = Schema{}

// Path maps every endpoint to itself.
func (Schema) Path(endpointSuffix string) (string, bool) { return endpointSuffix, true }

// Request sets "model" and leaves everything else as sent. OpenAI-compatible
// providers need no max_tokens, so opts.DefaultMaxTokens is not applied;
// stream and stream_options are the client's (the processor manages
// include_usage).
func (Schema) Request(body []byte, model string, _ translate.RequestOptions) ([]byte, error) {
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return nil, oaierror.InvalidRequest("invalid_value", "", "The request body must be a JSON object.")
	}
	out, err := sjson.SetBytes(body, "model", model)
	if err != nil {
		return nil, oaierror.InvalidRequest("invalid_value", "model", "The model could not be set: "+err.Error())
	}
	return out, nil
}

// Headers returns nil: OpenAI-compatible providers need only the credential.
func (Schema) Headers() [][2]string { return nil }

// Response returns body unchanged with its usage.
func (Schema) Response(body []byte, _ string) ([]byte, usage.Usage, bool, error) {
	u, ok := usage.FromOpenAI(body)
	return body, u, ok, nil
}

// Error returns the provider's error unchanged: it is already in OpenAI's
// format (or as close as the provider gets).
func (Schema) Error(status int, body []byte) (int, []byte) { return status, body }

// NewStream returns a pass-through stream translator. Without includeUsage
// it removes the usage the gateway asked for on the client's behalf: the
// usage-only chunk ("choices":[]) and the "usage" key of the others.
func (Schema) NewStream(_ string, includeUsage bool) translate.Stream {
	return &stream{includeUsage: includeUsage}
}

type stream struct {
	includeUsage bool
	end          int // 0 open, 1 [DONE] seen, 2 error event sent
	u            usage.Usage
	ok           bool
}

func (s *stream) Event(out []byte, name, data []byte) []byte {
	if s.end != 0 {
		return out
	}
	if bytes.Equal(data, []byte("[DONE]")) {
		s.end = 1
		return append(out, "data: [DONE]\n\n"...)
	}
	js := byteview.String(data) // read only, not kept
	if len(data) > 0 && data[0] == '{' {
		if gjson.Get(js, "error").Exists() && gjson.Valid(js) {
			s.end = 2 // an OpenAI-style error event ends the stream
		} else if u := gjson.Get(js, "usage"); u.Exists() {
			if got, ok := usage.FromOpenAI(data); ok {
				s.u, s.ok = got, true // repeated usage is a running total: keep the last
			}
			if !s.includeUsage {
				if u.IsObject() && !gjson.Get(js, "choices.0").Exists() {
					return out // the usage-only chunk the client did not ask for
				}
				if stripped, err := sjson.DeleteBytes(data, "usage"); err == nil {
					data = stripped
				}
			}
		}
	}
	if len(name) > 0 {
		out = append(out, "event: "...)
		out = append(out, name...)
		out = append(out, '\n')
	}
	for {
		line, rest, more := bytes.Cut(data, []byte("\n"))
		out = append(out, "data: "...)
		out = append(out, line...)
		out = append(out, '\n')
		if !more {
			break
		}
		data = rest
	}
	return append(out, '\n')
}

func (s *stream) End(out []byte) ([]byte, bool) {
	switch s.end {
	case 1:
		return out, true
	case 2:
		return out, false
	}
	s.end = 2
	e := oaierror.Internal(502, "", "The provider's response stream ended before the response was complete.")
	out = append(out, "data: "...)
	out = append(out, e.Body()...)
	return append(out, "\n\n"...), false
}

func (s *stream) Usage() (usage.Usage, bool) { return s.u, s.ok }

// Partial is Usage: OpenAI sends usage once, complete, at the end.
func (s *stream) Partial() (usage.Usage, bool) { return s.u, s.ok }
