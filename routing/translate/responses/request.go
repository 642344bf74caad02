package responses

import (
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/pretty"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
)

// Request is a Responses API request translated to Chat Completions. It
// keeps what the response object repeats back to the client, so one Request
// serves the translation of its own response or stream.
type Request struct {
	// Chat is the Chat Completions request body. A streamed request asks for
	// stream_options.include_usage, which response.completed needs.
	Chat []byte
	// Stream is whether the client asked for a stream.
	Stream bool

	echo echo
}

// echo holds the raw JSON of the request fields a response object repeats;
// an empty string is an absent or null field.
type echo struct {
	instructions, maxOutputTokens, temperature, topP, parallelToolCalls string
	toolChoice, tools, text, reasoningEffort, reasoningSummary          string
	metadata, user, serviceTier, safetyIdentifier, promptCacheKey       string
}

// UnsupportedCode is the error code of a field a chat-completions provider
// cannot serve; OpenAI answers unknown parameters with the same code.
const UnsupportedCode = "unsupported_parameter"

// Unsupported reports whether err is the refusal of a Responses feature that
// only OpenAI's own Responses API serves (stateful or hosted), as opposed to
// a malformed request. Param of the *oaierror.Error names the field.
func Unsupported(err error) bool {
	e, ok := err.(*oaierror.Error)
	return ok && e.Code == UnsupportedCode
}

func unsupported(param, msg string) error {
	return oaierror.InvalidRequest(UnsupportedCode, param, msg)
}

// TranslateRequest turns a Responses API request body (POST /v1/responses)
// into a Chat Completions request body for a provider that speaks only chat
// completions; the gateway's chat translators then take it from there. The
// chat body keeps the client's model; the caller rewrites it as for chat.
//
// Translated:
//   - input: a string becomes one user message; items become messages:
//     message items (typed or the bare {role, content} form) with roles
//     user, assistant, system and developer, content a string or parts
//     input_text → text, input_image (image_url) → image_url with detail,
//     input_file (file_data) → file, output_text and refusal → assistant
//     text; function_call → an assistant tool call, joined to the assistant
//     message before it; function_call_output → a tool message;
//   - instructions → a leading system message;
//   - tools (function tools, flat) → chat's nested {type, function}; strict
//     only when sent; tool_choice none/auto/required and {type:function,
//     name} → chat's forms; parallel_tool_calls as sent;
//   - max_output_tokens → max_completion_tokens; temperature, top_p, user,
//     safety_identifier, prompt_cache_key, prompt_cache_retention and
//     service_tier as sent;
//   - reasoning.effort → reasoning_effort; text.format json_schema and
//     json_object → response_format (text is the default and sends nothing);
//     text.verbosity → verbosity;
//   - stream → stream with stream_options.include_usage.
//
// Ignored, harmless for a stateless translation: metadata (echoed back in
// the response object, as OpenAI does, but not sent upstream),
// reasoning.summary and reasoning.generate_summary (no summaries are
// produced), reasoning items in input (opaque, encrypted, OpenAI-only
// replay state), stream_options (include_obfuscation), max_tool_calls (it
// limits built-in tools, which are refused), store false, background false,
// truncation "disabled", include and tools when empty.
//
// Refused with 400 unsupported_parameter naming the field: the stateful
// and hosted features of OpenAI's own Responses API — previous_response_id,
// conversation, store true, background true, include, prompt, truncation
// "auto", top_logprobs, built-in and custom tools and tool choices, input
// items other than the above (item_reference, hosted tool calls) — and
// every unknown field. Malformed values get invalid_type or invalid_value.
func TranslateRequest(body []byte) (*Request, error) {
	root, err := wire.RequestObject(body)
	if err != nil {
		return nil, err
	}
	r := &Request{}
	var b builder
	b.raw(`{`)
	var ferr error
	root.ForEach(func(k, v gjson.Result) bool {
		if v.Type == gjson.Null {
			return true
		}
		ferr = r.field(&b, k.Str, v)
		return ferr == nil
	})
	if ferr != nil {
		return nil, ferr
	}
	if err := r.messages(&b, root); err != nil {
		return nil, err
	}
	if r.Stream {
		b.key("stream")
		b.raw(`true`)
		b.key("stream_options")
		b.raw(`{"include_usage":true}`)
	}
	b.raw(`}`)
	r.Chat = b.buf
	return r, nil
}

