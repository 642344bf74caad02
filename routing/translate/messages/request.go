package messages

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
)

// RequestOptions carries what the gateway decided about a request.
type RequestOptions struct {
	// Model is the provider's model id written into the translated body;
	// empty keeps the client's.
	Model string
}

// Reasoning effort thresholds on thinking.budget_tokens (see the package
// documentation).
const (
	budgetMedium = 4096
	budgetHigh   = 16384
)

// ToChat translates an Anthropic Messages request body into an OpenAI Chat
// Completions request body. A non-nil error is always an *Error (400
// invalid_request_error naming the field) whose Body can be sent as is.
func ToChat(body []byte, opts RequestOptions) ([]byte, error) {
	top, err := object(body, "")
	if err != nil {
		return nil, err
	}
	req := chatRequest{Messages: []chatMessage{}}
	var system json.RawMessage
	var effort, thinkingEffort string
	for _, key := range sortedKeys(top) {
		raw := top[key]
		if isNull(raw) {
			continue // Anthropic treats an explicit null as absent
		}
		var err *Error
		switch key {
		case "model":
			err = decode(raw, key, &req.Model)
		case "messages":
			// translated below, after system
		case "max_tokens":
			req.MaxCompletionTokens, err = positiveInt(raw, key)
		case "system":
			system = raw
		case "stop_sequences":
			err = decode(raw, key, &req.Stop)
		case "stream":
			err = decode(raw, key, &req.Stream)
		case "temperature":
			req.Temperature, err = number(raw, key)
		case "top_p":
			req.TopP, err = number(raw, key)
		case "metadata":
			var md struct {
				UserID *string `json:"user_id"`
			}
			if err = decode(raw, key, &md); err == nil && md.UserID != nil {
				req.User = *md.UserID
			}
		case "tools":
			req.Tools, err = tools(raw)
		case "tool_choice":
			req.ToolChoice, req.ParallelToolCalls, err = toolChoice(raw)
		case "thinking":
			thinkingEffort, err = thinking(raw)
		case "output_config":
			effort, req.ResponseFormat, err = outputConfig(raw)
		case "service_tier", "cache_control":
			// Ignored: see the package documentation.
		default:
			err = unsupported(key)
		}
		if err != nil {
			return nil, err
		}
	}
	if req.Model == "" && opts.Model == "" {
		return nil, invalid("model", "Field required.")
	}
	if req.MaxCompletionTokens == nil {
		return nil, invalid("max_tokens", "Field required.")
	}
	rawMsgs, ok := top["messages"]
	if !ok || isNull(rawMsgs) {
		return nil, invalid("messages", "Field required.")
	}
	if system != nil {
		text, err := systemText(system)
		if err != nil {
			return nil, err
		}
		req.Messages = append(req.Messages, chatMessage{Role: "system", Content: text})
	}
	msgs, err := messages(rawMsgs)
	if err != nil {
		return nil, err
	}
	req.Messages = append(req.Messages, msgs...)
	if opts.Model != "" {
		req.Model = opts.Model
	}
	req.ReasoningEffort = thinkingEffort
	if effort != "" {
		req.ReasoningEffort = effort
	}
	if req.Stream {
		req.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if req.ParallelToolCalls != nil && len(req.Tools) == 0 {
		req.ParallelToolCalls = nil // OpenAI rejects it without tools
	}
	return marshal(req), nil
}

// chatRequest is the translated body, in the field order OpenAI documents.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxCompletionTokens json.RawMessage `json:"max_completion_tokens,omitempty"`
	Temperature         json.RawMessage `json:"temperature,omitempty"`
	TopP                json.RawMessage `json:"top_p,omitempty"`
	Stop                []string        `json:"stop,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *streamOptions  `json:"stream_options,omitempty"`
	Tools               []chatTool      `json:"tools,omitempty"`
	ToolChoice          any             `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	ResponseFormat      any             `json:"response_format,omitempty"`
	User                string          `json:"user,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatMessage is one Chat Completions message. Content is a string, a slice
// of parts, or nil (null: an assistant message with only tool calls).
type chatMessage struct {
	Role       string     `json:"role"`
	Content    any        `json:"content"`
	ToolCalls  []toolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

type toolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function functionCall `json:"function"`
}

type functionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// part is one content part; exactly one of the pointers is set.
type part struct {
	Type     string    `json:"type"`
	Text     *string   `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
	File     *file     `json:"file,omitempty"`
}

