package validate

import (
	"fmt"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
)

const (
	routerType        = "envoy.extensions.filters.http.router.v3.Router"
	routerName        = "envoy.filters.http.router"
	upstreamCodecType = "envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"
	upstreamCodecName = "envoy.filters.http.upstream_codec"
)

// semantics collects what the walk sees and reports what Envoy would refuse at start-up although every
// proto is valid (Envoy bootstrap lists these).
type semantics struct {
	problems []Problem
	// defined holds static cluster names; nil when clusters may also come from CDS, so that references
	// cannot be checked.
	defined map[string]bool
	refs    []clusterRef
}

type clusterRef struct{ name, path string }

func newSemantics(bs *bootstrapv3.Bootstrap) *semantics {
	s := &semantics{}
	s.problems = append(s.problems, uniqueNames("static_resources.listeners", listenerNames(bs))...)
	names := clusterNames(bs)
	s.problems = append(s.problems, uniqueNames("static_resources.clusters", names)...)
	dyn := bs.GetDynamicResources()
	if dyn.GetCdsConfig() == nil && dyn.GetCdsResourcesLocator() == "" {
		s.defined = make(map[string]bool, len(names))
		for _, n := range names {
			s.defined[n] = true
		}
	}
	return s
}

// visit is called for every message in the bootstrap, including the contents of Anys.
func (s *semantics) visit(m proto.Message, path string) {
	switch m := m.(type) {
	case *routev3.RouteAction:
		s.ref(m.GetCluster(), joinPath(path, "cluster"))
		for i, c := range m.GetWeightedClusters().GetClusters() {
			s.ref(c.GetName(), fmt.Sprintf("%s.weighted_clusters.clusters[%d].name", path, i))
		}
		for i, p := range m.GetRequestMirrorPolicies() {
			s.ref(p.GetCluster(), fmt.Sprintf("%s.request_mirror_policies[%d].cluster", path, i))
		}
	case *corev3.GrpcService:
		if g := m.GetEnvoyGrpc(); g != nil {
			s.ref(g.GetClusterName(), joinPath(path, "envoy_grpc.cluster_name"))
		}
	case *corev3.HttpUri:
		s.ref(m.GetCluster(), joinPath(path, "cluster"))
	case *aggregatev3.ClusterConfig:
		for i, c := range m.GetClusters() {
			s.ref(c, fmt.Sprintf("%s.clusters[%d]", path, i))
		}
	case *hcmv3.HttpConnectionManager:
		s.terminalLast(m.GetHttpFilters(), joinPath(path, "http_filters"), routerType, routerName)
	case *upstreamhttpv3.HttpProtocolOptions:
		s.terminalLast(m.GetHttpFilters(), joinPath(path, "http_filters"), upstreamCodecType, upstreamCodecName)
	case *routerv3.Router:
		s.terminalLast(m.GetUpstreamHttpFilters(), joinPath(path, "upstream_http_filters"), upstreamCodecType, upstreamCodecName)
	case *extprocv3.ExternalProcessor:
		s.extProc(m, path)
	case *clusterv3.Cluster:
		s.logicalDNS(m, path)
	}
}

func (s *semantics) ref(name, path string) {
	if name != "" {
		s.refs = append(s.refs, clusterRef{name: name, path: path})
	}
}

// finish reports references to clusters that are not defined.
func (s *semantics) finish() []Problem {
	if s.defined != nil {
		for _, r := range s.refs {
			if !s.defined[r.name] {
				s.problems = append(s.problems, Problem{Path: r.path,
					Message: fmt.Sprintf("cluster %q is not defined in static_resources.clusters", r.name)})
			}
		}
	}
	return s.problems
}

