// Package translate defines how the gateway converts between the OpenAI Chat
// Completions API, which every client speaks, and the wire format of one
// provider. Each provider schema lives in a subpackage (anthropic, openai);
// the processor treats them all through these two interfaces.
//
// Translators are pure: they hold no connections and no package state, and a
// Schema is safe for concurrent use. A Stream belongs to one response.
package translate

import "github.com/tollgate-ai/tollgate/routing/usage"

// Schema translates between the OpenAI chat-completions API and a provider
// API.
type Schema interface {
	// Path returns the upstream path, below the provider's base path, for an
	// OpenAI endpoint suffix such as "/chat/completions" or "/embeddings";
	// ok is false when the provider does not offer the endpoint.
	Path(endpointSuffix string) (path string, ok bool)

	// Request rewrites an OpenAI request body (already validated JSON) for
	// the provider, naming the provider model id model. A non-nil error is
	// the client's fault: a request that cannot be expressed for this
	// provider. It is an *oaierror.Error (400, invalid_request_error, Param
	// set where known) whose Body can be sent as is.
	Request(body []byte, model string, opts RequestOptions) ([]byte, error)

	// Headers lists the request headers the provider needs besides the
	// credential, e.g. anthropic-version. The slice must not be modified.
	Headers() [][2]string

	// Response translates a complete, non-streamed 2xx provider body into an
	// OpenAI chat.completion body. ok reports whether the body carried
	// usage. model is reported to the client when the provider's body names
	// none. A non-nil error means the body could not be read (a provider
	// fault: answer 502).
	Response(body []byte, model string) (out []byte, u usage.Usage, ok bool, err error)

	// Error translates a provider error response (non-2xx status and body)
	// into an OpenAI-format error status and body.
	Error(status int, body []byte) (int, []byte)

	// NewStream returns the translator for one streamed response. model is
	// reported when the provider names none; includeUsage is whether the
	// client asked for stream_options.include_usage.
	NewStream(model string, includeUsage bool) Stream
}

// RequestOptions carries what the gateway decided about a request.
type RequestOptions struct {
	// DefaultMaxTokens is the output limit sent to providers that require
	// one when the client set neither max_tokens nor max_completion_tokens;
	// zero leaves the choice to the schema.
	DefaultMaxTokens int
	// Stream is whether the client asked for a stream; the translated
	// request streams exactly when it is set.
	Stream bool
}

// Stream translates one provider SSE stream into an OpenAI chat-completion
// chunk stream. It is not safe for concurrent use.
type Stream interface {
	// Event consumes one complete provider SSE event (its event name and
	// data, as extproc/sse returns them; comment-only events need not be
	// passed) and appends the SSE bytes the client should receive to out.
	Event(out []byte, name, data []byte) []byte

	// End is called once at the end of the upstream stream. It appends what
	// must close the client's stream and reports whether the provider's
	// stream completed cleanly. A stream that ended with a provider error
	// event or was cut short always ends, for the client, with an
	// OpenAI-format error event (data: {"error":{...}}), never with a
	// clean end that looks complete.
	End(out []byte) (_ []byte, complete bool)

	// Usage returns the response's usage once the provider reported its
	// final figures; ok is false before (a stream cut or errored before
	// them has no final usage).
	Usage() (u usage.Usage, ok bool)

	// Partial returns the usage seen so far, final or not; ok is false if
	// none was seen. A cut stream is metered from the larger of it and an
	// estimate.
	Partial() (u usage.Usage, ok bool)
}

// Verbatim is implemented by a Schema whose provider already speaks OpenAI's
// API (openai.Passthrough): its responses reach the client as the provider
// sent them, and a processor adds no content-type or content-length of its
// own.
type Verbatim interface {
	Schema
	Verbatim() bool
}

// IsVerbatim reports whether s passes responses through as sent.
func IsVerbatim(s Schema) bool {
	v, ok := s.(Verbatim)
	return ok && v.Verbatim()
}

// RawStream is a Stream that takes each SSE event with its raw bytes, so an
// event that needs no change is passed on byte for byte (its framing, ids and
// line endings kept) instead of being decoded and re-encoded.
type RawStream interface {
	Stream
	// Raw consumes one SSE event, comments included: raw is the event as
	// framed on the wire and data its joined data lines. It appends what the
	// client should receive to out: raw itself when nothing changes.
	Raw(out, raw, data []byte) []byte
	// State reports whether the stream's end marker (data: [DONE]) and
	// whether an error event arrived so far.
	State() (done, errored bool)
}
