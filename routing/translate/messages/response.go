package messages

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/usage"
)

// ErrProviderBody is wrapped by the errors FromChat returns: the provider's
// body was not a chat completion. The processor answers 502 api_error.
var ErrProviderBody = errors.New("messages: provider response is not a chat completion")

// FromChat translates a complete, non-streamed Chat Completions response
// body into a Messages response body. model is reported when the body names
// none. Only the first choice is read: the request never asks for more.
func FromChat(body []byte, model string) ([]byte, error) {
	if !gjson.ValidBytes(body) {
		return nil, ErrProviderBody
	}
	root := gjson.ParseBytes(body)
	choice := root.Get("choices.0")
	if !root.IsObject() || !choice.IsObject() {
		return nil, ErrProviderBody
	}
	msg := choice.Get("message")
	out := message{
		ID:      messageID(root.Get("id").String()),
		Type:    "message",
		Role:    "assistant",
		Model:   root.Get("model").String(),
		Content: []contentBlock{},
	}
	if out.Model == "" {
		out.Model = model
	}
	if r := reasoning(msg); r != "" {
		out.Content = append(out.Content, thinkingBlock(r))
	}
	if c := msg.Get("content"); c.Type == gjson.String && c.Str != "" {
		out.Content = append(out.Content, textBlock(c.Str))
	}
	refused := false
	if r := msg.Get("refusal"); r.Type == gjson.String && r.Str != "" {
		out.Content = append(out.Content, textBlock(r.Str))
		refused = true
	}
	var ferr error
	msg.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		input, err := toolInput(tc.Get("function.arguments").String())
		if err != nil {
			ferr = err
			return false
		}
		out.Content = append(out.Content, contentBlock{Type: "tool_use", ID: tc.Get("id").String(),
			Name: tc.Get("function.name").String(), Input: input})
		return true
	})
	if ferr != nil {
		return nil, ferr
	}
	stop := stopReason(choice.Get("finish_reason").String())
	if refused {
		stop = "refusal"
	}
	out.StopReason = &stop
	if u, ok := usage.FromOpenAI(body); ok {
		out.Usage = messageUsage(u)
	}
	return marshal(out), nil
}

// message is a Messages API response.
type message struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []contentBlock `json:"content"`
	StopReason   *string        `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        msgUsage       `json:"usage"`
}

// contentBlock is a text, thinking or tool_use block.
type contentBlock struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text,omitempty"`
	Thinking  *string         `json:"thinking,omitempty"`
	Signature *string         `json:"signature,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
}

type msgUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

func textBlock(s string) contentBlock { return contentBlock{Type: "text", Text: &s} }

// thinkingBlock carries reasoning text; the signature is empty because no
// Anthropic model signed it (and the request translation drops replayed
// thinking, so it is never checked).
func thinkingBlock(s string) contentBlock {
	sig := ""
	return contentBlock{Type: "thinking", Thinking: &s, Signature: &sig}
}

// messageUsage splits OpenAI's prompt_tokens the way Anthropic does:
// input_tokens excludes the tokens read from the cache.
func messageUsage(u usage.Usage) msgUsage {
	return msgUsage{
		InputTokens:          max(u.PromptTokens-u.CachedTokens, 0),
		CacheReadInputTokens: u.CachedTokens,
		OutputTokens:         u.CompletionTokens,
	}
}

// reasoning is the reasoning text of a message or delta: reasoning_content
// (DeepSeek, many OpenAI-compatible servers) or reasoning (vLLM, Ollama).
func reasoning(obj gjson.Result) string {
	if r := obj.Get("reasoning_content"); r.Type == gjson.String {
		return r.Str
	}
	if r := obj.Get("reasoning"); r.Type == gjson.String {
		return r.Str
	}
	return ""
}

// messageID derives a Messages id from a chat completion id, or makes one.
func messageID(chatID string) string {
	if id := strings.TrimPrefix(chatID, "chatcmpl-"); id != "" {
		return "msg_" + id
	}
	return "msg_" + rand.Text()
}

// toolInput parses a tool call's arguments: tool_use input must be an object.
func toolInput(args string) (json.RawMessage, error) {
	if strings.TrimSpace(args) == "" {
		return json.RawMessage("{}"), nil
	}
	var b bytes.Buffer
	if json.Compact(&b, []byte(args)) != nil || b.Bytes()[0] != '{' {
		return nil, errors.Join(ErrProviderBody, errors.New("tool call arguments are not a JSON object"))
	}
	return b.Bytes(), nil
}

// stopReason maps a finish_reason to a stop_reason.
func stopReason(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	return "end_turn" // stop, and anything unknown
}
