//lint:file-ignore SA1019 deprecated matchers and HeaderValueOption.append are valid configuration Envoy still honours

package devfront

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// routeTable is a compiled static RouteConfiguration.
type routeTable struct {
	name    string
	vhosts  []*vhost
	headers headerOps // route_configuration level
}

type vhost struct {
	name      string
	domains   []string
	routes    []*route
	headers   headerOps
	perFilter map[string]*anypb.Any
	// x-envoy-attempt-count on upstream requests / on responses
	attemptCountRequest, attemptCountResponse bool
}

// headerOps are the request/response header additions and removals of one config level.
type headerOps struct {
	reqAdd, respAdd       []*corev3.HeaderValueOption
	reqRemove, respRemove []string
}

type route struct {
	name string
	vh   *vhost

	// match
	prefix, path, sepPrefix string
	regex                   *regexp.Regexp
	caseSensitive           bool
	headerMatchers          []headerMatcher

	// action: direct response or a cluster
	direct       bool
	directStatus int
	directBody   string

	cluster, clusterHeader string
	clusterNotFoundCode    int
	prefixRewrite          string
	hostLiteral            string
	autoHost               bool
	timeout                time.Duration // 0 = disabled
	idleTimeout            *time.Duration
	perTryTimeout          time.Duration
	perTryIdleTimeout      time.Duration
	retry                  *retryPolicy // nil: no retries

	headers   headerOps
	rcHeaders headerOps // route_configuration level
	perFilter map[string]*anypb.Any
}

type headerMatcher struct {
	name                string
	invert              bool
	present             *bool
	str                 func(string) bool // nil when present match
	treatMissingAsEmpty bool
}

func compileRoutes(rc *routev3.RouteConfiguration) (*routeTable, error) {
	t := &routeTable{name: rc.GetName(), headers: headerOps{
		reqAdd: rc.GetRequestHeadersToAdd(), reqRemove: rc.GetRequestHeadersToRemove(),
		respAdd: rc.GetResponseHeadersToAdd(), respRemove: rc.GetResponseHeadersToRemove(),
	}}
	for _, v := range rc.GetVirtualHosts() {
		vh := &vhost{name: v.GetName(), domains: v.GetDomains(), perFilter: v.GetTypedPerFilterConfig(),
			headers: headerOps{
				reqAdd: v.GetRequestHeadersToAdd(), reqRemove: v.GetRequestHeadersToRemove(),
				respAdd: v.GetResponseHeadersToAdd(), respRemove: v.GetResponseHeadersToRemove(),
			},
			attemptCountRequest:  v.GetIncludeRequestAttemptCount(),
			attemptCountResponse: v.GetIncludeAttemptCountInResponse(),
		}
		if v.GetHedgePolicy() != nil {
			return nil, fmt.Errorf("virtual_host %q: hedge_policy is not emulated", v.GetName())
		}
		for i, r := range v.GetRoutes() {
			cr, err := compileRoute(r, vh, v.GetRetryPolicy())
			if err != nil {
				return nil, fmt.Errorf("virtual_host %q route %d (%q): %w", v.GetName(), i, r.GetName(), err)
			}
			cr.rcHeaders = t.headers
			vh.routes = append(vh.routes, cr)
		}
		t.vhosts = append(t.vhosts, vh)
	}
	return t, nil
}

