package xds

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/tollgate-ai/tollgate/routing/config"
)

func load(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte("version: 1\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func generate(t *testing.T, yaml string) *Resources {
	t.Helper()
	r, err := Generate(load(t, yaml))
	if err != nil {
		t.Fatal(err)
	}
	if ps := Validate(r); len(ps) > 0 {
		t.Fatalf("generated resources do not validate: %v", ps)
	}
	return r
}

func find(r *Resources, name string) *clusterv3.Cluster {
	for _, c := range r.Clusters {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

func tlsOf(t *testing.T, c *clusterv3.Cluster) *tlsv3.UpstreamTlsContext {
	t.Helper()
	if c.GetTransportSocket() == nil {
		return nil
	}
	var ctx tlsv3.UpstreamTlsContext
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		t.Fatal(err)
	}
	return &ctx
}

func protoOf(t *testing.T, c *clusterv3.Cluster) *httpv3.HttpProtocolOptions {
	t.Helper()
	var o httpv3.HttpProtocolOptions
	if err := c.GetTypedExtensionProtocolOptions()[protocolOptions].UnmarshalTo(&o); err != nil {
		t.Fatal(err)
	}
	return &o
}

// TestProviderClusters: what a provider's url and options become.
func TestProviderClusters(t *testing.T) {
	cases := []struct {
		name, provider string
		typ            clusterv3.Cluster_DiscoveryType
		host           string
		port           uint32
		sni            string // "-": no TLS
		alpn           string
		http2          bool
		connect        time.Duration
		idle           time.Duration
		maxRequests    uint32
		ca             string
	}{
		{"https host name", "{name: p, schema: openai, url: https://api.openai.com}",
			clusterv3.Cluster_LOGICAL_DNS, "api.openai.com", 443, "api.openai.com", "h2", true, 5 * time.Second, 0, 10000, config.DefaultCAFile},
		{"http loopback", "{name: p, schema: openai, url: 'http://127.0.0.1:8081'}",
			clusterv3.Cluster_STATIC, "127.0.0.1", 8081, "-", "", false, 5 * time.Second, 0, 10000, ""},
		{"http host forced to h2c", "{name: p, schema: openai, url: 'http://vllm.svc:8000', http_version: '2'}",
			clusterv3.Cluster_LOGICAL_DNS, "vllm.svc", 8000, "-", "", true, 5 * time.Second, 0, 10000, ""},
		{"options", "{name: p, schema: openai, url: 'https://llm.example:8443', http_version: '1.1', connect_timeout: 2s, idle_timeout: 90s, circuit_breakers: {max_requests: 50}, tls: {sni: front.example, ca_file: /etc/ca.pem}}",
			clusterv3.Cluster_LOGICAL_DNS, "llm.example", 8443, "front.example", "http/1.1", false, 2 * time.Second, 90 * time.Second, 50, "/etc/ca.pem"},
		{"https IP address", "{name: p, schema: openai, url: 'https://10.0.0.7'}",
			clusterv3.Cluster_STATIC, "10.0.0.7", 443, "", "h2", true, 5 * time.Second, 0, 10000, config.DefaultCAFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := generate(t, "providers: ["+c.provider+"]\n")
			cl := find(r, "p")
			if cl == nil || len(r.Clusters) != 1 {
				t.Fatalf("clusters %v, want exactly p", r.ClusterNames())
			}
			if cl.GetType() != c.typ {
				t.Errorf("type %v, want %v", cl.GetType(), c.typ)
			}
			ep := cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint()
			sa := ep.GetAddress().GetSocketAddress()
			if ep.GetHostname() != c.host || sa.GetAddress() != c.host || sa.GetPortValue() != c.port {
				t.Errorf("endpoint %s %s:%d, want %s:%d", ep.GetHostname(), sa.GetAddress(), sa.GetPortValue(), c.host, c.port)
			}
			if got := cl.GetConnectTimeout().AsDuration(); got != c.connect {
				t.Errorf("connect_timeout %v, want %v", got, c.connect)
			}
			if got := cl.GetCircuitBreakers().GetThresholds()[0].GetMaxRequests().GetValue(); got != c.maxRequests {
				t.Errorf("max_requests %d, want %d", got, c.maxRequests)
			}
			po := protoOf(t, cl)
			if got := po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil; got != c.http2 {
				t.Errorf("http2 %v, want %v", got, c.http2)
			}
			if got := po.GetCommonHttpProtocolOptions().GetIdleTimeout().AsDuration(); got != c.idle {
				t.Errorf("idle_timeout %v, want %v", got, c.idle)
			}
			ctx := tlsOf(t, cl)
			if c.sni == "-" {
				if ctx != nil {
					t.Errorf("plain http provider has TLS")
				}
				return
			}
			if ctx == nil {
				t.Fatal("https provider has no TLS")
			}
			vc := ctx.GetCommonTlsContext().GetValidationContext()
			if ctx.GetSni() != c.sni || ctx.GetCommonTlsContext().GetAlpnProtocols()[0] != c.alpn || vc.GetTrustedCa().GetFilename() != c.ca {
				t.Errorf("tls sni %q alpn %v ca %q, want %q %q %q", ctx.GetSni(), ctx.GetCommonTlsContext().GetAlpnProtocols(), vc.GetTrustedCa().GetFilename(), c.sni, c.alpn, c.ca)
			}
			san := vc.GetMatchTypedSubjectAltNames()[0]
			wantSAN := c.sni
			if c.sni == "" {
				wantSAN = c.host
			}
			if san.GetMatcher().GetExact() != wantSAN {
				t.Errorf("SAN %q, want %q", san.GetMatcher().GetExact(), wantSAN)
			}
		})
	}
}

const twoProviders = `providers:
  - {name: openai, schema: openai, url: https://api.openai.com}
  - {name: anthropic, schema: anthropic, url: https://api.anthropic.com}
  - {name: own, schema: openai, cluster: my_cluster}
  - {name: mock, schema: mock}
`

func routeNames(r *Resources) []string {
	var names []string
	for _, rt := range r.Routes.GetVirtualHosts()[0].GetRoutes() {
		names = append(names, rt.GetName())
	}
	return names
}

// TestChains: a chain of url providers gets a cluster and a route; a chain
// with an externally managed member gets only the route.
func TestChains(t *testing.T) {
	r := generate(t, twoProviders+`models:
  - name: smart
    fallback:
      first_byte_timeout: 20s
      targets: [{provider: openai, model: a}, {provider: anthropic, model: b}]
  - name: ext
    fallback: {cluster: their_chain, targets: [{provider: openai, model: a}, {provider: own, model: b}]}
`)
	if got := strings.Join(r.ClusterNames(), ","); got != "openai,anthropic,chain_smart" {
		t.Errorf("clusters %s", got)
	}
	if got := strings.Join(r.External, ","); got != "my_cluster,their_chain" {
		t.Errorf("external %s", got)
	}
	if got := strings.Join(routeNames(r), ","); got != "chain_smart,their_chain,provider,no_provider" {
		t.Errorf("routes %s", got)
	}
	ch := find(r, "chain_smart")
	if ch.GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Errorf("chain type %v", ch.GetType())
	}
	for i, want := range []string{"openai", "anthropic"} {
		le := ch.GetLoadAssignment().GetEndpoints()[i]
		md := le.GetLbEndpoints()[0].GetMetadata().GetFilterMetadata()
		if le.GetPriority() != uint32(i) || md[MetadataNS].GetFields()["provider"].GetStringValue() != want ||
			md[socketMatchNS].GetFields()["provider"].GetStringValue() != want || ch.GetTransportSocketMatches()[i].GetName() != want {
			t.Errorf("endpoint %d: priority %d metadata %v, want %s", i, le.GetPriority(), md, want)
		}
	}
	filters := protoOf(t, ch).GetHttpFilters()
	if len(filters) != 2 || filters[0].GetName() != "envoy.filters.http.ext_proc" || filters[1].GetName() != "envoy.filters.http.upstream_codec" {
		t.Errorf("chain upstream filters %v", filters)
	}
	rt := r.Routes.GetVirtualHosts()[0].GetRoutes()[0].GetRoute()
	rp := rt.GetRetryPolicy()
	if rt.GetCluster() != "chain_smart" || rp.GetNumRetries().GetValue() != 1 || rp.GetPerTryIdleTimeout().AsDuration() != 20*time.Second ||
		rp.GetRetryPriority().GetName() != "envoy.retry_priorities.previous_priorities" {
		t.Errorf("chain route %v", rt)
	}
	ext := r.Routes.GetVirtualHosts()[0].GetRoutes()[1].GetRoute().GetRetryPolicy()
	if ext.GetPerTryIdleTimeout().AsDuration() != config.DefaultFirstByteTimeout {
		t.Errorf("default first byte timeout %v", ext.GetPerTryIdleTimeout().AsDuration())
	}
}

