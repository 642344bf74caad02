package extproc

import (
	"net/url"
	"strings"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
)

// A processor is one endpoint's request handling: the steps its requests
// run, chosen once per request by classify from the method and path, and
// assembled once per configuration snapshot. Every request first runs
// frontSteps, which know nothing of endpoints; classify, the last of them,
// picks the processor. Then the processor's header steps run, then, on
// the body, its body steps (up to and including resolving the target),
// then the delivery steps for the kind of target the request resolved to.
// A request to a fallback chain then runs, once per upstream attempt, the
// processor's attempt steps for the member Envoy picked.
//
// Adding an endpoint is a new file with a function that returns its
// processor, and one line in endpointProcessors: no existing step changes.
type processor struct {
	endpoint routing.Endpoint
	method   string // the one method the endpoint takes; "" when its header steps check several
	path     string // its OpenAI path
	idPrefix string // instead of path: the prefix of its OpenAI path /…/{id} ("/v1/models/")
	azureOp  string // its operation under /openai/deployments/{model}; "" if none
	headers  []headerStep
	body     []bodyStep
	deliver  [targetKinds][]bodyStep // by kindOf(target), after body
	// attempt is the fallback-attempt variant (attempt.go), by the kind of
	// the chain member Envoy picked; empty for endpoints chains cannot serve.
	attempt [targetKinds][]attemptStep
	api     *apiFormat // the endpoint's own error and response format; nil: OpenAI's (messages.go)
}

// targetKind is how a resolved target is reached: it chooses a processor's
// delivery steps.
type targetKind int

const (
	kindDirect     targetKind = iota // a provider that speaks OpenAI's format
	kindTranslated                   // a provider with its own schema
	kindChain                        // a fallback chain: Envoy's chain cluster, translated per attempt
	kindMock                         // answered by the gateway itself
	targetKinds
)

func kindOf(t routing.Target) targetKind {
	if t.Chain != nil {
		return kindChain
	}
	return providerKind(t.Provider)
}

// providerKind is how one provider is reached; a fallback chain's members
// (which carry their chain) are reached this way by their attempts.
func providerKind(p *routing.Provider) targetKind {
	switch {
	case p.Mock():
		return kindMock
	case p.Translator != nil:
		return kindTranslated
	}
	return kindDirect
}

// endpointProcessors lists every endpoint's processor, assembled for one
// snapshot. The order is the order classify tries them in.
func endpointProcessors(s *Snapshot) []*processor {
	return []*processor{
		chatProcessor(s),
		embeddingsProcessor(s),
		modelsProcessor(s),
		modelProcessor(s),
		transcriptionsProcessor(s),
		messagesProcessor(s),
		countTokensProcessor(s),
		responsesProcessor(s),
		responseResourceProcessor(s),
	}
}

// processors returns the snapshot's processors, assembled on first use.
// Two requests racing on a new snapshot may both assemble them; one set
// wins and both are the same, immutable steps. (sync.Once would cost every
// request an allocation for its closure.)
func (s *Snapshot) processors() []*processor {
	if p := s.procs.Load(); p != nil {
		return *p
	}
	p := endpointProcessors(s)
	s.procs.CompareAndSwap(nil, &p)
	return *s.procs.Load()
}

// match finds the processor for a request path under the base path: an
// OpenAI path (or one ending in an {id}), its Azure OpenAI v1 form
// (/openai/v1/…, /openai/models), or an Azure deployment path naming the
// model as its deployment.
func match(procs []*processor, base, path string) (p *processor, deployment, id string) {
	path, ok := underBase(base, path)
	if !ok {
		return nil, "", ""
	}
	path = azureV1(path)
	for _, p := range procs {
		if p.path != "" && p.path == path {
			return p, "", ""
		}
		if rest, ok := strings.CutPrefix(path, p.idPrefix); ok && p.idPrefix != "" && rest != "" {
			// SDKs escape the id ("openai%2Fgpt-4o"); Envoy's normalize_path leaves %2F as it is.
			if id, err := url.PathUnescape(rest); err == nil {
				return p, "", id
			}
			return nil, "", ""
		}
	}
	dep, op, ok := azureDeployment(path)
	if !ok {
		return nil, "", ""
	}
	for _, p := range procs {
		if p.azureOp != "" && p.azureOp == op {
			return p, dep, ""
		}
	}
	return nil, "", ""
}

