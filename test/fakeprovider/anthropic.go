package fakeprovider

import (
	"fmt"
	"net/http"

	"github.com/tidwall/gjson"
)

// anthropic imitates api.anthropic.com's Messages API.
type anthropic struct {
	cred string

	response                         []byte
	stream, streamTools, streamError [][]byte
	err401, err429, err529           []byte
}

func newAnthropic(fs *fixtureSet, cred string) *anthropic {
	return &anthropic{
		cred:        cred,
		response:    fs.read("anthropic/messages_response.json"),
		stream:      splitEvents(fs.read("anthropic/messages_stream.sse")),
		streamTools: splitEvents(fs.read("anthropic/messages_stream_tool_use.sse")),
		streamError: splitEvents(fs.read("anthropic/messages_stream_error.sse")),
		err401:      fs.read("anthropic/error_401.json"),
		err429:      fs.read("anthropic/error_429.json"),
		err529:      fs.read("anthropic/error_529_overloaded.json"),
	}
}

func (p *anthropic) requestID(n int) string { return fmt.Sprintf("req_011CVfake%012d", n) }

func (p *anthropic) handle(r *http.Request, body []byte, id string) (reply, bool) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" && r.URL.Path != "/v1/messages/count_tokens" {
		return p.apiError(http.StatusNotFound, id, "not_found_error", "Not Found"), false
	}
	if p.cred != "" && r.Header.Get("X-Api-Key") != p.cred {
		return p.errorReply(http.StatusUnauthorized, "", id), false
	}
	if r.Header.Get("Anthropic-Version") == "" {
		return p.apiError(http.StatusBadRequest, id, "invalid_request_error", "anthropic-version: header is required"), false
	}
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return p.apiError(http.StatusBadRequest, id, "invalid_request_error", "There was an error parsing the body of your request. Please make sure it is valid JSON."), false
	}
	if r.URL.Path == "/v1/messages/count_tokens" {
		// A fixed count, distinct from any estimate of the gateway's.
		return reply{status: http.StatusOK, header: p.header(id, contentJSON), chunks: [][]byte{[]byte(`{"input_tokens":2095}`)}}, true
	}
	// Checked in this order, with these pydantic-style messages.
	for _, field := range []string{"model", "max_tokens", "messages"} {
		if !gjson.GetBytes(body, field).Exists() {
			return p.apiError(http.StatusBadRequest, id, "invalid_request_error", field+": Field required"), false
		}
	}
	if gjson.GetBytes(body, "stream").Type != gjson.True {
		// No non-streamed tool_use capture exists; tool requests get the text answer.
		h := p.header(id, contentJSON)
		return reply{status: http.StatusOK, header: h, chunks: [][]byte{p.response}}, true
	}
	events := p.stream
	if len(gjson.GetBytes(body, "tools").Array()) > 0 {
		events = p.streamTools
	}
	return p.streamReply(id, events), true
}

func (p *anthropic) header(id, contentType string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", contentType)
	h.Set("Request-Id", id)
	// Account headers the real API sends (fixtures/anthropic/headers_request.txt notes);
	// values invented.
	h.Set("Anthropic-Organization-Id", "5b1f2c7e-90d4-4e3a-8c61-2f7a9d0b4e18")
	h.Set("Anthropic-Ratelimit-Requests-Limit", "4000")
	h.Set("Anthropic-Ratelimit-Requests-Remaining", "3999")
	h.Set("Anthropic-Ratelimit-Requests-Reset", "2026-11-21T09:14:32Z")
	h.Set("Anthropic-Ratelimit-Tokens-Limit", "2000000")
	h.Set("Anthropic-Ratelimit-Tokens-Remaining", "1999000")
	h.Set("Anthropic-Ratelimit-Tokens-Reset", "2026-11-21T09:14:32Z")
	return h
}

func (p *anthropic) streamReply(id string, events [][]byte) reply {
	h := p.header(id, contentSSE)
	h.Set("Cache-Control", "no-cache")
	return reply{status: http.StatusOK, header: h, chunks: events, stream: true}
}

func (p *anthropic) errorReply(status int, _ string, id string) reply {
	var body []byte
	switch status {
	case http.StatusUnauthorized:
		body = p.err401
	case http.StatusTooManyRequests:
		body = p.err429
	case 529:
		body = p.err529
	default:
		typ, msg := anthropicErrorType(status)
		return p.apiError(status, id, typ, msg)
	}
	// The captured bodies carry their own request_id; keep header and body in
	// agreement as the real API does.
	if rid := gjson.GetBytes(body, "request_id").Str; rid != "" {
		id = rid
	}
	return reply{status: status, header: p.header(id, contentJSON), chunks: [][]byte{body}}
}

// apiError renders Anthropic's compact error body (single line, no trailing
// newline, key order type/error/request_id).
func (p *anthropic) apiError(status int, id, typ, message string) reply {
	type detail struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	body := marshal(struct {
		Type      string `json:"type"`
		Error     detail `json:"error"`
		RequestID string `json:"request_id"`
	}{"error", detail{typ, message}, id}, "")
	return reply{status: status, header: p.header(id, contentJSON), chunks: [][]byte{body}}
}

func (p *anthropic) streamErrorReply(normal reply, id string) reply {
	if !normal.stream {
		return p.errorReply(529, "", id)
	}
	return p.streamReply(id, p.streamError)
}

// anthropicErrorType maps a status to Anthropic's error type and a short
// message, per the documented status table.
func anthropicErrorType(status int) (typ, message string) {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error", "Invalid request"
	case http.StatusUnauthorized:
		return "authentication_error", "invalid x-api-key"
	case http.StatusForbidden:
		return "permission_error", "Your API key does not have permission to use the specified resource."
	case http.StatusNotFound:
		return "not_found_error", "Not Found"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large", "Request exceeds the maximum allowed number of bytes."
	case http.StatusTooManyRequests:
		return "rate_limit_error", "Rate limited"
	case 529:
		return "overloaded_error", "Overloaded"
	}
	if status >= 500 {
		return "api_error", "Internal server error"
	}
	return "invalid_request_error", http.StatusText(status)
}
