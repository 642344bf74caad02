// Package mockprovider is Tollgate's built-in demo provider: an OpenAI-format HTTP server
// that answers chat completions (plain and streamed) and embeddings deterministically,
// with real usage numbers, and never calls anyone. `tollgate run` serves it on loopback
// behind the Envoy cluster tollgate_mock, so a newcomer's first request needs no provider
// account; the gateway routes, meters and prices it like any other provider.
//
// A request can ask for a failure, to exercise fallbacks and client error handling: when
// the last message's text contains "[mock:429]" the answer is a 429 rate_limit_exceeded,
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

// maxBody bounds a request body: the gateway already limits bodies, this is defence in depth.
const maxBody = 8 << 20

// Handler serves the mock API under basePath (e.g. "/v1").
func Handler(basePath string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+basePath+"/chat/completions", chat)
	mux.HandleFunc("POST "+basePath+"/embeddings", embeddings)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url",
			fmt.Sprintf("The mock provider does not serve %s %s.", r.Method, r.URL.Path))
	})
	return mux
}

type chatRequest struct {
	Model         string          `json:"model"`
	Messages      []chatMessage   `json:"messages"`
	Stream        bool            `json:"stream"`
	Tools         []tool          `json:"tools"`
	ToolChoice    json.RawMessage `json:"tool_choice"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
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

func chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "missing_messages", "messages must not be empty.")
		return
	}
	prompt := 0
	for _, m := range req.Messages {
		prompt += len(m.Role) + len(m.text())
	}
	last := req.Messages[len(req.Messages)-1].text()
	if failed(w, last) {
		return
	}
	content := Completion(last)
	u := usage{PromptTokens: Tokens(prompt), CompletionTokens: int64(len(strings.Fields(content)))}
	id := "chatcmpl-mock-" + fmt.Sprintf("%016x", hash(last))
	fn, calls := req.toolCall()
	if calls {
		u.CompletionTokens = Tokens(len(fn) + len(noArguments))
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if req.Stream {
		stream(w, req, id, content, u)
		return
	}
	msg := map[string]any{"role": "assistant", "content": content, "refusal": nil}
	finish := "stop"
	if calls {
		msg["content"] = nil
		msg["tool_calls"] = []any{map[string]any{"id": toolCallID, "type": "function",
			"function": map[string]any{"name": fn, "arguments": noArguments}}}
		finish = "tool_calls"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "object": "chat.completion", "created": Created, "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
		"usage":   u,
	})
}

// The mock's tool call: fixed id, no arguments.
const (
	toolCallID  = "call_mock_0"
	noArguments = "{}"
)

// stream writes the completion as OpenAI's SSE chunks: the role, one chunk per word, the
// finish reason, the usage chunk when asked for, and [DONE].
func stream(w http.ResponseWriter, req chatRequest, id, content string, u usage) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
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
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		event(map[string]any{"id": id, "object": "chat.completion.chunk", "created": Created, "model": req.Model,
			"choices": []any{}, "usage": u})
	}
	buf.WriteString("data: [DONE]\n\n")
	_, _ = w.Write(buf.Bytes())
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
}

func embeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingRequest
	if !decode(w, r, &req) {
		return
	}
	var inputs []string
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		inputs = []string{one}
	} else if json.Unmarshal(req.Input, &inputs) != nil || len(inputs) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_input",
			"The mock provider takes input as a string or a non-empty array of strings.")
		return
	}
	if failed(w, inputs[len(inputs)-1]) {
		return
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
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int64{"prompt_tokens": tokens, "total_tokens": tokens},
	})
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

type usage struct {
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

// failed answers with the error a prompt asks for, if any.
func failed(w http.ResponseWriter, prompt string) bool {
	for _, f := range failures {
		if strings.Contains(prompt, f.marker) {
			if f.status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, f.status, f.typ, f.code, f.msg)
			return true
		}
	}
	return false
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "The request body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
}

func hash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}
