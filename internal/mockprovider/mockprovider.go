// Package mockprovider is the deterministic generator behind Tollgate's built-in `mock`
// schema: OpenAI-format chat completions (plain and streamed) and embeddings with real
// usage numbers, computed from the request body alone. The gateway answers requests
// routed to a `schema: mock` provider in-process with these replies (extproc/mock.go), so
// a newcomer's first request needs no provider account and a load test pays no upstream
// hop; the gateway routes, admits, meters and prices them like any other provider's.
//
// A request can ask for a failure, to exercise client error handling: when the last
// message's text contains "[mock:429]" the answer is a 429 rate_limit_exceeded,
// "[mock:500]" a 500 server_error, "[mock:503]" a 503, all in OpenAI's error format.
package mockprovider

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Created is the fixed "created" timestamp of every answer, so answers are reproducible.
const Created = 1767225600 // 2026-01-01T00:00:00Z

// EmbeddingDims is the length of every mock embedding vector.
const EmbeddingDims = 8

// maxEcho bounds how much of the prompt the completion repeats.
const maxEcho = 200

// Done ends every streamed reply. Stream bodies from Chat stop before it, so the caller
// can add its own lines (the gateway's metering comment) first.
const Done = "data: [DONE]\n\n"

// Reply is the mock's answer to one request.
type Reply struct {
	Status int
	// Body is JSON, or, when Stream is set, SSE events without the final Done.
	Body   []byte
	Stream bool
	// Usage is the reply's usage; set when Status is 200.
	Usage Usage
	// RetryAfter is the Retry-After header value of a 429, in seconds.
	RetryAfter string
}

