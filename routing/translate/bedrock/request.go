package bedrock

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
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
//     assistant thinking (thinking_blocks, or content parts of type thinking
//     and redacted_thinking, as Response returns them) → reasoningContent
//     blocks, first in the turn;
//   - tool messages → toolResult blocks {"toolResult":{"toolUseId",
//     "content":[{"text"}]}} in a user turn. Consecutive turns of one role
//     are merged, as Converse requires alternation;
//   - cache_control, where the Anthropic translation keeps it (content
//     parts, a message whose content is a string, tool calls, tool messages,
//     tools) → a {"cachePoint":{"type":"default"[,"ttl"]}} block right after
//     the block it marks (after the toolResult for a tool message);
//   - tools → toolConfig.tools [{"toolSpec":{"name","description",
//     "inputSchema":{"json"}}}]; tool_choice auto/required/{function} →
//     toolChoice auto/any/tool; tool_choice none leaves toolConfig out;
//   - max_completion_tokens, else max_tokens, else opts.DefaultMaxTokens,
//     else DefaultMaxTokens → inferenceConfig.maxTokens; temperature, top_p
//     → temperature, topP; stop → stopSequences;
//   - reasoning_effort, thinking and response_format: see [reasoning].
//
// Every top-level field is translated, deliberately ignored or refused (see
// checkField): an unknown one is refused with 400 unsupported_parameter,
// never dropped. stream and stream_options are the path's business (it says
// whether to stream; Converse always reports usage). Rejected with a 400:
// n > 1, logprobs, audio, functions/function_call, non-function tools, a
// tool named like the response_format tool, http(s) image URLs (Converse
// takes image bytes only), other content parts, cache_control values
// Converse cannot express, and the fields checkField or reasoning refuse.
// Tool schemas without a type get "type":"object".
func (s *Schema) Request(body []byte, model string, opts translate.RequestOptions) ([]byte, error) {
	root, err := wire.RequestObject(body)
	if err != nil {
		return nil, err
	}
	if err := wire.CheckFields(root, checkField); err != nil {
		return nil, err
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
	oc, err := reasoning(root, model, req.InferenceConfig.MaxTokens)
	if err != nil {
		return nil, err
	}
	if oc.thinking != "" {
		req.AdditionalModelRequestFields = json.RawMessage(`{"thinking":` + oc.thinking + `}`)
	}
	if err := req.tools(root); err != nil {
		return nil, err
	}
	req.answerTool(oc.json, root.Get("tool_choice"))
	out, err := json.Marshal(&req)
	if err != nil {
		return nil, wire.InvalidBody("", "The request could not be translated: "+err.Error())
	}
	return out, nil
}

// converseRequest is the Converse request body.
type converseRequest struct {
	Messages                     []message        `json:"messages"`
	System                       []block          `json:"system,omitempty"`
	InferenceConfig              *inferenceConfig `json:"inferenceConfig,omitempty"`
	ToolConfig                   *toolConfig      `json:"toolConfig,omitempty"`
	AdditionalModelRequestFields json.RawMessage  `json:"additionalModelRequestFields,omitempty"`
}

type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// block is a ContentBlock (or a SystemContentBlock): exactly one field set.
type block struct {
	Text             *string           `json:"text,omitempty"`
	Image            *image            `json:"image,omitempty"`
	ToolUse          *toolUse          `json:"toolUse,omitempty"`
	ToolResult       *toolResult       `json:"toolResult,omitempty"`
	ReasoningContent *reasoningContent `json:"reasoningContent,omitempty"`
	CachePoint       *cachePoint       `json:"cachePoint,omitempty"`
}

// cachePoint is a CachePointBlock: the prompt up to the block before it is
// cached. TTL is "5m" or "1h"; empty means Bedrock's default (5 minutes).
type cachePoint struct {
	Type string `json:"type"`
	TTL  string `json:"ttl,omitempty"`
}

// reasoningContent is a ReasoningContentBlock: thinking replayed to Claude,
// either its text with the signature it came with, or redacted (opaque,
// base64) content.
type reasoningContent struct {
	ReasoningText   *reasoningText `json:"reasoningText,omitempty"`
	RedactedContent string         `json:"redactedContent,omitempty"`
}

type reasoningText struct {
	Text      string `json:"text"`
	Signature string `json:"signature"`
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

// tool is a Tool: a toolSpec, or a cachePoint after the tools to cache.
type tool struct {
	ToolSpec   *toolSpec   `json:"toolSpec,omitempty"`
	CachePoint *cachePoint `json:"cachePoint,omitempty"`
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

// withCache appends b and, when cp is set, the cachePoint that marks it.
func withCache(blocks []block, b block, cp *cachePoint) []block {
	blocks = append(blocks, b)
	if cp != nil {
		blocks = append(blocks, block{CachePoint: cp})
	}
	return blocks
}

// cacheControl reads the cache_control of a part, message, tool call or
// tool: {"type":"ephemeral"} with an optional ttl of 5m or 1h, as Anthropic
// defines it, becomes a cachePoint after the block it marks. A value
// Converse cannot express is refused rather than dropped.
func cacheControl(r gjson.Result, param string) (*cachePoint, error) {
	cc := r.Get("cache_control")
	if !wire.Present(cc) {
		return nil, nil
	}
	param += ".cache_control"
	if !cc.IsObject() {
		return nil, wire.InvalidType(param, "an object")
	}
	if t := cc.Get("type"); t.String() != "ephemeral" {
		return nil, wire.Unsupported(param+".type", "cache_control.type must be ephemeral.")
	}
	cp := &cachePoint{Type: "default"}
	if ttl := cc.Get("ttl"); wire.Present(ttl) {
		if ttl.Type != gjson.String || (ttl.Str != "5m" && ttl.Str != "1h") {
			return nil, wire.Unsupported(param+".ttl", "cache_control.ttl must be 5m or 1h for this provider.")
		}
		cp.TTL = ttl.Str
	}
	return cp, nil
}

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
		return wire.InvalidBody("messages", "messages must be a non-empty array.")
	}
	var err error
	msgs.ForEach(func(k, m gjson.Result) bool {
		param := "messages[" + strconv.Itoa(int(k.Num)) + "]"
		switch role := m.Get("role").String(); role {
		case "system", "developer":
			err = eachText(m, param, func(t string, cp *cachePoint) { r.System = withCache(r.System, textBlock(t), cp) })
		case "user":
			err = r.user(m, param)
		case "assistant":
			err = r.assistant(m, param)
		case "tool":
			err = r.tool(m, param)
		default:
			err = wire.InvalidBody(param+".role", "Unknown message role "+strconv.Quote(role)+".")
		}
		return err == nil
	})
	return err
}

// eachText calls fn for every non-empty text of a message's string or
// text-part content, with its cache point: a string content takes the
// message's cache_control, a part its own. Bedrock rejects blank text
// blocks.
func eachText(m gjson.Result, param string, fn func(string, *cachePoint)) error {
	c := m.Get("content")
	param += ".content"
	switch {
	case c.Type == gjson.String:
		cp, err := cacheControl(m, strings.TrimSuffix(param, ".content"))
		if err != nil {
			return err
		}
		if c.Str != "" {
			fn(c.Str, cp)
		}
		return nil
	case c.IsArray():
		var err error
		c.ForEach(func(k, p gjson.Result) bool {
			pp := param + "[" + strconv.Itoa(int(k.Num)) + "]"
			if p.Get("type").String() != "text" || p.Get("text").Type != gjson.String {
				err = wire.Unsupported(pp, "Only text content parts are allowed here.")
				return false
			}
			var cp *cachePoint
			if cp, err = cacheControl(p, pp); err != nil {
				return false
			}
			if t := p.Get("text").Str; t != "" {
				fn(t, cp)
			}
			return true
		})
		return err
	case !wire.Present(c):
		return nil
	}
	return wire.InvalidType(param, "a string or an array of content parts")
}

func (r *converseRequest) user(m gjson.Result, param string) error {
	var blocks []block
	c := m.Get("content")
	switch {
	case c.Type == gjson.String:
		if err := eachText(m, param, func(t string, cp *cachePoint) { blocks = withCache(blocks, textBlock(t), cp) }); err != nil {
			return err
		}
	case c.IsArray():
		var err error
		c.ForEach(func(k, p gjson.Result) bool {
			pp := param + ".content[" + strconv.Itoa(int(k.Num)) + "]"
			var cp *cachePoint
			if cp, err = cacheControl(p, pp); err != nil {
				return false
			}
			switch p.Get("type").String() {
			case "text":
				if t := p.Get("text"); t.Type != gjson.String {
					err = wire.InvalidType(pp+".text", "a string")
				} else if t.Str != "" {
					blocks = withCache(blocks, textBlock(t.Str), cp)
				}
			case "image_url":
				var b block
				b, err = imageBlock(p.Get("image_url.url").String(), pp+".image_url.url")
				blocks = withCache(blocks, b, cp)
			default:
				err = wire.Unsupported(pp+".type", "Content parts of type "+strconv.Quote(p.Get("type").String())+" are not supported for this model.")
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	default:
		return wire.InvalidType(param+".content", "a string or an array of content parts")
	}
	if len(blocks) == 0 {
		return wire.InvalidBody(param+".content", "User messages must not be empty.")
	}
	t := r.turn("user")
	t.Content = append(t.Content, blocks...)
	return nil
}

// imageFormats are the image formats Converse accepts, by media type.
var imageFormats = map[string]string{"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}

func imageBlock(u, param string) (block, error) {
	media, data, ok := wire.ParseDataURL(u)
	if !ok {
		return block{}, wire.Unsupported(param, "Images must be base64 data URLs (data:image/png;base64,...) for this model.")
	}
	format, ok := imageFormats[media]
	if !ok {
		return block{}, wire.Unsupported(param, "Image type "+strconv.Quote(media)+" is not supported; use png, jpeg, gif or webp.")
	}
	return block{Image: &image{Format: format, Source: imageSource{Bytes: data}}}, nil
}

func (r *converseRequest) assistant(m gjson.Result, param string) error {
	var blocks []block
	// Thinking goes first: Claude wants an assistant turn to start with the
	// thinking that led to it.
	if tb := m.Get("thinking_blocks"); wire.Present(tb) {
		if !tb.IsArray() {
			return wire.InvalidType(param+".thinking_blocks", "an array")
		}
		var err error
		tb.ForEach(func(k, p gjson.Result) bool {
			var b block
			if b, err = reasoningBlock(p, param+".thinking_blocks["+strconv.Itoa(int(k.Num))+"]"); err == nil {
				blocks = append(blocks, b)
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	c := m.Get("content")
	if c.IsArray() {
		// Refusal parts of earlier answers carry nothing to send back.
		var err error
		c.ForEach(func(k, p gjson.Result) bool {
			pp := param + ".content[" + strconv.Itoa(int(k.Num)) + "]"
			switch p.Get("type").String() {
			case "text":
				var cp *cachePoint
				if cp, err = cacheControl(p, pp); err != nil {
					return false
				}
				if t := p.Get("text").String(); t != "" {
					blocks = withCache(blocks, textBlock(t), cp)
				}
			case "refusal":
			case "thinking", "redacted_thinking":
				var b block
				if b, err = reasoningBlock(p, pp); err == nil {
					blocks = append(blocks, b)
				}
			default:
				err = wire.Unsupported(pp, "Assistant content parts must be text, refusal, thinking or redacted_thinking.")
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	} else if err := eachText(m, param, func(t string, cp *cachePoint) { blocks = withCache(blocks, textBlock(t), cp) }); err != nil {
		return err
	}
	calls := m.Get("tool_calls")
	if wire.Present(calls) && !calls.IsArray() {
		return wire.InvalidType(param+".tool_calls", "an array")
	}
	var err error
	calls.ForEach(func(k, tc gjson.Result) bool {
		pp := param + ".tool_calls[" + strconv.Itoa(int(k.Num)) + "]"
		var b block
		if b, err = toolUseBlock(tc, pp); err != nil {
			return false
		}
		var cp *cachePoint
		if cp, err = cacheControl(tc, pp); err != nil {
			return false
		}
		blocks = withCache(blocks, b, cp)
		return true
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

// reasoningBlock rebuilds an assistant thinking part, as the Response
// returned it in thinking_blocks, for replay: {"type":"thinking","thinking",
// "signature"} becomes reasoningText, {"type":"redacted_thinking","data"}
// redactedContent. Claude checks the signature, so thinking without one
// cannot be replayed.
func reasoningBlock(p gjson.Result, param string) (block, error) {
	switch p.Get("type").String() {
	case "thinking":
		text, sig := p.Get("thinking"), p.Get("signature")
		if text.Type != gjson.String {
			return block{}, wire.InvalidType(param+".thinking", "a string")
		}
		if sig.Type != gjson.String || sig.Str == "" {
			return block{}, wire.InvalidBody(param+".signature", "Thinking replayed to this model needs the signature it came with.")
		}
		return block{ReasoningContent: &reasoningContent{ReasoningText: &reasoningText{Text: text.Str, Signature: sig.Str}}}, nil
	case "redacted_thinking":
		data := p.Get("data")
		if data.Type != gjson.String || data.Str == "" {
			return block{}, wire.InvalidBody(param+".data", "Redacted thinking needs its data.")
		}
		return block{ReasoningContent: &reasoningContent{RedactedContent: data.Str}}, nil
	}
	return block{}, wire.InvalidBody(param+".type", "Thinking parts must be of type thinking or redacted_thinking.")
}

func toolUseBlock(tc gjson.Result, param string) (block, error) {
	if t := tc.Get("type"); wire.Present(t) && t.String() != "function" {
		return block{}, wire.Unsupported(param+".type", "Only function tool calls are supported for this model.")
	}
	id, name := tc.Get("id"), tc.Get("function.name")
	if id.Type != gjson.String || id.Str == "" {
		return block{}, wire.InvalidBody(param+".id", "Each tool call needs an id.")
	}
	if name.Type != gjson.String || name.Str == "" {
		return block{}, wire.InvalidBody(param+".function.name", "Each tool call needs a function name.")
	}
	input := "{}"
	switch a := tc.Get("function.arguments"); {
	case a.Type == gjson.String && strings.TrimSpace(a.Str) != "":
		args := strings.TrimSpace(a.Str)
		if !gjson.Valid(args) || args[0] != '{' {
			return block{}, wire.InvalidBody(param+".function.arguments", "Tool call arguments must be a JSON object.")
		}
		input = args
	case a.Type == gjson.String, !wire.Present(a):
	default:
		return block{}, wire.InvalidType(param+".function.arguments", "a string")
	}
	return block{ToolUse: &toolUse{ToolUseID: id.Str, Name: name.Str, Input: json.RawMessage(input)}}, nil
}

// tool adds a tool message's toolResult to the user turn. A cache_control
// on the message, or on any of its text parts (a toolResult's content
// takes no cachePoint), becomes a cachePoint after the toolResult.
func (r *converseRequest) tool(m gjson.Result, param string) error {
	id := m.Get("tool_call_id")
	if id.Type != gjson.String || id.Str == "" {
		return wire.InvalidBody(param+".tool_call_id", "Tool messages need a tool_call_id.")
	}
	cp, err := cacheControl(m, param)
	if err != nil {
		return err
	}
	var content []block
	if err := eachText(m, param, func(t string, pcp *cachePoint) {
		content = append(content, textBlock(t))
		if pcp != nil {
			cp = pcp
		}
	}); err != nil {
		return err
	}
	if len(content) == 0 {
		content = []block{textBlock("(empty)")} // Converse requires content and rejects blank text
	}
	t := r.turn("user")
	// Tool results answer the previous assistant turn: they (and their
	// cache points) go first.
	res := withCache(nil, block{ToolResult: &toolResult{ToolUseID: id.Str, Content: content}}, cp)
	n := 0
	for n < len(t.Content) && (t.Content[n].ToolResult != nil || t.Content[n].CachePoint != nil) {
		n++
	}
	t.Content = append(t.Content[:n], append(res, t.Content[n:]...)...)
	return nil
}

func (r *converseRequest) inference(root gjson.Result, def int) error {
	ic := &inferenceConfig{}
	name := "max_completion_tokens"
	v := root.Get(name)
	if !wire.Present(v) {
		name = "max_tokens"
		v = root.Get(name)
	}
	switch {
	case !wire.Present(v) && def > 0:
		ic.MaxTokens = int64(def)
	case !wire.Present(v):
		ic.MaxTokens = DefaultMaxTokens
	case v.Type != gjson.Number || v.Num < 1 || v.Num > math.MaxInt32 || v.Num != math.Trunc(v.Num):
		return wire.InvalidBody(name, name+" must be a positive integer.")
	default:
		ic.MaxTokens = int64(v.Num)
	}
	for _, f := range [...]struct {
		name string
		dst  *json.RawMessage
	}{{"temperature", &ic.Temperature}, {"top_p", &ic.TopP}} {
		v := root.Get(f.name)
		if !wire.Present(v) {
			continue
		}
		if v.Type != gjson.Number {
			return wire.InvalidType(f.name, "a number")
		}
		*f.dst = json.RawMessage(v.Raw)
	}
	switch stop := root.Get("stop"); {
	case !wire.Present(stop):
	case stop.Type == gjson.String:
		if stop.Str != "" {
			ic.StopSequences = []string{stop.Str}
		}
	case stop.IsArray():
		for _, s := range stop.Array() {
			if s.Type != gjson.String {
				return wire.InvalidType("stop", "a string or an array of strings")
			}
			if s.Str != "" {
				ic.StopSequences = append(ic.StopSequences, s.Str)
			}
		}
	default:
		return wire.InvalidType("stop", "a string or an array of strings")
	}
	r.InferenceConfig = ic
	return nil
}

func (r *converseRequest) tools(root gjson.Result) error {
	tools := root.Get("tools")
	if !wire.Present(tools) {
		return nil
	}
	if !tools.IsArray() {
		return wire.InvalidType("tools", "an array")
	}
	var tc toolConfig
	for i, t := range tools.Array() {
		param := "tools[" + strconv.Itoa(i) + "]"
		if t.Get("type").String() != "function" {
			return wire.Unsupported(param+".type", "Only function tools are supported for this model.")
		}
		fn := t.Get("function")
		name := fn.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			return wire.InvalidBody(param+".function.name", "Each tool needs a function name.")
		}
		if name.Str == jsonTool {
			return wire.InvalidBody(param+".function.name", "The tool name "+jsonTool+" is reserved by the gateway.")
		}
		spec := &toolSpec{Name: name.Str, Description: fn.Get("description").String()}
		switch p := fn.Get("parameters"); {
		case p.IsObject():
			spec.InputSchema.JSON = json.RawMessage(wire.ObjectSchema(p))
		case !wire.Present(p):
			spec.InputSchema.JSON = json.RawMessage(`{"type":"object","properties":{}}`)
		default:
			return wire.InvalidType(param+".function.parameters", "a JSON Schema object")
		}
		// cache_control may sit on the tool or, as some clients send it, on
		// its function.
		cp, err := cacheControl(t, param)
		if err == nil && cp == nil {
			cp, err = cacheControl(fn, param+".function")
		}
		if err != nil {
			return err
		}
		tc.Tools = append(tc.Tools, tool{ToolSpec: spec})
		if cp != nil {
			tc.Tools = append(tc.Tools, tool{CachePoint: cp})
		}
	}
	if len(tc.Tools) == 0 {
		return nil
	}
	switch choice := root.Get("tool_choice"); {
	case !wire.Present(choice):
	case choice.Type == gjson.String:
		switch choice.Str {
		case "auto":
			tc.ToolChoice = json.RawMessage(`{"auto":{}}`)
		case "required":
			tc.ToolChoice = json.RawMessage(`{"any":{}}`)
		case "none":
			return nil // Converse has no "none": offer no tools
		default:
			return wire.InvalidBody("tool_choice", "tool_choice must be auto, none, required or a function.")
		}
	case choice.IsObject() && choice.Get("type").String() == "function":
		n := choice.Get("function.name")
		if n.Type != gjson.String || n.Str == "" {
			return wire.InvalidBody("tool_choice.function.name", "tool_choice needs a function name.")
		}
		b, _ := json.Marshal(map[string]map[string]string{"tool": {"name": n.Str}})
		tc.ToolChoice = b
	default:
		return wire.InvalidBody("tool_choice", "tool_choice must be auto, none, required or a function.")
	}
	r.ToolConfig = &tc
	return nil
}

// answerTool adds the response_format tool. Without client tools (or with
// tool_choice none) it is forced. Next to client tools under tool_choice
// auto it joins them under toolChoice any: the model then either calls a
// tool or answers through the schema, never in free text, which is what
// response_format asks for. Under required or a named function the client
// forces a tool of its own, and the answer comes on a later turn.
func (r *converseRequest) answerTool(json *toolConfig, choice gjson.Result) {
	switch {
	case json == nil:
	case r.ToolConfig == nil:
		r.ToolConfig = json
	case !wire.Present(choice) || choice.Str == "auto":
		r.ToolConfig.Tools = append(r.ToolConfig.Tools, json.Tools...)
		r.ToolConfig.ToolChoice = []byte(`{"any":{}}`)
	}
}

// checkUnsupported rejects what Converse cannot give; dropping those fields
// would silently change the answer.
func checkUnsupported(root gjson.Result) error {
	if n := root.Get("n"); wire.Present(n) {
		if n.Type != gjson.Number {
			return wire.InvalidType("n", "an integer")
		}
		if n.Num != 1 {
			return wire.Unsupported("n", "This model can only generate one choice: n must be 1.")
		}
	}
	if root.Get("logprobs").Type == gjson.True {
		return wire.Unsupported("logprobs", "logprobs are not available for this model.")
	}
	for _, m := range root.Get("modalities").Array() {
		if m.String() == "audio" {
			return wire.Unsupported("modalities", "Audio output is not supported for this model.")
		}
	}
	return nil
}
