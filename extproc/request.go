package extproc

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/extproc/internal/jsonscan"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
)

// upstreamRequest is the request as it will leave for the provider.
type upstreamRequest struct {
	body        []byte
	bodyChanged bool
	path        string // upstream :path, once routed
	mu          mutation

	// Changes queued for spliceBody (body.go), over the client's bytes.
	members []jsonscan.Member // the client body's top-level members
	edits   []splice
	deleted []bool // by member index
	added   []byte // new members, each followed by a comma
	pinned  bool   // something kept aliases the client's bytes: no in-place edits
	texts   []byte // room for the edits' texts (quoted); each text is capped
}

func (x *exchange) onRequestHeaders(m *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	h := headersOf(m.GetHeaders())
	x.rec.requestID = h.get("x-request-id")
	x.startSpan(h)
	x.noBody = m.GetEndOfStream()
	// One object for the reply's four messages, each used in place, and
	// the steps' mutation (which the steps' function values would move to
	// the heap on its own) with room for the headers it removes.
	r := &struct {
		resp   extprocv3.ProcessingResponse
		oneof  extprocv3.ProcessingResponse_RequestHeaders
		hr     extprocv3.HeadersResponse
		common extprocv3.CommonResponse
		mu     mutation
		bare   bareChunk
	}{}
	mu := &r.mu
	mu.bare = &r.bare
	if r := x.runHeaderSteps(frontSteps, h, mu); r != nil {
		return r
	}
	if r := x.runHeaderSteps(x.proc.headers, h, mu); r != nil {
		return r
	}
	r.common.HeaderMutation = mu.m
	r.common.ClearRouteCache = x.forwarded // forwarded from headers: a cluster was chosen
	r.hr.Response = &r.common
	r.oneof.RequestHeaders = &r.hr
	r.resp.Response = &r.oneof
	return &r.resp
}

// runHeaderSteps runs steps in order. It returns the reply that ends the
// request early (a refusal, or a step's own answer), or nil.
func (x *exchange) runHeaderSteps(steps []headerStep, h headers, mu *mutation) *extprocv3.ProcessingResponse {
	for _, s := range steps {
		if err := s.run(x, h, mu); err != nil {
			return x.refuseStep(stepFailed(s.name, err))
		}
		if x.answer != nil {
			return x.answer
		}
	}
	return nil
}

// runBodySteps is runHeaderSteps for body steps.
func (x *exchange) runBodySteps(steps []bodyStep, req *upstreamRequest) *extprocv3.ProcessingResponse {
	for _, s := range steps {
		if err := s.run(x, req); err != nil {
			return x.refuseStep(stepFailed(s.name, err))
		}
		if x.answer != nil {
			return x.answer
		}
	}
	return nil
}

func (x *exchange) onRequestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if x.proc == nil { // a body without accepted headers: Envoy never sends one
		return x.refuse(oaierror.Internal(500, "internal_error", "The gateway could not process the request."))
	}
	r := newRequestBodyReply()
	req := &r.req
	req.body = b.GetBody()
	req.members, req.edits, req.texts = r.members[:0], r.edits[:0], r.texts[:0]
	req.mu.room = &r.headers
	x.reqBytes = len(req.body)
	if r := x.runBodySteps(x.proc.body, req); r != nil {
		return r
	}
	if r := x.runBodySteps(x.proc.deliver[kindOf(x.target)], req); r != nil {
		return r
	}
	r.common.HeaderMutation = req.mu.get()
	// The cluster header was set in this same reply: Envoy honours the
	// clear only alongside a header mutation (Envoy ext_proc API: CommonResponse.clear_route_cache).
	r.common.ClearRouteCache = true
	if req.bodyChanged {
		r.bodyMu.Body = req.body
		r.bm.Mutation = &r.bodyMu
		r.common.BodyMutation = &r.bm
	}
	x.forwarded, x.forwardedAt = true, x.srv.now()
	r.resp.DynamicMetadata = x.sharedMetadata()
	return &r.resp
}

