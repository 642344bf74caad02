package extproc

import (
	"fmt"
	"math"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/extproc/internal/jsonscan"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/messages"
	"github.com/tollgate-ai/tollgate/routing/translate/vertex"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Anthropic's Messages API, POST /v1/messages and
// /v1/messages/count_tokens. Targets whose provider speaks Messages natively
// (schema anthropic) get the client's body with the model rewritten and the
// credential swapped; Claude on Vertex AI gets it nearly as sent (the model
// in the path, anthropic_version in the body); OpenAI-schema targets get it
// translated to Chat Completions (routing/translate/messages) and their
// answer translated back, and every other provider (Gemini on Vertex AI,
// Bedrock) gets that chat request through its own chat translator, its
// answer coming back through both. Every refusal is in Anthropic's error
// format (apiFormat).

// apiFormat is an endpoint's own wire format where it is not OpenAI's: how
// the gateway's refusals are written, and the response schema that turns
// the provider's answer into the endpoint's format. A nil *apiFormat is
// OpenAI's.
type apiFormat struct {
	body       func(*oaierror.Error) []byte
	respSchema func(x *exchange, provider translate.Schema) translate.Schema
}

// errorBody is the body of one of the gateway's refusals.
func (a *apiFormat) errorBody(e *oaierror.Error) []byte {
	if a == nil || a.body == nil {
		return e.Body()
	}
	return a.body(e)
}

// schema is the response schema for a request: the endpoint's, else the
// provider's.
func (a *apiFormat) schema(x *exchange, provider translate.Schema) translate.Schema {
	if a == nil || a.respSchema == nil {
		return provider
	}
	return a.respSchema(x, provider)
}

// anthropicFormat writes refusals as {"type":"error","error":{…}}, which the
// Anthropic SDKs raise as their typed API error.
var anthropicFormat = &apiFormat{
	body:       func(e *oaierror.Error) []byte { return messages.FromOpenAI(e).Body() },
	respSchema: messagesSchema,
}

// errorFormat notes the endpoint's error format before anything can refuse
// in it (authenticate runs before classify, and an Anthropic SDK must read
// its 401 too). classify still decides the endpoint.
func errorFormat(x *exchange, h headers, _ *mutation) error {
	path, _ := splitPath(h.get(":path"))
	if p, _, _ := match(x.snap.processors(), x.snap.BasePath, path); p != nil {
		x.msgs.api = p.api
	}
	return nil
}

// messagesFacts are what the Messages endpoints learn besides the common
// facts.
type messagesFacts struct {
	api       *apiFormat       // the endpoint's own error format, known before authentication; nil: OpenAI's
	anthropic anthropicHeaders // anthropic-version and the vetted anthropic-beta, for native targets
}

// anthropicHeaders are the client's Anthropic API headers, kept for native
// targets: sanitize_headers removes every anthropic-* header, because a
// client must not steer the platform's account.
type anthropicHeaders struct {
	version string
	beta    string // the vetted betas, comma-separated; "" for none
}

// defaultAnthropicVersion is sent when the client names none; it is the only
// version Anthropic has published.
const defaultAnthropicVersion = "2023-06-01"

// passedBetas are the anthropic-beta names forwarded to native targets:
// features that change how a request is answered but not what the
// platform's account is billed for or which account resources it reaches.
// Any other beta (files, MCP connectors, code execution, 1M context, which
// is priced higher) is dropped, never forwarded: the gateway prices and
// meters what it knows.
var passedBetas = map[string]bool{
	"prompt-caching-2024-07-31":              true,
	"token-efficient-tools-2025-02-19":       true,
	"fine-grained-tool-streaming-2025-05-14": true,
	"interleaved-thinking-2025-05-14":        true,
	"output-128k-2025-02-19":                 true,
	"claude-code-20250219":                   true,
}

// readAnthropicHeaders keeps anthropic-version and the vetted anthropic-beta
// names for a native target.
func readAnthropicHeaders(x *exchange, h headers, _ *mutation) error {
	x.msgs.anthropic.version = strings.TrimSpace(h.get("anthropic-version"))
	if x.msgs.anthropic.version == "" {
		x.msgs.anthropic.version = defaultAnthropicVersion
	}
	var kept []string
	for _, b := range strings.Split(h.get("anthropic-beta"), ",") {
		if b = strings.TrimSpace(b); passedBetas[b] {
			kept = append(kept, b)
		}
	}
	x.msgs.anthropic.beta = strings.Join(kept, ",")
	return nil
}

// Steps of the Messages endpoints.
var (
	stepReadAnthropicHeaders = headerStep{"read_anthropic_headers", readAnthropicHeaders}
	stepMessagesMaxTokens    = bodyStep{"read_max_tokens", messagesMaxTokens}
	stepMessagesToChat       = bodyStep{"translate_messages", messagesToChat}
	stepMessagesForProvider  = bodyStep{"translate_messages", messagesForProvider}
	stepRouteMessages        = bodyStep{"route_upstream", routeMessages}
	stepMessagesHeaders      = bodyStep{"provider_headers", messagesHeaders}
	stepRouteNative          = bodyStep{"route_upstream", routeNative}
	stepRouteChat            = bodyStep{"route_upstream", routeChat}
	stepAnthropicHeaders     = bodyStep{"anthropic_headers", setAnthropicHeaders}
	stepEstimateTokens       = bodyStep{"estimate_tokens", estimateTokensStep}
	stepEstimateUnlessNative = bodyStep{"estimate_tokens", estimateUnlessNative}
	stepCheckMessagesMembers = bodyStep{"check_chain_members", checkMessagesMembers}
)

// Attempt steps of /v1/messages through a fallback chain: the downstream
// exchange forwards the Messages body (checked for every member), and each
// attempt writes its member's body as messagesForProvider does.
var (
	attemptMessagesBody    = attemptStep{"translate_messages", attemptMessagesForProvider}
	attemptMessagesPath    = attemptStep{"upstream_path", attemptMessagesUpstreamPath}
	attemptMessagesHeaders = attemptStep{"provider_headers", attemptMessagesProviderHeaders}
)

// messagesProcessor serves POST /v1/messages.
func messagesProcessor(*Snapshot) *processor {
	return &processor{
		endpoint: routing.EndpointMessages,
		method:   "POST",
		path:     "/v1/messages",
		api:      anthropicFormat,
		headers:  []headerStep{stepRequireBody, stepTraceHeaders, stepReadAnthropicHeaders},
		body: []bodyStep{
			stepParseJSON,
			stepParseStream,
			stepSelectApp,
			stepCheckAgent,
			stepCheckMetadata,
			stepResolveModel,
			stepConfine,
			stepGuardInput(messagesPieces),
			stepCaptureInput,
			stepMessagesMaxTokens,
			stepAdmitText,
			stepStripGatewayFields,
		},
		deliver: [targetKinds][]bodyStep{
			kindDirect:     {stepMessagesToChat, stepRouteChat, stepMintCredential},
			kindTranslated: {stepMessagesForProvider, stepRouteMessages, stepMessagesHeaders, stepMintCredential},
			kindChain:      {stepCheckMessagesMembers, stepRouteChain},
			kindMock:       {stepMessagesToChat, stepMockChat}, // the mock answers the translated request
		},
		attempt: [targetKinds][]attemptStep{
			kindDirect: {attemptMessagesBody, attemptMessagesPath, attemptCredential, attemptMintCredential, attemptFinishStep},
			kindTranslated: {attemptMessagesBody, attemptMessagesPath, attemptCredential, attemptMessagesHeaders,
				attemptMintCredential, attemptFinishStep},
		},
	}
}

// countTokensProcessor serves POST /v1/messages/count_tokens: Anthropic
// counts for its own models; for every other target the gateway answers
// with its estimate, flagged by estimatedHeader.
func countTokensProcessor(*Snapshot) *processor {
	return &processor{
		endpoint: routing.EndpointMessagesCountTokens,
		method:   "POST",
		path:     "/v1/messages/count_tokens",
		api:      anthropicFormat,
		headers:  []headerStep{stepRequireBody, stepTraceHeaders, stepReadAnthropicHeaders},
		body: []bodyStep{
			stepParseJSON,
			stepSelectApp,
			stepCheckAgent,
			stepCheckMetadata,
			stepResolveModel,
			stepConfine,
			stepStripGatewayFields,
		},
		deliver: [targetKinds][]bodyStep{
			kindDirect: {stepEstimateTokens},
			kindTranslated: {stepEstimateUnlessNative, stepRewriteModel, stepSpliceBody, stepRouteNative,
				stepAnthropicHeaders, stepMintCredential},
			kindChain: {stepEstimateTokens},
			kindMock:  {stepEstimateTokens},
		},
	}
}

// nativeMessages reports whether a provider speaks the Messages API itself.
func nativeMessages(p *routing.Provider) bool { return p.Schema == config.SchemaAnthropic }

// messagesRoute is how a Messages request reaches a target.
type messagesRoute int

const (
	messagesViaChat      messagesRoute = iota // translated to chat completions (then by the provider's chat translator, if any)
	messagesNative                            // the provider speaks Messages (Anthropic)
	messagesVertexClaude                      // Vertex AI's Anthropic publisher: Messages, the model in the path
)

func messagesRouteOf(p *routing.Provider, model string) messagesRoute {
	switch {
	case p == nil:
		return messagesViaChat
	case nativeMessages(p):
		return messagesNative
	case p.Schema == config.SchemaVertexAI && vertex.IsClaude(model):
		return messagesVertexClaude
	}
	return messagesViaChat
}

// checkMessagesMembers refuses, before a fallback chain is tried, what any
// of its members could not take: the Messages body leaves as the client
// sent it (redacted, without gateway fields), and each attempt writes its
// own member's body upstream, where a refusal is impossible (Envoy ext_proc
// API: ImmediateResponse).
func checkMessagesMembers(x *exchange, req *upstreamRequest) error {
	if !req.applyEdits() {
		return failure(errRewrite(), errOverlap)
	}
	for _, m := range x.target.Chain.Members {
		if _, err := messagesBodyFor(m, req.body, x.stream); err != nil {
			return messagesRefusal(err, "The request cannot be sent to this model's providers.")
		}
	}
	return nil
}

// messagesBodyFor is the body member m gets for a Messages body: what
// messagesForProvider writes, in one pass (an attempt has no edit queue).
func messagesBodyFor(m routing.Target, body []byte, stream bool) ([]byte, error) {
	p := m.Provider
	switch messagesRouteOf(p, m.Model) {
	case messagesNative:
		members, err := jsonscan.Object(body, nil)
		if err != nil {
			return nil, err
		}
		r := upstreamRequest{body: body, members: members}
		r.setModel(m.Model)
		if !r.applyEdits() {
			return nil, errOverlap
		}
		return r.body, nil
	case messagesVertexClaude:
		return messages.ForVertex(body, vertex.AnthropicVersion)
	}
	chat, err := messages.ToChat(body, messages.RequestOptions{Model: m.Model})
	if err != nil || p.Translator == nil {
		return chat, err
	}
	return p.Translator.Request(chat, m.Model, translate.RequestOptions{DefaultMaxTokens: p.DefaultMaxTokens, Stream: stream})
}

// messagesRefusal is the client's refusal for a body a translator refused:
// messages' own (an untranslatable field) or a chat translator's, else a
// generic one with the cause logged.
func messagesRefusal(err error, msg string) error {
	if me, ok := err.(*messages.Error); ok {
		return &oaierror.Error{Status: me.Status, Type: oaierror.TypeInvalidRequest, Code: "unsupported_parameter",
			Param: me.Param, Message: me.Message}
	}
	return translateError(err, msg)
}

// attemptMessagesForProvider writes the member's body.
func attemptMessagesForProvider(a *attempt, r *attemptRequest) error {
	b, err := messagesBodyFor(a.member, r.body, a.stream)
	if err != nil {
		return fmt.Errorf("the request cannot be translated: %w", err)
	}
	r.body = b
	return nil
}

// attemptMessagesUpstreamPath is routeMessages' path for the member.
func attemptMessagesUpstreamPath(a *attempt, r *attemptRequest) error {
	p := a.member.Provider
	if messagesRouteOf(p, a.member.Model) == messagesNative {
		r.path = p.BasePath + "/messages"
		return nil
	}
	r.path, _ = p.UpstreamPath(routing.EndpointChat, a.member.Model, a.stream)
	return nil
}

// attemptMessagesProviderHeaders is messagesHeaders for the member. The
// client's anthropic-version and betas are not known upstream: an Anthropic
// member gets the one published version and no betas.
func attemptMessagesProviderHeaders(a *attempt, r *attemptRequest) error {
	switch messagesRouteOf(a.member.Provider, a.member.Model) {
	case messagesNative:
		r.setHeader("anthropic-version", defaultAnthropicVersion)
		return nil
	case messagesVertexClaude:
		return nil
	}
	return attemptSchemaHeaders(a, r)
}

// messagesPieces are the texts of a Messages body input guardrails check:
// system, each message's text (string content or text blocks) and
// tool_result text, as messages.PromptTexts lists them. tool_use input is
// structured JSON and thinking blocks are signed, so neither is listed.
func messagesPieces(x *exchange, req *upstreamRequest, p *inputPieces) {
	addText := func(role string, c gjson.Result) {
		switch {
		case c.Type == gjson.String:
			p.add(role, c.Str, c)
		case c.IsArray():
			c.ForEach(func(_, b gjson.Result) bool {
				if t := b.Get("text"); b.Get("type").Str == "text" && t.Type == gjson.String {
					p.add(role, t.Str, t)
				}
				return true
			})
		}
	}
	addText("system", req.get("system"))
	req.get("messages").ForEach(func(_, m gjson.Result) bool {
		role := m.Get("role").Str
		c := m.Get("content")
		addText(role, c)
		if c.IsArray() {
			c.ForEach(func(_, b gjson.Result) bool {
				if b.Get("type").Str == "tool_result" {
					addText("tool", b.Get("content"))
				}
				return true
			})
		}
		return true
	})
}

// messagesMaxTokens reads max_tokens, which Messages requires, as the
// output the limits reserve and price: the same role capOutput gives
// max_completion_tokens on chat.
func messagesMaxTokens(x *exchange, req *upstreamRequest) error {
	v := req.get("max_tokens")
	if v.Type != gjson.Number || v.Int() <= 0 {
		return oaierror.InvalidRequest("invalid_request_error", "max_tokens", "max_tokens: Field required (a positive integer).")
	}
	x.maxOut = min(v.Int(), math.MaxInt32)
	return nil
}

// messagesForProvider writes the body a provider with its own schema gets:
// Anthropic's with the model rewritten; Vertex AI's Claude with the model
// moved to the path; for the rest (Gemini on Vertex AI, Bedrock) the chat
// completions request the provider's chat translator then turns into its
// own.
func messagesForProvider(x *exchange, req *upstreamRequest) error {
	switch messagesRouteOf(x.target.Provider, x.target.Model) {
	case messagesNative:
		if err := rewriteModel(x, req); err != nil {
			return err
		}
		return spliceBody(x, req)
	case messagesVertexClaude:
		if !req.applyEdits() {
			return failure(errRewrite(), errOverlap)
		}
		b, err := messages.ForVertex(req.body, vertex.AnthropicVersion)
		if err != nil {
			return failure(errRewrite(), err)
		}
		req.body, req.bodyChanged = b, true
		return nil
	}
	if err := messagesToChat(x, req); err != nil {
		return err
	}
	return translateBody(x, req)
}

// routeMessages points the request at the provider: Anthropic's /messages,
// else the provider's chat path for the body it gets (Vertex AI's
// rawPredict or streamRawPredict for Claude, Bedrock's converse or
// converse-stream).
func routeMessages(x *exchange, req *upstreamRequest) error {
	if messagesRouteOf(x.target.Provider, x.target.Model) == messagesNative {
		return routeNative(x, req)
	}
	path, ok := x.target.Provider.UpstreamPath(routing.EndpointChat, x.target.Model, x.stream)
	if !ok {
		return unsupportedEndpoint(x, req)
	}
	return routeTo(x, req, path)
}

// messagesHeaders adds what the provider needs besides the credential:
// Anthropic's version and the vetted betas; for Claude on Vertex AI the
// betas only (the version is in the body); for the rest, their chat
// translator's headers.
func messagesHeaders(x *exchange, req *upstreamRequest) error {
	switch messagesRouteOf(x.target.Provider, x.target.Model) {
	case messagesNative:
		return setAnthropicHeaders(x, req)
	case messagesVertexClaude:
		if x.msgs.anthropic.beta != "" {
			req.mu.set("anthropic-beta", x.msgs.anthropic.beta)
		}
		return nil
	}
	return translatorHeaders(x, req)
}

// messagesToChat translates the body (as the provider will get it:
// redacted, without gateway fields) into a Chat Completions request for an
// OpenAI-schema provider.
func messagesToChat(x *exchange, req *upstreamRequest) error {
	if !req.applyEdits() {
		return failure(errRewrite(), errOverlap)
	}
	b, err := messages.ToChat(req.body, messages.RequestOptions{Model: x.target.Model})
	if err != nil {
		return messagesRefusal(err, "The request cannot be sent to this model's provider.")
	}
	req.body, req.bodyChanged = b, true
	return nil
}

// routeNative points a Messages request at an Anthropic provider: its
// /messages (or /messages/count_tokens) below the provider's base path.
func routeNative(x *exchange, req *upstreamRequest) error {
	path := x.target.Provider.BasePath + "/messages"
	if x.endpoint == routing.EndpointMessagesCountTokens {
		path += "/count_tokens"
	}
	return routeTo(x, req, path)
}

// routeChat points a translated Messages request at the provider's chat
// completions path.
func routeChat(x *exchange, req *upstreamRequest) error {
	path, ok := x.target.Provider.Path(routing.EndpointChat, x.target.Model)
	if !ok {
		return unsupportedEndpoint(x, req)
	}
	return routeTo(x, req, path)
}

// routeTo is routeUpstream with the path given: cluster, path, credential
// (or the tenant's own) and an exact content-length.
func routeTo(x *exchange, req *upstreamRequest, path string) error {
	p := x.target.Provider
	header, value, err := p.Credential()
	if x.target.Direct {
		if own, ok, ownErr := x.snap.Tenants.Credential(x.key.Tenant, p.Name); ok {
			value, err, x.rec.byok = own, ownErr, true
		}
	}
	if err != nil {
		return failure(oaierror.Internal(503, "provider_unavailable", "The provider for this model is not available."), err)
	}
	req.path = path
	req.mu.set(clusterHeader, p.Cluster)
	req.mu.set(":path", path)
	if header != "" {
		req.mu.set(header, value)
	}
	if req.bodyChanged {
		req.mu.setContentLength(len(req.body))
	}
	return nil
}

// setAnthropicHeaders sends the client's anthropic-version and its vetted
// betas to a native target.
func setAnthropicHeaders(x *exchange, req *upstreamRequest) error {
	req.mu.set("anthropic-version", x.msgs.anthropic.version)
	if x.msgs.anthropic.beta != "" {
		req.mu.set("anthropic-beta", x.msgs.anthropic.beta)
	}
	return nil
}

// estimatedHeader flags a count_tokens answer the gateway estimated itself.
const estimatedHeader = "x-tollgate-estimated"

// estimateTokensStep answers count_tokens with the gateway's estimate
// (messages.Estimate: the rule admission reserves by).
func estimateTokensStep(x *exchange, req *upstreamRequest) error {
	if !req.applyEdits() {
		return failure(errRewrite(), errOverlap)
	}
	_, out, err := messages.Estimate(req.body)
	if err != nil {
		if me, ok := err.(*messages.Error); ok {
			return &oaierror.Error{Status: me.Status, Type: oaierror.TypeInvalidRequest, Code: "invalid_request", Param: me.Param, Message: me.Message}
		}
		return err
	}
	r := x.immediate(200, out, "tollgate_estimate")
	hm := r.GetImmediateResponse().GetHeaders()
	hm.SetHeaders = append(hm.SetHeaders, &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: estimatedHeader, RawValue: []byte("true")}})
	x.answer = r
	return nil
}