// field translates one top-level field other than input and instructions
// (messages does those) and records what the response repeats.
func (r *Request) field(b *builder, name string, v gjson.Result) error {
	e := &r.echo
	switch name {
	case "input":
		return nil
	case "instructions":
		if v.Type != gjson.String {
			return wire.InvalidType(name, "a string")
		}
		e.instructions = v.Raw
	case "model":
		if v.Type != gjson.String {
			return wire.InvalidType(name, "a string")
		}
		b.member(name, v.Raw)
	case "stream":
		if !isBool(v) {
			return wire.InvalidType(name, "a boolean")
		}
		r.Stream = v.Type == gjson.True
	case "temperature", "top_p":
		if v.Type != gjson.Number {
			return wire.InvalidType(name, "a number")
		}
		b.member(name, v.Raw)
		if name == "temperature" {
			e.temperature = v.Raw
		} else {
			e.topP = v.Raw
		}
	case "max_output_tokens":
		if n, ok := wholeNumber(v); !ok || n < 1 {
			return wire.InvalidBody(name, "max_output_tokens must be a positive integer.")
		}
		b.member("max_completion_tokens", v.Raw)
		e.maxOutputTokens = v.Raw
	case "parallel_tool_calls":
		if !isBool(v) {
			return wire.InvalidType(name, "a boolean")
		}
		b.member(name, v.Raw)
		e.parallelToolCalls = v.Raw
	case "user", "safety_identifier", "prompt_cache_key", "service_tier", "prompt_cache_retention":
		if v.Type != gjson.String {
			return wire.InvalidType(name, "a string")
		}
		b.member(name, v.Raw)
		switch name {
		case "user":
			e.user = v.Raw
		case "safety_identifier":
			e.safetyIdentifier = v.Raw
		case "prompt_cache_key":
			e.promptCacheKey = v.Raw
		case "service_tier":
			e.serviceTier = v.Raw
		}
	case "metadata":
		if !v.IsObject() {
			return wire.InvalidType(name, "an object")
		}
		e.metadata = compact(v.Raw)
	case "tools":
		return r.tools(b, v)
	case "tool_choice":
		return r.toolChoice(b, v)
	case "reasoning":
		return r.reasoning(b, v)
	case "text":
		return r.text(b, v)
	case "stream_options", "max_tool_calls":
		// Harmless without hosted tools and obfuscation padding.
	case "store", "background":
		if !isBool(v) {
			return wire.InvalidType(name, "a boolean")
		}
		if v.Type == gjson.True {
			return unsupported(name, name+" is only available when the model is served by OpenAI; send "+name+": false.")
		}
	case "include":
		if !v.IsArray() {
			return wire.InvalidType(name, "an array")
		}
		if len(v.Array()) > 0 {
			return unsupported(name, "include is only available when the model is served by OpenAI.")
		}
	case "truncation":
		if v.Type != gjson.String {
			return wire.InvalidType(name, "a string")
		}
		if v.Str != "disabled" {
			return unsupported(name, `truncation "`+v.Str+`" is only available when the model is served by OpenAI.`)
		}
	case "previous_response_id", "conversation", "prompt", "top_logprobs":
		return unsupported(name, name+" is only available when the model is served by OpenAI.")
	default:
		return unsupported(name, "Unsupported parameter: '"+name+"' is not supported with this model.")
	}
	return nil
}

func (r *Request) tools(b *builder, v gjson.Result) error {
	if !v.IsArray() {
		return wire.InvalidType("tools", "an array")
	}
	arr := v.Array()
	if len(arr) == 0 {
		return nil
	}
	b.key("tools")
	b.raw(`[`)
	for i, t := range arr {
		p := "tools[" + strconv.Itoa(i) + "]"
		if !t.IsObject() {
			return wire.InvalidType(p, "an object")
		}
		if typ := t.Get("type").Str; typ != "function" {
			return unsupported(p+".type", "Tool type '"+typ+"' is only available when the model is served by OpenAI; only function tools are translated.")
		}
		name := t.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			return wire.InvalidBody(p+".name", "A function tool needs a name.")
		}
		if i > 0 {
			b.raw(`,`)
		}
		b.raw(`{"type":"function","function":{"name":`)
		b.raw(name.Raw)
		if d := t.Get("description"); d.Type == gjson.String {
			b.raw(`,"description":`)
			b.raw(d.Raw)
		}
		if ps := t.Get("parameters"); wire.Present(ps) {
			if !ps.IsObject() {
				return wire.InvalidType(p+".parameters", "an object")
			}
			b.raw(`,"parameters":`)
			b.raw(ps.Raw)
		}
		if s := t.Get("strict"); isBool(s) {
			b.raw(`,"strict":`)
			b.raw(s.Raw)
		}
		b.raw(`}}`)
	}
	b.raw(`]`)
	r.echo.tools = compact(v.Raw)
	return nil
}

