package extproc

import (
	"context"
	"fmt"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/extproc/internal/jsonscan"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
)

// Fallback chains put a second ext_proc filter on Envoy's chain cluster, as
// an upstream filter: one gRPC stream per attempt (Envoy router: upstream_http_filters). The downstream
// exchange chooses the chain and leaves the body in OpenAI's format; each
// attempt learns from its attributes which provider's endpoint Envoy picked,
// and translates and authenticates the request for that provider.
//
// Upstream, an ImmediateResponse is dropped and the attempt would hang until
// a timeout (Envoy ext_proc API: ImmediateResponse), so this handler never refuses: everything that can
// be refused was checked downstream. And request headers persist across
// attempts (Envoy router: upstream_http_filters), so every attempt sets the full set of routing and
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
	steps  []attemptStep // the endpoint's attempt steps for the member's kind
	stream bool
	usage  bool // the client asked for include_usage
	reqID  string
}

// attemptStep is one named step of an attempt's body chain. An attempt
// never refuses (see above): a step's error sends the attempt on without a
// credential, so the provider refuses it and Envoy moves to the next one.
type attemptStep struct {
	name string
	run  func(a *attempt, r *attemptRequest) error
}

// Name is the step's name as the log reports it.
func (s attemptStep) Name() string { return s.name }

// attemptRequest is the attempt's request as it will leave.
type attemptRequest struct {
	body []byte
	path string
	mu   mutation
	set  map[string]bool // provider headers this attempt sets
	json upstreamRequest // an OpenAI-format body's queued edits
}

func (r *attemptRequest) setHeader(name, value string) {
	r.mu.set(name, value)
	r.set[name] = true
}

// The attempt steps of the JSON endpoints. Each endpoint's file lists the
// ones it runs, per kind of chain member.
var (
	attemptRewriteModel      = attemptStep{"rewrite_model", attemptSetModel}
	attemptInjectStreamUsage = attemptStep{"inject_stream_usage", attemptIncludeUsage}
	attemptSpliceBody        = attemptStep{"splice_body", attemptSplice}
	attemptTranslateBody     = attemptStep{"translate_body", attemptTranslate}
	attemptCredential        = attemptStep{"credential", attemptStaticCredential}
	attemptTranslatorHeaders = attemptStep{"translator_headers", attemptSchemaHeaders}
	attemptPathStep          = attemptStep{"upstream_path", attemptPath}
	attemptMintCredential    = attemptStep{"mint_credential", attemptMint} // over the final body and path
	attemptFinishStep        = attemptStep{"finish", attemptFinish}
)

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
		a.fail("no configuration loaded", provider, nil)
		return
	}
	t, ok := a.snap.Routes.Resolve(md[metaModel].GetStringValue())
	if !ok || t.Chain == nil {
		a.fail("the request's model is not a fallback chain", provider, nil)
		return
	}
	if a.member, a.ok = t.Chain.Member(provider); !a.ok {
		a.fail("the attempt's endpoint names a provider that is not in the chain", provider, nil)
		return
	}
	p := attemptProcessor(a.snap.processors(), md[metaEndpoint].GetStringValue())
	a.ep = p.endpoint
	a.steps = p.attempt[providerKind(a.member.Provider)]
	a.srv.traceAttempt(a.reqID, provider, int64(req.GetAttributes()[attrsKey].GetFields()[attrAttemptNo].GetNumberValue()))
	a.stream = md[metaStream].GetBoolValue()
	a.usage = md[metaClientUsage].GetBoolValue()
}

// attemptProcessor is the processor of the endpoint the downstream exchange
// named; chat completions when it named none that chains serve.
func attemptProcessor(procs []*processor, endpoint string) *processor {
	var chat *processor
	for _, p := range procs {
		if p.attempt[kindDirect] == nil && p.attempt[kindTranslated] == nil {
			continue
		}
		if p.endpoint.String() == endpoint {
			return p
		}
		if p.endpoint == routing.EndpointChat {
			chat = p
		}
	}
	return chat
}

// fail records a chain misconfiguration (the Envoy chain cluster and the
// gateway config disagree) or an attempt that cannot be prepared. The
// attempt goes on untranslated and without a credential, so the provider
// refuses it and Envoy moves to the next one.
func (a *attempt) fail(why, provider string, cause error) {
	fields := []zap.Field{zap.String("request_id", a.reqID), zap.String("reason", why), zap.String("provider", provider)}
	if cause != nil {
		fields = append(fields, zap.Error(cause))
	}
	a.srv.log.Error("fallback attempt cannot be prepared", fields...)
}

