package extproc

import (
	"errors"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/extproc/internal/jsonscan"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
)

// headerStep is one step of the request_headers chain. It reads the request
// headers, may add to the reply's mutation, and refuses the request by
// returning an error.
type headerStep func(x *exchange, h headers, mu *mutation) *oaierror.Error

// requestHeaderSteps run in order on request_headers.
var requestHeaderSteps = []headerStep{
	requireSnapshot,
	readIdentityHeaders,
	sanitizeHeaders,
	authenticate,
	classify,
}

// bodyStep is one step of the request_body chain. It may rewrite req.body and
// add to the reply's mutation.
type bodyStep func(x *exchange, req *upstreamRequest) *oaierror.Error

// requestBodySteps run in order on the buffered request body.
var requestBodySteps = []bodyStep{
	parseRequest,
	identify,
	resolveModel,
	confine,
	guardInput,
	captureInput,
	admit,
	stripGatewayFields,
	rewriteModel,
	injectStreamUsage,
	spliceBody,
	answerMock, // schema mock: answered here, nothing below runs
	routeUpstream,
	mintCredential, // last: a signature covers the final body and path
}

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
}

func (x *exchange) onRequestHeaders(m *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	h := headersOf(m.GetHeaders())
	x.rec.requestID = h.get("x-request-id")
	x.startSpan(h)
	var mu mutation
	for _, step := range requestHeaderSteps {
		if err := step(x, h, &mu); err != nil {
			return x.refuse(err)
		}
	}
	if x.endpoint == routing.EndpointModels {
		// No body follows: identify now, from headers alone.
		if err := identify(x, nil); err != nil {
			return x.refuse(err)
		}
		return x.immediate(200, modelsList(x.snap.Routes, x.allowed), "tollgate_models")
	}
	// A POST without a body arrives with end_of_stream set and no body message
	// ever follows (spec §1.4): decide now instead of waiting.
	if m.GetEndOfStream() {
		return x.refuse(oaierror.InvalidRequest("missing_body", "", "The request body must be a JSON object."))
	}
	x.traceHeaders(&mu)
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: headersReply(&mu, false),
	}}
}

func (x *exchange) onRequestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	req := upstreamRequest{body: b.GetBody()}
	x.reqBytes = len(req.body)
	for _, step := range requestBodySteps {
		if err := step(x, &req); err != nil {
			return x.refuse(err)
		}
		if x.answer != nil {
			return x.answer
		}
	}
	common := &extprocv3.CommonResponse{
		HeaderMutation: req.mu.get(),
		// The cluster header was set in this same reply: Envoy honours the
		// clear only alongside a header mutation (spec §2.5).
		ClearRouteCache: true,
	}
	if req.bodyChanged {
		common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: req.body}}
	}
	x.forwarded, x.forwardedAt = true, x.srv.now()
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestBody{
			RequestBody: &extprocv3.BodyResponse{Response: common},
		},
		DynamicMetadata: x.metadata(),
	}
}

// metadataNamespace is the dynamic-metadata namespace the Envoy config lists
// in receiving_namespaces; Envoy drops any other (spec §2.7).
const metadataNamespace = "tollgate"

// metadata exposes the routing decision to Envoy's access log as
// %DYNAMIC_METADATA(tollgate:model)% and friends. Never secrets.
func (x *exchange) metadata() *structpb.Struct {
	f := map[string]*structpb.Value{
		"key_id":         structpb.NewStringValue(x.rec.keyID),
		"tenant":         structpb.NewStringValue(x.rec.tenant),
		"app":            structpb.NewStringValue(x.rec.app),
		metaModel:        structpb.NewStringValue(x.rec.model),
		"provider":       structpb.NewStringValue(x.rec.provider),
		"provider_model": structpb.NewStringValue(x.rec.providerModel),
	}
	if x.target.Chain != nil {
		x.chainMetadata(f)
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		metadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: f}),
	}}
}

func requireSnapshot(x *exchange, _ headers, _ *mutation) *oaierror.Error {
	if x.snap == nil {
		return oaierror.Internal(503, "not_ready", "The gateway has no configuration loaded yet.")
	}
	return nil
}

