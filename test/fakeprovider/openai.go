package fakeprovider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

const (
	contentJSON = "application/json"
	contentSSE  = "text/event-stream; charset=utf-8"
)

// openAI imitates api.openai.com.
type openAI struct {
	cred    string
	headers http.Header // headers_response.txt without content-type and date

	chat, embeddings, models []byte

	// Responses API: a response object and event streams, plain and with a
	// function call (the request has tools).
	responses                  []byte
	responsesStream, respTools [][]byte

	// transcription usage objects: token-billed and duration-billed models
	transcribeTokens, transcribeDuration []byte

	streamUsage, streamNoUsage            [][]byte
	streamTools, streamToolsNoUsage       [][]byte
	err400, err401, err429, err500, errEv []byte
}

func newOpenAI(fs *fixtureSet, cred string) *openAI {
	p := &openAI{
		cred:               cred,
		headers:            fs.headers("openai/headers_response.txt"),
		chat:               fs.read("openai/chat_response.json"),
		embeddings:         fs.read("openai/embeddings_response.json"),
		models:             fs.read("openai/models_response.json"),
		responses:          fs.read("openai/responses_response.json"),
		responsesStream:    splitEvents(fs.read("openai/responses_stream.sse")),
		respTools:          splitEvents(fs.read("openai/responses_stream_tool_call.sse")),
		transcribeTokens:   []byte(gjson.GetBytes(fs.read("openai/transcription_response_tokens.json"), "usage").Raw),
		transcribeDuration: []byte(gjson.GetBytes(fs.read("openai/transcription_response_duration.json"), "usage").Raw),
		streamUsage:        splitEvents(fs.read("openai/chat_stream.sse")),
		streamNoUsage:      splitEvents(fs.read("openai/chat_stream_no_usage.sse")),
		// The tool-call capture was made with include_usage; without it the
		// provider sends neither the usage chunk nor "usage":null, so that
		// variant is derived by stripping both (see stripUsage).
		streamTools: splitEvents(fs.read("openai/chat_stream_tool_calls.sse")),
		err400:      fs.read("openai/error_400_context_length.json"),
		err401:      fs.read("openai/error_401.json"),
		err429:      fs.read("openai/error_429.json"),
		err500:      fs.read("openai/error_500.json"),
	}
	if fs.err != nil {
		return p
	}
	p.headers.Del("Content-Type")
	p.headers.Del("Date") // net/http sends the real date
	var err error
	if p.streamToolsNoUsage, err = stripUsage(p.streamTools); err != nil {
		fs.err = err
	}
	if p.errEv, err = streamErrorEvent(p.err500); err != nil {
		fs.err = err
	}
	return p
}

func (p *openAI) requestID(n int) string { return fmt.Sprintf("req_%032x", n) }

func (p *openAI) handle(r *http.Request, body []byte, id string) (reply, bool) {
	var serve func([]byte, string) (reply, bool)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		serve = p.chatCompletions
	case r.Method == http.MethodPost && r.URL.Path == "/v1/responses":
		serve = p.responsesReply
	case (r.Method == http.MethodGet || r.Method == http.MethodDelete) && strings.HasPrefix(r.URL.Path, "/v1/responses/"):
		serve = func([]byte, string) (reply, bool) { return p.storedResponse(r.Method, r.URL.Path, id) }
	case r.Method == http.MethodPost && r.URL.Path == "/v1/embeddings":
		serve = p.embeddingsReply
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		serve = func([]byte, string) (reply, bool) { return p.ok(id, p.models), true }
	case r.Method == http.MethodPost && r.URL.Path == "/v1/audio/transcriptions":
		serve = func(body []byte, id string) (reply, bool) {
			return p.transcription(r.Header.Get("Content-Type"), body, id)
		}
	default:
		return p.apiError(http.StatusNotFound, id, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path), "invalid_request_error", "", ""), false
	}
	if p.cred != "" && r.Header.Get("Authorization") != "Bearer "+p.cred {
		return p.errorReply(http.StatusUnauthorized, "", id), false
	}
	return serve(body, id)
}

