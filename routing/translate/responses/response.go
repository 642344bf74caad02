package responses

import (
	"crypto/rand"
	"github.com/tollgate-ai/tollgate/internal/byteview"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Options fixes what a translated response cannot take from the chat
// completion. The zero value derives both.
type Options struct {
	// ID is the response id ("resp_…"). Empty derives it from the chat
	// completion id, or makes a random one when that is missing.
	ID string
	// CreatedAt is the Unix time reported when the chat completion has no
	// "created"; zero means now.
	CreatedAt int64
}

// Response statuses.
const (
	statusInProgress = "in_progress"
	statusCompleted  = "completed"
	statusIncomplete = "incomplete"
	statusFailed     = "failed"
)

// Output item kinds.
const (
	kindMessage = iota
	kindFunctionCall
)

// item is one output item: an assistant message or a function call.
type item struct {
	kind int
	id   string
	// message
	text    strings.Builder
	refusal strings.Builder
	hasText bool // an output_text part exists
	hasRef  bool // a refusal part exists
	textIdx int  // content index of the output_text part
	refIdx  int  // content index of the refusal part
	// function call
	callID, name string
	args         strings.Builder
	done         bool // output_item.done went out (streams)
}

// state is what a response object is built from, streamed or not.
type state struct {
	req        *Request
	id         string
	model      string
	created    int64
	status     string
	incomplete string // incomplete_details.reason
	errCode    string
	errMsg     string
	items      []*item
	u          usage.Usage
	usageOK    bool
}

func newState(req *Request, opts Options) *state {
	if req == nil {
		req = &Request{}
	}
	return &state{req: req, id: opts.ID, created: opts.CreatedAt, status: statusInProgress}
}

// identify fills the id, model and created time from a chat completion or
// its first chunk, unless already set.
func (s *state) identify(chat gjson.Result) {
	if s.id == "" {
		id := chat.Get("id").Str
		id = strings.TrimPrefix(id, "chatcmpl-")
		if id == "" || !safeID(id) {
			id = rand.Text()
		}
		s.id = "resp_" + id
	}
	if m := chat.Get("model"); s.model == "" && m.Type == gjson.String {
		s.model = strings.Clone(m.Str) // chunks alias a reused buffer
	}
	if c := chat.Get("created"); s.created == 0 && c.Type == gjson.Number {
		s.created = c.Int()
	}
	if s.created == 0 {
		s.created = wire.Unix(nil)
	}
}

// safeID reports whether an upstream id may be reused in ours.
func safeID(id string) bool {
	if len(id) > 96 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// newItem adds an output item with an id derived from the response id.
func (s *state) newItem(kind int) *item {
	prefix := "msg_"
	if kind == kindFunctionCall {
		prefix = "fc_"
	}
	it := &item{kind: kind, id: prefix + strings.TrimPrefix(s.id, "resp_") + "_" + strconv.Itoa(len(s.items))}
	s.items = append(s.items, it)
	return it
}

// finish sets the status from a chat finish_reason.
func (s *state) finish(reason string) {
	switch reason {
	case "length":
		s.status, s.incomplete = statusIncomplete, "max_output_tokens"
	case "content_filter":
		s.status, s.incomplete = statusIncomplete, "content_filter"
	default:
		s.status = statusCompleted
	}
}

// itemStatus is the status of finished items in a response of s.status.
func (s *state) itemStatus() string {
	if s.status == statusCompleted {
		return statusCompleted
	}
	return statusIncomplete
}

// appendResponse appends the response object.
func (s *state) appendResponse(out []byte) []byte {
	e := &s.req.echo
	out = append(out, `{"id":`...)
	out = oaierror.AppendString(out, s.id)
	out = append(out, `,"object":"response","created_at":`...)
	out = strconv.AppendInt(out, s.created, 10)
	out = append(out, `,"status":`...)
	out = oaierror.AppendString(out, s.status)
	out = append(out, `,"background":false,"error":`...)
	if s.status == statusFailed {
		out = append(out, `{"code":`...)
		out = oaierror.AppendString(out, s.errCode)
		out = append(out, `,"message":`...)
		out = oaierror.AppendString(out, s.errMsg)
		out = append(out, '}')
	} else {
		out = append(out, "null"...)
	}
	out = append(out, `,"incomplete_details":`...)
	if s.incomplete != "" && s.status == statusIncomplete {
		out = append(out, `{"reason":`...)
		out = oaierror.AppendString(out, s.incomplete)
		out = append(out, '}')
	} else {
		out = append(out, "null"...)
	}
	out = appendRaw(out, `,"instructions":`, e.instructions, "null")
	out = appendRaw(out, `,"max_output_tokens":`, e.maxOutputTokens, "null")
	out = appendRaw(out, `,"metadata":`, e.metadata, "{}")
	out = append(out, `,"model":`...)
	out = oaierror.AppendString(out, s.model)
	out = append(out, `,"output":[`...)
	if s.status != statusInProgress {
		for i, it := range s.items {
			if i > 0 {
				out = append(out, ',')
			}
			out = it.appendItem(out, s.itemStatus())
		}
	}
	out = append(out, ']')
	out = appendRaw(out, `,"parallel_tool_calls":`, e.parallelToolCalls, "true")
	out = append(out, `,"previous_response_id":null`...)
	out = appendRaw(out, `,"prompt_cache_key":`, e.promptCacheKey, "null")
	out = appendRaw(out, `,"reasoning":{"effort":`, e.reasoningEffort, "null")
	out = appendRaw(out, `,"summary":`, e.reasoningSummary, "null")
	out = append(out, '}')
	out = appendRaw(out, `,"safety_identifier":`, e.safetyIdentifier, "null")
	out = appendRaw(out, `,"service_tier":`, e.serviceTier, `"default"`)
	out = append(out, `,"store":false`...)
	out = appendRaw(out, `,"temperature":`, e.temperature, "1")
	out = appendRaw(out, `,"text":`, e.text, `{"format":{"type":"text"}}`)
	out = appendRaw(out, `,"tool_choice":`, e.toolChoice, `"auto"`)
	out = appendRaw(out, `,"tools":`, e.tools, "[]")
	out = appendRaw(out, `,"top_p":`, e.topP, "1")
	out = append(out, `,"truncation":"disabled","usage":`...)
	if s.usageOK && s.status != statusInProgress {
		out = appendUsage(out, s.u)
	} else {
		out = append(out, "null"...)
	}
	out = appendRaw(out, `,"user":`, e.user, "null")
	return append(out, '}')
}

func appendRaw(out []byte, prefix, raw, def string) []byte {
	out = append(out, prefix...)
	if raw == "" {
		return append(out, def...)
	}
	return append(out, raw...)
}

// appendUsage writes a Responses usage object. Chat's prompt_tokens
// include the cached tokens and completion_tokens the reasoning tokens, as
// Responses' input_tokens and output_tokens do.
func appendUsage(out []byte, u usage.Usage) []byte {
	out = append(out, `{"input_tokens":`...)
	out = strconv.AppendInt(out, u.PromptTokens, 10)
	out = append(out, `,"input_tokens_details":{"cached_tokens":`...)
	out = strconv.AppendInt(out, u.CachedTokens, 10)
	out = append(out, `},"output_tokens":`...)
	out = strconv.AppendInt(out, u.CompletionTokens, 10)
	out = append(out, `,"output_tokens_details":{"reasoning_tokens":`...)
	out = strconv.AppendInt(out, u.ReasoningTokens, 10)
	out = append(out, `},"total_tokens":`...)
	out = strconv.AppendInt(out, u.TotalTokens, 10)
	return append(out, '}')
}

// appendItem appends an output item with the given status.
func (it *item) appendItem(out []byte, status string) []byte {
	if it.kind == kindFunctionCall {
		out = append(out, `{"id":`...)
		out = oaierror.AppendString(out, it.id)
		out = append(out, `,"type":"function_call","status":`...)
		out = oaierror.AppendString(out, status)
		out = append(out, `,"arguments":`...)
		out = oaierror.AppendString(out, it.args.String())
		out = append(out, `,"call_id":`...)
		out = oaierror.AppendString(out, it.callID)
		out = append(out, `,"name":`...)
		out = oaierror.AppendString(out, it.name)
		return append(out, '}')
	}
	out = append(out, `{"id":`...)
	out = oaierror.AppendString(out, it.id)
	out = append(out, `,"type":"message","status":`...)
	out = oaierror.AppendString(out, status)
	out = append(out, `,"role":"assistant","content":[`...)
	switch {
	case it.hasText && it.hasRef && it.refIdx < it.textIdx:
		out = appendRefusalPart(out, it.refusal.String())
		out = append(out, ',')
		out = appendTextPart(out, it.text.String())
	case it.hasText && it.hasRef:
		out = appendTextPart(out, it.text.String())
		out = append(out, ',')
		out = appendRefusalPart(out, it.refusal.String())
	case it.hasText:
		out = appendTextPart(out, it.text.String())
	case it.hasRef:
		out = appendRefusalPart(out, it.refusal.String())
	}
	return append(out, "]}"...)
}

// parts is the number of content parts the message has.
func (it *item) parts() int {
	n := 0
	if it.hasText {
		n++
	}
	if it.hasRef {
		n++
	}
	return n
}

func appendTextPart(out []byte, text string) []byte {
	out = append(out, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	out = oaierror.AppendString(out, text)
	return append(out, '}')
}

func appendRefusalPart(out []byte, text string) []byte {
	out = append(out, `{"type":"refusal","refusal":`...)
	out = oaierror.AppendString(out, text)
	return append(out, '}')
}

// Response translates a non-streamed Chat Completions response body (2xx)
// into a Responses API response object for req. It reads the first choice
// (the translated request never asks for more): its content becomes a
// message item with an output_text part (a refusal a refusal part), its
// tool calls function_call items; finish_reason length and content_filter
// make the response "incomplete" with incomplete_details.reason
// max_output_tokens or content_filter. The usage is returned as well,
// ok false when the body had none. A non-nil error means the body is not a
// chat completion (a provider fault: answer 502).
func (req *Request) Response(chat []byte, opts Options) (out []byte, u usage.Usage, ok bool, err error) {
	js := byteview.String(chat)
	if !gjson.Valid(js) {
		return nil, usage.Usage{}, false, notCompletion()
	}
	root := gjson.Parse(js)
	choice := root.Get("choices.0")
	if !root.IsObject() || !choice.IsObject() {
		return nil, usage.Usage{}, false, notCompletion()
	}
	s := newState(req, opts)
	s.identify(root)
	msg := choice.Get("message")
	content, refusal := msg.Get("content"), msg.Get("refusal")
	if (content.Type == gjson.String && content.Str != "") || (refusal.Type == gjson.String && refusal.Str != "") {
		it := s.newItem(kindMessage)
		if content.Type == gjson.String && content.Str != "" {
			it.hasText = true
			it.text.WriteString(content.Str)
		}
		if refusal.Type == gjson.String && refusal.Str != "" {
			it.hasRef, it.refIdx = true, it.parts()
			it.refusal.WriteString(refusal.Str)
		}
	}
	msg.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		it := s.newItem(kindFunctionCall)
		it.callID = tc.Get("id").Str
		it.name = tc.Get("function.name").Str
		it.args.WriteString(tc.Get("function.arguments").Str)
		return true
	})
	s.finish(choice.Get("finish_reason").Str)
	s.u, s.usageOK = usage.FromOpenAI(chat)
	return s.appendResponse(nil), s.u, s.usageOK, nil
}

// notCompletion is the provider fault of a body that is no chat
// completion.
func notCompletion() error {
	return oaierror.Internal(502, "bad_upstream_response", "The provider's response could not be read.")
}