// sanitizeHeaders removes what a client must not send upstream
// (strippedUpstream): gateway headers (a client could otherwise pick a
// cluster itself), its credentials, identity headers, provider account scope,
// and accept-encoding.
func sanitizeHeaders(_ *exchange, h headers, mu *mutation) *oaierror.Error {
	removeMatching(h, mu, strippedUpstream)
	return nil
}

// authenticate finds the gateway key in Authorization: Bearer, api-key or
// x-api-key.
func authenticate(x *exchange, h headers, _ *mutation) *oaierror.Error {
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

// classify maps method and path to an endpoint.
func classify(x *exchange, h headers, _ *mutation) *oaierror.Error {
	x.method = h.get(":method")
	x.contentType = h.get("content-type")
	x.path, _ = splitPath(h.get(":path"))
	want := ""
	switch path := x.path; path {
	case "/v1/chat/completions":
		x.endpoint, want = routing.EndpointChat, "POST"
	case "/v1/embeddings":
		x.endpoint, want = routing.EndpointEmbeddings, "POST"
	case "/v1/models":
		x.endpoint, want = routing.EndpointModels, "GET"
	case "/v1/audio/transcriptions":
		x.endpoint, want = routing.EndpointTranscriptions, "POST"
	default:
		// Azure OpenAI clients put the deployment in the path; it stands for
		// the model name (an alias or provider/model).
		dep, op, ok := azureDeployment(path)
		switch {
		case ok && op == "/chat/completions":
			x.endpoint, want, x.deployment = routing.EndpointChat, "POST", dep
		case ok && op == "/embeddings":
			x.endpoint, want, x.deployment = routing.EndpointEmbeddings, "POST", dep
		case ok && op == "/audio/transcriptions":
			x.endpoint, want, x.deployment = routing.EndpointTranscriptions, "POST", dep
		default:
			return oaierror.UnknownURL(x.method, x.path)
		}
	}
	x.rec.route = x.endpoint.String()
	if x.method != want {
		return &oaierror.Error{Status: 405, Type: oaierror.TypeInvalidRequest, Code: "method_not_allowed",
			Message: "Method " + x.method + " is not allowed on " + x.path + "; use " + want + "."}
	}
	return nil
}

// parseRequest validates the JSON body and reads model, stream and the
// gateway's own tollgate_* fields. The body is validated once, with no key
// twice at any depth, no invalid UTF-8 and no lone surrogate, so that every
// value read here and by later steps is the one a provider's parser reads
// (see body.go).
func parseRequest(x *exchange, req *upstreamRequest) *oaierror.Error {
	if x.endpoint == routing.EndpointTranscriptions {
		return parseMultipart(x, req)
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
	if x.endpoint == routing.EndpointChat {
		switch s := req.get("stream"); s.Type {
		case gjson.True:
			x.stream = true
		case gjson.False, gjson.Null:
		default:
			if s.Exists() {
				return oaierror.InvalidRequest("invalid_type", "stream", "The stream parameter must be a boolean.")
			}
		}
	}
	x.rec.stream = x.stream
	usage := req.get("stream_options").Get("include_usage")
	x.clientUsage = usage.Type == gjson.True
	x.read("model", model)
	x.read("stream", req.get("stream"))
	x.read("stream_options.include_usage", usage)
	return nil
}

func resolveModel(x *exchange, _ *upstreamRequest) *oaierror.Error {
	t, ok := x.snap.Routes.Choose(x.rec.model, x.srv.intn)
	if !ok {
		return oaierror.ModelNotFound(x.rec.model)
	}
	x.target = t
	x.rec.provider = t.Provider.Name
	x.rec.providerModel = t.Model
	members := []routing.Target{t}
	if t.Chain != nil {
		if x.endpoint == routing.EndpointTranscriptions {
			// Attempts rewrite a JSON body; a multipart upload is not one.
			return oaierror.InvalidRequest("unsupported_endpoint", "model", "Audio transcriptions cannot use the fallback alias "+quote(x.rec.model)+".")
		}
		members = t.Chain.Members
	}
	for _, m := range members {
		if _, ok := m.Provider.Path(x.endpoint, m.Model); !ok {
			return oaierror.InvalidRequest("unsupported_endpoint", "model", "The model "+quote(x.rec.model)+" does not support "+x.endpoint.String()+".")
		}
	}
	return nil
}

// rewriteModel writes the provider's model id into the body, translating the
// whole body for providers that do not speak OpenAI's format.
func rewriteModel(x *exchange, req *upstreamRequest) *oaierror.Error {
	if x.endpoint == routing.EndpointTranscriptions {
		return rewriteFormModel(x, req)
	}
	if ch := x.target.Chain; ch != nil {
		// Each attempt translates for its own provider upstream, where a
		// refusal is impossible (spec §2.6): refuse here what any member
		// could not take, given the body as it will leave.
		if !req.applyEdits() {
			return errRewrite()
		}
		for _, m := range ch.Members {
			if tr := m.Provider.Translator; tr != nil {
				if _, err := tr.Request(req.body, m.Model, translate.RequestOptions{DefaultMaxTokens: m.Provider.DefaultMaxTokens, Stream: x.stream}); err != nil {
					var oe *oaierror.Error
					if errors.As(err, &oe) {
						return oe
					}
					return oaierror.InvalidRequest("unsupported_request", "", "The request cannot be sent to this model's providers.")
				}
			}
		}
		return nil
	}
	if tr := x.target.Provider.Translator; tr != nil {
		// The translator reads the body as the provider will get it:
		// redacted and without gateway fields.
		if !req.applyEdits() {
			return errRewrite()
		}
		b, err := tr.Request(req.body, x.target.Model, translate.RequestOptions{
			DefaultMaxTokens: x.target.Provider.DefaultMaxTokens, Stream: x.stream})
		if err != nil {
			var oe *oaierror.Error
			if errors.As(err, &oe) {
				return oe
			}
			return oaierror.InvalidRequest("unsupported_request", "", "The request cannot be sent to this model's provider.")
		}
		req.body, req.bodyChanged = b, true
		return nil
	}
	if x.target.Model == x.bodyModel {
		return nil
	}
	req.setModel(x.target.Model)
	return nil
}

func errRewrite() *oaierror.Error {
	return oaierror.Internal(500, "rewrite_failed", "The gateway could not rewrite the request body.")
}

// injectStreamUsage asks the provider for the usage chunk when the client did
// not, so every stream is metered. The response side then removes what the
// client did not ask for, so it sees the stream it would have seen.
func injectStreamUsage(x *exchange, req *upstreamRequest) *oaierror.Error {
	if x.target.Provider.Translator != nil || x.target.Chain != nil {
		return nil // translated streams report usage anyway; chain attempts ask for it themselves
	}
	if !x.stream || x.clientUsage {
		return nil
	}
	x.injectedUsage = true
	req.includeUsage()
	return nil
}

// spliceBody writes the queued changes to the body in one pass.
func spliceBody(x *exchange, req *upstreamRequest) *oaierror.Error {
	if x.endpoint == routing.EndpointTranscriptions {
		return nil
	}
	if !req.applyEdits() {
		return errRewrite()
	}
	return nil
}

// routeUpstream points the request at the provider: cluster, path,
// credential and an exact content-length.
func routeUpstream(x *exchange, req *upstreamRequest) *oaierror.Error {
	if ch := x.target.Chain; ch != nil {
		// The chain cluster's upstream filter sets path and credential per
		// attempt; the body stays in OpenAI's format until then.
		req.mu.set(clusterHeader, ch.Cluster)
		if req.bodyChanged {
			req.mu.setContentLength(len(req.body))
		}
		return nil
	}
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
		x.srv.log.Warn("provider credential unavailable", zapProvider(p.Name), zap.Bool("byok", x.rec.byok))
		return oaierror.Internal(503, "provider_unavailable", "The provider for this model is not available.")
	}
	path, _ := p.UpstreamPath(x.endpoint, x.target.Model, x.stream) // resolveModel checked it is offered
	req.path = path
	mu := &req.mu
	mu.set(clusterHeader, p.Cluster)
	mu.set(":path", path)
	if tr := p.Translator; tr != nil {
		for _, h := range tr.Headers() {
			mu.set(h[0], h[1])
		}
	}
	if header != "" {
		mu.set(header, value)
	}
	if req.bodyChanged {
		mu.setContentLength(len(req.body))
	}
	return nil
}

func quote(s string) string {
	return string(oaierror.AppendString(nil, s))
}
