package bedrock

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/extproc/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
)

// Request builds a Converse (or ConverseStream: the body is the same, the
// path differs) request from an OpenAI chat completion request. The model is
// in the path, not the body.
//
// Translated:
//   - system and developer messages → system [{"text"}];
//   - user content (string or parts: text, image_url as a base64 data URL of
//     png, jpeg, gif or webp) → text and image blocks
//     {"image":{"format","source":{"bytes"}}};
//   - assistant content and tool_calls → text and toolUse blocks
//     {"toolUse":{"toolUseId","name","input"}} with the parsed arguments;
//   - tool messages → toolResult blocks {"toolResult":{"toolUseId",
//     "content":[{"text"}]}} in a user turn. Consecutive turns of one role
//     are merged, as Converse requires alternation;
//   - tools → toolConfig.tools [{"toolSpec":{"name","description",
//     "inputSchema":{"json"}}}]; tool_choice auto/required/{function} →
//     toolChoice auto/any/tool; tool_choice none leaves toolConfig out;
//   - max_completion_tokens, else max_tokens, else opts.DefaultMaxTokens,
//     else DefaultMaxTokens → inferenceConfig.maxTokens; temperature, top_p
//     → temperature, topP; stop → stopSequences.
//
// Dropped: frequency_penalty, presence_penalty, logit_bias, seed, user,
// response_format text and json_object, stream and stream_options (the path
// says whether to stream; Converse always reports usage), and every unknown
// field. Rejected with a 400: n > 1, logprobs, response_format json_schema,
// audio, functions/function_call, non-function tools, http(s) image URLs
// (Converse takes image bytes only) and other content parts.
func (s *Schema) Request(body []byte, _ string, opts translate.RequestOptions) ([]byte, error) {
	js := unsafeString(body)
	if !gjson.Valid(js) {
		return nil, invalidBody("", "The request body is not valid JSON.")
	}
	root := gjson.Parse(js)
	if !root.IsObject() {
		return nil, invalidBody("", "The request body must be a JSON object.")
	}
	if err := checkUnsupported(root); err != nil {
		return nil, err
	}
	var req converseRequest
	if err := req.messages(root.Get("messages")); err != nil {
		return nil, err
	}
	if err := req.inference(root, opts.DefaultMaxTokens); err != nil {
		return nil, err
	}
	if err := req.tools(root); err != nil {
		return nil, err
	}
	out, err := json.Marshal(&req)
	if err != nil {
		return nil, invalidBody("", "The request could not be translated: "+err.Error())
	}
	return out, nil
}

// converseRequest is the Converse request body.
type converseRequest struct {
	Messages        []message        `json:"messages"`
	System          []block          `json:"system,omitempty"`
	InferenceConfig *inferenceConfig `json:"inferenceConfig,omitempty"`
	ToolConfig      *toolConfig      `json:"toolConfig,omitempty"`
}

type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// block is a ContentBlock (or a SystemContentBlock): exactly one field set.
type block struct {
	Text       *string     `json:"text,omitempty"`
	Image      *image      `json:"image,omitempty"`
	ToolUse    *toolUse    `json:"toolUse,omitempty"`
	ToolResult *toolResult `json:"toolResult,omitempty"`
}

type image struct {
	Format string      `json:"format"`
	Source imageSource `json:"source"`
}

type imageSource struct {
	Bytes string `json:"bytes"` // base64, as blobs are in AWS's JSON protocols
}

type toolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type toolResult struct {
	ToolUseID string  `json:"toolUseId"`
	Content   []block `json:"content"`
}

type inferenceConfig struct {
	MaxTokens     int64           `json:"maxTokens,omitempty"`
	Temperature   json.RawMessage `json:"temperature,omitempty"`
	TopP          json.RawMessage `json:"topP,omitempty"`
	StopSequences []string        `json:"stopSequences,omitempty"`
}

type toolConfig struct {
	Tools      []tool          `json:"tools"`
	ToolChoice json.RawMessage `json:"toolChoice,omitempty"`
}

type tool struct {
	ToolSpec toolSpec `json:"toolSpec"`
}

type toolSpec struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	InputSchema inputSchema `json:"inputSchema"`
}

type inputSchema struct {
	JSON json.RawMessage `json:"json"`
}

func textBlock(s string) block { return block{Text: &s} }