// estimateUnlessNative estimates for a translated provider that is not
// Anthropic; an Anthropic target counts itself (the steps after this one).
func estimateUnlessNative(x *exchange, req *upstreamRequest) error {
	if nativeMessages(x.target.Provider) {
		return nil
	}
	return estimateTokensStep(x, req)
}

// messagesSchema is the response schema of a Messages request: the
// provider's answer as Anthropic's Messages format. provider is the
// provider's own schema.
func messagesSchema(x *exchange, provider translate.Schema) translate.Schema {
	p := x.target.Provider
	switch messagesRouteOf(p, x.target.Model) {
	case messagesNative, messagesVertexClaude:
		s := nativeMessagesSchema{}
		if x.guard != nil && x.guard.OutputActive() {
			s.guard = x.guard
		}
		if p.Translator != nil {
			s.errs = provider // Vertex AI answers some errors in Google's format
		}
		return s
	}
	c := chatToMessages{guard: newOutputGuard(x.guard)}
	if p != nil && p.Translator != nil {
		c.chat = provider
	}
	return c
}

// responseRefusal is a response schema's own answer in place of the
// provider's: the status and body the client gets (an output guardrail
// blocked the answer, or it could not be read), in the endpoint's format.
type responseRefusal struct {
	status int
	body   []byte
}