func (r *Request) toolChoice(b *builder, v gjson.Result) error {
	const p = "tool_choice"
	switch {
	case v.Type == gjson.String:
		switch v.Str {
		case "none", "auto", "required":
			b.member(p, v.Raw)
		default:
			return wire.InvalidBody(p, `tool_choice must be "none", "auto", "required" or an object.`)
		}
	case v.IsObject():
		typ := v.Get("type").Str
		if typ != "function" {
			return unsupported(p, "tool_choice type '"+typ+"' is only available when the model is served by OpenAI.")
		}
		name := v.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			return wire.InvalidBody(p+".name", "tool_choice of type function needs a name.")
		}
		b.key(p)
		b.raw(`{"type":"function","function":{"name":`)
		b.raw(name.Raw)
		b.raw(`}}`)
	default:
		return wire.InvalidType(p, "a string or an object")
	}
	r.echo.toolChoice = compact(v.Raw)
	return nil
}

func (r *Request) reasoning(b *builder, v gjson.Result) error {
	if !v.IsObject() {
		return wire.InvalidType("reasoning", "an object")
	}
	if eff := v.Get("effort"); wire.Present(eff) {
		if eff.Type != gjson.String {
			return wire.InvalidType("reasoning.effort", "a string")
		}
		b.member("reasoning_effort", eff.Raw)
		r.echo.reasoningEffort = eff.Raw
	}
	if s := v.Get("summary"); s.Type == gjson.String {
		r.echo.reasoningSummary = s.Raw
	}
	return nil
}

func (r *Request) text(b *builder, v gjson.Result) error {
	if !v.IsObject() {
		return wire.InvalidType("text", "an object")
	}
	if f := v.Get("format"); wire.Present(f) {
		if !f.IsObject() {
			return wire.InvalidType("text.format", "an object")
		}
		switch typ := f.Get("type").Str; typ {
		case "text":
		case "json_object":
			b.member("response_format", `{"type":"json_object"}`)
		case "json_schema":
			name, schema := f.Get("name"), f.Get("schema")
			if name.Type != gjson.String || name.Str == "" {
				return wire.InvalidBody("text.format.name", "A json_schema format needs a name.")
			}
			if !schema.IsObject() {
				return wire.InvalidType("text.format.schema", "an object")
			}
			b.key("response_format")
			b.raw(`{"type":"json_schema","json_schema":{"name":`)
			b.raw(name.Raw)
			if d := f.Get("description"); d.Type == gjson.String {
				b.raw(`,"description":`)
				b.raw(d.Raw)
			}
			b.raw(`,"schema":`)
			b.raw(schema.Raw)
			if s := f.Get("strict"); isBool(s) {
				b.raw(`,"strict":`)
				b.raw(s.Raw)
			}
			b.raw(`}}`)
		default:
			return wire.InvalidBody("text.format.type", "text.format.type must be text, json_object or json_schema.")
		}
	}
	if vb := v.Get("verbosity"); wire.Present(vb) {
		if vb.Type != gjson.String {
			return wire.InvalidType("text.verbosity", "a string")
		}
		b.member("verbosity", vb.Raw)
	}
	r.echo.text = compact(v.Raw)
	return nil
}

// messages writes the chat messages: instructions first, then input.
func (r *Request) messages(b *builder, root gjson.Result) error {
	var ms []chatMsg
	if ins := root.Get("instructions"); ins.Type == gjson.String {
		ms = append(ms, chatMsg{role: "system", content: ins.Raw})
	}
	in := root.Get("input")
	switch {
	case in.Type == gjson.String:
		ms = append(ms, chatMsg{role: "user", content: in.Raw})
	case in.IsArray():
		var err error
		i := 0
		in.ForEach(func(_, it gjson.Result) bool {
			ms, err = inputItem(ms, "input["+strconv.Itoa(i)+"]", it)
			i++
			return err == nil
		})
		if err != nil {
			return err
		}
	case !wire.Present(in):
		return wire.InvalidBody("input", "Missing required parameter: 'input'.")
	default:
		return wire.InvalidType("input", "a string or an array")
	}
	if len(ms) == 0 {
		return wire.InvalidBody("input", "input must hold at least one message.")
	}
	b.key("messages")
	b.raw(`[`)
	for i, m := range ms {
		if i > 0 {
			b.raw(`,`)
		}
		m.append(b)
	}
	b.raw(`]`)
	return nil
}

// chatMsg is one chat message being built; content is raw JSON.
type chatMsg struct {
	role       string
	content    string
	toolCalls  []string
	toolCallID string
}

