package extproc

import (
	"strings"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// responseResourceProcessor serves GET and DELETE /v1/responses/{id} (and
// GET /v1/responses/{id}/input_items): stored responses exist only at
// OpenAI, so these go to an OpenAI provider, forwarded from the headers (no
// body follows).
//
// The request names no model, so the provider is chosen by key scoping: the
// schema-openai providers on which the key (and its app) may use at least
// one listed model. x-tollgate-provider names one of them; without it there
// must be exactly one, else 400 asking for the header. The credential is the
// tenant's own for that provider when it has one (bring your own key), else
// the provider's. Retrieval is not metered: it costs no tokens.
func responseResourceProcessor(*Snapshot) *processor {
	unreachable := []bodyStep{stepUnsupportedEndpoint} // no body follows: forwarded from headers
	return &processor{
		endpoint: routing.EndpointResponses,
		idPrefix: "/v1/responses/",
		headers: []headerStep{
			{"check_resource", checkResponseResource},
			{"select_app", selectAppHeaders},
			{"choose_provider", chooseResponsesProvider},
			{"route_upstream", routeResponseResource},
		},
		deliver: [targetKinds][]bodyStep{kindDirect: unreachable, kindTranslated: unreachable, kindChain: unreachable, kindMock: unreachable},
	}
}

// providerHeader names the provider of a request that names no model.
const providerHeader = headerPrefix + "provider"

// checkResponseResource takes GET and DELETE of a response, and GET of its
// input items, without a body.
func checkResponseResource(x *exchange, _ headers, _ *mutation) error {
	id, sub, _ := strings.Cut(x.pathID, "/")
	if !validResponseID(id) || (sub != "" && sub != "input_items") {
		return oaierror.UnknownURL(x.method, x.path)
	}
	switch {
	case x.method == "GET", x.method == "DELETE" && sub == "":
	default:
		return &oaierror.Error{Status: 405, Type: oaierror.TypeInvalidRequest, Code: "method_not_allowed",
			Message: "Method " + x.method + " is not allowed on " + x.path + "."}
	}
	if !x.noBody {
		return oaierror.InvalidRequest("unexpected_body", "", "This request takes no body.")
	}
	return nil
}

// validResponseID: OpenAI's ids are "resp_" and letters, digits, "_" or
// "-"; nothing else may reach the upstream path.
func validResponseID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// chooseResponsesProvider picks the OpenAI provider (see
// responseResourceProcessor).
func chooseResponsesProvider(x *exchange, h headers, _ *mutation) error {
	var reach []*routing.Provider
	for _, name := range x.snap.Routes.Models() {
		t, ok := x.snap.Routes.Resolve(name)
		if !ok || t.Provider == nil || t.Provider.Schema != config.SchemaOpenAI || !x.allowed(name, t.Canonical()) {
			continue
		}
		if !containsProvider(reach, t.Provider) {
			reach = append(reach, t.Provider)
		}
	}
	named := h.get(providerHeader)
	var p *routing.Provider
	switch {
	case named != "":
		for _, r := range reach {
			if r.Name == named {
				p = r
			}
		}
		if p == nil {
			return &oaierror.Error{Status: 403, Type: oaierror.TypePermission, Code: "provider_not_allowed", Param: providerHeader,
				Message: "This key or app may not use stored responses at the provider " + quote(named) + "."}
		}
	case len(reach) == 1:
		p = reach[0]
	case len(reach) == 0:
		return &oaierror.Error{Status: 403, Type: oaierror.TypePermission, Code: "provider_not_allowed",
			Message: "This key or app may use no OpenAI provider, where stored responses live."}
	default:
		return oaierror.InvalidRequest("missing_required_parameter", providerHeader,
			"This key may use several OpenAI providers: name the one that stored the response in the "+providerHeader+" header.")
	}
	x.target = routing.Target{Provider: p}
	x.rec.provider = p.Name
	return nil
}

func containsProvider(ps []*routing.Provider, p *routing.Provider) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// routeResponseResource forwards the request from its headers: cluster,
// path below the provider's base path (query kept), credential.
func routeResponseResource(x *exchange, h headers, mu *mutation) error {
	p := x.target.Provider
	header, value, err := p.Credential()
	if own, ok, ownErr := x.snap.Tenants.Credential(x.key.Tenant, p.Name); ok {
		value, err, x.rec.byok = own, ownErr, true
	}
	if err != nil {
		return failure(oaierror.Internal(503, "provider_unavailable", "The provider is not available."), err)
	}
	_, query := splitPath(h.get(":path"))
	path := p.BasePath + "/responses/" + x.pathID
	if query != "" {
		path += "?" + query
	}
	mu.set(clusterHeader, p.Cluster)
	mu.set(":path", path)
	if header != "" {
		mu.set(header, value)
	}
	x.respond = retrievedResponses{}
	x.forwarded, x.forwardedAt = true, x.srv.now()
	return nil
}

// retrievedResponses reads a stored response as sent, and meters nothing:
// retrieving or deleting one uses no tokens.
type retrievedResponses struct{ nativeResponses }

func (retrievedResponses) Response(body []byte, _ string) ([]byte, usage.Usage, bool, error) {
	return body, usage.Usage{}, true, nil
}
