package anthropic

import (
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
)

// Request builds an Anthropic Messages request from an OpenAI chat
// completion request. The body is built from scratch out of the fields below,
// because Anthropic rejects every field it does not know. Every top-level
// field is translated, deliberately ignored or refused (see checkField): an
// unknown one is refused with 400 unsupported_parameter, never dropped.
//
// Translated:
//   - model: the given provider model id;
//   - messages: system and developer messages, wherever they appear, become
//     the top-level system (a string for one plain text, else text blocks);
//     user content (string or parts: text, image_url as a base64 data URL or
//     an http(s) URL, a PDF as a base64 data URL in image_url or file)
//     becomes content blocks; assistant thinking (thinking_blocks, or
//     content parts of type thinking and redacted_thinking) is replayed as
//     thinking blocks, first; assistant tool_calls become tool_use blocks
//     with the parsed arguments as input; tool messages become tool_result
//     blocks in a user turn. Consecutive turns of one role are merged, as
//     Anthropic requires alternation, with tool results first. cache_control
//     is kept on content parts, on messages whose content is a string, on
//     tool calls and on tool messages (Anthropic prompt caching);
//   - tools (function tools) → {name, description, input_schema (given
//     "type":"object" when the parameters have no type), strict,
//     cache_control}; tool_choice auto/none/required/{function} →
//     auto/none/any/{tool}; parallel_tool_calls false →
//     disable_parallel_tool_use;
//   - max_completion_tokens, else max_tokens, else opts.DefaultMaxTokens,
//     else [DefaultMaxTokens] → max_tokens;
//   - stop (string or array) → stop_sequences; temperature, top_p and top_k
//     as sent (Anthropic's temperature range is 0–1 and it rejects more);
//     safety_identifier, else user → metadata.user_id; opts.Stream → stream;
//   - reasoning_effort, thinking and response_format: see [reasoning].
//
// Ignored, on message level: message names, image detail, and an assistant
// message's reasoning_content (its thinking_blocks are what is replayed).
//
// Rejected with a 400: n > 1, logprobs true, audio output, the fields
// checkField refuses, non-function tools, content parts other than those
// above, unknown roles, and malformed values of the fields translated.
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
	var b reqBuilder
	if err := b.messages(root.Get("messages")); err != nil {
		return nil, err
	}
	maxTokens, err := maxTokens(root, opts.DefaultMaxTokens)
	if err != nil {
		return nil, err
	}
	oc, err := reasoning(root, model, maxTokens)
	if err != nil {
		return nil, err
	}

	out := make([]byte, 0, len(body)+256)
	out = append(out, `{"model":`...)
	out = oaierror.AppendString(out, model)
	out = append(out, `,"max_tokens":`...)
	out = strconv.AppendInt(out, maxTokens, 10)
	out = b.appendSystem(out)
	out = b.appendMessages(out)
	if oc.jsonObject {
		out = append(out, `,"tools":[{"name":"`+jsonTool+`","description":"Respond with a JSON object.","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"`+jsonTool+`"}`...)
	} else if out, err = appendTools(out, root); err != nil {
		return nil, err
	}
	if out, err = appendStop(out, root.Get("stop")); err != nil {
		return nil, err
	}
	for _, name := range [...]string{"temperature", "top_p", "top_k"} {
		v := root.Get(name)
		if !wire.Present(v) {
			continue
		}
		if v.Type != gjson.Number {
			return nil, wire.InvalidType(name, "a number")
		}
		out = append(out, ',', '"')
		out = append(out, name...)
		out = append(out, '"', ':')
		out = append(out, v.Raw...)
	}
	out = oc.appendOutput(out)
	if opts.Stream {
		out = append(out, `,"stream":true`...)
	}
	u := root.Get("safety_identifier") // OpenAI's successor to user
	if u.Type != gjson.String || u.Str == "" {
		u = root.Get("user")
	}
	if u.Type == gjson.String && u.Str != "" {
		out = append(out, `,"metadata":{"user_id":`...)
		out = append(out, u.Raw...)
		out = append(out, '}')
	}
	return append(out, '}'), nil
}