func compileRoute(r *routev3.Route, vh *vhost, vhRetry *routev3.RetryPolicy) (*route, error) {
	m := r.GetMatch()
	cr := &route{
		name: r.GetName(), vh: vh, caseSensitive: true, perFilter: r.GetTypedPerFilterConfig(),
		headers: headerOps{
			reqAdd: r.GetRequestHeadersToAdd(), reqRemove: r.GetRequestHeadersToRemove(),
			respAdd: r.GetResponseHeadersToAdd(), respRemove: r.GetResponseHeadersToRemove(),
		},
	}
	if cs := m.GetCaseSensitive(); cs != nil {
		cr.caseSensitive = cs.GetValue()
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		cr.prefix = ps.Prefix
	case *routev3.RouteMatch_Path:
		cr.path = ps.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		cr.sepPrefix = ps.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(ps.SafeRegex)
		if err != nil {
			return nil, fmt.Errorf("safe_regex: %w", err)
		}
		cr.regex = re
	default:
		return nil, fmt.Errorf("unsupported path matcher %T", ps)
	}
	if len(m.GetQueryParameters()) > 0 || len(m.GetDynamicMetadata()) > 0 || len(m.GetCookies()) > 0 ||
		m.GetGrpc() != nil || m.GetTlsContext() != nil || m.GetRuntimeFraction() != nil {
		return nil, fmt.Errorf("unsupported route match option (only path and header matchers are emulated)")
	}
	for _, hm := range m.GetHeaders() {
		c, err := compileHeaderMatcher(hm)
		if err != nil {
			return nil, err
		}
		cr.headerMatchers = append(cr.headerMatchers, c)
	}

	switch a := r.GetAction().(type) {
	case *routev3.Route_DirectResponse:
		cr.direct = true
		cr.directStatus = int(a.DirectResponse.GetStatus())
		b := a.DirectResponse.GetBody()
		switch {
		case b.GetInlineString() != "":
			cr.directBody = b.GetInlineString()
		case len(b.GetInlineBytes()) > 0:
			cr.directBody = string(b.GetInlineBytes())
		case b.GetFilename() != "":
			return nil, fmt.Errorf("direct_response body from a file is not emulated")
		}
	case *routev3.Route_Route:
		ra := a.Route
		switch cs := ra.GetClusterSpecifier().(type) {
		case *routev3.RouteAction_Cluster:
			cr.cluster = cs.Cluster
		case *routev3.RouteAction_ClusterHeader:
			cr.clusterHeader = strings.ToLower(cs.ClusterHeader)
		default:
			return nil, fmt.Errorf("unsupported cluster specifier %T", cs)
		}
		cr.clusterNotFoundCode = 503
		if ra.GetClusterNotFoundResponseCode() == routev3.RouteAction_NOT_FOUND {
			cr.clusterNotFoundCode = 404
		} else if ra.GetClusterNotFoundResponseCode() == routev3.RouteAction_INTERNAL_SERVER_ERROR {
			cr.clusterNotFoundCode = 500
		}
		cr.prefixRewrite = ra.GetPrefixRewrite()
		switch hs := ra.GetHostRewriteSpecifier().(type) {
		case nil:
		case *routev3.RouteAction_HostRewriteLiteral:
			cr.hostLiteral = hs.HostRewriteLiteral
		case *routev3.RouteAction_AutoHostRewrite:
			cr.autoHost = hs.AutoHostRewrite.GetValue()
		default:
			return nil, fmt.Errorf("unsupported host rewrite %T", hs)
		}
		if ra.GetRegexRewrite() != nil || ra.GetPathRewritePolicy() != nil || ra.GetWeightedClusters() != nil {
			return nil, fmt.Errorf("unsupported route action option")
		}
		cr.timeout = 15 * time.Second // Envoy's default route timeout
		if ra.GetTimeout() != nil {
			cr.timeout = ra.GetTimeout().AsDuration()
		}
		if ra.GetIdleTimeout() != nil {
			d := ra.GetIdleTimeout().AsDuration()
			cr.idleTimeout = &d
		}
		rp := ra.GetRetryPolicy()
		if rp == nil {
			rp = vhRetry // the route's policy replaces the virtual host's
		}
		if rp != nil {
			var err error
			if cr.retry, err = compileRetryPolicy(rp); err != nil {
				return nil, fmt.Errorf("retry_policy: %w", err)
			}
			cr.perTryTimeout = rp.GetPerTryTimeout().AsDuration()
			cr.perTryIdleTimeout = rp.GetPerTryIdleTimeout().AsDuration()
		}
		if ra.GetHedgePolicy() != nil || ra.GetRetryPolicyTypedConfig() != nil {
			return nil, fmt.Errorf("hedge_policy and retry_policy_typed_config are not emulated")
		}
	default:
		return nil, fmt.Errorf("unsupported route action %T (only route and direct_response are emulated)", a)
	}
	return cr, nil
}