func (m *chatMsg) append(b *builder) {
	b.raw(`{"role":`)
	b.str(m.role)
	b.raw(`,"content":`)
	if m.content == "" {
		b.raw(`null`)
	} else {
		b.raw(m.content)
	}
	if m.toolCallID != "" {
		b.raw(`,"tool_call_id":`)
		b.raw(m.toolCallID)
	}
	if len(m.toolCalls) > 0 {
		b.raw(`,"tool_calls":[`)
		for i, tc := range m.toolCalls {
			if i > 0 {
				b.raw(`,`)
			}
			b.raw(tc)
		}
		b.raw(`]`)
	}
	b.raw(`}`)
}

// inputItem appends the chat messages of one input item.
func inputItem(ms []chatMsg, p string, it gjson.Result) ([]chatMsg, error) {
	if !it.IsObject() {
		return ms, wire.InvalidType(p, "an object")
	}
	typ := it.Get("type")
	if typ.Exists() && typ.Type != gjson.String {
		return ms, wire.InvalidType(p+".type", "a string")
	}
	switch t := typ.Str; {
	case t == "message" || (t == "" && it.Get("role").Exists()):
		return message(ms, p, it)
	case t == "function_call":
		callID, name, args := it.Get("call_id"), it.Get("name"), it.Get("arguments")
		if callID.Type != gjson.String || callID.Str == "" {
			return ms, wire.InvalidBody(p+".call_id", "A function_call item needs a call_id.")
		}
		if name.Type != gjson.String || name.Str == "" {
			return ms, wire.InvalidBody(p+".name", "A function_call item needs a name.")
		}
		if args.Type != gjson.String {
			return ms, wire.InvalidType(p+".arguments", "a string")
		}
		var tc builder
		tc.raw(`{"id":`)
		tc.raw(callID.Raw)
		tc.raw(`,"type":"function","function":{"name":`)
		tc.raw(name.Raw)
		tc.raw(`,"arguments":`)
		tc.raw(args.Raw)
		tc.raw(`}}`)
		// One assistant turn: text and the calls that follow it.
		if n := len(ms); n > 0 && ms[n-1].role == "assistant" {
			ms[n-1].toolCalls = append(ms[n-1].toolCalls, string(tc.buf))
			return ms, nil
		}
		return append(ms, chatMsg{role: "assistant", toolCalls: []string{string(tc.buf)}}), nil
	case t == "function_call_output":
		callID, out := it.Get("call_id"), it.Get("output")
		if callID.Type != gjson.String || callID.Str == "" {
			return ms, wire.InvalidBody(p+".call_id", "A function_call_output item needs a call_id.")
		}
		content, err := toolOutput(p+".output", out)
		if err != nil {
			return ms, err
		}
		return append(ms, chatMsg{role: "tool", content: content, toolCallID: callID.Raw}), nil
	case t == "reasoning":
		return ms, nil // see TranslateRequest: OpenAI-only replay state
	case t == "":
		return ms, wire.InvalidBody(p+".type", "An input item needs a type.")
	default:
		return ms, unsupported(p+".type", "Input items of type '"+t+"' are only available when the model is served by OpenAI.")
	}
}

func message(ms []chatMsg, p string, it gjson.Result) ([]chatMsg, error) {
	role := it.Get("role")
	switch role.Str {
	case "user", "assistant", "system", "developer":
	default:
		return ms, wire.InvalidBody(p+".role", "role must be user, assistant, system or developer.")
	}
	c := it.Get("content")
	var content string
	switch {
	case c.Type == gjson.String:
		content = c.Raw
	case c.IsArray():
		var err error
		if content, err = parts(p+".content", role.Str, c); err != nil {
			return ms, err
		}
	default:
		return ms, wire.InvalidType(p+".content", "a string or an array")
	}
	return append(ms, chatMsg{role: role.Str, content: content}), nil
}