// underBase returns path with the base path removed, false when the path is
// not under it. "/api/v1/llmx/..." is not under "/api/v1/llm".
func underBase(base, path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, base)
	if !ok || !strings.HasPrefix(rest, "/") {
		return "", false
	}
	return rest, true
}

// azureV1 maps the Azure OpenAI paths that carry the model in the body (or
// none) onto the OpenAI ones: /openai/v1/{op} (Azure's v1 API) and
// /openai/models (what AzureOpenAI clients list models with).
// https://learn.microsoft.com/en-us/azure/ai-foundry/openai/api-version-lifecycle
func azureV1(path string) string {
	if rest, ok := strings.CutPrefix(path, "/openai/v1/"); ok {
		return "/v1/" + rest
	}
	if path == "/openai/models" || strings.HasPrefix(path, "/openai/models/") {
		return "/v1" + strings.TrimPrefix(path, "/openai")
	}
	return path
}

// frontSteps run on every request's headers, before its endpoint is known.
var frontSteps = []headerStep{
	{"require_snapshot", requireSnapshot},
	{"read_identity_headers", readIdentityHeaders},
	{"sanitize_headers", sanitizeHeaders},
	{"error_format", errorFormat}, // before any refusal an endpoint must phrase in its own format
	{"authenticate", authenticate},
	{"classify", classify},
}

// Header steps every endpoint with a request body runs.
var (
	stepRequireBody  = headerStep{"require_body", requireBody}
	stepTraceHeaders = headerStep{"trace_headers", traceHeaders}
)

// requireSnapshot refuses requests until a configuration is loaded.
func requireSnapshot(x *exchange, _ headers, _ *mutation) error {
	if x.snap == nil {
		return oaierror.Internal(503, "not_ready", "The gateway has no configuration loaded yet.")
	}
	return nil
}

// classify picks the request's processor from its method and path.
func classify(x *exchange, h headers, _ *mutation) error {
	x.method = h.get(":method")
	x.contentType = h.get("content-type")
	x.path, _ = splitPath(h.get(":path"))
	p, dep, id := match(x.snap.processors(), x.snap.BasePath, x.path)
	if p == nil {
		return oaierror.UnknownURL(x.method, x.path)
	}
	x.proc, x.endpoint, x.deployment, x.pathID = p, p.endpoint, dep, id
	x.rec.route = x.endpoint.String()
	if p.method != "" && x.method != p.method {
		return &oaierror.Error{Status: 405, Type: oaierror.TypeInvalidRequest, Code: "method_not_allowed",
			Message: "Method " + x.method + " is not allowed on " + x.path + "; use " + p.method + "."}
	}
	return nil
}

// requireBody refuses a POST without a body. It arrives with end_of_stream
// set on its headers and no body message ever follows: decide now instead
// of waiting (https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/ext_proc/v3/external_processor.proto).
func requireBody(x *exchange, _ headers, _ *mutation) error {
	if x.noBody {
		return oaierror.InvalidRequest("missing_body", "", "The request body must be a JSON object.")
	}
	return nil
}

// traceHeaders propagates the request's trace context upstream.
func traceHeaders(x *exchange, _ headers, mu *mutation) error {
	x.traceHeaders(mu)
	return nil
}

// azureDeployment splits an Azure OpenAI path
// /openai/deployments/{deployment}/{operation}.
func azureDeployment(path string) (deployment, op string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/openai/deployments/")
	if !ok {
		return "", "", false
	}
	deployment, op, ok = strings.Cut(rest, "/")
	if !ok || deployment == "" {
		return "", "", false
	}
	return deployment, "/" + op, true
}
