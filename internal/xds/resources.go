package xds

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate-ai/tollgate/routing/config"
)

// Resources are the Envoy resources generated from one configuration.
type Resources struct {
	// Clusters are the generated clusters: one per provider with a url, in
	// configuration order, then one per fallback chain whose members all have one.
	Clusters []*clusterv3.Cluster
	// Routes is the route configuration RouteConfigName.
	Routes *routev3.RouteConfiguration
	// External names the externally managed clusters the configuration
	// refers to (providers and chains without url); nothing is generated for them.
	External []string
}

// Generate builds the resources of a configuration config.Load accepted. Its
// errors (providers of one chain with different HTTP versions) are
// config.Problems, so tollgate check and a reload report them like any other.
func Generate(cfg *config.Config) (*Resources, error) {
	var r Resources
	var ps config.Problems
	ups := map[string]upstream{}
	seenExt := map[string]bool{}
	external := func(name string) {
		if !seenExt[name] {
			seenExt[name] = true
			r.External = append(r.External, name)
		}
	}
	for i := range cfg.Providers {
		p := &cfg.Providers[i]
		switch {
		case p.Schema == config.SchemaMock:
		case !p.Generated():
			external(p.Cluster)
		default:
			u, err := upstreamOf(p)
			if err != nil {
				ps = append(ps, config.Problem{Path: fmt.Sprintf("providers[%d].url", i), Message: err.Error()})
				continue
			}
			ups[p.Name] = u
			r.Clusters = append(r.Clusters, providerCluster(u))
		}
	}
	var chains []*routev3.Route
	for i := range cfg.Models {
		m := &cfg.Models[i]
		fb := m.Fallback
		if fb == nil {
			continue
		}
		if !cfg.ChainGenerated(fb) {
			external(fb.Cluster)
		} else {
			members := make([]upstream, 0, len(fb.Targets))
			for _, t := range fb.Targets {
				members = append(members, ups[t.Provider])
			}
			c, err := chainCluster(fb.Cluster, members)
			if err != nil {
				ps = append(ps, config.Problem{Path: fmt.Sprintf("models[%d].fallback", i), Message: err.Error()})
				continue
			}
			r.Clusters = append(r.Clusters, c)
		}
		chains = append(chains, chainRoute(fb))
	}
	if len(ps) > 0 {
		return nil, ps
	}
	r.Routes = &routev3.RouteConfiguration{Name: RouteConfigName, VirtualHosts: []*routev3.VirtualHost{{
		Name: RouteConfigName, Domains: []string{"*"},
		// Chains first: the provider route would match their header too.
		Routes: append(append(chains, providerRoute()), noProviderRoutes(cfg.BasePath)...),
	}}}
	return &r, nil
}

// ClusterNames returns the names of the generated clusters.
func (r *Resources) ClusterNames() []string {
	names := make([]string, len(r.Clusters))
	for i, c := range r.Clusters {
		names[i] = c.GetName()
	}
	return names
}

// providerRoute sends a request to the cluster the processor named in
// x-tollgate-cluster. Retries only where the provider did no billable work: a
// chat completion is an expensive, non-idempotent POST, and a 500/502/504 or
// a reset can come after the provider generated (and billed) the answer.
func providerRoute() *routev3.Route {
	return &routev3.Route{
		Name: "provider",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{
			Name: ClusterHeader, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
		}}},
		RequestHeadersToRemove: []string{ClusterHeader},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier:     &routev3.RouteAction_ClusterHeader{ClusterHeader: ClusterHeader},
			HostRewriteSpecifier: &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)},
			// Envoy's 15s default would cut long generations; per_try_idle_timeout
			// and the HCM's stream_idle_timeout bound liveness instead
			// (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto#envoy-v3-api-field-config-route-v3-routeaction-timeout).
			Timeout: dur(0),
			RetryPolicy: &routev3.RetryPolicy{
				RetryOn:              "connect-failure,refused-stream,reset-before-request,retriable-status-codes",
				RetriableStatusCodes: []uint32{429, 503, 529},
				NumRetries:           wrapperspb.UInt32(2),
				// 600s matches the OpenAI SDKs' default request timeout.
				PerTryIdleTimeout:       dur(600 * time.Second),
				RetryBackOff:            &routev3.RetryPolicy_RetryBackOff{BaseInterval: dur(time.Second), MaxInterval: dur(10 * time.Second)},
				RateLimitedRetryBackOff: retryAfter(30 * time.Second),
			},
		}},
	}
}