func (p *openAI) chatCompletions(body []byte, id string) (reply, bool) {
	req, rep, ok := parseChatRequest(body, id, p.apiError)
	if !ok {
		return rep, false
	}
	if !req.stream {
		return p.ok(id, p.chat), true
	}
	events := p.streamNoUsage
	switch {
	case req.tools && req.includeUsage:
		events = p.streamTools
	case req.tools:
		events = p.streamToolsNoUsage
	case req.includeUsage:
		events = p.streamUsage
	}
	return p.okStream(id, events), true
}

// responsesReply answers POST /v1/responses from the Responses fixtures.
func (p *openAI) responsesReply(body []byte, id string) (reply, bool) {
	if rep, ok := checkResponsesRequest(body, id, p.apiError); !ok {
		return rep, false
	}
	if gjson.GetBytes(body, "stream").Type != gjson.True {
		return p.ok(id, p.responses), true
	}
	if gjson.GetBytes(body, "tools.0").Exists() {
		return p.okStream(id, p.respTools), true
	}
	return p.okStream(id, p.responsesStream), true
}

// checkResponsesRequest validates a Responses request as OpenAI's model
// service does (Azure's v1 Responses API passes the same errors through).
func checkResponsesRequest(body []byte, id string, apiError func(int, string, string, string, string, string) reply) (reply, bool) {
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return apiError(http.StatusBadRequest, id, msgInvalidJSON, "invalid_request_error", "", ""), false
	}
	if m := gjson.GetBytes(body, "model"); m.Type != gjson.String || m.Str == "" {
		return apiError(http.StatusBadRequest, id, "Missing required parameter: 'model'.", "invalid_request_error", "model", "missing_required_parameter"), false
	}
	return reply{}, true
}

// storedResponse answers GET (the response fixture, with the asked-for id)
// and DELETE of a stored response.
func (p *openAI) storedResponse(method, path, id string) (reply, bool) {
	rid := strings.TrimPrefix(path, "/v1/responses/")
	if method == http.MethodDelete {
		return p.ok(id, []byte(`{"id":`+strconv.Quote(rid)+`,"object":"response","deleted":true}`)), true
	}
	b, err := sjson.SetBytes(p.responses, "id", rid)
	if err != nil {
		return p.errorReply(http.StatusInternalServerError, "", id), false
	}
	return p.ok(id, b), true
}

func (p *openAI) embeddingsReply(body []byte, id string) (reply, bool) {
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return p.apiError(http.StatusBadRequest, id, msgInvalidJSON, "invalid_request_error", "", ""), false
	}
	if m := gjson.GetBytes(body, "model"); m.Type != gjson.String || m.Str == "" {
		return p.apiError(http.StatusBadRequest, id, "you must provide a model parameter", "invalid_request_error", "", ""), false
	}
	if !gjson.GetBytes(body, "input").Exists() {
		return p.apiError(http.StatusBadRequest, id, "Missing required parameter: 'input'.", "invalid_request_error", "input", "missing_required_parameter"), false
	}
	switch f := gjson.GetBytes(body, "encoding_format"); {
	case !f.Exists() || f.Str == "float":
		return p.ok(id, p.embeddings), true
	case f.Str == "base64":
		b, err := base64Embeddings(p.embeddings)
		if err != nil {
			return p.errorReply(http.StatusInternalServerError, "", id), false
		}
		return p.ok(id, b), true
	default:
		return p.apiError(http.StatusBadRequest, id, fmt.Sprintf("Invalid value for 'encoding_format': %s. Supported values are: 'float' and 'base64'.", f.Raw),
			"invalid_request_error", "encoding_format", "invalid_value"), false
	}
}

func (p *openAI) ok(id string, body []byte) reply {
	h := p.headers.Clone()
	h.Set("Content-Type", contentJSON)
	h.Set("X-Request-Id", id)
	return reply{status: http.StatusOK, header: h, chunks: [][]byte{body}}
}

func (p *openAI) okStream(id string, events [][]byte) reply {
	h := p.headers.Clone()
	h.Set("Content-Type", contentSSE)
	h.Set("X-Request-Id", id)
	return reply{status: http.StatusOK, header: h, chunks: events, stream: true}
}