func (e *responseRefusal) Error() string { return "response refused: " + itoa(e.status) }

// anthropicRefusal is a refusal of the response in Anthropic's format.
func anthropicRefusal(e *oaierror.Error) *responseRefusal {
	return &responseRefusal{status: e.Status, body: messages.FromOpenAI(e).Body()}
}

// errorReply is the status and body for a response a schema could not
// translate: the schema's own refusal, else a 502 in OpenAI's format.
func errorReply(err error) (int, []byte) {
	if r, ok := err.(*responseRefusal); ok {
		return r.status, r.body
	}
	return 502, oaierror.Internal(502, "bad_provider_response", "The provider's response could not be read.").Body()
}

// nativeMessagesSchema reads a native Anthropic answer, changing it only
// where output guardrails redact: usage from the body or the event stream.
// Its request side is never used (the Messages steps route native requests
// themselves).
type nativeMessagesSchema struct {
	guard *guardrails.Request // nil: no output guardrails
	errs  translate.Schema    // turns errors not in Anthropic's format into OpenAI's (Vertex AI); nil: all are Anthropic's
}

func (nativeMessagesSchema) Path(string) (string, bool) { return "", false }
func (nativeMessagesSchema) Request(body []byte, _ string, _ translate.RequestOptions) ([]byte, error) {
	return body, nil
}
func (nativeMessagesSchema) Headers() [][2]string { return nil }
func (nativeMessagesSchema) Verbatim() bool       { return true }