type imageURL struct {
	URL string `json:"url"`
}

type file struct {
	Filename string `json:"filename,omitempty"`
	FileData string `json:"file_data"`
}

type chatTool struct {
	Type     string       `json:"type"`
	Function functionDecl `json:"function"`
}

type functionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict,omitempty"`
}

func textPart(s string) part { return part{Type: "text", Text: &s} }

// marshal encodes without HTML escaping, so text reaches the provider as the
// client wrote it. Encoding these types cannot fail: every RawMessage in them
// was validated when decoded.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("messages: encoding a translated body: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// object decodes a JSON object into its fields.
func object(raw []byte, param string) (map[string]json.RawMessage, *Error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		if param == "" {
			return nil, &Error{Status: 400, Type: TypeInvalidRequest, Message: "The request body must be a JSON object."}
		}
		return nil, invalid(param, "Input should be an object.")
	}
	return m, nil
}

// sortedKeys orders an object's keys, so that of several bad fields the
// same one is always reported.
func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// decode unmarshals raw into v, blaming param on failure.
func decode(raw json.RawMessage, param string, v any) *Error {
	if err := json.Unmarshal(raw, v); err != nil {
		return invalid(param, "Input has the wrong type.")
	}
	return nil
}

// number checks that raw is a JSON number and keeps its text.
func number(raw json.RawMessage, param string) (json.RawMessage, *Error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, invalid(param, "Input should be a number.")
	}
	return bytes.TrimSpace(raw), nil
}

// positiveInt checks that raw is a whole number of at least 1.
func positiveInt(raw json.RawMessage, param string) (json.RawMessage, *Error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f < 1 || f != math.Trunc(f) || f > 1<<53 {
		return nil, invalid(param, "Input should be a positive integer.")
	}
	return json.RawMessage(strconv.FormatInt(int64(f), 10)), nil
}

// systemText reads system, a string or an array of text blocks.
func systemText(raw json.RawMessage) (string, *Error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", invalid("system", "Input should be a string or an array of text blocks.")
	}
	texts := make([]string, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "text" || b.Text == nil {
			return "", invalid("system."+strconv.Itoa(i), "Input should be a text block.")
		}
		texts = append(texts, *b.Text)
	}
	return strings.Join(texts, "\n"), nil
}

// thinking maps the thinking setting to a reasoning effort.
func thinking(raw json.RawMessage) (string, *Error) {
	var t struct {
		Type         string   `json:"type"`
		BudgetTokens *float64 `json:"budget_tokens"`
	}
	if err := decode(raw, "thinking", &t); err != nil {
		return "", err
	}
	switch t.Type {
	case "enabled":
		if t.BudgetTokens == nil {
			return "", invalid("thinking.budget_tokens", "Field required.")
		}
		switch b := *t.BudgetTokens; {
		case b < budgetMedium:
			return "low", nil
		case b < budgetHigh:
			return "medium", nil
		}
		return "high", nil
	case "disabled", "adaptive":
		return "", nil
	}
	return "", invalid("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'.")
}