// requestBodyReply is the messages of a request body reply, allocated
// together with the request the body steps edit and room for its first
// members, edits and their texts: one object instead of ten. Each is used
// in place, never copied.
type requestBodyReply struct {
	resp   extprocv3.ProcessingResponse
	oneof  extprocv3.ProcessingResponse_RequestBody
	br     extprocv3.BodyResponse
	common extprocv3.CommonResponse
	bm     extprocv3.BodyMutation
	bodyMu extprocv3.BodyMutation_Body

	req     upstreamRequest
	headers firstChunk         // req.mu's
	members [8]jsonscan.Member // the top-level members of most requests
	edits   [2]splice          // the model, stream options
	texts   [48]byte           // a quoted model id
}

func newRequestBodyReply() *requestBodyReply {
	r := &requestBodyReply{}
	r.br.Response = &r.common
	r.oneof.RequestBody = &r.br
	r.resp.Response = &r.oneof
	return r
}

// refuseStep ends the request with a step's refusal. The log and the
// refusal metric name the step; an internal cause is logged, never sent.
func (x *exchange) refuseStep(e stepError) *extprocv3.ProcessingResponse {
	x.rec.refusalStep = e.step
	if e.cause != nil {
		x.log().Warn("request refused", zap.String("step", e.step), zap.String("code", e.client.Code), zap.Error(e.cause))
	}
	x.srv.metrics.refused(e.step, e.client.Code)
	return x.refuse(e.client)
}

// metadataNamespace is the dynamic-metadata namespace the Envoy config lists
// in receiving_namespaces; Envoy drops any other (Envoy ext_proc API: ProcessingResponse.dynamic_metadata).
const metadataNamespace = "tollgate"

// metadata exposes the routing decision to Envoy's access log as
// %DYNAMIC_METADATA(tollgate:model)% and friends. Never secrets.
func (x *exchange) metadata() *structpb.Struct {
	// One allocation for every value and struct instead of two per value.
	// Each element is used in place, never copied.
	a := &struct {
		vals  [6]structpb.Value
		strs  [6]structpb.Value_StringValue
		inner structpb.Struct
		outer structpb.Struct
		ns    structpb.Value
		nsv   structpb.Value_StructValue
	}{}
	// Six entries fit a map's first group of eight; a hint above eight
	// would allocate a full table.
	n := 6
	if x.target.Chain != nil {
		n += 3 // chainMetadata
	}
	f := make(map[string]*structpb.Value, n)
	for i, v := range x.metadataValues() {
		a.strs[i].StringValue = v
		a.vals[i].Kind = &a.strs[i]
		f[metadataKeys[i]] = &a.vals[i]
	}
	if x.target.Chain != nil {
		x.chainMetadata(f)
	}
	a.inner.Fields = f
	a.nsv.StructValue = &a.inner
	a.ns.Kind = &a.nsv
	a.outer.Fields = map[string]*structpb.Value{metadataNamespace: &a.ns}
	return &a.outer
}

// metadataKeys are the names of metadata's values, in metadataValues' order.
var metadataKeys = [6]string{"key_id", "tenant", "app", metaModel, "provider", "provider_model"}

// metadataValues are the values of the metadata Struct but a chain's.
type metadataValues [6]string

func (x *exchange) metadataValues() metadataValues {
	r := &x.rec
	return metadataValues{r.keyID, r.tenant, r.app, r.model, r.provider, r.providerModel}
}

// sharedMetadata is metadata, shared with earlier requests of the same
// values (metadataCache). Only for a reply that is encoded and never
// changed: replyMetadata adds to its Struct.
func (x *exchange) sharedMetadata() *structpb.Struct {
	if x.target.Chain != nil {
		return x.metadata()
	}
	v := x.metadataValues()
	if s := x.srv.meta.get(v); s != nil {
		return s
	}
	s := x.metadata()
	x.srv.meta.add(v, s)
	return s
}

// metadataCache holds the request body reply's metadata Struct by its
// values, which repeat across requests (a key, an app, a model): building
// one is five objects (the Struct, its values, two maps) and 0.85 µs. A
// Struct in it is shared by replies that are only encoded. The map is
// replaced on each addition, never written, so a read takes no lock; it
// stops growing at metadataCacheCap sets of values.
type metadataCache struct {
	m atomic.Pointer[map[metadataValues]*structpb.Struct]
}

const metadataCacheCap = 1024

func (c *metadataCache) get(v metadataValues) *structpb.Struct {
	if m := c.m.Load(); m != nil {
		return (*m)[v]
	}
	return nil
}

