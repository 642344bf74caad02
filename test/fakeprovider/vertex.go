package fakeprovider

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// vertex imitates {location}-aiplatform.googleapis.com: the OpenAI-compatible
// chat endpoint (answered from the openai/ fixtures) and the Anthropic
// publisher's rawPredict / streamRawPredict (from the anthropic/ fixtures),
// below /v1/projects/{project}/locations/{location}. Requests must carry an
// access token minted by Options.Tokens.
type vertex struct {
	tokens *TokenEndpoint

	chat, message         []byte
	chatStream, msgStream [][]byte
	// Tool-call streams, served when the request declares tools.
	chatTools, msgTools [][]byte
}

func newVertex(fs *fixtureSet, tokens *TokenEndpoint) *vertex {
	return &vertex{
		tokens:     tokens,
		chat:       fs.read("openai/chat_response.json"),
		chatStream: splitEvents(fs.read("openai/chat_stream.sse")),
		message:    fs.read("anthropic/messages_response.json"),
		msgStream:  splitEvents(fs.read("anthropic/messages_stream.sse")),
		chatTools:  splitEvents(fs.read("openai/chat_stream_tool_calls.sse")),
		msgTools:   splitEvents(fs.read("anthropic/messages_stream_tool_use.sse")),
	}
}

func (p *vertex) requestID(n int) string { return fmt.Sprintf("vertex-%06d", n) }

func (p *vertex) handle(r *http.Request, body []byte, id string) (reply, bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/projects/")
	_, rest, _ = strings.Cut(rest, "/locations/")
	_, op, _ := strings.Cut(rest, "/")
	if !ok || r.Method != http.MethodPost || op == "" {
		return p.googleError(http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server."), false
	}
	tok, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p.tokens != nil && (!bearer || !p.tokens.Valid(tok)) {
		return p.googleError(http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials."), false
	}
	root := gjson.ParseBytes(body)
	stream := root.Get("stream").Bool()
	tools := len(root.Get("tools").Array()) > 0
	switch {
	case op == "endpoints/openapi/chat/completions":
		if !strings.HasPrefix(root.Get("model").Str, "google/") {
			return p.googleError(http.StatusBadRequest, "INVALID_ARGUMENT", "Model must be a publisher model such as google/gemini-2.5-flash."), false
		}
		if stream {
			events := p.chatStream
			if tools { // the capture has the usage chunk, which the gateway always asks for
				events = p.chatTools
			}
			return reply{status: 200, header: vertexHeader(contentSSE), chunks: events, stream: true}, true
		}
		return reply{status: 200, header: vertexHeader(contentJSON), chunks: [][]byte{p.chat}}, true
	case strings.HasPrefix(op, "publishers/anthropic/models/"):
		model, verb, _ := strings.Cut(strings.TrimPrefix(op, "publishers/anthropic/models/"), ":")
		switch {
		case model == "" || (verb != "rawPredict" && verb != "streamRawPredict"):
			return p.googleError(http.StatusNotFound, "NOT_FOUND", "Unknown method."), false
		case root.Get("anthropic_version").Str != "vertex-2023-10-16" || root.Get("model").Exists():
			return p.googleError(http.StatusBadRequest, "INVALID_ARGUMENT", "anthropic_version: vertex-2023-10-16 is required and model is not allowed in the body."), false
		case verb == "streamRawPredict" && tools:
			return reply{status: 200, header: vertexHeader(contentSSE), chunks: p.msgTools, stream: true}, true
		case verb == "streamRawPredict":
			return reply{status: 200, header: vertexHeader(contentSSE), chunks: p.msgStream, stream: true}, true
		}
		return reply{status: 200, header: vertexHeader(contentJSON), chunks: [][]byte{p.message}}, true
	}
	return p.googleError(http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server."), false
}

func vertexHeader(contentType string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", contentType)
	return h
}

// googleError is Google's error body shape.
func (p *vertex) googleError(status int, code, message string) reply {
	type detail struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	body := marshal(struct {
		Error detail `json:"error"`
	}{detail{status, message, code}}, "")
	return reply{status: status, header: vertexHeader(contentJSON), chunks: [][]byte{body}}
}

func (p *vertex) errorReply(status int, _ string, id string) reply {
	switch status {
	case http.StatusTooManyRequests:
		return p.googleError(status, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later.")
	case http.StatusBadRequest:
		return p.googleError(status, "INVALID_ARGUMENT", "Request contains an invalid argument.")
	}
	return p.googleError(status, "INTERNAL", "Internal error encountered.")
}

func (p *vertex) streamErrorReply(normal reply, id string) reply {
	return p.errorReply(http.StatusInternalServerError, "", id)
}