func compileHeaderMatcher(hm *routev3.HeaderMatcher) (headerMatcher, error) {
	c := headerMatcher{name: strings.ToLower(hm.GetName()), invert: hm.GetInvertMatch(),
		treatMissingAsEmpty: hm.GetTreatMissingHeaderAsEmpty()}
	switch s := hm.GetHeaderMatchSpecifier().(type) {
	case nil:
		t := true
		c.present = &t // no specifier: the header must be present
	case *routev3.HeaderMatcher_PresentMatch:
		p := s.PresentMatch
		c.present = &p
	case *routev3.HeaderMatcher_ExactMatch:
		v := s.ExactMatch
		c.str = func(x string) bool { return x == v }
	case *routev3.HeaderMatcher_PrefixMatch:
		v := s.PrefixMatch
		c.str = func(x string) bool { return strings.HasPrefix(x, v) }
	case *routev3.HeaderMatcher_SuffixMatch:
		v := s.SuffixMatch
		c.str = func(x string) bool { return strings.HasSuffix(x, v) }
	case *routev3.HeaderMatcher_ContainsMatch:
		v := s.ContainsMatch
		c.str = func(x string) bool { return strings.Contains(x, v) }
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(s.SafeRegexMatch)
		if err != nil {
			return c, fmt.Errorf("header %q safe_regex_match: %w", hm.GetName(), err)
		}
		c.str = re.MatchString
	case *routev3.HeaderMatcher_StringMatch:
		f, err := stringMatcher(s.StringMatch)
		if err != nil {
			return c, fmt.Errorf("header %q string_match: %w", hm.GetName(), err)
		}
		c.str = f
	default:
		return c, fmt.Errorf("header %q: unsupported matcher %T", hm.GetName(), s)
	}
	return c, nil
}

func stringMatcher(sm *matcherv3.StringMatcher) (func(string) bool, error) {
	fold := sm.GetIgnoreCase()
	norm := func(s string) string {
		if fold {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		v := norm(p.Exact)
		return func(x string) bool { return norm(x) == v }, nil
	case *matcherv3.StringMatcher_Prefix:
		v := norm(p.Prefix)
		return func(x string) bool { return strings.HasPrefix(norm(x), v) }, nil
	case *matcherv3.StringMatcher_Suffix:
		v := norm(p.Suffix)
		return func(x string) bool { return strings.HasSuffix(norm(x), v) }, nil
	case *matcherv3.StringMatcher_Contains:
		v := norm(p.Contains)
		return func(x string) bool { return strings.Contains(norm(x), v) }, nil
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex)
		if err != nil {
			return nil, err
		}
		return re.MatchString, nil
	}
	return nil, fmt.Errorf("unsupported string matcher %T", sm.GetMatchPattern())
}

func (m headerMatcher) matches(h *headerMap) bool {
	vals := h.values(m.name)
	if len(vals) == 0 && m.treatMissingAsEmpty && m.present == nil {
		vals = []string{""}
	}
	var ok bool
	if m.present != nil {
		ok = (len(vals) > 0) == *m.present
	} else if len(vals) > 0 {
		// Multiple values are matched joined with ',' (Envoy's getAllOfHeaderAsString).
		ok = m.str(strings.Join(vals, ","))
	}
	if m.invert {
		return !ok
	}
	return ok
}

// resolve selects the route for the current request headers (virtual host by :authority,
// then the first matching route), as the router's route cache does.
func (t *routeTable) resolve(h *headerMap) *route {
	vh := t.vhostFor(strings.ToLower(h.value(":authority")))
	if vh == nil {
		return nil
	}
	path := h.value(":path")
	for _, r := range vh.routes {
		if r.matches(path, h) {
			return r
		}
	}
	return nil
}