func (c *metadataCache) add(v metadataValues, s *structpb.Struct) {
	for {
		old := c.m.Load()
		var n int
		if old != nil {
			n = len(*old)
		}
		if n >= metadataCacheCap {
			return
		}
		next := make(map[metadataValues]*structpb.Struct, n+1)
		if old != nil {
			maps.Copy(next, *old)
		}
		next[v] = s
		if c.m.CompareAndSwap(old, &next) {
			return
		}
	}
}

// sanitizeHeaders removes what a client must not send upstream
// (strippedUpstream): gateway headers (a client could otherwise pick a
// cluster itself), its credentials, identity headers, provider account scope,
// and accept-encoding.
func sanitizeHeaders(_ *exchange, h headers, mu *mutation) error {
	removeMatching(h, mu, strippedUpstream)
	return nil
}

// authenticate finds the gateway key in Authorization: Bearer, api-key or
// x-api-key.
func authenticate(x *exchange, h headers, _ *mutation) error {
	presented := ""
	if v := h.get("authorization"); v != "" {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			presented = strings.TrimSpace(v[7:])
		}
	} else if v := h.get("api-key"); v != "" {
		presented = v
	} else if v := h.get("x-api-key"); v != "" {
		presented = v
	}
	k, ok := x.snap.Keys.Authenticate(presented, x.start)
	if !ok {
		return oaierror.InvalidAPIKey()
	}
	x.key = k
	x.rec.keyID = k.ID
	return nil
}

// The body steps the JSON endpoints share, in chain order. Each endpoint's
// file lists the ones it runs.
var (
	stepParseJSON     = bodyStep{"parse_json", parseJSON}
	stepParseStream   = bodyStep{"parse_stream", parseStream}
	stepSelectApp     = bodyStep{"select_app", selectApp}
	stepCheckAgent    = bodyStep{"check_agent", checkAgent}
	stepCheckMetadata = bodyStep{"check_metadata", checkMetadata}
	stepResolveModel  = bodyStep{"resolve_model", resolveModel}
	stepCheckOffered  = bodyStep{"check_offered", checkOffered}
	stepConfine       = bodyStep{"confine", confine}
	stepCaptureInput  = bodyStep{"capture_input", captureInputStep}
	// admit for chat (prompt estimate and output cap), for other text
	// bodies (embeddings, responses, messages: prompt estimate; messages
	// read their own cap first) and for audio (nothing to estimate).
	stepAdmitChat           = bodyStep{"admit", admitWith(admission{promptTokens: true, capOutput: true})}
	stepAdmitText           = bodyStep{"admit", admitWith(admission{promptTokens: true})}
	stepAdmitAudio          = bodyStep{"admit", admitWith(admission{})}
	stepStripGatewayFields  = bodyStep{"strip_gateway_fields", stripGatewayFields}
	stepRewriteModel        = bodyStep{"rewrite_model", rewriteModel}
	stepTranslateBody       = bodyStep{"translate_body", translateBody}
	stepCheckChainMembers   = bodyStep{"check_chain_members", checkChainMembers}
	stepInjectStreamUsage   = bodyStep{"inject_stream_usage", injectStreamUsage}
	stepSpliceBody          = bodyStep{"splice_body", spliceBody}
	stepMockChat            = bodyStep{"answer_mock", answerMockChat}
	stepMockEmbeddings      = bodyStep{"answer_mock", answerMockEmbeddings}
	stepUnsupportedEndpoint = bodyStep{"unsupported_endpoint", unsupportedEndpoint}
	stepRouteUpstream       = bodyStep{"route_upstream", routeUpstream}
	stepTranslatorHeaders   = bodyStep{"translator_headers", translatorHeaders}
	stepRouteChain          = bodyStep{"route_chain", routeChain}
	stepMintCredential      = bodyStep{"mint_credential", mintCredential} // last: a signature covers the final body and path
)

// admitWith and captureInputStep adapt admit (meter.go) and captureInput
// (trace.go) to the body-step signature.
func admitWith(a admission) func(*exchange, *upstreamRequest) error {
	return func(x *exchange, req *upstreamRequest) error {
		if err := admit(x, req, a); err != nil {
			return err
		}
		return nil
	}
}