// outputConfig reads output_config: effort and a JSON schema output format.
func outputConfig(raw json.RawMessage) (effort string, format any, err *Error) {
	m, err := object(raw, "output_config")
	if err != nil {
		return "", nil, err
	}
	for _, key := range sortedKeys(m) {
		v := m[key]
		param := "output_config." + key
		if isNull(v) {
			continue
		}
		switch key {
		case "effort":
			if err := decode(v, param, &effort); err != nil {
				return "", nil, err
			}
			switch effort {
			case "low", "medium", "high":
			case "max":
				effort = "high"
			default:
				return "", nil, invalid(param, "Input should be 'low', 'medium', 'high' or 'max'.")
			}
		case "format":
			var f struct {
				Type   string          `json:"type"`
				Schema json.RawMessage `json:"schema"`
			}
			if err := decode(v, param, &f); err != nil {
				return "", nil, err
			}
			if f.Type != "json_schema" || len(f.Schema) == 0 {
				return "", nil, invalid(param, "Only {\"type\":\"json_schema\",\"schema\":{...}} is supported.")
			}
			format = map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "output", "schema": f.Schema}}
		default:
			return "", nil, unsupported(param)
		}
	}
	return effort, format, nil
}

// tools translates custom tool definitions. Anthropic's server tools
// (web_search_*, bash_*, computer_*, …) carry a type and have no equivalent.
func tools(raw json.RawMessage) ([]chatTool, *Error) {
	var list []json.RawMessage
	if err := decode(raw, "tools", &list); err != nil {
		return nil, err
	}
	out := make([]chatTool, 0, len(list))
	for i, r := range list {
		param := "tools." + strconv.Itoa(i)
		m, err := object(r, param)
		if err != nil {
			return nil, err
		}
		var t chatTool
		t.Type = "function"
		for _, key := range sortedKeys(m) {
			v := m[key]
			if isNull(v) {
				continue
			}
			var err *Error
			switch key {
			case "type":
				var typ string
				if err = decode(v, param+".type", &typ); err == nil && typ != "custom" {
					err = unsupported(param + " (type " + strconv.Quote(typ) + ")")
				}
			case "name":
				err = decode(v, param+".name", &t.Function.Name)
			case "description":
				err = decode(v, param+".description", &t.Function.Description)
			case "input_schema":
				t.Function.Parameters, err = schema(v, param+".input_schema")
			case "strict":
				err = decode(v, param+".strict", &t.Function.Strict)
			case "cache_control":
			default:
				err = unsupported(param + "." + key)
			}
			if err != nil {
				return nil, err
			}
		}
		if t.Function.Name == "" {
			return nil, invalid(param+".name", "Field required.")
		}
		if t.Function.Parameters == nil {
			return nil, invalid(param+".input_schema", "Field required.")
		}
		out = append(out, t)
	}
	return out, nil
}

// schema returns a tool's JSON schema with "type":"object" added when
// absent: some providers reject a schema without a type.
func schema(raw json.RawMessage, param string) (json.RawMessage, *Error) {
	m, err := object(raw, param)
	if err != nil {
		return nil, err
	}
	if _, ok := m["type"]; ok {
		var b bytes.Buffer
		if json.Compact(&b, raw) != nil {
			return nil, invalid(param, "Input should be an object.")
		}
		return b.Bytes(), nil
	}
	m["type"] = json.RawMessage(`"object"`)
	return marshal(m), nil
}

// toolChoice maps tool_choice; disable_parallel_tool_use becomes
// parallel_tool_calls: false.
func toolChoice(raw json.RawMessage) (any, *bool, *Error) {
	var tc struct {
		Type                   string `json:"type"`
		Name                   string `json:"name"`
		DisableParallelToolUse *bool  `json:"disable_parallel_tool_use"`
	}
	if err := decode(raw, "tool_choice", &tc); err != nil {
		return nil, nil, err
	}
	var parallel *bool
	if tc.DisableParallelToolUse != nil && *tc.DisableParallelToolUse {
		f := false
		parallel = &f
	}
	switch tc.Type {
	case "auto":
		return "auto", parallel, nil
	case "any":
		return "required", parallel, nil
	case "none":
		return "none", nil, nil
	case "tool":
		if tc.Name == "" {
			return nil, nil, invalid("tool_choice.name", "Field required.")
		}
		return map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}, parallel, nil
	}
	return nil, nil, invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'.")
}