// vhostFor applies Envoy's domain precedence: exact, then longest suffix wildcard, then
// longest prefix wildcard, then "*".
func (t *routeTable) vhostFor(host string) *vhost {
	var best *vhost
	bestRank, bestLen := 0, -1
	for _, vh := range t.vhosts {
		for _, d := range vh.domains {
			d = strings.ToLower(d)
			rank, n := 0, len(d)
			switch {
			case d == host:
				rank = 4
			case d == "*":
				rank, n = 1, 0
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
				rank = 3
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(host) > len(d)-1:
				rank = 2
			default:
				continue
			}
			if rank > bestRank || (rank == bestRank && n > bestLen) {
				best, bestRank, bestLen = vh, rank, n
			}
		}
	}
	return best
}

func (r *route) matches(path string, h *headerMap) bool {
	noQuery := path
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		noQuery = path[:i]
	}
	cmp := func(s string) string {
		if r.caseSensitive {
			return s
		}
		return strings.ToLower(s)
	}
	switch {
	case r.regex != nil:
		if !r.regex.MatchString(noQuery) {
			return false
		}
	case r.path != "":
		if cmp(noQuery) != cmp(r.path) {
			return false
		}
	case r.sepPrefix != "":
		p := cmp(noQuery)
		sp := cmp(r.sepPrefix)
		if !(p == sp || strings.HasPrefix(p, sp+"/")) {
			return false
		}
	default:
		if !strings.HasPrefix(cmp(path), cmp(r.prefix)) {
			return false
		}
	}
	for _, m := range r.headerMatchers {
		if !m.matches(h) {
			return false
		}
	}
	return true
}

// extProcPerRoute returns the merged ExtProcPerRoute for filterName: virtual host first,
// then route (Envoy ext_proc API: CommonResponse.clear_route_cache: merged once, with the initial route).
func (r *route) extProcPerRoute(filterName string) ([]*extprocv3.ExtProcPerRoute, error) {
	var out []*extprocv3.ExtProcPerRoute
	for _, m := range []map[string]*anypb.Any{r.vh.perFilter, r.perFilter} {
		a, ok := m[filterName]
		if !ok {
			continue
		}
		pr := &extprocv3.ExtProcPerRoute{}
		if err := a.UnmarshalTo(pr); err != nil {
			return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", filterName, err)
		}
		out = append(out, pr)
	}
	return out, nil
}

// applyHeaderOps applies request or response header additions/removals of the route,
// virtual host and route configuration, most specific first.
func applyHeaderOps(h *headerMap, levels []headerOps, request bool) {
	for _, l := range levels {
		add, rm := l.respAdd, l.respRemove
		if request {
			add, rm = l.reqAdd, l.reqRemove
		}
		for _, k := range rm {
			h.remove(strings.ToLower(k))
		}
		for _, o := range add {
			applyHeaderValueOption(h, o)
		}
	}
}

// applyHeaderValueOption follows the route header parser: append_action (default
// APPEND_IF_EXISTS_OR_ADD), or the deprecated append BoolValue when set; empty values are
// skipped unless keep_empty_value.
func applyHeaderValueOption(h *headerMap, o *corev3.HeaderValueOption) {
	v := o.GetHeader().GetValue()
	if raw := o.GetHeader().GetRawValue(); len(raw) > 0 {
		v = string(raw)
	}
	applyHeaderValue(h, o, v)
}

// applyHeaderValue applies o with the (already formatted) value v.
func applyHeaderValue(h *headerMap, o *corev3.HeaderValueOption, v string) {
	k := strings.ToLower(o.GetHeader().GetKey())
	if v == "" && !o.GetKeepEmptyValue() {
		return
	}
	action := o.GetAppendAction()
	if a := o.GetAppend(); a != nil {
		action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if a.GetValue() {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
	}
	switch action {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		h.add(k, v)
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		if !h.has(k) {
			h.add(k, v)
		}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		h.set(k, v)
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		if h.has(k) {
			h.set(k, v)
		}
	}
}

func (r *route) headerLevels() []headerOps {
	return []headerOps{r.headers, r.vh.headers, r.rcHeaders}
}