// turn returns the turn to add blocks to: the last one when it has this
// role, else a new one.
func (r *converseRequest) turn(role string) *message {
	if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == role {
		return &r.Messages[n-1]
	}
	r.Messages = append(r.Messages, message{Role: role})
	return &r.Messages[len(r.Messages)-1]
}

func (r *converseRequest) messages(msgs gjson.Result) error {
	if !msgs.IsArray() || len(msgs.Array()) == 0 {
		return invalidBody("messages", "messages must be a non-empty array.")
	}
	var err error
	msgs.ForEach(func(k, m gjson.Result) bool {
		param := "messages[" + strconv.Itoa(int(k.Num)) + "]"
		switch role := m.Get("role").String(); role {
		case "system", "developer":
			err = eachText(m.Get("content"), param+".content", func(t string) { r.System = append(r.System, textBlock(t)) })
		case "user":
			err = r.user(m.Get("content"), param+".content")
		case "assistant":
			err = r.assistant(m, param)
		case "tool":
			err = r.tool(m, param)
		default:
			err = invalidBody(param+".role", "Unknown message role "+strconv.Quote(role)+".")
		}
		return err == nil
	})
	return err
}

// eachText calls fn for every non-empty text of a string or text-part
// content; Bedrock rejects blank text blocks.
func eachText(c gjson.Result, param string, fn func(string)) error {
	switch {
	case c.Type == gjson.String:
		if c.Str != "" {
			fn(c.Str)
		}
		return nil
	case c.IsArray():
		var err error
		c.ForEach(func(k, p gjson.Result) bool {
			if p.Get("type").String() != "text" || p.Get("text").Type != gjson.String {
				err = unsupported(param+"["+strconv.Itoa(int(k.Num))+"]", "Only text content parts are allowed here.")
				return false
			}
			if t := p.Get("text").Str; t != "" {
				fn(t)
			}
			return true
		})
		return err
	case !present(c):
		return nil
	}
	return invalidType(param, "a string or an array of content parts")
}