// parts translates a content array. Assistant content (replayed output) is
// joined into one string, which every chat translator reads.
func parts(p, role string, c gjson.Result) (string, error) {
	var b builder
	var text []byte // assistant text, joined
	assistant := role == "assistant"
	n, i := 0, 0
	var err error
	b.raw(`[`)
	c.ForEach(func(_, part gjson.Result) bool {
		pp := p + "[" + strconv.Itoa(i) + "]"
		i++
		if !part.IsObject() {
			err = wire.InvalidType(pp, "an object")
			return false
		}
		typ := part.Get("type").Str
		if assistant {
			switch typ {
			case "output_text", "input_text", "text":
				t := part.Get("text")
				if t.Type != gjson.String {
					err = wire.InvalidType(pp+".text", "a string")
					return false
				}
				text = append(text, t.Str...)
			case "refusal":
				t := part.Get("refusal")
				if t.Type != gjson.String {
					err = wire.InvalidType(pp+".refusal", "a string")
					return false
				}
				text = append(text, t.Str...)
			default:
				err = unsupported(pp+".type", "Assistant content parts of type '"+typ+"' cannot be translated.")
				return false
			}
			return true
		}
		if n > 0 {
			b.raw(`,`)
		}
		n++
		switch typ {
		case "input_text":
			t := part.Get("text")
			if t.Type != gjson.String {
				err = wire.InvalidType(pp+".text", "a string")
				return false
			}
			b.raw(`{"type":"text","text":`)
			b.raw(t.Raw)
			b.raw(`}`)
		case "input_image":
			u := part.Get("image_url")
			if u.Type != gjson.String || u.Str == "" {
				if part.Get("file_id").Exists() {
					err = unsupported(pp+".file_id", "Images by file_id are only available when the model is served by OpenAI; send image_url.")
				} else {
					err = wire.InvalidBody(pp+".image_url", "An input_image part needs an image_url.")
				}
				return false
			}
			b.raw(`{"type":"image_url","image_url":{"url":`)
			b.raw(u.Raw)
			if d := part.Get("detail"); d.Type == gjson.String {
				b.raw(`,"detail":`)
				b.raw(d.Raw)
			}
			b.raw(`}}`)
		case "input_file":
			fd := part.Get("file_data")
			if fd.Type != gjson.String || fd.Str == "" {
				err = unsupported(pp, "Files by file_id or file_url are only available when the model is served by OpenAI; send file_data.")
				return false
			}
			b.raw(`{"type":"file","file":{"file_data":`)
			b.raw(fd.Raw)
			if fn := part.Get("filename"); fn.Type == gjson.String {
				b.raw(`,"filename":`)
				b.raw(fn.Raw)
			}
			b.raw(`}}`)
		default:
			err = unsupported(pp+".type", "Content parts of type '"+typ+"' cannot be translated for this model.")
			return false
		}
		return true
	})
	if err != nil {
		return "", err
	}
	if assistant {
		return string(oaierror.AppendString(nil, string(text))), nil
	}
	if n == 0 {
		return `""`, nil
	}
	b.raw(`]`)
	return string(b.buf), nil
}

// toolOutput translates function_call_output.output: a string, or text
// parts (chat tool messages hold text only).
func toolOutput(p string, out gjson.Result) (string, error) {
	switch {
	case out.Type == gjson.String:
		return out.Raw, nil
	case out.IsArray():
		var b builder
		var err error
		n := 0
		b.raw(`[`)
		out.ForEach(func(_, part gjson.Result) bool {
			pp := p + "[" + strconv.Itoa(n) + "]"
			t := part.Get("text")
			if part.Get("type").Str != "input_text" || t.Type != gjson.String {
				err = unsupported(pp, "Function call outputs can hold only input_text parts for this model.")
				return false
			}
			if n > 0 {
				b.raw(`,`)
			}
			n++
			b.raw(`{"type":"text","text":`)
			b.raw(t.Raw)
			b.raw(`}`)
			return true
		})
		if err != nil {
			return "", err
		}
		if n == 0 {
			return `""`, nil
		}
		b.raw(`]`)
		return string(b.buf), nil
	default:
		return "", wire.InvalidType(p, "a string or an array")
	}
}

// compact removes the insignificant whitespace of a raw JSON value: echoed
// values go out in single-line SSE data.
func compact(raw string) string { return string(pretty.Ugly([]byte(raw))) }

func isBool(v gjson.Result) bool { return v.Type == gjson.True || v.Type == gjson.False }

// wholeNumber reads a JSON integer.
func wholeNumber(v gjson.Result) (int64, bool) {
	if v.Type != gjson.Number {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Raw, 10, 64)
	return n, err == nil
}

// builder appends a JSON object's members; values are raw JSON.
type builder struct {
	buf   []byte
	count int
}

func (b *builder) raw(s string) { b.buf = append(b.buf, s...) }
func (b *builder) str(s string) { b.buf = oaierror.AppendString(b.buf, s) }

// key starts a top-level member of the object being built.
func (b *builder) key(k string) {
	if b.count > 0 {
		b.buf = append(b.buf, ',')
	}
	b.count++
	b.str(k)
	b.buf = append(b.buf, ':')
}

func (b *builder) member(k, raw string) {
	b.key(k)
	b.raw(raw)
}