type chatRequest struct {
	Model      string          `json:"model"`
	Messages   []chatMessage   `json:"messages"`
	Stream     bool            `json:"stream"`
	Tools      []tool          `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

type tool struct {
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// toolCall is the function the mock calls: the first tool offered, unless tool_choice is
// "none" or the conversation already ends with a tool result.
func (r chatRequest) toolCall() (string, bool) {
	if len(r.Tools) == 0 || string(r.ToolChoice) == `"none"` || r.Messages[len(r.Messages)-1].Role == "tool" {
		return "", false
	}
	return r.Tools[0].Function.Name, true
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text returns a message's text: a string, or the text parts of a content array.
func (m chatMessage) text() string {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// Chat answers a chat completion request body. A streamed answer (the body's "stream":
// true) carries the usage chunk only when includeUsage is set: the caller says whether the
// client asked for it, since a gateway may have added stream_options on its own.
func Chat(body []byte, includeUsage bool) Reply {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return errorReply(http.StatusBadRequest, "invalid_request_error", "invalid_json", "The request body is not valid JSON: "+err.Error())
	}
	if len(req.Messages) == 0 {
		return errorReply(http.StatusBadRequest, "invalid_request_error", "missing_messages", "messages must not be empty.")
	}
	prompt := 0
	for _, m := range req.Messages {
		prompt += len(m.Role) + len(m.text())
	}
	last := req.Messages[len(req.Messages)-1].text()
	if r, ok := failure(last); ok {
		return r
	}
	content := Completion(last)
	u := Usage{PromptTokens: Tokens(prompt), CompletionTokens: int64(len(strings.Fields(content)))}
	id := "chatcmpl-mock-" + fmt.Sprintf("%016x", hash(last))
	fn, calls := req.toolCall()
	if calls {
		u.CompletionTokens = Tokens(len(fn) + len(noArguments))
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if req.Stream {
		return Reply{Status: http.StatusOK, Body: stream(req, id, content, u, includeUsage), Stream: true, Usage: u}
	}
	msg := map[string]any{"role": "assistant", "content": content, "refusal": nil}
	finish := "stop"
	if calls {
		msg["content"] = nil
		msg["tool_calls"] = []any{map[string]any{"id": toolCallID, "type": "function",
			"function": map[string]any{"name": fn, "arguments": noArguments}}}
		finish = "tool_calls"
	}
	return Reply{Status: http.StatusOK, Usage: u, Body: marshal(map[string]any{
		"id": id, "object": "chat.completion", "created": Created, "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
		"usage":   u,
	})}
}

// The mock's tool call: fixed id, no arguments.
const (
	toolCallID  = "call_mock_0"
	noArguments = "{}"
)

// stream writes the completion as OpenAI's SSE chunks: the role, one chunk per word, the
// finish reason and the usage chunk when asked for; the caller adds Done.
func stream(req chatRequest, id, content string, u Usage, includeUsage bool) []byte {
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": Created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
	}
	var buf bytes.Buffer
	event := func(v any) {
		b, _ := json.Marshal(v) // maps of plain values always marshal
		buf.WriteString("data: ")
		buf.Write(b)
		buf.WriteString("\n\n")
	}
	if fn, ok := req.toolCall(); ok {
		event(chunk(map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
			"index": 0, "id": toolCallID, "type": "function", "function": map[string]any{"name": fn, "arguments": ""}}}}, nil))
		event(chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": noArguments}}}}, nil))
		event(chunk(map[string]any{}, "tool_calls"))
	} else {
		event(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
		for i, word := range strings.Fields(content) {
			if i > 0 {
				word = " " + word
			}
			event(chunk(map[string]any{"content": word}, nil))
		}
		event(chunk(map[string]any{}, "stop"))
	}
	if includeUsage {
		event(map[string]any{"id": id, "object": "chat.completion.chunk", "created": Created, "model": req.Model,
			"choices": []any{}, "usage": u})
	}
	return buf.Bytes()
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
}

// Embeddings answers an embeddings request body.
func Embeddings(body []byte) Reply {
	var req embeddingRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return errorReply(http.StatusBadRequest, "invalid_request_error", "invalid_json", "The request body is not valid JSON: "+err.Error())
	}
	var inputs []string
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		inputs = []string{one}
	} else if json.Unmarshal(req.Input, &inputs) != nil || len(inputs) == 0 {
		return errorReply(http.StatusBadRequest, "invalid_request_error", "invalid_input",
			"The mock provider takes input as a string or a non-empty array of strings.")
	}
	if r, ok := failure(inputs[len(inputs)-1]); ok {
		return r
	}
	data := make([]any, len(inputs))
	var tokens int64
	for i, in := range inputs {
		tokens += Tokens(len(in))
		vec := Embedding(in)
		var emb any = vec
		if req.EncodingFormat == "base64" {
			raw := make([]byte, 4*len(vec))
			for j, f := range vec {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(raw)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	return Reply{Status: http.StatusOK, Usage: Usage{PromptTokens: tokens, TotalTokens: tokens}, Body: marshal(map[string]any{
		"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int64{"prompt_tokens": tokens, "total_tokens": tokens},
	})}
}

// Completion is the mock's answer to a prompt: fixed text that repeats (a bounded prefix
// of) the prompt, so a reader can tell which request it answers.
func Completion(prompt string) string {
	echo := strings.Join(strings.Fields(prompt), " ")
	if len(echo) > maxEcho {
		cut := maxEcho
		for cut > 0 && !utf8.RuneStart(echo[cut]) {
			cut--
		}
		echo = echo[:cut] + "…"
	}
	if echo == "" {
		return "This is Tollgate's mock provider."
	}
	return "This is Tollgate's mock provider. You said: " + echo
}

// Tokens is the mock's token count for n bytes of text: one token per four bytes, at
// least one.
func Tokens(n int) int64 { return max(1, int64((n+3)/4)) }

// Embedding is a deterministic unit vector derived from the text.
func Embedding(text string) []float32 {
	v := make([]float32, EmbeddingDims)
	var norm float64
	for i := range v {
		h := hash(fmt.Sprintf("%d:%s", i, text))
		v[i] = float32(int64(h%2001)-1000) / 1000
		norm += float64(v[i]) * float64(v[i])
	}
	if norm == 0 {
		v[0], norm = 1, 1
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(norm))
	}
	return v
}

// Usage is a reply's token counts, as OpenAI reports them.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// failures maps the marker a prompt may contain to the error the mock answers with.
var failures = []struct {
	marker         string
	status         int
	typ, code, msg string
}{
	{"[mock:429]", http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded", "Mock rate limit: the prompt asked for a 429."},
	{"[mock:500]", http.StatusInternalServerError, "server_error", "server_error", "Mock failure: the prompt asked for a 500."},
	{"[mock:503]", http.StatusServiceUnavailable, "server_error", "overloaded", "Mock overload: the prompt asked for a 503."},
}

// failure is the error reply a prompt asks for, if any.
func failure(prompt string) (Reply, bool) {
	for _, f := range failures {
		if strings.Contains(prompt, f.marker) {
			r := errorReply(f.status, f.typ, f.code, f.msg)
			if f.status == http.StatusTooManyRequests {
				r.RetryAfter = "1"
			}
			return r, true
		}
	}
	return Reply{}, false
}

// marshal encodes maps of plain values, which always marshal.
func marshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func errorReply(status int, typ, code, msg string) Reply {
	return Reply{Status: status, Body: marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})}
}

func hash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}