func (a *attempt) onBody(body []byte) *extprocv3.CommonResponse {
	if !a.ok {
		return &extprocv3.CommonResponse{HeaderMutation: removeProviderHeaders()}
	}
	r := attemptRequest{body: body, set: map[string]bool{}}
	for _, s := range a.steps {
		if err := s.run(a, &r); err != nil {
			a.fail("step "+s.name+" failed", a.member.Provider.Name, err)
			return &extprocv3.CommonResponse{HeaderMutation: removeProviderHeaders()}
		}
	}
	for _, h := range providerHeaders {
		if !r.set[h] {
			r.mu.remove(h)
		}
	}
	return &extprocv3.CommonResponse{
		HeaderMutation: r.mu.get(),
		BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: r.body}},
	}
}

// removeProviderHeaders removes whatever an earlier attempt set.
func removeProviderHeaders() *extprocv3.HeaderMutation {
	var mu mutation
	for _, h := range providerHeaders {
		mu.remove(h)
	}
	return mu.get()
}

// attemptTranslate translates the OpenAI-format body for the member's
// provider. It is a full replacement: the body Envoy re-sends on a retry is
// the original, never an earlier attempt's.
func attemptTranslate(a *attempt, r *attemptRequest) error {
	p := a.member.Provider
	out, err := p.Translator.Request(r.body, a.member.Model, translate.RequestOptions{DefaultMaxTokens: p.DefaultMaxTokens, Stream: a.stream})
	if err != nil {
		return fmt.Errorf("the request cannot be translated: %w", err)
	}
	r.body = out
	return nil
}

// attemptSetModel, attemptIncludeUsage and attemptSplice edit an
// OpenAI-format body as the downstream steps of the same names do, queued
// and written in one pass. The downstream filter validated this body (it
// forwarded it).
func attemptSetModel(a *attempt, r *attemptRequest) error {
	members, err := jsonscan.Object(r.body, nil)
	if err != nil {
		return fmt.Errorf("the request cannot be translated: %w", err)
	}
	r.json = upstreamRequest{body: r.body, members: members}
	r.json.setModel(a.member.Model)
	return nil
}

func attemptIncludeUsage(a *attempt, r *attemptRequest) error {
	if a.stream && !a.usage {
		r.json.includeUsage()
	}
	return nil
}

func attemptSplice(_ *attempt, r *attemptRequest) error {
	if !r.json.applyEdits() {
		return fmt.Errorf("the request cannot be translated: %w", errOverlap)
	}
	r.body = r.json.body
	return nil
}

// attemptStaticCredential sets the provider's configured credential. One
// that cannot be read is logged, and the attempt goes on without it.
func attemptStaticCredential(a *attempt, r *attemptRequest) error {
	p := a.member.Provider
	header, value, err := p.Credential()
	if err != nil {
		a.fail("the provider credential is unavailable", p.Name, err)
		return nil
	}
	if header != "" {
		r.setHeader(header, value)
	}
	return nil
}

// attemptSchemaHeaders adds the headers the provider's schema requires.
func attemptSchemaHeaders(a *attempt, r *attemptRequest) error {
	for _, h := range a.member.Provider.Translator.Headers() {
		r.setHeader(h[0], h[1])
	}
	return nil
}

// attemptPath sets the provider's path for the endpoint.
func attemptPath(a *attempt, r *attemptRequest) error {
	r.path, _ = a.member.Provider.UpstreamPath(a.ep, a.member.Model, a.stream)
	return nil
}

// attemptMint mints the credential over this attempt's own body and path
// (see cloud.go).
func attemptMint(a *attempt, r *attemptRequest) error {
	p := a.member.Provider
	if !p.MintsCredential() {
		return nil
	}
	hs, err := mint(context.Background(), p, r.path, r.body, a.srv.now())
	if err != nil {
		return fmt.Errorf("the provider credential cannot be minted: %w", err)
	}
	for _, h := range hs {
		r.setHeader(h[0], h[1])
	}
	return nil
}

// attemptFinish writes the path and the exact content-length.
func attemptFinish(_ *attempt, r *attemptRequest) error {
	r.mu.set(":path", r.path)
	r.mu.setContentLength(len(r.body))
	return nil
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
	x.injectedUsage = x.stream && !x.clientUsage && providerKind(m.Provider) == kindDirect
}
