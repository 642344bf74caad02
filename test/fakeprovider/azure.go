package fakeprovider

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// azure imitates an Azure OpenAI resource ({resource}.openai.azure.com).
type azure struct {
	cred string

	response              []byte
	stream, streamNoUsage [][]byte
	errEv                 []byte

	// A request with tools whose last message is not a tool result is
	// answered with a function call; the follow-up carrying the result gets
	// the text answer.
	toolResponse                  []byte
	toolStream, toolStreamNoUsage [][]byte

	// The v1 Responses API (POST /openai/v1/responses) runs OpenAI's
	// Responses service: the same objects and events as openai's fixtures.
	responses                  []byte
	responsesStream, respTools [][]byte
}

// azure401 is the bad-key body from azure_openai/README.md.
const azure401 = `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}`

func newAzure(fs *fixtureSet, cred string) *azure {
	p := &azure{
		cred:     cred,
		response: fs.read("azure_openai/chat_response.json"),
		// Captured with include_usage; the no-usage variant is derived.
		stream:          splitEvents(fs.read("azure_openai/chat_stream.sse")),
		toolResponse:    fs.read("azure_openai/chat_response_tool_calls.json"),
		toolStream:      splitEvents(fs.read("azure_openai/chat_stream_tool_calls.sse")),
		responses:       fs.read("openai/responses_response.json"),
		responsesStream: splitEvents(fs.read("openai/responses_stream.sse")),
		respTools:       splitEvents(fs.read("openai/responses_stream_tool_call.sse")),
	}
	// Azure passes the model service's OpenAI-shaped errors through, so a
	// mid-stream error uses OpenAI's error object.
	err500 := fs.read("openai/error_500.json")
	if fs.err != nil {
		return p
	}
	var err error
	if p.streamNoUsage, err = stripUsage(p.stream); err != nil {
		fs.err = err
	}
	if p.toolStreamNoUsage, err = stripUsage(p.toolStream); err != nil {
		fs.err = err
	}
	if p.errEv, err = streamErrorEvent(err500); err != nil {
		fs.err = err
	}
	return p
}

// requestID is UUID-shaped, like apim-request-id.
func (p *azure) requestID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

func (p *azure) handle(r *http.Request, body []byte, id string) (reply, bool) {
	if r.Method == http.MethodPost && r.URL.Path == azureResponsesPath {
		return p.responsesReply(r, body, id)
	}
	if r.Method != http.MethodPost || !isAzureChatPath(r.URL.Path) {
		return p.errorReply(http.StatusNotFound, "", id), false
	}
	// The classic deployment form needs a dated api-version; without one the
	// resource answers 404 "Resource not found".
	if strings.HasPrefix(r.URL.Path, "/openai/deployments/") && r.URL.Query().Get("api-version") == "" {
		return p.errorReply(http.StatusNotFound, "", id), false
	}
	if p.cred != "" && r.Header.Get("Api-Key") != p.cred && r.Header.Get("Authorization") != "Bearer "+p.cred {
		return p.errorReply(http.StatusUnauthorized, "", id), false
	}
	// Body validation happens in the model service, which answers in OpenAI's
	// error shape; only the resource front end uses Azure's {code,message}.
	// On the deployment form the path picks the model; parseChatRequest still
	// wants a model field, which both openai-go and Azure's SDKs send.
	req, rep, ok := parseChatRequest(body, id, p.modelError)
	if !ok {
		return rep, false
	}
	h := p.header(id)
	callTool := req.tools && gjson.GetBytes(body, "messages.@reverse.0.role").Str != "tool"
	if !req.stream {
		h.Set("Content-Type", contentJSON)
		answer := p.response
		if callTool {
			answer = p.toolResponse
		}
		return reply{status: http.StatusOK, header: h, chunks: [][]byte{answer}}, true
	}
	h.Set("Content-Type", contentSSE)
	var events [][]byte
	switch {
	case callTool && req.includeUsage:
		events = p.toolStream
	case callTool:
		events = p.toolStreamNoUsage
	case req.includeUsage:
		events = p.stream
	default:
		events = p.streamNoUsage
	}
	return reply{status: http.StatusOK, header: h, chunks: events, stream: true}, true
}