// retryAfter honours a provider's Retry-After of up to max; Envoy ignores
// longer values and uses the exponential back-off.
func retryAfter(max time.Duration) *routev3.RetryPolicy_RateLimitedRetryBackOff {
	return &routev3.RetryPolicy_RateLimitedRetryBackOff{
		ResetHeaders: []*routev3.RetryPolicy_ResetHeader{{Name: "retry-after", Format: routev3.RetryPolicy_SECONDS}},
		MaxInterval:  dur(max),
	}
}

// chainRoute is one fallback chain's route: every retry goes to the next
// priority (previous_priorities), num_retries is the chain length minus one
// (previous_priorities starts over at p0 once every priority was tried), and
// per_try_idle_timeout is the alias's time to first byte. Unlike the provider
// route, 5xx and resets are retried: a chain exists to move on.
func chainRoute(fb *config.Fallback) *routev3.Route {
	return &routev3.Route{
		Name: fb.Cluster,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{
			Name: ClusterHeader, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: fb.Cluster},
			}},
		}}},
		RequestHeadersToRemove: []string{ClusterHeader},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier:     &routev3.RouteAction_Cluster{Cluster: fb.Cluster},
			HostRewriteSpecifier: &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)},
			Timeout:              dur(0),
			RetryPolicy: &routev3.RetryPolicy{
				RetryOn:              "connect-failure,refused-stream,reset,5xx,retriable-status-codes",
				RetriableStatusCodes: []uint32{429},
				NumRetries:           wrapperspb.UInt32(uint32(len(fb.Targets) - 1)),
				// https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto
				RetryPriority: &routev3.RetryPolicy_RetryPriority{
					Name:       "envoy.retry_priorities.previous_priorities",
					ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: mustAny(&previousprioritiesv3.PreviousPrioritiesConfig{UpdateFrequency: 1})},
				},
				RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
					Name:       "envoy.retry_host_predicates.previous_hosts",
					ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})},
				}},
				HostSelectionRetryMaxAttempts: 3,
				// Not per_try_timeout: after the first byte Envoy ignores it, and it
				// would send x-envoy-expected-rq-timeout-ms to the providers.
				PerTryIdleTimeout:       dur(durationOr(fb.FirstByteTimeout, config.DefaultFirstByteTimeout)),
				RetryBackOff:            &routev3.RetryPolicy_RetryBackOff{BaseInterval: dur(100 * time.Millisecond), MaxInterval: dur(time.Second)},
				RateLimitedRetryBackOff: retryAfter(5 * time.Second),
			},
		}},
	}
}

// noProviderBody is the 404 when the processor chose no cluster, already in
// OpenAI's error format: Envoy does not send local replies through ext_proc.
const noProviderBody = `{"error":{"message":"No provider was selected for this request.","type":"invalid_request_error","param":null,"code":"envoy_no_route"}}`

// outsideBasePathBody is the 404 for a path outside the base path.
const outsideBasePathBody = `{"error":{"message":"Unknown request URL: the gateway serves its endpoints under its base path.","type":"invalid_request_error","param":null,"code":"unknown_url"}}`

// ExtProcFilter is the name of the downstream ext_proc filter in the
// generated bootstraps: per-route configuration names it.
const ExtProcFilter = "envoy.filters.http.ext_proc"

// noProviderRoutes are the routes of a request the processor sent to no
// cluster (the provider and chain routes match the cluster header first).
// With a base path, requests under it start on no_provider and run the
// processor; the rest get outside_base_path, a 404 without a processor
// round trip: ext_proc is disabled on that route. Envoy reads the per-route
// ext_proc configuration from the route a request starts on
// (https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/http/ext_proc/v3/ext_proc.proto#extensions-filters-http-ext-proc-v3-extprocperroute),
// and a request sending its own x-tollgate-cluster starts on the provider
// route, where the processor runs and removes it. The provider route keeps
// the prefix "/": it is matched again after the processor rewrote :path to
// the provider's path.
func noProviderRoutes(basePath string) []*routev3.Route {
	if basePath == "" {
		return []*routev3.Route{noProviderRoute(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}})}
	}
	outside := directResponse("outside_base_path", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, outsideBasePathBody)
	outside.TypedPerFilterConfig = map[string]*anypb.Any{
		ExtProcFilter: mustAny(&extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}}),
	}
	return []*routev3.Route{
		// path_separated_prefix: "/api" matches "/api" and "/api/…", never "/apix".
		noProviderRoute(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: basePath}}),
		outside,
	}
}

func noProviderRoute(m *routev3.RouteMatch) *routev3.Route {
	return directResponse("no_provider", m, noProviderBody)
}

// directResponse is a route Envoy answers itself with a JSON 404.
func directResponse(name string, m *routev3.RouteMatch, body string) *routev3.Route {
	return &routev3.Route{
		Name:  name,
		Match: m,
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 404,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
		}},
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
	}
}