// TestRouteConfiguration: the route on x-tollgate-cluster and the 404.
func TestRouteConfiguration(t *testing.T) {
	r := generate(t, twoProviders)
	if r.Routes.GetName() != RouteConfigName || strings.Join(routeNames(r), ",") != "provider,no_provider" {
		t.Fatalf("routes %s %v", r.Routes.GetName(), routeNames(r))
	}
	p := r.Routes.GetVirtualHosts()[0].GetRoutes()[0]
	if p.GetRoute().GetClusterHeader() != ClusterHeader || !p.GetRoute().GetAutoHostRewrite().GetValue() ||
		p.GetRoute().GetTimeout().AsDuration() != 0 || p.GetRequestHeadersToRemove()[0] != ClusterHeader {
		t.Errorf("provider route %v", p)
	}
	if rp := p.GetRoute().GetRetryPolicy(); rp.GetRetryOn() != "connect-failure,refused-stream,reset-before-request,retriable-status-codes" {
		t.Errorf("provider route retries on %q: 5xx and reset can come after billed work", rp.GetRetryOn())
	}
	nf := r.Routes.GetVirtualHosts()[0].GetRoutes()[1].GetAction().(*routev3.Route_DirectResponse).DirectResponse
	if nf.GetStatus() != 404 || !strings.Contains(nf.GetBody().GetInlineString(), `"code":"envoy_no_route"`) {
		t.Errorf("no_provider %v", nf)
	}
}