func captureInputStep(x *exchange, req *upstreamRequest) error {
	if err := captureInput(x, req); err != nil {
		return err
	}
	return nil
}

// parseJSON validates the JSON body and reads model, stream_options and the
// gateway's own tollgate_* fields. The body is validated once, with no key
// twice at any depth, no invalid UTF-8 and no lone surrogate, so that every
// value read here and by later steps is the one a provider's parser reads
// (see body.go).
func parseJSON(x *exchange, req *upstreamRequest) error {
	if req.members == nil {
		// Room for the top-level members of most requests, in one
		// allocation rather than one per doubling.
		req.members = make([]jsonscan.Member, 0, 8)
	}
	members, err := jsonscan.Object(req.body, req.members[:0])
	if err != nil {
		return bodyError(err)
	}
	req.members = members
	if err := parseGatewayFields(x, req); err != nil {
		return err
	}
	model := req.get("model")
	x.bodyModel = clone(model.Str)
	switch {
	case x.deployment != "":
		// Azure-style: the deployment in the path names the model.
		x.rec.model = x.deployment
	case !model.Exists() || (model.Type == gjson.String && model.Str == ""):
		return oaierror.InvalidRequest("missing_required_parameter", "model", "You must provide a model parameter.")
	case model.Type != gjson.String:
		return oaierror.InvalidRequest("invalid_type", "model", "The model parameter must be a string.")
	default:
		x.rec.model = x.bodyModel
	}
	usage := req.get("stream_options").Get("include_usage")
	x.clientUsage = usage.Type == gjson.True
	x.read("model", model)
	x.read("stream_options.include_usage", usage)
	return nil
}

// parseStream reads whether the client asked for an SSE stream.
func parseStream(x *exchange, req *upstreamRequest) error {
	switch s := req.get("stream"); s.Type {
	case gjson.True:
		x.stream = true
	case gjson.False, gjson.Null:
	default:
		if s.Exists() {
			return oaierror.InvalidRequest("invalid_type", "stream", "The stream parameter must be a boolean.")
		}
	}
	x.rec.stream = x.stream
	x.read("stream", req.get("stream"))
	return nil
}

// resolveModel chooses the target for the model the client named.
func resolveModel(x *exchange, _ *upstreamRequest) error {
	t, ok := x.snap.Routes.Choose(x.rec.model, x.srv.intn)
	if !ok {
		return oaierror.ModelNotFound(x.rec.model)
	}
	x.target = t
	x.rec.provider = t.Provider.Name
	x.rec.providerModel = t.Model
	return nil
}

// checkOffered refuses a model whose providers do not offer the endpoint:
// every provider the request may reach, a fallback chain's members or the
// target itself.
func checkOffered(x *exchange, _ *upstreamRequest) error {
	reach := [1]routing.Target{x.target}
	members := reach[:]
	if ch := x.target.Chain; ch != nil {
		members = ch.Members
	}
	for _, m := range members {
		if _, ok := m.Provider.Path(x.endpoint, m.Model); !ok {
			return oaierror.InvalidRequest("unsupported_endpoint", "model", "The model "+quote(x.rec.model)+" does not support "+x.endpoint.String()+".")
		}
	}
	return nil
}

// rewriteModel writes the provider's model id into an OpenAI-format body.
func rewriteModel(x *exchange, req *upstreamRequest) error {
	if x.target.Model == x.bodyModel {
		return nil
	}
	req.setModel(x.target.Model)
	return nil
}

// translateBody turns the body into the provider's own schema. The
// translator reads the body as the provider will get it: redacted and
// without gateway fields.
func translateBody(x *exchange, req *upstreamRequest) error {
	if !req.applyEdits() {
		return failure(errRewrite(), errOverlap)
	}
	p := x.target.Provider
	b, err := p.Translator.Request(req.body, x.target.Model, translate.RequestOptions{
		DefaultMaxTokens: p.DefaultMaxTokens, Stream: x.stream})
	if err != nil {
		return translateError(err, "The request cannot be sent to this model's provider.")
	}
	req.body, req.bodyChanged = b, true
	return nil
}

