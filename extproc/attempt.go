package extproc

import (
	"context"
	"errors"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/extproc/internal/jsonscan"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
)

// Fallback chains put a second ext_proc filter on Envoy's chain cluster, as
// an upstream filter: one gRPC stream per attempt (spec §6). The downstream
// exchange chooses the chain and leaves the body in OpenAI's format; each
// attempt learns from its attributes which provider's endpoint Envoy picked,
// and translates and authenticates the request for that provider.
//
// Upstream, an ImmediateResponse is dropped and the attempt would hang until
// a timeout (spec §2.6), so this handler never refuses: everything that can
// be refused was checked downstream. And request headers persist across
// attempts (spec §6), so every attempt sets the full set of routing and
// credential headers and removes the other providers' ones.

const (
	attrsKey        = "envoy.filters.http.ext_proc"
	attrProvider    = "xds.upstream_host_metadata.filter_metadata['tollgate']['provider']"
	attrAttemptNo   = "upstream.request_attempt_count"
	metaModel       = "model"
	metaEndpoint    = "endpoint"
	metaStream      = "stream"
	metaClientUsage = "client_usage"
)

// providerHeaders are every header a provider credential or schema may set;
// an attempt removes those its own provider does not use.
var providerHeaders = [...]string{"authorization", "x-api-key", "api-key", "anthropic-version",
	"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}

// isAttempt reports whether a stream's first message comes from the upstream
// filter of a chain cluster: only that filter asks for the upstream host's
// metadata and the attempt count.
func isAttempt(req *extprocv3.ProcessingRequest) bool {
	f := req.GetAttributes()[attrsKey].GetFields()
	_, a := f[attrAttemptNo]
	_, p := f[attrProvider]
	return a || p
}

// attempt is one upstream attempt of a fallback chain.
type attempt struct {
	srv    *Server
	snap   *Snapshot
	member routing.Target
	ok     bool
	ep     routing.Endpoint
	stream bool
	usage  bool // the client asked for include_usage
	reqID  string
}

func (a *attempt) handle(req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, string) {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		a.onHeaders(req, headersOf(r.RequestHeaders.GetHeaders()))
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocv3.HeadersResponse{}}}, "attempt_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
			RequestBody: &extprocv3.BodyResponse{Response: a.onBody(r.RequestBody.GetBody())}}}, "attempt_body"
	case *extprocv3.ProcessingRequest_ResponseHeaders: // modes are SKIP upstream; answer correctly anyway
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
			ResponseHeaders: &extprocv3.HeadersResponse{}}}, "attempt_response"
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
			ResponseBody: &extprocv3.BodyResponse{}}}, "attempt_response"
	}
	return nil, "unknown"
}

func (a *attempt) onHeaders(req *extprocv3.ProcessingRequest, h headers) {
	a.reqID = h.get("x-request-id")
	provider := req.GetAttributes()[attrsKey].GetFields()[attrProvider].GetStringValue()
	md := req.GetMetadataContext().GetFilterMetadata()[metadataNamespace].GetFields()
	if a.snap == nil {
		a.fail("no configuration loaded", provider)
		return
	}
	t, ok := a.snap.Routes.Resolve(md[metaModel].GetStringValue())
	if !ok || t.Chain == nil {
		a.fail("the request's model is not a fallback chain", provider)
		return
	}
	if a.member, a.ok = t.Chain.Member(provider); !a.ok {
		a.fail("the attempt's endpoint names a provider that is not in the chain", provider)
		return
	}
	a.ep = routing.EndpointChat
	if md[metaEndpoint].GetStringValue() == routing.EndpointEmbeddings.String() {
		a.ep = routing.EndpointEmbeddings
	}
	a.srv.traceAttempt(a.reqID, provider, int64(req.GetAttributes()[attrsKey].GetFields()[attrAttemptNo].GetNumberValue()))
	a.stream = md[metaStream].GetBoolValue()
	a.usage = md[metaClientUsage].GetBoolValue()
}

// fail records a chain misconfiguration (the Envoy chain cluster and the
// gateway config disagree). The attempt goes on untranslated and without a
// credential, so the provider refuses it and Envoy moves to the next one.
func (a *attempt) fail(why, provider string) {
	a.srv.log.Error("fallback attempt cannot be prepared", zap.String("request_id", a.reqID),
		zap.String("reason", why), zap.String("provider", provider))
}