// TestRouteConfigurationBasePath: under a base path the 404 route runs the
// processor only for paths under it; the rest are refused by Envoy alone.
func TestRouteConfigurationBasePath(t *testing.T) {
	r := generate(t, "base_path: /api/v1/llm\n"+twoProviders)
	if got := strings.Join(routeNames(r), ","); got != "provider,no_provider,outside_base_path" {
		t.Fatalf("routes %s", got)
	}
	routes := r.Routes.GetVirtualHosts()[0].GetRoutes()
	if p := routes[0].GetMatch().GetPrefix(); p != "/" {
		t.Errorf("provider route prefix %q: it is matched again after the processor rewrote :path", p)
	}
	if p := routes[1].GetMatch().GetPathSeparatedPrefix(); p != "/api/v1/llm" || routes[1].GetTypedPerFilterConfig() != nil {
		t.Errorf("no_provider match %v, per-filter %v", routes[1].GetMatch(), routes[1].GetTypedPerFilterConfig())
	}
	out := routes[2]
	if out.GetMatch().GetPrefix() != "/" || out.GetDirectResponse().GetStatus() != 404 ||
		!strings.Contains(out.GetDirectResponse().GetBody().GetInlineString(), `"code":"unknown_url"`) {
		t.Errorf("outside_base_path %v", out)
	}
	var pr extprocv3.ExtProcPerRoute
	if err := out.GetTypedPerFilterConfig()[ExtProcFilter].UnmarshalTo(&pr); err != nil || !pr.GetDisabled() {
		t.Errorf("outside_base_path must not run the processor: %v %v", &pr, err)
	}
	bs, err := Bootstrap(BootstrapOptions{Static: r})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(bs), "- name: "+ExtProcFilter+"\n") {
		t.Errorf("the bootstrap's ext_proc filter is not named %s", ExtProcFilter)
	}
	if strings.Contains(string(bs), "filter_metadata['tollgate']['provider']") {
		t.Errorf("a base path made the bootstrap think it has chains")
	}
}

func TestGenerateProblems(t *testing.T) {
	_, err := Generate(load(t, `providers:
  - {name: a, schema: openai, url: https://a.example}
  - {name: b, schema: openai, url: https://b.example, http_version: '1.1'}
models:
  - {name: s, fallback: {targets: [{provider: a, model: m}, {provider: b, model: m}]}}
`))
	if err == nil || !strings.Contains(err.Error(), "different HTTP versions") {
		t.Errorf("err %v, want the chain's HTTP versions refused", err)
	}
}

// TestGenerateDeterministic: the same configuration gives the same version,
// a changed one another.
func TestGenerateDeterministic(t *testing.T) {
	v := func(y string) string {
		v, err := Version(generate(t, y))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := v(twoProviders), v(twoProviders)
	c := v(twoProviders + "  - {name: extra, schema: openai, url: 'http://127.0.0.1:9'}\n")
	if a != b || a == c {
		t.Errorf("versions %s %s %s", a, b, c)
	}
}