// checkChainMembers refuses what any member of a fallback chain could not
// take, given the body as it will leave. Each attempt translates for its
// own provider upstream, where a refusal is impossible (Envoy ext_proc API: ImmediateResponse).
func checkChainMembers(x *exchange, req *upstreamRequest) error {
	if !req.applyEdits() {
		return failure(errRewrite(), errOverlap)
	}
	for _, m := range x.target.Chain.Members {
		if tr := m.Provider.Translator; tr != nil {
			if _, err := tr.Request(req.body, m.Model, translate.RequestOptions{DefaultMaxTokens: m.Provider.DefaultMaxTokens, Stream: x.stream}); err != nil {
				return translateError(err, "The request cannot be sent to this model's providers.")
			}
		}
	}
	return nil
}

// translateError is the client's refusal for a body a translator refused:
// the translator's own OpenAI error, else a generic one with the cause logged.
func translateError(err error, msg string) error {
	var oe *oaierror.Error
	if errors.As(err, &oe) {
		return oe // the client's request, not the gateway, is at fault
	}
	return failure(oaierror.InvalidRequest("unsupported_request", "", msg), err)
}

func errRewrite() *oaierror.Error {
	return oaierror.Internal(500, "rewrite_failed", "The gateway could not rewrite the request body.")
}

// injectStreamUsage asks the provider for the usage chunk when the client did
// not, so every stream is metered. The response side then removes what the
// client did not ask for, so it sees the stream it would have seen. Only
// OpenAI-format targets need it: translated streams report usage anyway, and
// chain attempts ask for it themselves.
func injectStreamUsage(x *exchange, req *upstreamRequest) error {
	if !x.stream || x.clientUsage {
		return nil
	}
	x.injectedUsage = true
	req.includeUsage()
	return nil
}

// spliceBody writes the queued changes to the body in one pass.
func spliceBody(_ *exchange, req *upstreamRequest) error {
	if !req.applyEdits() {
		return failure(errRewrite(), errOverlap)
	}
	return nil
}

// unsupportedEndpoint refuses a target that cannot serve the endpoint; the
// endpoint's checkOffered refuses it first.
func unsupportedEndpoint(x *exchange, _ *upstreamRequest) error {
	return oaierror.InvalidRequest("unsupported_endpoint", "model", "The model "+quote(x.rec.model)+" does not support "+x.endpoint.String()+".")
}

// routeUpstream points the request at the provider: cluster, path,
// credential and an exact content-length.
func routeUpstream(x *exchange, req *upstreamRequest) error {
	p := x.target.Provider
	header, value, err := p.Credential()
	if x.target.Direct {
		// Bring your own key: a tenant's own credential serves its
		// provider/model requests. If it cannot be read the request fails
		// rather than silently billing the platform's account.
		if own, ok, ownErr := x.snap.Tenants.Credential(x.key.Tenant, p.Name); ok {
			value, err, x.rec.byok = own, ownErr, true
		}
	}
	if err != nil {
		return failure(oaierror.Internal(503, "provider_unavailable", "The provider for this model is not available."),
			fmt.Errorf("provider %s credential (byok %t): %w", p.Name, x.rec.byok, err))
	}
	path, _ := p.UpstreamPath(x.endpoint, x.target.Model, x.stream) // checkOffered checked it is offered
	req.path = path
	mu := &req.mu
	mu.set(clusterHeader, p.Cluster)
	mu.set(":path", path)
	if header != "" {
		mu.set(header, value)
	}
	if req.bodyChanged {
		mu.setContentLength(len(req.body))
	}
	return nil
}

// translatorHeaders adds the headers a provider's schema requires (such as
// anthropic-version).
func translatorHeaders(x *exchange, req *upstreamRequest) error {
	for _, h := range x.target.Provider.Translator.Headers() {
		req.mu.set(h[0], h[1])
	}
	return nil
}

// routeChain points the request at a fallback chain's cluster. Its
// upstream filter sets path and credential per attempt (attempt.go); the
// body stays in OpenAI's format until then.
func routeChain(x *exchange, req *upstreamRequest) error {
	req.mu.set(clusterHeader, x.target.Chain.Cluster)
	if req.bodyChanged {
		req.mu.setContentLength(len(req.body))
	}
	return nil
}

func quote(s string) string {
	return string(oaierror.AppendString(nil, s))
}