func (s nativeMessagesSchema) Response(body []byte, _ string) ([]byte, usage.Usage, bool, error) {
	u, ok := messages.ReadUsage(body)
	if s.guard == nil {
		return body, u, ok, nil
	}
	texts, err := messages.ResponseTexts(body)
	if err != nil {
		return body, u, ok, nil // not a Messages body: nothing to check, the client reads it as sent
	}
	var edits []messages.Edit
	for i, p := range texts.Pieces {
		out, err := s.guard.CheckOutput(guardrails.Content, p.Text)
		if err != nil {
			return nil, u, ok, anthropicRefusal(guardError(err))
		}
		if out != p.Text {
			edits = append(edits, messages.Edit{Index: i, Text: out})
		}
	}
	if body, err = texts.Redact(body, edits); err != nil {
		return nil, u, ok, anthropicRefusal(guardError(err))
	}
	return body, u, ok, nil
}

// Error passes Anthropic's error through: it is already in the client's
// format. Another (Google's, from Vertex AI) becomes Anthropic's.
func (s nativeMessagesSchema) Error(status int, body []byte) (int, []byte) {
	if s.errs == nil || gjson.GetBytes(body, "type").Str == "error" {
		return status, body
	}
	e := messages.FromOpenAIBody(s.errs.Error(status, body))
	return e.Status, e.Body()
}