func (r *converseRequest) user(c gjson.Result, param string) error {
	var blocks []block
	switch {
	case c.Type == gjson.String:
		if c.Str != "" {
			blocks = append(blocks, textBlock(c.Str))
		}
	case c.IsArray():
		var err error
		c.ForEach(func(k, p gjson.Result) bool {
			pp := param + "[" + strconv.Itoa(int(k.Num)) + "]"
			switch p.Get("type").String() {
			case "text":
				if t := p.Get("text"); t.Type != gjson.String {
					err = invalidType(pp+".text", "a string")
				} else if t.Str != "" {
					blocks = append(blocks, textBlock(t.Str))
				}
			case "image_url":
				var b block
				b, err = imageBlock(p.Get("image_url.url").String(), pp+".image_url.url")
				blocks = append(blocks, b)
			default:
				err = unsupported(pp+".type", "Content parts of type "+strconv.Quote(p.Get("type").String())+" are not supported for this model.")
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	default:
		return invalidType(param, "a string or an array of content parts")
	}
	if len(blocks) == 0 {
		return invalidBody(param, "User messages must not be empty.")
	}
	t := r.turn("user")
	t.Content = append(t.Content, blocks...)
	return nil
}

// imageFormats are the image formats Converse accepts, by media type.
var imageFormats = map[string]string{"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}

func imageBlock(u, param string) (block, error) {
	media, data, ok := parseDataURL(u)
	if !ok {
		return block{}, unsupported(param, "Images must be base64 data URLs (data:image/png;base64,...) for this model.")
	}
	format, ok := imageFormats[media]
	if !ok {
		return block{}, unsupported(param, "Image type "+strconv.Quote(media)+" is not supported; use png, jpeg, gif or webp.")
	}
	return block{Image: &image{Format: format, Source: imageSource{Bytes: data}}}, nil
}

// parseDataURL splits "data:<media>[;params];base64,<data>".
func parseDataURL(s string) (media, data string, ok bool) {
	if len(s) < 5 || !strings.EqualFold(s[:5], "data:") {
		return "", "", false
	}
	meta, data, ok := strings.Cut(s[5:], ",")
	if !ok || data == "" || len(meta) < 7 || !strings.EqualFold(meta[len(meta)-7:], ";base64") {
		return "", "", false
	}
	media, _, _ = strings.Cut(meta[:len(meta)-7], ";")
	media = strings.ToLower(strings.TrimSpace(media))
	return media, data, media != ""
}

func (r *converseRequest) assistant(m gjson.Result, param string) error {
	var blocks []block
	c := m.Get("content")
	if c.IsArray() {
		// Refusal parts of earlier answers carry nothing to send back.
		var err error
		c.ForEach(func(k, p gjson.Result) bool {
			switch p.Get("type").String() {
			case "text":
				if t := p.Get("text").String(); t != "" {
					blocks = append(blocks, textBlock(t))
				}
			case "refusal":
			default:
				err = unsupported(param+".content["+strconv.Itoa(int(k.Num))+"]", "Only text content parts are allowed in assistant messages.")
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	} else if err := eachText(c, param+".content", func(t string) { blocks = append(blocks, textBlock(t)) }); err != nil {
		return err
	}
	calls := m.Get("tool_calls")
	if present(calls) && !calls.IsArray() {
		return invalidType(param+".tool_calls", "an array")
	}
	var err error
	calls.ForEach(func(k, tc gjson.Result) bool {
		var b block
		b, err = toolUseBlock(tc, param+".tool_calls["+strconv.Itoa(int(k.Num))+"]")
		blocks = append(blocks, b)
		return err == nil
	})
	if err != nil {
		return err
	}
	if len(blocks) == 0 {
		return nil // an empty assistant turn carries nothing
	}
	t := r.turn("assistant")
	t.Content = append(t.Content, blocks...)
	return nil
}

func toolUseBlock(tc gjson.Result, param string) (block, error) {
	if t := tc.Get("type"); present(t) && t.String() != "function" {
		return block{}, unsupported(param+".type", "Only function tool calls are supported for this model.")
	}
	id, name := tc.Get("id"), tc.Get("function.name")
	if id.Type != gjson.String || id.Str == "" {
		return block{}, invalidBody(param+".id", "Each tool call needs an id.")
	}
	if name.Type != gjson.String || name.Str == "" {
		return block{}, invalidBody(param+".function.name", "Each tool call needs a function name.")
	}
	input := "{}"
	switch a := tc.Get("function.arguments"); {
	case a.Type == gjson.String && strings.TrimSpace(a.Str) != "":
		args := strings.TrimSpace(a.Str)
		if !gjson.Valid(args) || args[0] != '{' {
			return block{}, invalidBody(param+".function.arguments", "Tool call arguments must be a JSON object.")
		}
		input = args
	case a.Type == gjson.String, !present(a):
	default:
		return block{}, invalidType(param+".function.arguments", "a string")
	}
	return block{ToolUse: &toolUse{ToolUseID: id.Str, Name: name.Str, Input: json.RawMessage(input)}}, nil
}

func (r *converseRequest) tool(m gjson.Result, param string) error {
	id := m.Get("tool_call_id")
	if id.Type != gjson.String || id.Str == "" {
		return invalidBody(param+".tool_call_id", "Tool messages need a tool_call_id.")
	}
	var content []block
	if err := eachText(m.Get("content"), param+".content", func(t string) { content = append(content, textBlock(t)) }); err != nil {
		return err
	}
	if len(content) == 0 {
		content = []block{textBlock("(empty)")} // Converse requires content and rejects blank text
	}
	t := r.turn("user")
	// Tool results answer the previous assistant turn: they go first.
	res := block{ToolResult: &toolResult{ToolUseID: id.Str, Content: content}}
	n := 0
	for n < len(t.Content) && t.Content[n].ToolResult != nil {
		n++
	}
	t.Content = append(t.Content, block{})
	copy(t.Content[n+1:], t.Content[n:])
	t.Content[n] = res
	return nil
}

func (r *converseRequest) inference(root gjson.Result, def int) error {
	ic := &inferenceConfig{}
	name := "max_completion_tokens"
	v := root.Get(name)
	if !present(v) {
		name = "max_tokens"
		v = root.Get(name)
	}
	switch {
	case !present(v) && def > 0:
		ic.MaxTokens = int64(def)
	case !present(v):
		ic.MaxTokens = DefaultMaxTokens
	case v.Type != gjson.Number || v.Num < 1 || v.Num > math.MaxInt32 || v.Num != math.Trunc(v.Num):
		return invalidBody(name, name+" must be a positive integer.")
	default:
		ic.MaxTokens = int64(v.Num)
	}
	for _, f := range [...]struct {
		name string
		dst  *json.RawMessage
	}{{"temperature", &ic.Temperature}, {"top_p", &ic.TopP}} {
		v := root.Get(f.name)
		if !present(v) {
			continue
		}
		if v.Type != gjson.Number {
			return invalidType(f.name, "a number")
		}
		*f.dst = json.RawMessage(v.Raw)
	}
	switch stop := root.Get("stop"); {
	case !present(stop):
	case stop.Type == gjson.String:
		if stop.Str != "" {
			ic.StopSequences = []string{stop.Str}
		}
	case stop.IsArray():
		for _, s := range stop.Array() {
			if s.Type != gjson.String {
				return invalidType("stop", "a string or an array of strings")
			}
			if s.Str != "" {
				ic.StopSequences = append(ic.StopSequences, s.Str)
			}
		}
	default:
		return invalidType("stop", "a string or an array of strings")
	}
	r.InferenceConfig = ic
	return nil
}

func (r *converseRequest) tools(root gjson.Result) error {
	tools := root.Get("tools")
	if !present(tools) {
		return nil
	}
	if !tools.IsArray() {
		return invalidType("tools", "an array")
	}
	var tc toolConfig
	for i, t := range tools.Array() {
		param := "tools[" + strconv.Itoa(i) + "]"
		if t.Get("type").String() != "function" {
			return unsupported(param+".type", "Only function tools are supported for this model.")
		}
		fn := t.Get("function")
		name := fn.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			return invalidBody(param+".function.name", "Each tool needs a function name.")
		}
		spec := toolSpec{Name: name.Str, Description: fn.Get("description").String()}
		switch p := fn.Get("parameters"); {
		case p.IsObject():
			spec.InputSchema.JSON = json.RawMessage(p.Raw)
		case !present(p):
			spec.InputSchema.JSON = json.RawMessage(`{"type":"object","properties":{}}`)
		default:
			return invalidType(param+".function.parameters", "a JSON Schema object")
		}
		tc.Tools = append(tc.Tools, tool{ToolSpec: spec})
	}
	if len(tc.Tools) == 0 {
		return nil
	}
	switch choice := root.Get("tool_choice"); {
	case !present(choice):
	case choice.Type == gjson.String:
		switch choice.Str {
		case "auto":
			tc.ToolChoice = json.RawMessage(`{"auto":{}}`)
		case "required":
			tc.ToolChoice = json.RawMessage(`{"any":{}}`)
		case "none":
			return nil // Converse has no "none": offer no tools
		default:
			return invalidBody("tool_choice", "tool_choice must be auto, none, required or a function.")
		}
	case choice.IsObject() && choice.Get("type").String() == "function":
		n := choice.Get("function.name")
		if n.Type != gjson.String || n.Str == "" {
			return invalidBody("tool_choice.function.name", "tool_choice needs a function name.")
		}
		b, _ := json.Marshal(map[string]map[string]string{"tool": {"name": n.Str}})
		tc.ToolChoice = b
	default:
		return invalidBody("tool_choice", "tool_choice must be auto, none, required or a function.")
	}
	r.ToolConfig = &tc
	return nil
}

// checkUnsupported rejects what Converse cannot give; dropping those fields
// would silently change the answer.
func checkUnsupported(root gjson.Result) error {
	if n := root.Get("n"); present(n) {
		if n.Type != gjson.Number {
			return invalidType("n", "an integer")
		}
		if n.Num != 1 {
			return unsupported("n", "This model can only generate one choice: n must be 1.")
		}
	}
	if rf := root.Get("response_format"); present(rf) {
		switch rf.Get("type").String() {
		case "text", "json_object":
		case "json_schema":
			return unsupported("response_format", "response_format json_schema is not supported for this model.")
		default:
			return invalidBody("response_format", "response_format.type must be one of text, json_object, json_schema.")
		}
	}
	if root.Get("logprobs").Type == gjson.True {
		return unsupported("logprobs", "logprobs are not available for this model.")
	}
	for _, name := range [...]string{"functions", "function_call", "audio"} {
		if present(root.Get(name)) {
			return unsupported(name, name+" is not supported for this model; use tools.")
		}
	}
	return nil
}

func present(r gjson.Result) bool { return r.Exists() && r.Type != gjson.Null }

func invalidBody(param, msg string) error {
	return oaierror.InvalidRequest("invalid_value", param, msg)
}

func invalidType(param, want string) error {
	return oaierror.InvalidRequest("invalid_type", param, param+" must be "+want+".")
}

func unsupported(param, msg string) error {
	return oaierror.InvalidRequest("unsupported_value", param, msg)
}