func (a *attempt) onBody(body []byte) *extprocv3.CommonResponse {
	var mu mutation
	for _, h := range providerHeaders {
		mu.remove(h) // whatever an earlier attempt set; this one's are set below
	}
	if !a.ok {
		return &extprocv3.CommonResponse{HeaderMutation: mu.get()}
	}
	p := a.member.Provider
	out, err := a.translate(body)
	if err != nil {
		a.fail("the request cannot be translated: "+err.Error(), p.Name)
		return &extprocv3.CommonResponse{HeaderMutation: mu.get()}
	}
	path, _ := p.UpstreamPath(a.ep, a.member.Model, a.stream)
	mu = mutation{}
	set := map[string]bool{}
	header, value, cerr := p.Credential()
	if cerr == nil && header != "" {
		mu.set(header, value)
		set[header] = true
	}
	if tr := p.Translator; tr != nil {
		for _, h := range tr.Headers() {
			mu.set(h[0], h[1])
			set[h[0]] = true
		}
	}
	if p.MintsCredential() {
		// Last, over this attempt's own body and path (see cloud.go).
		hs, err := mint(context.Background(), p, path, out, a.srv.now())
		if err != nil {
			// As for a translation error: no credential at all, so the
			// provider refuses the attempt and Envoy moves on.
			a.fail("the provider credential cannot be minted: "+err.Error(), p.Name)
			var rm mutation
			for _, h := range providerHeaders {
				rm.remove(h)
			}
			return &extprocv3.CommonResponse{HeaderMutation: rm.get()}
		}
		for _, h := range hs {
			mu.set(h[0], h[1])
			set[h[0]] = true
		}
	}
	for _, h := range providerHeaders {
		if !set[h] {
			mu.remove(h)
		}
	}
	mu.set(":path", path)
	mu.setContentLength(len(out))
	return &extprocv3.CommonResponse{
		HeaderMutation: mu.get(),
		BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}},
	}
}

// translate prepares the OpenAI-format body for the attempt's provider. It
// always returns a full replacement: the body Envoy re-sends on a retry is
// the original, never an earlier attempt's.
func (a *attempt) translate(body []byte) ([]byte, error) {
	p := a.member.Provider
	if tr := p.Translator; tr != nil {
		return tr.Request(body, a.member.Model, translate.RequestOptions{DefaultMaxTokens: p.DefaultMaxTokens, Stream: a.stream})
	}
	// The downstream filter validated this body (it forwarded it); the
	// edits are one splice pass, as there.
	members, err := jsonscan.Object(body, nil)
	if err != nil {
		return nil, err
	}
	req := upstreamRequest{body: body, members: members}
	req.setModel(a.member.Model)
	if a.stream && !a.usage && a.ep == routing.EndpointChat {
		req.includeUsage()
	}
	if !req.applyEdits() {
		return nil, errors.New("overlapping body edits")
	}
	return req.body, nil
}

// chainMetadata is what the downstream exchange tells every attempt.
func (x *exchange) chainMetadata(f map[string]*structpb.Value) {
	f[metaEndpoint] = structpb.NewStringValue(x.endpoint.String())
	f[metaStream] = structpb.NewBoolValue(x.stream)
	f[metaClientUsage] = structpb.NewBoolValue(x.clientUsage)
}

// answeredBy switches a chain request to the member whose provider answered,
// named by the downstream filter's response attributes, so the response is
// read and translated for that provider.
func (x *exchange) answeredBy(req *extprocv3.ProcessingRequest) {
	ch := x.target.Chain
	if ch == nil {
		return
	}
	provider := req.GetAttributes()[attrsKey].GetFields()[attrProvider].GetStringValue()
	m, ok := ch.Member(provider)
	if !ok {
		return // not from a chain endpoint (or not reported): keep the primary
	}
	x.target = m
	x.rec.provider, x.rec.providerModel = m.Provider.Name, m.Model
	// An OpenAI-format member was asked for include_usage by its attempt.
	x.injectedUsage = x.stream && !x.clientUsage && m.Provider.Translator == nil
}