func (s nativeMessagesSchema) NewStream(string, bool) translate.Stream {
	st := &nativeMessagesStream{guard: s.guard}
	if s.guard != nil {
		st.held = map[int64]heldBlock{}
	}
	return st
}

// nativeMessagesStream passes a native Messages event stream on byte for
// byte, reading its usage; message_stop is its end marker, an error event
// its failure. With output guardrails, each text and tool-input block is a
// guarded stream: its deltas carry what the guard releases, and the rest it
// held back goes out as one more delta before the block's stop.
type nativeMessagesStream struct {
	u       messages.UsageReader
	done    bool
	errored bool

	guard   *guardrails.Request
	held    map[int64]heldBlock // by block index
	blocked bool
}

func (s *nativeMessagesStream) Raw(out, raw, data []byte) []byte {
	if s.blocked {
		return out
	}
	if len(data) == 0 || data[0] != '{' {
		return append(out, raw...)
	}
	switch gjson.GetBytes(data, "type").Str {
	case "message_stop":
		s.done = true
	case "error":
		s.errored = true
	case "content_block_delta":
		if s.guard != nil {
			return s.guardDelta(out, raw, data)
		}
	case "content_block_stop":
		if s.guard != nil {
			if out = s.release(out, data); s.blocked {
				return out
			}
		}
	default:
		s.u.Event(data)
	}
	return append(out, raw...)
}