// azureResponsesPath is the v1 Responses API: the deployment is the body's
// model and no api-version is needed
// (https://learn.microsoft.com/azure/ai-foundry/openai/how-to/responses).
// The preview form /openai/responses?api-version=… is not served: the
// gateway never sends it.
const azureResponsesPath = "/openai/v1/responses"

// responsesReply answers the v1 Responses API from the Responses fixtures.
func (p *azure) responsesReply(r *http.Request, body []byte, id string) (reply, bool) {
	if p.cred != "" && r.Header.Get("Api-Key") != p.cred && r.Header.Get("Authorization") != "Bearer "+p.cred {
		return p.errorReply(http.StatusUnauthorized, "", id), false
	}
	if rep, ok := checkResponsesRequest(body, id, p.modelError); !ok {
		return rep, false
	}
	h := p.header(id)
	if gjson.GetBytes(body, "stream").Type != gjson.True {
		h.Set("Content-Type", contentJSON)
		return reply{status: http.StatusOK, header: h, chunks: [][]byte{p.responses}}, true
	}
	events := p.responsesStream
	if gjson.GetBytes(body, "tools.0").Exists() {
		events = p.respTools
	}
	h.Set("Content-Type", contentSSE)
	return reply{status: http.StatusOK, header: h, chunks: events, stream: true}, true
}

// isAzureChatPath matches /openai/deployments/{deployment}/chat/completions
// and /openai/v1/chat/completions.
func isAzureChatPath(path string) bool {
	if path == "/openai/v1/chat/completions" {
		return true
	}
	rest, ok := strings.CutPrefix(path, "/openai/deployments/")
	if !ok {
		return false
	}
	dep, ok := strings.CutSuffix(rest, "/chat/completions")
	return ok && dep != "" && !strings.Contains(dep, "/")
}

func (p *azure) header(id string) http.Header {
	h := http.Header{}
	h.Set("Apim-Request-Id", id)
	h.Set("X-Request-Id", id)
	h.Set("X-Ratelimit-Remaining-Requests", "99")
	h.Set("X-Ratelimit-Remaining-Tokens", "99000")
	return h
}

func (p *azure) modelError(status int, id, message, typ, param, code string) reply {
	h := p.header(id)
	h.Set("Content-Type", contentJSON)
	return reply{status: status, header: h, chunks: [][]byte{openAIErrorBody(message, typ, param, code)}}
}

// errorReply renders Azure's own error shape {"error":{"code","message"}}
// with a string code and no type/param.
func (p *azure) errorReply(status int, retryAfter, id string) reply {
	var body []byte
	switch status {
	case http.StatusUnauthorized:
		body = []byte(azure401)
	case http.StatusNotFound:
		body = azureErrorBody("404", "Resource not found")
	case http.StatusTooManyRequests:
		wait := "Please retry later."
		if s, err := strconv.Atoi(retryAfter); err == nil {
			wait = fmt.Sprintf("Please retry after %d seconds.", s)
		}
		body = azureErrorBody("429", "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current AIServices S0 pricing tier. "+wait)
	default:
		body = azureErrorBody(strconv.Itoa(status), http.StatusText(status))
	}
	h := p.header(id)
	h.Set("Content-Type", contentJSON)
	return reply{status: status, header: h, chunks: [][]byte{body}}
}

func azureErrorBody(code, message string) []byte {
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	return marshal(struct {
		Error detail `json:"error"`
	}{detail{code, message}}, "")
}

func (p *azure) streamErrorReply(normal reply, id string) reply {
	if !normal.stream {
		return p.errorReply(http.StatusInternalServerError, "", id)
	}
	return truncateWithError(normal, p.errEv)
}