func (p *openAI) errorReply(status int, _ string, id string) reply {
	var body []byte
	switch status {
	case http.StatusBadRequest:
		body = p.err400
	case http.StatusUnauthorized:
		body = p.err401
	case http.StatusTooManyRequests:
		body = p.err429
	case http.StatusInternalServerError:
		body = p.err500
	default:
		typ := "invalid_request_error"
		if status >= 500 {
			typ = "server_error"
		}
		return p.apiError(status, id, http.StatusText(status), typ, "", "")
	}
	return p.errorBody(status, id, body)
}

func (p *openAI) apiError(status int, id, message, typ, param, code string) reply {
	return p.errorBody(status, id, openAIErrorBody(message, typ, param, code))
}

func (p *openAI) errorBody(status int, id string, body []byte) reply {
	h := http.Header{}
	h.Set("Content-Type", contentJSON)
	h.Set("X-Request-Id", id)
	if status == http.StatusUnauthorized {
		h.Set("Www-Authenticate", `Bearer realm="OpenAI API"`)
	}
	return reply{status: status, header: h, chunks: [][]byte{body}}
}

func (p *openAI) streamErrorReply(normal reply, id string) reply {
	if !normal.stream {
		return p.errorReply(http.StatusInternalServerError, "", id)
	}
	return truncateWithError(normal, p.errEv)
}

// chatRequest is what a fake needs from a Chat Completions request body.
type chatRequest struct {
	stream, includeUsage, tools bool
}

// msgInvalidJSON is OpenAI's answer to a body that is not JSON.
const msgInvalidJSON = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)"

// parseChatRequest validates a Chat Completions body the way OpenAI does for
// the fields the fakes care about, answering failures through apiError.
func parseChatRequest(body []byte, id string, apiError func(status int, id, message, typ, param, code string) reply) (chatRequest, reply, bool) {
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return chatRequest{}, apiError(http.StatusBadRequest, id, msgInvalidJSON, "invalid_request_error", "", ""), false
	}
	if m := gjson.GetBytes(body, "model"); m.Type != gjson.String || m.Str == "" {
		return chatRequest{}, apiError(http.StatusBadRequest, id, "you must provide a model parameter", "invalid_request_error", "", ""), false
	}
	if m := gjson.GetBytes(body, "messages"); !m.IsArray() || len(m.Array()) == 0 {
		return chatRequest{}, apiError(http.StatusBadRequest, id, "Missing required parameter: 'messages'.", "invalid_request_error", "messages", "missing_required_parameter"), false
	}
	return chatRequest{
		stream:       gjson.GetBytes(body, "stream").Type == gjson.True,
		includeUsage: gjson.GetBytes(body, "stream_options.include_usage").Type == gjson.True,
		tools:        len(gjson.GetBytes(body, "tools").Array()) > 0,
	}, reply{}, true
}

// openAIErrorBody renders {"error":{message,type,param,code}} pretty-printed
// with two spaces like the captured bodies; empty param/code become null.
func openAIErrorBody(message, typ, param, code string) []byte {
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	b := body{Message: message, Type: typ}
	if param != "" {
		b.Param = &param
	}
	if code != "" {
		b.Code = &code
	}
	return marshal(struct {
		Error body `json:"error"`
	}{b}, "  ")
}

// marshal encodes v without HTML escaping; indent "" gives compact JSON without
// a trailing newline, otherwise indented JSON ending in a newline.
func marshal(v any, indent string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("fakeprovider: marshal %T: %v", v, err)) // plain structs always encode
	}
	if indent == "" {
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	return buf.Bytes()
}

// streamErrorEvent is the mid-stream error event OpenAI-style servers send:
// a data: line holding the error object of an error body.
func streamErrorEvent(errorBody []byte) ([]byte, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, errorBody); err != nil {
		return nil, fmt.Errorf("fakeprovider: compact error body: %w", err)
	}
	return append(append([]byte("data: "), compact.Bytes()...), "\n\n"...), nil
}

// truncateWithError keeps the first half of a Chat Completions stream's events
// (not counting [DONE]) and ends it with an error event instead.
func truncateWithError(normal reply, errEvent []byte) reply {
	n := len(normal.chunks)
	if n > 0 && bytes.HasPrefix(normal.chunks[n-1], []byte("data: [DONE]")) {
		n--
	}
	chunks := append(append([][]byte(nil), normal.chunks[:n/2]...), errEvent)
	normal.chunks = chunks
	return normal
}