// heldBlock is one guarded content block of a native stream.
type heldBlock struct {
	g    *guardrails.Stream
	kind messages.DeltaKind
}

// guardDelta sends a delta with the text the guard releases.
func (s *nativeMessagesStream) guardDelta(out, raw, data []byte) []byte {
	idx, kind, text, ok := messages.Delta(data)
	if !ok || kind == messages.DeltaThinking { // signed: checked by no guardrail, as on chat
		return append(out, raw...)
	}
	b, ok := s.held[idx]
	if !ok {
		k := guardrails.Content
		if kind == messages.DeltaToolInput {
			k = guardrails.ToolArguments
		}
		b = heldBlock{s.guard.NewStream(k), kind}
		s.held[idx] = b
	}
	released, err := b.g.Write(text)
	if err != nil {
		return s.block(out, err)
	}
	if released == text {
		return append(out, raw...)
	}
	d, err := messages.SetDelta(data, kind, released)
	if err != nil {
		return s.block(out, err)
	}
	return translate.AppendData(append(out, "event: content_block_delta\n"...), d)
}

// release sends what a block's guard held back, before its stop.
func (s *nativeMessagesStream) release(out, data []byte) []byte {
	idx, _ := messages.BlockStop(data)
	b, ok := s.held[idx]
	if !ok {
		return out
	}
	delete(s.held, idx)
	rest, err := b.g.Close()
	if err != nil {
		return s.block(out, err)
	}
	if rest == "" {
		return out
	}
	return messages.AppendDelta(out, idx, b.kind, rest)
}

