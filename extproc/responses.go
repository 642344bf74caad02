package extproc

import (
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/openai"
	"github.com/tollgate-ai/tollgate/routing/translate/responses"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// responsesProcessor serves POST /v1/responses, OpenAI's Responses API.
//
// OpenAI and Azure OpenAI targets get the request natively: the model
// rewritten, credentials swapped, guardrails reading the input items and
// instructions, metering reading response.completed; stateful and hosted
// features (previous_response_id, store, built-in tools) go through as sent.
// Every other provider (and the mock) gets the request translated to chat
// completions (routing/translate/responses), then through its own chat
// translator; its answer comes back through the same two translators in
// reverse. What a chat provider cannot serve is refused with 400
// unsupported_parameter naming the field.
//
// Output guardrails read the native answer's texts (responses_guard.go) or
// the translated answer as the chat completion it was, before it becomes
// Responses events.
//
// A fallback alias is served as on chat: the body leaves in the Responses
// format for the chain's cluster, and each upstream attempt (attempt.go)
// makes it native for an OpenAI or Azure member, or translates it to chat
// and then to the member's own schema. The answer is read for the member
// that gave it (responsesChain).
func responsesProcessor(*Snapshot) *processor {
	return &processor{
		endpoint: routing.EndpointResponses,
		method:   "POST",
		path:     "/v1/responses",
		headers:  []headerStep{stepRequireBody, stepTraceHeaders},
		body: []bodyStep{
			stepParseJSON,
			stepParseStream,
			stepSelectApp,
			stepCheckAgent,
			stepCheckMetadata,
			stepResolveModel,
			stepResponsesOffered,
			stepConfine,
			stepGuardInput(responsesPieces),
			stepAdmitResponses,
			stepStripGatewayFields,
		},
		deliver: [targetKinds][]bodyStep{
			kindDirect: {stepRewriteModel, stepSpliceBody, stepRespondNative, stepRouteUpstream,
				stepMintCredential},
			kindTranslated: {stepResponsesToChat, stepTranslateBody, stepRouteUpstream, stepChatPath, stepTranslatorHeaders,
				stepMintCredential},
			kindChain: {stepResponsesChain, stepRouteChain},
			kindMock:  {stepRewriteModel, stepResponsesToChat, stepMockChat},
		},
		attempt: [targetKinds][]attemptStep{
			kindDirect: {attemptRewriteModel, attemptSpliceBody, attemptResponsesPathStep, attemptCredential,
				attemptMintCredential, attemptFinishStep},
			kindTranslated: {attemptResponsesTranslateBody, attemptChatPathStep, attemptCredential, attemptTranslatorHeaders,
				attemptMintCredential, attemptFinishStep},
		},
	}
}

var (
	// admit reads max_output_tokens as chat's admit reads max_tokens, and
	// writes the default cap there when the limits need one: natively it is
	// the provider's field, translated it becomes each provider's own.
	stepAdmitResponses   = bodyStep{"admit", admitWith(admission{promptTokens: true, capOutput: true, outputField: "max_output_tokens"})}
	stepResponsesOffered = bodyStep{"check_offered", responsesOffered}
	stepResponsesChain   = bodyStep{"check_chain_members", responsesChainMembers}
	stepRespondNative    = bodyStep{"respond_native", respondNative}
	stepResponsesToChat  = bodyStep{"responses_to_chat", responsesToChat}
	stepChatPath         = bodyStep{"chat_path", chatPath}
)

// responseSchema is the schema the response side reads the answer with: the
// endpoint's own when a request step set one, else the provider's.
func (x *exchange) responseSchema() translate.Schema {
	if c, ok := x.respond.(*responsesChain); ok {
		x.respond = c.forMember(x.target.Provider) // answeredBy switched the target to the member
	}
	if x.respond != nil {
		return x.respond
	}
	return schemaOf(x.target.Provider)
}

// The attempt steps of a fallback chain's members (attempt.go).
var (
	attemptResponsesPathStep      = attemptStep{"upstream_path", attemptResponsesPath}
	attemptResponsesTranslateBody = attemptStep{"translate_body", attemptResponsesTranslate}
	attemptChatPathStep           = attemptStep{"upstream_path", attemptChatPath}
)

// responsesOffered refuses a provider that offers no chat completions:
// OpenAI-format providers take the Responses API natively, every other one
// through its chat translator. Every member of a fallback chain must.
func responsesOffered(x *exchange, _ *upstreamRequest) error {
	reach := [1]routing.Target{x.target}
	members := reach[:]
	if ch := x.target.Chain; ch != nil {
		members = ch.Members
	}
	for _, m := range members {
		if _, ok := m.Provider.Path(routing.EndpointChat, m.Model); !ok {
			return oaierror.InvalidRequest("unsupported_endpoint", "model", "The model "+quote(x.rec.model)+" does not support responses.")
		}
	}
	return nil
}

// responsesChainMembers refuses, before the request goes to a fallback
// chain, what any member could not take (an attempt cannot refuse): when a
// member is translated, the body must translate to chat (no stateful or
// hosted features) and the chat request to the member's schema. It sets the
// answer's reader, chosen when the answering member is known.
func responsesChainMembers(x *exchange, req *upstreamRequest) error {
	if !req.applyEdits() {
		return failure(errRewrite(), errOverlap)
	}
	c := &responsesChain{guard: x.guard}
	for _, m := range x.target.Chain.Members {
		tr := m.Provider.Translator
		if tr == nil {
			continue
		}
		if c.req == nil {
			r, err := responses.TranslateRequest(req.body)
			if err != nil {
				return translateError(err, "The request cannot be sent to this model's providers.")
			}
			c.req = r
		}
		opts := translate.RequestOptions{DefaultMaxTokens: m.Provider.DefaultMaxTokens, Stream: x.stream}
		if _, err := tr.Request(c.req.Chat, m.Model, opts); err != nil {
			return translateError(err, "The request cannot be sent to this model's providers.")
		}
	}
	x.respond = c
	return nil
}

// responsesChain is a fallback chain request's response schema until the
// answering member is known: responseSchema replaces it with the member's
// reader, native or translated.
type responsesChain struct {
	translate.Schema                    // nil: never read as a schema itself
	req              *responses.Request // nil when no member is translated
	guard            *guardrails.Request
}

// forMember is the reader of the member p's answer.
func (c *responsesChain) forMember(p *routing.Provider) translate.Schema {
	if providerKind(p) != kindTranslated || c.req == nil {
		n := nativeResponses{}
		if c.guard != nil && c.guard.OutputActive() {
			n.guard = c.guard
		}
		return n
	}
	return &translatedResponses{Schema: p.Translator, req: c.req, guard: newOutputGuard(c.guard)}
}

// attemptResponsesPath sends a native member's attempt to its Responses
// path (Azure's is its v1 one).
func attemptResponsesPath(a *attempt, r *attemptRequest) error {
	p := a.member.Provider
	r.path, _ = p.UpstreamPath(routing.EndpointResponses, a.member.Model, a.stream)
	return nil
}

// attemptResponsesTranslate turns the Responses body into chat, then into
// the member's schema. Like attemptTranslate, a full replacement of the
// original body.
func attemptResponsesTranslate(a *attempt, r *attemptRequest) error {
	rq, err := responses.TranslateRequest(r.body)
	if err != nil {
		return fmt.Errorf("the request cannot be translated to chat: %w", err)
	}
	p := a.member.Provider
	out, err := p.Translator.Request(rq.Chat, a.member.Model, translate.RequestOptions{DefaultMaxTokens: p.DefaultMaxTokens, Stream: a.stream})
	if err != nil {
		return fmt.Errorf("the request cannot be translated: %w", err)
	}
	r.body = out
	return nil
}

// attemptChatPath sends a translated member's attempt to its chat path.
func attemptChatPath(a *attempt, r *attemptRequest) error {
	r.path, _ = a.member.Provider.UpstreamPath(routing.EndpointChat, a.member.Model, a.stream)
	return nil
}

// responsesPieces are a Responses request's instructions and the text of
// its input items (message content, function call arguments and outputs).
func responsesPieces(x *exchange, req *upstreamRequest, p *inputPieces) {
	ts, err := responses.InputTexts(req.body)
	if err != nil {
		return // parse_json validated the body
	}
	for _, t := range ts {
		v := gjson.Result{Type: gjson.String, Str: t.Text, Raw: view(req.body[t.Start:t.End]), Index: t.Start}
		p.add(t.Role, t.Text, v)
		x.read(t.Path, v)
	}
}

// respondNative reads an OpenAI or Azure answer as the Responses API's own.
func respondNative(x *exchange, _ *upstreamRequest) error {
	n := nativeResponses{}
	if x.guard != nil && x.guard.OutputActive() {
		n.guard = x.guard
	}
	x.respond = n
	return nil
}

// responsesToChat turns the Responses request into a chat completions
// request, which the provider's chat translator (or the mock) takes next;
// the answer is turned back by the same Request.
func responsesToChat(x *exchange, req *upstreamRequest) error {
	if !req.applyEdits() {
		return failure(errRewrite(), errOverlap)
	}
	r, err := responses.TranslateRequest(req.body)
	if err != nil {
		return translateError(err, "The request cannot be sent to this model's provider.")
	}
	req.body, req.bodyChanged = r.Chat, true
	x.respond = &translatedResponses{Schema: schemaOf(x.target.Provider), req: r, guard: newOutputGuard(x.guard)}
	return nil
}

// chatPath sends a translated request to the provider's chat path: the body
// is a chat request now.
func chatPath(x *exchange, req *upstreamRequest) error {
	path, _ := x.target.Provider.UpstreamPath(routing.EndpointChat, x.target.Model, x.stream)
	setPath(req, path)
	return nil
}

// setPath replaces the :path route_upstream set, so that the reply sets it
// once.
func setPath(req *upstreamRequest, path string) {
	req.path = path
	for _, h := range req.mu.get().SetHeaders {
		if h.GetHeader().GetKey() == ":path" {
			h.Header.RawValue = []byte(path)
			return
		}
	}
	req.mu.set(":path", path)
}

// nativeResponses reads OpenAI's own Responses answers: bodies and events
// pass as sent (but for what output guardrails redact), usage is read from
// the response object or the terminal event.
type nativeResponses struct {
	openai.Passthrough
	guard *guardrails.Request // nil: no output guardrails
}

func (n nativeResponses) Response(body []byte, _ string) ([]byte, usage.Usage, bool, error) {
	u, ok := usage.FromResponses(body)
	if n.guard == nil {
		return body, u, ok, nil
	}
	out, err := guardResponsesBody(n.guard, body)
	if err != nil {
		e := guardError(err)
		return nil, u, ok, &responseRefusal{status: e.Status, body: e.Body()}
	}
	return out, u, ok, nil
}

func (n nativeResponses) NewStream(string, bool) translate.Stream {
	return &nativeResponsesStream{guard: newResponsesStreamGuard(n.guard)}
}

// nativeResponsesStream passes a Responses event stream through, reading
// the usage of its terminal event (response.completed, .incomplete or
// .failed).
type nativeResponsesStream struct {
	guard         *responsesStreamGuard // nil: no output guardrails
	blocked       bool
	done, errored bool
	u             usage.Usage
	ok            bool
	framed        []byte
}

var _ translate.RawStream = (*nativeResponsesStream)(nil)

// responsesIncompleteEvent ends a Responses stream the provider cut short,
// as the error event the SDKs raise.
var responsesIncompleteEvent = []byte("event: error\ndata: " +
	`{"type":"error","code":"stream_incomplete","message":"The provider's stream ended before the response was complete.","param":null}` + "\n\n")

func (s *nativeResponsesStream) Raw(out, raw, data []byte) []byte {
	if s.blocked {
		return out
	}
	if len(data) > 0 && data[0] == '{' {
		if s.guard != nil {
			var err error
			if out, raw, data, err = s.guard.event(out, raw, data); err != nil {
				s.blocked, s.errored = true, true
				return append(out, responsesGuardEvent(err)...)
			}
		}
		switch responses.EventType(data) {
		case responses.EventCompleted, responses.EventIncomplete:
			s.done = true
		case responses.EventFailed:
			s.done, s.errored = true, true
		case "error":
			s.errored = true
		}
		if u, ok := responses.EventUsage(data); ok {
			s.u, s.ok = u, true
		}
	}
	return append(out, raw...)
}

func (s *nativeResponsesStream) Event(out, name, data []byte) []byte {
	s.framed = s.framed[:0]
	if len(name) > 0 {
		s.framed = append(append(append(s.framed, "event: "...), name...), '\n')
	}
	s.framed = translate.AppendData(s.framed, data)
	return s.Raw(out, s.framed, data)
}

func (s *nativeResponsesStream) End(out []byte) ([]byte, bool) {
	if s.blocked {
		return out, false
	}
	if !s.done && !s.errored {
		out = append(out, responsesIncompleteEvent...)
	}
	return out, s.done && !s.errored
}

func (s *nativeResponsesStream) State() (done, errored bool) { return s.done, s.errored }
func (s *nativeResponsesStream) Usage() (usage.Usage, bool)  { return s.u, s.ok }
func (s *nativeResponsesStream) Partial() (usage.Usage, bool) {
	return s.u, s.ok
}

// translatedResponses reads a translated request's answer: the provider's
// schema (Schema) turns it into a chat completion, and the Responses
// request turns that into a response object or event stream. Errors stay
// in OpenAI's format, which the Responses API shares.
type translatedResponses struct {
	translate.Schema
	req   *responses.Request
	guard *outputGuard // nil: no output guardrails; reads the chat answer, as on chat
}

// Framing is the provider's: the stream reader cuts the provider's events.
func (t *translatedResponses) Framing() translate.Framing { return translate.FramingOf(t.Schema) }

func (t *translatedResponses) Response(body []byte, model string) ([]byte, usage.Usage, bool, error) {
	chat, u, ok, err := t.Schema.Response(body, model)
	if err != nil {
		return nil, u, ok, err
	}
	if t.guard != nil {
		if chat, err = t.guard.response(chat); err != nil {
			e := guardError(err)
			return nil, u, ok, &responseRefusal{status: e.Status, body: e.Body()}
		}
	}
	out, _, _, err := t.req.Response(chat, responses.Options{})
	return out, u, ok, err
}

func (t *translatedResponses) NewStream(model string, _ bool) translate.Stream {
	// The chat stream always carries its usage: response.completed reports it.
	return &translatedResponsesStream{chat: t.Schema.NewStream(model, true), out: t.req.NewStream(responses.Options{}), guard: t.guard}
}

// translatedResponsesStream composes the provider's chat stream with the
// Responses stream.
type translatedResponsesStream struct {
	chat    translate.Stream
	out     *responses.Stream
	buf     []byte
	guard   *outputGuard // guards the chat chunks before they become events
	sc      sse.Scanner
	guarded []byte
	blocked bool
}

func (s *translatedResponsesStream) Event(out, name, data []byte) []byte {
	if s.blocked {
		return out
	}
	s.buf = s.chat.Event(s.buf[:0], name, data)
	return s.out.Feed(out, s.guardChat(s.buf))
}

// guardChat runs the output guard over chat chunks. A block replaces the
// chunk and all after it with the guardrail's chat error, which the
// Responses stream ends with response.failed, its terminal event for an
// error.
func (s *translatedResponsesStream) guardChat(chunks []byte) []byte {
	if s.guard == nil || len(chunks) == 0 {
		return chunks
	}
	s.sc.Reset()
	s.sc.Feed(chunks)
	s.sc.Finish()
	g := s.guarded[:0]
	for {
		ev, more := s.sc.Next()
		if !more {
			break
		}
		if len(ev.Data) == 0 || ev.Data[0] != '{' {
			g = append(g, ev.Raw...)
			continue
		}
		data, err := s.guard.chunk(ev.Data)
		if err != nil {
			s.blocked = true
			g = append(g, guardErrorEvent(err)...)
			break
		}
		g = translate.AppendData(g, data)
	}
	s.guarded = g
	return g
}

func (s *translatedResponsesStream) End(out []byte) ([]byte, bool) {
	if s.blocked {
		return out, false
	}
	var chatDone bool
	s.buf, chatDone = s.chat.End(s.buf[:0])
	out = s.out.Feed(out, s.guardChat(s.buf))
	if s.blocked {
		out, _ = s.out.End(out)
		return out, false
	}
	out, complete := s.out.End(out)
	return out, complete && chatDone
}

func (s *translatedResponsesStream) Usage() (usage.Usage, bool)   { return s.chat.Usage() }
func (s *translatedResponsesStream) Partial() (usage.Usage, bool) { return s.chat.Partial() }