// terminalLast enforces Envoy's filter-chain rule: the terminal filter (router downstream,
// upstream_codec upstream) must be last, and nothing may follow it. An empty chain is left alone.
func (s *semantics) terminalLast(filters []*hcmv3.HttpFilter, path, terminalType, terminalName string) {
	last := len(filters) - 1
	for i, f := range filters {
		isTerminal := filterType(f) == terminalType || (f.GetTypedConfig() == nil && f.GetName() == terminalName)
		p := path + "[" + strconv.Itoa(i) + "]"
		switch {
		case i == last && !isTerminal:
			s.problems = append(s.problems, Problem{Path: p,
				Message: fmt.Sprintf("the last filter must be %s (%s), found %q", terminalName, terminalType, f.GetName())})
		case i < last && isTerminal:
			s.problems = append(s.problems, Problem{Path: p,
				Message: fmt.Sprintf("%s is terminal and must be the last filter; the %d filter(s) after it would never run", terminalName, last-i)})
		}
	}
}

// filterType is the message name of a filter's typed_config, or "" without one.
func filterType(f *hcmv3.HttpFilter) string {
	url := f.GetTypedConfig().GetTypeUrl()
	return url[strings.LastIndexByte(url, '/')+1:]
}

// extProc checks ext_proc combinations that Envoy rejects when it loads the filter config.
func (s *semantics) extProc(m *extprocv3.ExternalProcessor, path string) {
	if m.GetDisableClearRouteCache() && m.GetRouteCacheAction() != extprocv3.ExternalProcessor_DEFAULT {
		s.problems = append(s.problems, Problem{Path: joinPath(path, "route_cache_action"),
			Message: "route_cache_action and disable_clear_route_cache cannot both be set"})
	}
	pm := m.GetProcessingMode()
	full := extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED
	if pm.GetRequestBodyMode() == full && pm.GetRequestTrailerMode() != extprocv3.ProcessingMode_SEND {
		s.problems = append(s.problems, Problem{Path: joinPath(path, "processing_mode.request_trailer_mode"),
			Message: "FULL_DUPLEX_STREAMED request_body_mode requires request_trailer_mode SEND"})
	}
	if pm.GetResponseBodyMode() == full && pm.GetResponseTrailerMode() != extprocv3.ProcessingMode_SEND {
		s.problems = append(s.problems, Problem{Path: joinPath(path, "processing_mode.response_trailer_mode"),
			Message: "FULL_DUPLEX_STREAMED response_body_mode requires response_trailer_mode SEND"})
	}
}

// logicalDNS enforces that a LOGICAL_DNS cluster has exactly one endpoint, as Envoy requires.
func (s *semantics) logicalDNS(c *clusterv3.Cluster, path string) {
	if c.GetType() != clusterv3.Cluster_LOGICAL_DNS {
		return
	}
	localities := c.GetLoadAssignment().GetEndpoints()
	if len(localities) != 1 || len(localities[0].GetLbEndpoints()) != 1 {
		s.problems = append(s.problems, Problem{Path: joinPath(path, "load_assignment.endpoints"),
			Message: "a LOGICAL_DNS cluster must have exactly one locality with exactly one lb_endpoint"})
	}
}

func listenerNames(bs *bootstrapv3.Bootstrap) []string {
	var names []string
	for _, l := range bs.GetStaticResources().GetListeners() {
		names = append(names, l.GetName())
	}
	return names
}

func clusterNames(bs *bootstrapv3.Bootstrap) []string {
	var names []string
	for _, c := range bs.GetStaticResources().GetClusters() {
		names = append(names, c.GetName())
	}
	return names
}

// uniqueNames reports repeated non-empty names; Envoy refuses duplicate listeners and clusters.
func uniqueNames(path string, names []string) []Problem {
	var problems []Problem
	first := make(map[string]int, len(names))
	for i, n := range names {
		if n == "" {
			continue
		}
		if j, dup := first[n]; dup {
			problems = append(problems, Problem{Path: fmt.Sprintf("%s[%d].name", path, i),
				Message: fmt.Sprintf("duplicate name %q (first used at %s[%d])", n, path, j)})
			continue
		}
		first[n] = i
	}
	return problems
}