// block ends the stream with the guardrail's error event.
func (s *nativeMessagesStream) block(out []byte, err error) []byte {
	s.blocked, s.errored = true, true
	return append(out, messages.FromOpenAI(guardError(err)).Event()...)
}

func (s *nativeMessagesStream) Event(out, _, data []byte) []byte {
	return s.Raw(out, translate.AppendData(nil, data), data)
}

func (s *nativeMessagesStream) State() (done, errored bool) { return s.done, s.errored }

// completionText counts text and tool-input deltas, as the reader counts a
// chat stream translated from Anthropic.
func (*nativeMessagesStream) completionText(data []byte) int { return deltaText(data) }

// End adds nothing: a native stream cut short has no message_stop, which
// the Anthropic SDKs report themselves.
func (s *nativeMessagesStream) End(out []byte) ([]byte, bool) { return out, s.done && !s.errored }

func (s *nativeMessagesStream) Usage() (usage.Usage, bool) {
	u, final, ok := s.u.Usage()
	return u, ok && final
}

func (s *nativeMessagesStream) Partial() (usage.Usage, bool) {
	u, _, ok := s.u.Usage()
	return u, ok
}

// chatToMessages turns a Chat Completions answer into a Messages answer:
// an OpenAI-schema provider's own, or the one the provider's chat
// translator (chat) makes of its answer. Output guardrails run on the chat
// chunks before translation, so they see exactly what they see on chat.
type chatToMessages struct {
	guard *outputGuard
	chat  translate.Schema // the provider's chat translator; nil: the provider speaks chat
}

// Framing is the provider's: the stream reader cuts the provider's events.
func (c chatToMessages) Framing() translate.Framing {
	if c.chat == nil {
		return translate.FramingSSE
	}
	return translate.FramingOf(c.chat)
}

func (chatToMessages) Path(string) (string, bool) { return "", false }
func (chatToMessages) Request(body []byte, _ string, _ translate.RequestOptions) ([]byte, error) {
	return body, nil
}
func (chatToMessages) Headers() [][2]string { return nil }

func (c chatToMessages) Response(body []byte, model string) ([]byte, usage.Usage, bool, error) {
	var u usage.Usage
	var ok bool
	if c.chat != nil {
		var err error
		if body, u, ok, err = c.chat.Response(body, model); err != nil {
			return nil, u, ok, anthropicRefusal(oaierror.Internal(502, "bad_provider_response", "The provider's response could not be read."))
		}
	} else {
		u, ok = usage.FromOpenAI(body)
	}
	if c.guard != nil {
		var err error
		if body, err = c.guard.response(body); err != nil {
			return nil, u, ok, anthropicRefusal(guardError(err))
		}
	}
	out, err := messages.FromChat(body, model)
	if err != nil {
		return nil, u, ok, anthropicRefusal(oaierror.Internal(502, "bad_provider_response", "The provider's response could not be read."))
	}
	return out, u, ok, nil
}