// checkUnsupported rejects values that ask for something Anthropic cannot
// give; dropping those would silently change the answer.
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

func maxTokens(root gjson.Result, def int) (int64, error) {
	name := "max_completion_tokens"
	v := root.Get(name)
	if !wire.Present(v) {
		name = "max_tokens"
		v = root.Get(name)
	}
	if !wire.Present(v) {
		if def > 0 {
			return int64(def), nil
		}
		return DefaultMaxTokens, nil
	}
	if v.Type != gjson.Number || v.Num < 1 || v.Num > math.MaxInt32 || v.Num != math.Trunc(v.Num) {
		return 0, wire.InvalidBody(name, name+" must be a positive integer.")
	}
	return int64(v.Num), nil
}

// appendTools appends tools and tool_choice. Without tools, tool_choice and
// parallel_tool_calls mean nothing and are dropped: Anthropic rejects a
// tool_choice without tools.
func appendTools(out []byte, root gjson.Result) ([]byte, error) {
	tools := root.Get("tools")
	if !wire.Present(tools) {
		return out, nil
	}
	if !tools.IsArray() {
		return nil, wire.InvalidType("tools", "an array")
	}
	list := tools.Array()
	if len(list) == 0 {
		return out, nil
	}
	out = append(out, `,"tools":[`...)
	for i, t := range list {
		param := "tools[" + strconv.Itoa(i) + "]"
		if typ := t.Get("type").String(); typ != "function" {
			return nil, wire.Unsupported(param+".type", "Only function tools are supported for this model.")
		}
		fn := t.Get("function")
		name := fn.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			return nil, wire.InvalidBody(param+".function.name", "Each tool needs a function name.")
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"name":`...)
		out = append(out, name.Raw...)
		if d := fn.Get("description"); d.Type == gjson.String && d.Str != "" {
			out = append(out, `,"description":`...)
			out = append(out, d.Raw...)
		}
		if name.Str == jsonTool {
			return nil, wire.InvalidBody(param+".function.name", "The tool name "+jsonTool+" is reserved by the gateway.")
		}
		out = append(out, `,"input_schema":`...)
		switch p := fn.Get("parameters"); {
		case p.IsObject():
			out = append(out, wire.ObjectSchema(p)...)
		case !wire.Present(p):
			out = append(out, `{"type":"object","properties":{}}`...)
		default:
			return nil, wire.InvalidType(param+".function.parameters", "a JSON Schema object")
		}
		if st := fn.Get("strict"); st.Type == gjson.True {
			out = append(out, `,"strict":true`...)
		}
		cc := cacheControl(t)
		if cc == "" {
			cc = cacheControl(fn)
		}
		out = appendCacheControl(out, cc)
	}
	out = append(out, ']')

	noParallel := root.Get("parallel_tool_calls").Type == gjson.False
	var choice, name string
	switch tc := root.Get("tool_choice"); {
	case !wire.Present(tc):
		choice = "auto"
	case tc.Type == gjson.String:
		switch tc.Str {
		case "auto", "none":
			choice = tc.Str
		case "required":
			choice = "any"
		default:
			return nil, wire.InvalidBody("tool_choice", "tool_choice must be auto, none, required or a function.")
		}
	case tc.IsObject() && tc.Get("type").String() == "function":
		n := tc.Get("function.name")
		if n.Type != gjson.String || n.Str == "" {
			return nil, wire.InvalidBody("tool_choice.function.name", "tool_choice needs a function name.")
		}
		choice, name = "tool", n.Raw
	case tc.IsObject() && tc.Get("type").String() == "allowed_tools":
		return nil, wire.Unsupported("tool_choice", "tool_choice allowed_tools is not supported for this model.")
	default:
		return nil, wire.InvalidBody("tool_choice", "tool_choice must be auto, none, required or a function.")
	}
	if choice == "auto" && !noParallel && !wire.Present(root.Get("tool_choice")) {
		return out, nil // Anthropic's default
	}
	out = append(out, `,"tool_choice":{"type":"`...)
	out = append(out, choice...)
	out = append(out, '"')
	if name != "" {
		out = append(out, `,"name":`...)
		out = append(out, name...)
	}
	if noParallel && choice != "none" {
		out = append(out, `,"disable_parallel_tool_use":true`...)
	}
	return append(out, '}'), nil
}

// appendStop turns stop into stop_sequences, skipping empty strings.
func appendStop(out []byte, stop gjson.Result) ([]byte, error) {
	var seqs []gjson.Result
	switch {
	case !wire.Present(stop):
		return out, nil
	case stop.Type == gjson.String:
		seqs = []gjson.Result{stop}
	case stop.IsArray():
		seqs = stop.Array()
	default:
		return nil, wire.InvalidType("stop", "a string or an array of strings")
	}
	n := 0
	for _, s := range seqs {
		if s.Type != gjson.String {
			return nil, wire.InvalidType("stop", "a string or an array of strings")
		}
		if s.Str == "" {
			continue
		}
		if n == 0 {
			out = append(out, `,"stop_sequences":[`...)
		} else {
			out = append(out, ',')
		}
		out = append(out, s.Raw...)
		n++
	}
	if n > 0 {
		out = append(out, ']')
	}
	return out, nil
}

// reqBuilder collects the system prompt and the conversation turns.
type reqBuilder struct {
	system []sysText
	turns  []turn
}

// sysText is one system text: raw JSON string literal, raw cache_control.
type sysText struct{ text, cc string }

// turn is one Anthropic message being built. Blocks are kept as
// comma-separated JSON so that merging turns is appending.
type turn struct {
	role    string // "user" or "assistant"
	results []byte // tool_result blocks: Anthropic wants them first
	blocks  []byte // every other block
	n       int    // number of blocks
	plain   string // raw literal when the turn is exactly one plain text
}

func (b *reqBuilder) turn(role string) *turn {
	if n := len(b.turns); n > 0 && b.turns[n-1].role == role {
		return &b.turns[n-1]
	}
	b.turns = append(b.turns, turn{role: role})
	return &b.turns[len(b.turns)-1]
}

func sep(b []byte) []byte {
	if len(b) > 0 {
		return append(b, ',')
	}
	return b
}

// text adds a text block; lit is a raw JSON string literal.
func (t *turn) text(lit, cc string) {
	t.blocks = append(sep(t.blocks), `{"type":"text","text":`...)
	t.blocks = append(t.blocks, lit...)
	t.blocks = appendCacheControl(t.blocks, cc)
	t.n++
	t.plain = ""
	if t.n == 1 && cc == "" {
		t.plain = lit
	}
}

func (t *turn) raw(block []byte) {
	t.blocks = append(sep(t.blocks), block...)
	t.n++
	t.plain = ""
}

func (t *turn) result(block []byte) {
	t.results = append(sep(t.results), block...)
	t.n++
	t.plain = ""
}

func appendCacheControl(b []byte, cc string) []byte {
	if cc != "" {
		b = append(b, `,"cache_control":`...)
		b = append(b, cc...)
	}
	return append(b, '}')
}

func (b *reqBuilder) messages(msgs gjson.Result) error {
	if !msgs.IsArray() {
		return wire.InvalidBody("messages", "messages must be a non-empty array.")
	}
	var err error
	msgs.ForEach(func(k, m gjson.Result) bool {
		param := "messages[" + strconv.Itoa(int(k.Num)) + "]"
		if !m.IsObject() {
			err = wire.InvalidType(param, "an object")
			return false
		}
		switch role := m.Get("role").String(); role {
		case "system", "developer":
			err = b.systemMessage(m, param+".content")
		case "user":
			err = b.userMessage(m, param+".content")
		case "assistant":
			err = b.assistantMessage(m, param)
		case "tool":
			err = b.toolMessage(m, param)
		default:
			err = wire.InvalidBody(param+".role", "Unsupported role "+strconv.Quote(role)+".")
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if len(b.turns) == 0 {
		return wire.InvalidBody("messages", "messages must include a non-empty user or assistant message.")
	}
	return nil
}

func (b *reqBuilder) systemMessage(m gjson.Result, param string) error {
	return eachText(m, param, func(text gjson.Result, cc string) {
		b.system = append(b.system, sysText{text.Raw, cc})
	})
}

// eachText calls fn for each non-empty text of a message's string or
// text-part content. A string content takes the message's cache_control.
func eachText(m gjson.Result, param string, fn func(text gjson.Result, cc string)) error {
	switch c := m.Get("content"); {
	case c.Type == gjson.String:
		if c.Str != "" {
			fn(c, cacheControl(m))
		}
	case c.IsArray():
		var err error
		c.ForEach(func(k, p gjson.Result) bool {
			pp := param + "[" + strconv.Itoa(int(k.Num)) + "]"
			if p.Get("type").String() != "text" {
				err = wire.Unsupported(pp+".type", "Only text content is supported here.")
				return false
			}
			t := p.Get("text")
			if t.Type != gjson.String {
				err = wire.InvalidType(pp+".text", "a string")
				return false
			}
			if t.Str != "" {
				fn(t, cacheControl(p))
			}
			return true
		})
		return err
	case wire.Present(c):
		return wire.InvalidType(param, "a string or an array of content parts")
	}
	return nil
}

func cacheControl(part gjson.Result) string {
	if cc := part.Get("cache_control"); cc.IsObject() {
		return cc.Raw
	}
	return ""
}

func (b *reqBuilder) userMessage(m gjson.Result, param string) error {
	c := m.Get("content")
	if c.Type == gjson.String {
		if c.Str != "" {
			b.turn("user").text(c.Raw, cacheControl(m))
		}
		return nil
	}
	if !c.IsArray() {
		if wire.Present(c) {
			return wire.InvalidType(param, "a string or an array of content parts")
		}
		return nil
	}
	var err error
	c.ForEach(func(k, p gjson.Result) bool {
		err = b.userPart(p, param+"["+strconv.Itoa(int(k.Num))+"]")
		return err == nil
	})
	return err
}

func (b *reqBuilder) userPart(p gjson.Result, param string) error {
	cc := cacheControl(p)
	switch typ := p.Get("type").String(); typ {
	case "text":
		t := p.Get("text")
		if t.Type != gjson.String {
			return wire.InvalidType(param+".text", "a string")
		}
		if t.Str != "" {
			b.turn("user").text(t.Raw, cc)
		}
		return nil
	case "image_url":
		u := p.Get("image_url")
		if u.IsObject() {
			u = u.Get("url")
		}
		if u.Type != gjson.String {
			return wire.InvalidType(param+".image_url.url", "a string")
		}
		block, err := imageBlock(u, cc, param+".image_url.url")
		if err != nil {
			return err
		}
		b.turn("user").raw(block)
		return nil
	case "file":
		f := p.Get("file")
		d := f.Get("file_data")
		if d.Type != gjson.String {
			return wire.Unsupported(param+".file", "Files must be sent inline as file_data (a base64 data URL).")
		}
		media, data, ok := wire.ParseDataURL(d.Str)
		if !ok || media != "application/pdf" {
			return wire.Unsupported(param+".file.file_data", "Only PDF files sent as a base64 data URL are supported for this model.")
		}
		b.turn("user").raw(documentBlock(data, cc))
		return nil
	default:
		return wire.Unsupported(param+".type", "Content parts of type "+strconv.Quote(typ)+" are not supported for this model.")
	}
}

// documentBlock is a base64 PDF document block.
func documentBlock(data, cc string) []byte {
	block := append([]byte(nil), `{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":`...)
	block = oaierror.AppendString(block, data)
	return appendCacheControl(append(block, '}'), cc)
}

// imageBlock turns an OpenAI image URL into an Anthropic image block: a data
// URL becomes a base64 source, an http(s) URL a url source.
func imageBlock(u gjson.Result, cc, param string) ([]byte, error) {
	block := append([]byte(nil), `{"type":"image","source":`...)
	switch url := u.Str; {
	case hasPrefixFold(url, "data:"):
		media, data, ok := wire.ParseDataURL(url)
		if ok && media == "application/pdf" {
			return documentBlock(data, cc), nil
		}
		if !ok || !strings.HasPrefix(media, "image/") {
			return nil, wire.InvalidBody(param, "Image data URLs must look like data:image/png;base64,<data> (or data:application/pdf;base64,<data>).")
		}
		block = append(block, `{"type":"base64","media_type":`...)
		block = oaierror.AppendString(block, media)
		block = append(block, `,"data":`...)
		block = oaierror.AppendString(block, data)
	case hasPrefixFold(url, "https://"), hasPrefixFold(url, "http://"):
		block = append(block, `{"type":"url","url":`...)
		block = append(block, u.Raw...)
	default:
		return nil, wire.InvalidBody(param, "Image URLs must be http(s) URLs or base64 data URLs.")
	}
	return appendCacheControl(append(block, '}'), cc), nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func (b *reqBuilder) assistantMessage(m gjson.Result, param string) error {
	// Thinking goes first: Anthropic wants an assistant turn to start with
	// the thinking that led to it.
	if tb := m.Get("thinking_blocks"); wire.Present(tb) {
		if !tb.IsArray() {
			return wire.InvalidType(param+".thinking_blocks", "an array")
		}
		var err error
		tb.ForEach(func(k, p gjson.Result) bool {
			var block []byte
			block, err = thinkingBlock(p, param+".thinking_blocks["+strconv.Itoa(int(k.Num))+"]")
			if err == nil {
				b.turn("assistant").raw(block)
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	// Refusal parts of earlier answers carry nothing to send back.
	c := m.Get("content")
	if c.IsArray() {
		var err error
		c.ForEach(func(k, p gjson.Result) bool {
			pp := param + ".content[" + strconv.Itoa(int(k.Num)) + "]"
			switch p.Get("type").String() {
			case "text":
				t := p.Get("text")
				if t.Type != gjson.String {
					err = wire.InvalidType(pp+".text", "a string")
					return false
				}
				if t.Str != "" {
					b.turn("assistant").text(t.Raw, cacheControl(p))
				}
			case "refusal":
			case "thinking", "redacted_thinking":
				var block []byte
				if block, err = thinkingBlock(p, pp); err == nil {
					b.turn("assistant").raw(block)
				}
			default:
				err = wire.Unsupported(pp+".type", "Assistant content parts must be text, refusal, thinking or redacted_thinking.")
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	} else if err := eachText(m, param+".content", func(t gjson.Result, cc string) {
		b.turn("assistant").text(t.Raw, cc)
	}); err != nil {
		return err
	}

	calls := m.Get("tool_calls")
	if !wire.Present(calls) {
		return nil
	}
	if !calls.IsArray() {
		return wire.InvalidType(param+".tool_calls", "an array")
	}
	var err error
	calls.ForEach(func(k, tc gjson.Result) bool {
		pp := param + ".tool_calls[" + strconv.Itoa(int(k.Num)) + "]"
		var block []byte
		block, err = toolUseBlock(tc, pp)
		if err == nil {
			b.turn("assistant").raw(block)
		}
		return err == nil
	})
	return err
}

func toolUseBlock(tc gjson.Result, param string) ([]byte, error) {
	if t := tc.Get("type"); wire.Present(t) && t.String() != "function" {
		return nil, wire.Unsupported(param+".type", "Only function tool calls are supported for this model.")
	}
	id, name := tc.Get("id"), tc.Get("function.name")
	if id.Type != gjson.String || id.Str == "" {
		return nil, wire.InvalidBody(param+".id", "Each tool call needs an id.")
	}
	if name.Type != gjson.String || name.Str == "" {
		return nil, wire.InvalidBody(param+".function.name", "Each tool call needs a function name.")
	}
	input := "{}"
	switch a := tc.Get("function.arguments"); {
	case a.Type == gjson.String && strings.TrimSpace(a.Str) != "":
		args := strings.TrimSpace(a.Str)
		if !gjson.Valid(args) || args[0] != '{' {
			return nil, wire.InvalidBody(param+".function.arguments", "Tool call arguments must be a JSON object.")
		}
		input = args
	case a.Type == gjson.String, !wire.Present(a):
	default:
		return nil, wire.InvalidType(param+".function.arguments", "a string")
	}
	block := append([]byte(nil), `{"type":"tool_use","id":`...)
	block = append(block, id.Raw...)
	block = append(block, `,"name":`...)
	block = append(block, name.Raw...)
	block = append(block, `,"input":`...)
	block = append(block, input...)
	return appendCacheControl(block, cacheControl(tc)), nil
}

func (b *reqBuilder) toolMessage(m gjson.Result, param string) error {
	id := m.Get("tool_call_id")
	if id.Type != gjson.String || id.Str == "" {
		return wire.InvalidBody(param+".tool_call_id", "Tool messages need a tool_call_id.")
	}
	block := append([]byte(nil), `{"type":"tool_result","tool_use_id":`...)
	block = append(block, id.Raw...)
	c := m.Get("content")
	if c.Type == gjson.String {
		if c.Str != "" {
			block = append(block, `,"content":`...)
			block = append(block, c.Raw...)
		}
	} else {
		var parts []byte
		if err := eachText(m, param+".content", func(t gjson.Result, cc string) {
			parts = append(sep(parts), `{"type":"text","text":`...)
			parts = append(parts, t.Raw...)
			parts = appendCacheControl(parts, cc)
		}); err != nil {
			return err
		}
		if len(parts) > 0 {
			block = append(block, `,"content":[`...)
			block = append(append(block, parts...), ']')
		}
	}
	// A cache_control on the tool message marks the result block.
	b.turn("user").result(appendCacheControl(block, cacheControl(m)))
	return nil
}

// thinkingBlock rebuilds an assistant thinking part for replay:
// {"type":"thinking","thinking","signature"} or
// {"type":"redacted_thinking","data"}, as Anthropic returned them. Anthropic
// checks the signature, so a thinking part without one cannot be replayed.
func thinkingBlock(p gjson.Result, param string) ([]byte, error) {
	var block []byte
	switch p.Get("type").String() {
	case "thinking":
		text, sig := p.Get("thinking"), p.Get("signature")
		if text.Type != gjson.String {
			return nil, wire.InvalidType(param+".thinking", "a string")
		}
		if sig.Type != gjson.String || sig.Str == "" {
			return nil, wire.InvalidBody(param+".signature", "Thinking replayed to this model needs the signature it came with.")
		}
		block = append(block, `{"type":"thinking","thinking":`...)
		block = append(block, text.Raw...)
		block = append(block, `,"signature":`...)
		block = append(block, sig.Raw...)
	case "redacted_thinking":
		data := p.Get("data")
		if data.Type != gjson.String || data.Str == "" {
			return nil, wire.InvalidBody(param+".data", "Redacted thinking needs its data.")
		}
		block = append(block, `{"type":"redacted_thinking","data":`...)
		block = append(block, data.Raw...)
	default:
		return nil, wire.InvalidBody(param+".type", "Thinking parts must be of type thinking or redacted_thinking.")
	}
	// Anthropic refuses cache_control on thinking blocks; they are cached
	// with the turn around them.
	return append(block, '}'), nil
}

func (b *reqBuilder) appendSystem(out []byte) []byte {
	switch {
	case len(b.system) == 0:
		return out
	case len(b.system) == 1 && b.system[0].cc == "":
		out = append(out, `,"system":`...)
		return append(out, b.system[0].text...)
	}
	out = append(out, `,"system":[`...)
	for i, s := range b.system {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"type":"text","text":`...)
		out = append(out, s.text...)
		out = appendCacheControl(out, s.cc)
	}
	return append(out, ']')
}

func (b *reqBuilder) appendMessages(out []byte) []byte {
	out = append(out, `,"messages":[`...)
	for i, t := range b.turns {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"role":"`...)
		out = append(out, t.role...)
		out = append(out, `","content":`...)
		if t.plain != "" {
			out = append(out, t.plain...)
		} else {
			out = append(out, '[')
			out = append(out, t.results...)
			if len(t.results) > 0 && len(t.blocks) > 0 {
				out = append(out, ',')
			}
			out = append(out, t.blocks...)
			out = append(out, ']')
		}
		out = append(out, '}')
	}
	return append(out, ']')
}