func (c chatToMessages) Error(status int, body []byte) (int, []byte) {
	if c.chat != nil {
		status, body = c.chat.Error(status, body)
	}
	e := messages.FromOpenAIBody(status, body)
	return e.Status, e.Body()
}

func (c chatToMessages) NewStream(model string, _ bool) translate.Stream {
	s := &chatToMessagesStream{st: messages.NewStream(model), guard: c.guard, textOf: openAIText}
	if c.chat != nil {
		// The chat stream always carries its usage: message_delta reports it.
		s.chat = c.chat.NewStream(model, true)
		if translate.FramingOf(c.chat) == translate.FramingEventStream {
			s.textOf = eventStreamText
		}
	}
	return s
}

// chatToMessagesStream translates chat chunks into Messages events, guarding
// each chunk first. With a provider chat translator (chat), the provider's
// events become chat chunks first.
type chatToMessagesStream struct {
	st      *messages.Stream
	guard   *outputGuard
	blocked bool

	chat   translate.Stream      // nil: the provider's events are chat chunks
	buf    []byte                // chat's chunks for one provider event
	sc     sse.Scanner           // reads them back
	textOf func(data []byte) int // completion text of one provider event
}

// completionText counts the provider's completion text as the reader counts
// it on chat to the same provider.
func (s *chatToMessagesStream) completionText(data []byte) int { return s.textOf(data) }

func (s *chatToMessagesStream) Event(out, name, data []byte) []byte {
	if s.chat == nil {
		return s.chunk(out, data)
	}
	s.buf = s.chat.Event(s.buf[:0], name, data)
	return s.chunks(out, s.buf)
}

// chunks translates the chat chunks a provider chat translator wrote.
func (s *chatToMessagesStream) chunks(out, chunks []byte) []byte {
	if len(chunks) == 0 {
		return out
	}
	s.sc.Reset()
	s.sc.Feed(chunks)
	s.sc.Finish()
	for {
		ev, more := s.sc.Next()
		if !more {
			return out
		}
		if ev.Data != nil && !ev.IsComment() {
			out = s.chunk(out, ev.Data)
		}
	}
}

// chunk translates one chat chunk.
func (s *chatToMessagesStream) chunk(out, data []byte) []byte {
	if s.blocked {
		return out
	}
	if s.guard != nil && len(data) > 0 && data[0] == '{' {
		g, err := s.guard.chunk(data)
		if err != nil {
			s.blocked = true
			return append(out, messages.FromOpenAI(guardError(err)).Event()...)
		}
		data = g
	}
	return s.st.Event(out, data)
}

func (s *chatToMessagesStream) End(out []byte) ([]byte, bool) {
	chatDone := true
	if s.chat != nil && !s.blocked {
		s.buf, chatDone = s.chat.End(s.buf[:0])
		out = s.chunks(out, s.buf)
	}
	if s.blocked {
		return out, false
	}
	out, complete := s.st.End(out)
	return out, complete && chatDone
}

func (s *chatToMessagesStream) Usage() (usage.Usage, bool) {
	if s.chat != nil {
		return s.chat.Usage()
	}
	return s.st.Usage()
}

func (s *chatToMessagesStream) Partial() (usage.Usage, bool) {
	if s.chat != nil {
		return s.chat.Partial()
	}
	return s.st.Usage()
}

// streamEnder is a Stream whose API ends a stream the gateway cut in its
// own error event (Anthropic's event: error).
type streamEnder interface {
	budgetEvent() []byte
}

// budgetEvent is the error event that ends a stream whose budget ran out,
// in the stream's own format.
func budgetEvent(st translate.Stream) []byte {
	if e, ok := st.(streamEnder); ok {
		return e.budgetEvent()
	}
	return budgetErrorEvent
}

// anthropicBudgetEvent is budgetErrorEvent as Anthropic's error event: a
// spent budget is billing_error, the type Anthropic uses for credit that ran
// out.
var anthropicBudgetEvent = (&messages.Error{Status: 402, Type: messages.TypeBilling,
	Message: "The budget for this app is spent; the stream was ended. (insufficient_quota)"}).Event()

func (*nativeMessagesStream) budgetEvent() []byte { return anthropicBudgetEvent }
func (*chatToMessagesStream) budgetEvent() []byte { return anthropicBudgetEvent }
