package validate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// shippedConfigs returns every envoy/*.yaml.
func shippedConfigs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d envoy/*.yaml files, want at least envoy.yaml and envoy-tls.yaml", len(files))
	}
	return files
}

func TestShippedConfigsValidate(t *testing.T) {
	for _, f := range shippedConfigs(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, p := range File(f) {
				t.Error(p)
			}
		})
	}
}

// base is a small bootstrap in the shape of envoy/envoy.yaml; the broken cases below each change one
// spot of it.
const base = `
static_resources:
  listeners:
  - name: main
    address:
      socket_address: { address: 127.0.0.1, port_value: 10000 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                text_format_source: { inline_string: "%RESPONSE_CODE%\n" }
          http_filters:
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service:
                envoy_grpc: { cluster_name: proc }
              message_timeout: 10s
              processing_mode:
                request_body_mode: BUFFERED
                response_body_mode: BUFFERED
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/fixed" }
                route: { cluster: upstream }
              - match: { prefix: "/" }
                route: { cluster_header: x-cluster }
  clusters:
  - name: proc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: proc
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 50051 } } }
  - name: upstream
    type: LOGICAL_DNS
    connect_timeout: 5s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: example.com, port_value: 443 } } }
`

const (
	hcm       = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
	extProc   = hcm + ".http_filters[0].typed_config"
	protoOpts = `static_resources.clusters[0].typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`
)

func TestBaseIsValid(t *testing.T) {
	for _, p := range Bootstrap([]byte(base)) {
		t.Error(p)
	}
	js, err := yaml.YAMLToJSON([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Bootstrap(js) {
		t.Errorf("as JSON: %v", p)
	}
}

func TestBrokenConfigs(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // replace the first old in base by new; old == "" uses new as the whole document
		wantPath string
		wantMsg  string
		single   bool // the document fails to unmarshal, so exactly one problem is expected
	}{
		{
			name: "unknown top-level field", old: "static_resources:", new: "statik_resources:",
			wantPath: "statik_resources", wantMsg: `unknown field "statik_resources"`, single: true,
		},
		{
			name: "unknown field in a cluster", old: "connect_timeout: 1s", new: "connect_timout: 1s",
			wantPath: "static_resources.clusters[0].connect_timout", wantMsg: `unknown field "connect_timout"`, single: true,
		},
		{
			name: "unknown @type", old: "filters.http.router.v3.Router", new: "filters.http.router.v3.Routr",
			wantPath: hcm + `.http_filters[1].typed_config["@type"]`, wantMsg: "unable to resolve", single: true,
		},
		{
			name: "bad enum value", old: "request_body_mode: BUFFERED", new: "request_body_mode: BUFFERD",
			wantPath: extProc + ".processing_mode.request_body_mode", wantMsg: `invalid value for enum`, single: true,
		},
		{
			name: "wrong scalar type", old: "port_value: 50051", new: "port_value: fifty",
			wantPath: "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value",
			wantMsg:  "invalid value for uint32 field", single: true,
		},
		{
			name: "unknown field in an Any inside an Any", old: "text_format_source: { inline_string:", new: "text_format_source: { inline_strin:",
			wantPath: hcm + ".access_log[0].typed_config.log_format.text_format_source.inline_strin",
			wantMsg:  `unknown field "inline_strin"`, single: true,
		},
		{
			name: "unknown field in a map-valued Any", old: "explicit_http_config: {", new: "explicit_http_konfig: {",
			wantPath: protoOpts + ".explicit_http_konfig", wantMsg: `unknown field "explicit_http_konfig"`, single: true,
		},
		{
			name: "message_timeout over 1h", old: "message_timeout: 10s", new: "message_timeout: 7200s",
			wantPath: extProc + ".message_timeout", wantMsg: "value must be inside range [0s, 1h0m0s]",
		},
		{
			name: "rule violation inside an Any", old: "stat_prefix: main", new: `stat_prefix: ""`,
			wantPath: hcm + ".stat_prefix", wantMsg: "value length must be at least 1",
		},
		{
			name: "rule violation outside Anys", old: "connect_timeout: 1s", new: "connect_timeout: -1s",
			wantPath: "static_resources.clusters[0].connect_timeout", wantMsg: "value must be greater than 0s",
		},
		{
			name: "required oneof unset", old: "route: { cluster_header: x-cluster }", new: "route: { timeout: 0s }",
			wantPath: hcm + ".route_config.virtual_hosts[0].routes[1].route.cluster_specifier", wantMsg: "value is required",
		},
		{
			name: "rule violation in a map value", old: "static_resources:\n  listeners:",
			new:      "certificate_provider_instances:\n  k1: { name: x }\nstatic_resources:\n  listeners:",
			wantPath: `certificate_provider_instances["k1"].typed_config`, wantMsg: "value is required",
		},
		{
			name: "router not last",
			old:  "          route_config:",
			new: `          - name: late
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
          route_config:`,
			wantPath: hcm + ".http_filters[2]", wantMsg: "the last filter must be envoy.filters.http.router",
		},
		{
			name:     "router in the middle",
			old:      "          route_config:",
			new:      "          - name: late\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation}\n          route_config:",
			wantPath: hcm + ".http_filters[1]", wantMsg: "must be the last filter",
		},
		{
			name: "ext_proc cluster missing", old: "cluster_name: proc }", new: "cluster_name: nope }",
			wantPath: extProc + ".grpc_service.envoy_grpc.cluster_name", wantMsg: `cluster "nope" is not defined`,
		},
		{
			name: "route cluster missing", old: "cluster: upstream }", new: "cluster: upstreem }",
			wantPath: hcm + ".route_config.virtual_hosts[0].routes[0].route.cluster", wantMsg: `cluster "upstreem" is not defined`,
		},
		{
			name: "upstream_codec not last",
			old:  "explicit_http_config: { http2_protocol_options: {} }",
			new: `explicit_http_config: { http2_protocol_options: {} }
        http_filters:
        - name: codec
          typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec }
        - name: mutate
          typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation }`,
			wantPath: protoOpts + ".http_filters[1]", wantMsg: "the last filter must be envoy.filters.http.upstream_codec",
		},
		{
			name: "duplicate cluster", old: "  - name: upstream\n", new: "  - name: proc\n",
			wantPath: "static_resources.clusters[1].name", wantMsg: `duplicate name "proc"`,
		},
		{
			name: "LOGICAL_DNS with two endpoints",
			old:  "        - endpoint: { address: { socket_address: { address: example.com, port_value: 443 } } }\n",
			new: "        - endpoint: { address: { socket_address: { address: example.com, port_value: 443 } } }\n" +
				"        - endpoint: { address: { socket_address: { address: example.net, port_value: 443 } } }\n",
			wantPath: "static_resources.clusters[1].load_assignment.endpoints", wantMsg: "exactly one lb_endpoint",
		},
		{
			name: "FULL_DUPLEX_STREAMED without trailers", old: "response_body_mode: BUFFERED", new: "response_body_mode: FULL_DUPLEX_STREAMED",
			wantPath: extProc + ".processing_mode.response_trailer_mode", wantMsg: "requires response_trailer_mode SEND",
		},
		{
			name: "route_cache_action with disable_clear_route_cache", old: "message_timeout: 10s",
			new:      "message_timeout: 10s\n              route_cache_action: CLEAR\n              disable_clear_route_cache: true",
			wantPath: extProc + ".route_cache_action", wantMsg: "cannot both be set",
		},
		{
			// A multi-byte value before the error on the same JSON line: positions are rune columns.
			name: "path after non-ASCII text", old: "  - name: upstream\n", new: "  - name: \"üpstrëäm\"\n    zz_extra: 1\n",
			wantPath: "static_resources.clusters[1].zz_extra", wantMsg: `unknown field "zz_extra"`, single: true,
		},
		{name: "YAML syntax error", new: "static_resources: [", wantMsg: "parse YAML", single: true},
		{name: "duplicate YAML key", new: "admin: {}\nadmin: {}\n", wantMsg: "parse YAML", single: true},
		{name: "empty document", new: "# nothing\n", wantMsg: "empty bootstrap", single: true},
		{name: "not an object", new: "- a\n- b\n", wantMsg: "unexpected token", single: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.new
			if tt.old != "" {
				if !strings.Contains(base, tt.old) {
					t.Fatalf("base does not contain %q", tt.old)
				}
				doc = strings.Replace(base, tt.old, tt.new, 1)
			}
			problems := Bootstrap([]byte(doc))
			if tt.single && len(problems) != 1 {
				t.Errorf("got %d problems, want 1: %v", len(problems), problems)
			}
			found := slices.ContainsFunc(problems, func(p Problem) bool {
				return p.Path == tt.wantPath && strings.Contains(p.Message, tt.wantMsg)
			})
			if !found {
				t.Errorf("no problem at %q containing %q; got %v", tt.wantPath, tt.wantMsg, problems)
			}
		})
	}
}

func TestClusterChecksSkippedWithCDS(t *testing.T) {
	doc := strings.Replace(base, "cluster: upstream }", "cluster: from_cds }", 1) +
		"dynamic_resources:\n  cds_config: { ads: {} }\n"
	for _, p := range Bootstrap([]byte(doc)) {
		t.Errorf("clusters may come from CDS, yet: %v", p)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "envoy/envoy.yaml", Path: "static_resources.clusters[0].name", Message: "bad"}, "envoy/envoy.yaml: static_resources.clusters[0].name: bad"},
		{Problem{File: "f.yaml", Message: "empty bootstrap"}, "f.yaml: empty bootstrap"},
		{Problem{Path: "admin", Message: "bad"}, "admin: bad"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestFileSetsFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := File(bad)
	if len(got) != 1 || got[0].File != bad || got[0].Path != "bogus" {
		t.Errorf("File(bad) = %v, want one problem at %s: bogus", got, bad)
	}
	missing := filepath.Join(dir, "missing.yaml")
	got = File(missing)
	if len(got) != 1 || got[0].File != missing || !strings.Contains(got[0].Message, "read bootstrap") {
		t.Errorf("File(missing) = %v, want one read problem", got)
	}
}

func TestJSONPathAt(t *testing.T) {
	js := []byte("{\"a\": {\"b\": [1, {\"c\": \"x\"}], \"@type\": \"t\"},\n \"m\": {\"k.v\": true}}")
	tests := []struct {
		at   string // the offset is that of the first occurrence of this text
		want string
	}{
		{`"a"`, "a"},
		{`{"b"`, "a"},
		{`"b"`, "a.b"},
		{`1,`, "a.b[0]"},
		{`"c"`, "a.b[1].c"},
		{`"x"`, "a.b[1].c"},
		{`"@type"`, `a["@type"]`},
		{`"m"`, "m"},
		{`true`, `m["k.v"]`},
	}
	for _, tt := range tests {
		off := strings.Index(string(js), tt.at)
		if off < 0 {
			t.Fatalf("%q not in test JSON", tt.at)
		}
		if got := jsonPathAt(js, off); got != tt.want {
			t.Errorf("jsonPathAt(%q) = %q, want %q", tt.at, got, tt.want)
		}
	}
}

func TestByteOffset(t *testing.T) {
	js := []byte("{\n \"é\": \"ü\", \"k\": 1}")
	// Line 2, rune column 12 is the quote opening "k"; before it are two 2-byte runes.
	if got, want := byteOffset(js, 2, 12), strings.Index(string(js), `"k"`); got != want {
		t.Errorf("byteOffset = %d, want %d", got, want)
	}
}

// loadShipped parses envoy/<name> into a Bootstrap.
func loadShipped(t *testing.T, name string) *bootstrapv3.Bootstrap {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	bs, problem := parse(data)
	if problem != nil {
		t.Fatalf("%s: %v", name, problem)
	}
	return bs
}

func onlyListener(t *testing.T, bs *bootstrapv3.Bootstrap) *listenerv3.Listener {
	t.Helper()
	ls := bs.GetStaticResources().GetListeners()
	if len(ls) != 1 || len(ls[0].GetFilterChains()) != 1 {
		t.Fatalf("want one listener with one filter chain, got %d listeners", len(ls))
	}
	return ls[0]
}

func connectionManager(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	fs := l.GetFilterChains()[0].GetFilters()
	if len(fs) != 1 {
		t.Fatalf("want one network filter, got %d", len(fs))
	}
	m := &hcmv3.HttpConnectionManager{}
	if err := fs[0].GetTypedConfig().UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func cluster(t *testing.T, bs *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	t.Helper()
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	t.Fatalf("no cluster %q", name)
	return nil
}

// TestShippedContract asserts the settings the Tollgate server relies on (docs/architecture.md).
func TestShippedContract(t *testing.T) {
	const fiftyMiB = 50 << 20
	wantMode := &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
		ResponseBodyMode:    extprocv3.ProcessingMode_BUFFERED,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
	wantStreaming := proto.Clone(wantMode).(*extprocv3.ProcessingMode)
	wantStreaming.ResponseBodyMode = extprocv3.ProcessingMode_STREAMED

	for _, name := range []string{"envoy.yaml", "envoy-tls.yaml"} {
		t.Run(name, func(t *testing.T) {
			bs := loadShipped(t, name)
			l := onlyListener(t, bs)
			if got := l.GetPerConnectionBufferLimitBytes().GetValue(); got != fiftyMiB {
				t.Errorf("listener per_connection_buffer_limit_bytes = %d, want %d", got, fiftyMiB)
			}
			m := connectionManager(t, l)

			filters := m.GetHttpFilters()
			if len(filters) != 2 || filterType(filters[1]) != routerType {
				t.Fatalf("http_filters = %v, want [ext_proc, router]", filters)
			}
			ep := &extprocv3.ExternalProcessor{}
			if err := filters[0].GetTypedConfig().UnmarshalTo(ep); err != nil {
				t.Fatalf("first http filter is not ext_proc: %v", err)
			}
			if got := ep.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != "tollgate_ext_proc" {
				t.Errorf("ext_proc cluster = %q, want tollgate_ext_proc", got)
			}
			if ep.GetFailureModeAllow() {
				t.Error("failure_mode_allow = true, want false (fail closed)")
			}
			if got := ep.GetMessageTimeout().AsDuration(); got != 10*time.Second {
				t.Errorf("message_timeout = %v, want 10s", got)
			}
			if got := ep.GetMaxMessageTimeout().AsDuration(); got != 60*time.Second {
				t.Errorf("max_message_timeout = %v, want 60s", got)
			}
			if !proto.Equal(ep.GetProcessingMode(), wantMode) {
				t.Errorf("processing_mode = %v, want %v", ep.GetProcessingMode(), wantMode)
			}
			if !ep.GetAllowModeOverride() {
				t.Error("allow_mode_override = false, want true")
			}
			if om := ep.GetAllowedOverrideModes(); len(om) != 1 || !proto.Equal(om[0], wantStreaming) {
				t.Errorf("allowed_override_modes = %v, want exactly [%v]", om, wantStreaming)
			}
			md := ep.GetMetadataOptions()
			if got := md.GetReceivingNamespaces().GetUntyped(); !slices.Equal(got, []string{"tollgate"}) {
				t.Errorf("receiving_namespaces.untyped = %v, want [tollgate]", got)
			}
			// The downstream processor never reads metadata back: forwarding it would add it to every
			// message after the body reply, each SSE chunk included.
			if got := md.GetForwardingNamespaces(); got != nil {
				t.Errorf("forwarding_namespaces = %v on the downstream filter, want none", got)
			}
			if !slices.Contains(ep.GetRequestAttributes(), "request.id") {
				t.Errorf("request_attributes = %v, want request.id among them", ep.GetRequestAttributes())
			}

			checkRoutes(t, m.GetRouteConfig())

			proc := cluster(t, bs, "tollgate_ext_proc")
			if got := proc.GetPerConnectionBufferLimitBytes().GetValue(); got != fiftyMiB {
				t.Errorf("tollgate_ext_proc per_connection_buffer_limit_bytes = %d, want %d", got, fiftyMiB)
			}
			for _, cn := range []string{"tollgate_ext_proc", "openai", "anthropic"} {
				opts := &upstreamhttpv3.HttpProtocolOptions{}
				anyOpts := cluster(t, bs, cn).GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
				if err := anyOpts.UnmarshalTo(opts); err != nil || opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
					t.Errorf("cluster %s does not force HTTP/2 (err %v)", cn, err)
				}
			}
			for host, cn := range map[string]string{"api.openai.com": "openai", "api.anthropic.com": "anthropic"} {
				c := cluster(t, bs, cn)
				tlsCtx := &tlsv3.UpstreamTlsContext{}
				if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(tlsCtx); err != nil {
					t.Fatalf("cluster %s: no upstream TLS: %v", cn, err)
				}
				sans := tlsCtx.GetCommonTlsContext().GetValidationContext().GetMatchTypedSubjectAltNames()
				if tlsCtx.GetSni() != host || len(sans) != 1 || sans[0].GetMatcher().GetExact() != host {
					t.Errorf("cluster %s: sni %q, SAN matchers %v; want both %s", cn, tlsCtx.GetSni(), sans, host)
				}
			}
		})
	}
}

func checkRoutes(t *testing.T, rc *routev3.RouteConfiguration) {
	t.Helper()
	vhs := rc.GetVirtualHosts()
	if len(vhs) != 1 || len(vhs[0].GetRoutes()) != 2 {
		t.Fatalf("want one virtual host with two routes, got %v", vhs)
	}
	provider, fallback := vhs[0].GetRoutes()[0], vhs[0].GetRoutes()[1]

	hm := provider.GetMatch().GetHeaders()
	if provider.GetMatch().GetPrefix() != "/" || len(hm) != 1 || hm[0].GetName() != "x-tollgate-cluster" || !hm[0].GetPresentMatch() {
		t.Errorf("provider route match = %v, want prefix / with x-tollgate-cluster present", provider.GetMatch())
	}
	if got := provider.GetRequestHeadersToRemove(); !slices.Equal(got, []string{"x-tollgate-cluster"}) {
		t.Errorf("request_headers_to_remove = %v, want [x-tollgate-cluster]", got)
	}
	ra := provider.GetRoute()
	if ra.GetClusterHeader() != "x-tollgate-cluster" {
		t.Errorf("cluster_header = %q, want x-tollgate-cluster", ra.GetClusterHeader())
	}
	if !ra.GetAutoHostRewrite().GetValue() {
		t.Error("auto_host_rewrite is not true")
	}
	if ra.GetTimeout() == nil || ra.GetTimeout().AsDuration() != 0 {
		t.Errorf("route timeout = %v, want explicit 0s", ra.GetTimeout())
	}
	rp := ra.GetRetryPolicy()
	retryOn := strings.Split(rp.GetRetryOn(), ",")
	slices.Sort(retryOn)
	if want := []string{"connect-failure", "refused-stream", "reset-before-request", "retriable-status-codes"}; !slices.Equal(retryOn, want) {
		t.Errorf("retry_on = %v, want only the conditions where the provider did no work: %v", retryOn, want)
	}
	if !slices.Contains(rp.GetRetriableStatusCodes(), 429) || slices.ContainsFunc(rp.GetRetriableStatusCodes(), func(c uint32) bool { return c == 500 || c == 502 || c == 504 }) {
		t.Errorf("retriable_status_codes = %v, want 429 and none of 500/502/504", rp.GetRetriableStatusCodes())
	}
	if rp.GetPerTryIdleTimeout() == nil {
		t.Error("retry_policy has no per_try_idle_timeout")
	}
	if h := rp.GetRateLimitedRetryBackOff().GetResetHeaders(); len(h) == 0 || !strings.EqualFold(h[0].GetName(), "retry-after") {
		t.Errorf("rate_limited_retry_back_off reset_headers = %v, want retry-after", h)
	}

	dr := fallback.GetDirectResponse()
	if fallback.GetMatch().GetPrefix() != "/" || len(fallback.GetMatch().GetHeaders()) != 0 || dr.GetStatus() != 404 {
		t.Fatalf("catch-all route = %v, want prefix / with a 404 direct_response", fallback)
	}
	var body struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal([]byte(dr.GetBody().GetInlineString()), &body); err != nil {
		t.Fatalf("404 body is not JSON: %v", err)
	}
	param, hasParam := body.Error["param"]
	if msg, _ := body.Error["message"].(string); msg == "" || body.Error["type"] != "invalid_request_error" ||
		body.Error["code"] != "envoy_no_route" || !hasParam || param != nil {
		t.Errorf("404 body error = %v, want OpenAI shape with type invalid_request_error, code envoy_no_route, param null", body.Error)
	}
}

// TestTLSDiffersOnlyInListener keeps envoy-tls.yaml from drifting away from envoy.yaml: with the listener
// address and transport socket removed, the two bootstraps must be equal.
func TestTLSDiffersOnlyInListener(t *testing.T) {
	plain, tls := loadShipped(t, "envoy.yaml"), loadShipped(t, "envoy-tls.yaml")

	pl, tl := onlyListener(t, plain), onlyListener(t, tls)
	if sa := pl.GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 10000 {
		t.Errorf("envoy.yaml listens on %v, want 127.0.0.1:10000", sa)
	}
	if pl.GetFilterChains()[0].GetTransportSocket() != nil {
		t.Error("envoy.yaml listener has a transport socket, want plain HTTP")
	}
	if sa := tl.GetAddress().GetSocketAddress(); sa.GetAddress() != "0.0.0.0" || sa.GetPortValue() != 8443 {
		t.Errorf("envoy-tls.yaml listens on %v, want 0.0.0.0:8443", sa)
	}
	dtc := &tlsv3.DownstreamTlsContext{}
	if err := tl.GetFilterChains()[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(dtc); err != nil {
		t.Fatalf("envoy-tls.yaml listener has no DownstreamTlsContext: %v", err)
	}
	if got := dtc.GetCommonTlsContext().GetAlpnProtocols(); !slices.Equal(got, []string{"h2", "http/1.1"}) {
		t.Errorf("downstream ALPN = %v, want [h2 http/1.1]", got)
	}
	certs := dtc.GetCommonTlsContext().GetTlsCertificates()
	if len(certs) != 1 || !strings.HasPrefix(certs[0].GetCertificateChain().GetFilename(), "/etc/envoy/tls/") ||
		!strings.HasPrefix(certs[0].GetPrivateKey().GetFilename(), "/etc/envoy/tls/") {
		t.Errorf("tls_certificates = %v, want one cert/key pair under /etc/envoy/tls/", certs)
	}

	for _, bs := range []*bootstrapv3.Bootstrap{plain, tls} {
		l := onlyListener(t, bs)
		l.Address = nil
		for _, fc := range l.GetFilterChains() {
			fc.TransportSocket = nil
		}
	}
	if !proto.Equal(plain, tls) {
		t.Errorf("envoy.yaml and envoy-tls.yaml differ beyond the listener address and transport socket:\n%s",
			firstDifference(prototext.Format(plain), prototext.Format(tls)))
	}
}

// firstDifference shows the first differing line of a and b with the lines leading up to it.
func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	i := 0
	for i < len(al) && i < len(bl) && al[i] == bl[i] {
		i++
	}
	from := max(0, i-8)
	line := func(l []string) string {
		if i < len(l) {
			return l[i]
		}
		return "(end)"
	}
	return strings.Join(al[from:i], "\n") + "\n- envoy.yaml:     " + line(al) + "\n+ envoy-tls.yaml: " + line(bl)
}

// TestFallbackDiffersOnlyInChains keeps envoy-fallback.yaml in step with envoy.yaml: without its fallback
// chain routes and clusters (chain_*) and the extra downstream response attribute, the two are equal.
func TestFallbackDiffersOnlyInChains(t *testing.T) {
	plain, fb := loadShipped(t, "envoy.yaml"), loadShipped(t, "envoy-fallback.yaml")
	m := connectionManager(t, onlyListener(t, fb))
	ep := &extprocv3.ExternalProcessor{}
	if err := m.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(ep); err != nil {
		t.Fatal(err)
	}
	const answered = "xds.upstream_host_metadata.filter_metadata['tollgate']['provider']"
	attrs := ep.GetResponseAttributes()
	if len(attrs) == 0 || attrs[len(attrs)-1] != answered {
		t.Fatalf("downstream response_attributes = %v, want %s last", attrs, answered)
	}
	ep.ResponseAttributes = attrs[:len(attrs)-1]
	a, err := anypb.New(ep)
	if err != nil {
		t.Fatal(err)
	}
	m.GetHttpFilters()[0].ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}
	vh := m.GetRouteConfig().GetVirtualHosts()[0]
	vh.Routes = slices.DeleteFunc(vh.Routes, func(r *routev3.Route) bool { return strings.HasPrefix(r.GetName(), "chain_") })
	fc := onlyListener(t, fb).GetFilterChains()[0]
	if fc.GetFilters()[0].ConfigType, err = typedConfig(m); err != nil {
		t.Fatal(err)
	}
	sr := fb.GetStaticResources()
	sr.Clusters = slices.DeleteFunc(sr.Clusters, func(c *clusterv3.Cluster) bool { return strings.HasPrefix(c.GetName(), "chain_") })
	if !proto.Equal(plain, fb) {
		t.Errorf("envoy.yaml and envoy-fallback.yaml differ beyond the fallback chains:\n%s",
			firstDifference(prototext.Format(plain), prototext.Format(fb)))
	}
}

func typedConfig(m proto.Message) (*listenerv3.Filter_TypedConfig, error) {
	// Deterministic, as protojson packs the shipped file's Any: map fields (the Structs of
	// json_format bodies) would otherwise serialise in random order and compare unequal.
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return &listenerv3.Filter_TypedConfig{TypedConfig: a}, nil
}

// TestFallbackContract asserts the fallback chain's shape the Tollgate server relies on: priorities and
// provider metadata per endpoint, per-endpoint TLS, the upstream ext_proc filter, and the chain route's
// retry policy (Envoy router: upstream_http_filters).
func TestFallbackContract(t *testing.T) {
	bs := loadShipped(t, "envoy-fallback.yaml")
	c := cluster(t, bs, "chain_smart_default")
	if c.GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Errorf("chain cluster type %v, want STRICT_DNS (several DNS endpoints)", c.GetType())
	}
	var providers []string
	for i, lle := range c.GetLoadAssignment().GetEndpoints() {
		if int(lle.GetPriority()) != i || len(lle.GetLbEndpoints()) != 1 {
			t.Fatalf("locality %d: priority %d with %d endpoints, want priority %d with one", i, lle.GetPriority(), len(lle.GetLbEndpoints()), i)
		}
		le := lle.GetLbEndpoints()[0]
		md := le.GetMetadata().GetFilterMetadata()
		provider := md["tollgate"].GetFields()["provider"].GetStringValue()
		if provider == "" || md["envoy.transport_socket_match"].GetFields()["provider"].GetStringValue() != provider {
			t.Errorf("endpoint %d metadata %v, want tollgate.provider and a matching envoy.transport_socket_match", i, md)
		}
		providers = append(providers, provider)
		host := le.GetEndpoint().GetHostname()
		if host != le.GetEndpoint().GetAddress().GetSocketAddress().GetAddress() {
			t.Errorf("endpoint %d hostname %q differs from its address", i, host)
		}
		var tlsCtx *tlsv3.UpstreamTlsContext
		for _, m := range c.GetTransportSocketMatches() {
			if m.GetMatch().GetFields()["provider"].GetStringValue() == provider {
				tlsCtx = &tlsv3.UpstreamTlsContext{}
				if err := m.GetTransportSocket().GetTypedConfig().UnmarshalTo(tlsCtx); err != nil {
					t.Fatal(err)
				}
			}
		}
		sans := tlsCtx.GetCommonTlsContext().GetValidationContext().GetMatchTypedSubjectAltNames()
		if tlsCtx.GetSni() != host || len(sans) != 1 || sans[0].GetMatcher().GetExact() != host {
			t.Errorf("endpoint %d (%s): TLS match %v, want sni and SAN %s", i, provider, tlsCtx, host)
		}
	}
	if !slices.Equal(providers, []string{"openai", "anthropic"}) {
		t.Errorf("chain providers %v, want [openai anthropic]", providers)
	}

	opts := &upstreamhttpv3.HttpProtocolOptions{}
	if err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(opts); err != nil {
		t.Fatal(err)
	}
	fs := opts.GetHttpFilters()
	if len(fs) != 2 || filterType(fs[1]) != upstreamCodecType {
		t.Fatalf("chain http_filters = %v, want [ext_proc, upstream_codec]", fs)
	}
	ep := &extprocv3.ExternalProcessor{}
	if err := fs[0].GetTypedConfig().UnmarshalTo(ep); err != nil {
		t.Fatalf("first upstream filter is not ext_proc: %v", err)
	}
	wantMode := &extprocv3.ProcessingMode{
		RequestHeaderMode: extprocv3.ProcessingMode_SEND, RequestBodyMode: extprocv3.ProcessingMode_BUFFERED,
		RequestTrailerMode: extprocv3.ProcessingMode_SKIP, ResponseHeaderMode: extprocv3.ProcessingMode_SKIP,
		ResponseBodyMode: extprocv3.ProcessingMode_NONE, ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
	if !proto.Equal(ep.GetProcessingMode(), wantMode) || ep.GetFailureModeAllow() || ep.GetAllowModeOverride() ||
		ep.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "tollgate_ext_proc" {
		t.Errorf("upstream ext_proc %v", ep)
	}
	for _, a := range []string{"xds.cluster_name", "xds.upstream_host_metadata.filter_metadata['tollgate']['provider']", "upstream.request_attempt_count"} {
		if !slices.Contains(ep.GetRequestAttributes(), a) {
			t.Errorf("upstream request_attributes %v lack %s", ep.GetRequestAttributes(), a)
		}
	}
	if got := ep.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(); !slices.Equal(got, []string{"tollgate"}) {
		t.Errorf("upstream forwarding_namespaces %v, want [tollgate]", got)
	}

	routes := connectionManager(t, onlyListener(t, bs)).GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	i := slices.IndexFunc(routes, func(r *routev3.Route) bool { return r.GetName() == "chain_smart_default" })
	if j := slices.IndexFunc(routes, func(r *routev3.Route) bool { return r.GetName() == "provider" }); i < 0 || j < i {
		t.Fatalf("chain route at %d, provider route at %d: the chain route must come first", i, j)
	}
	r := routes[i]
	hm := r.GetMatch().GetHeaders()
	if len(hm) != 1 || hm[0].GetName() != "x-tollgate-cluster" || hm[0].GetStringMatch().GetExact() != "chain_smart_default" ||
		r.GetRoute().GetCluster() != "chain_smart_default" || !r.GetRoute().GetAutoHostRewrite().GetValue() ||
		!slices.Equal(r.GetRequestHeadersToRemove(), []string{"x-tollgate-cluster"}) {
		t.Errorf("chain route %v", r)
	}
	rp := r.GetRoute().GetRetryPolicy()
	retryOn := strings.Split(rp.GetRetryOn(), ",")
	for _, want := range []string{"5xx", "reset", "connect-failure", "retriable-status-codes"} {
		if !slices.Contains(retryOn, want) {
			t.Errorf("retry_on %v lacks %s", retryOn, want)
		}
	}
	if !slices.Contains(rp.GetRetriableStatusCodes(), 429) || rp.GetNumRetries().GetValue() != uint32(len(providers)-1) ||
		rp.GetRetryPriority().GetName() != "envoy.retry_priorities.previous_priorities" || rp.GetPerTryIdleTimeout() == nil ||
		len(rp.GetRetryHostPredicate()) != 1 || rp.GetRetryHostPredicate()[0].GetName() != "envoy.retry_host_predicates.previous_hosts" {
		t.Errorf("chain retry policy %v", rp)
	}
	prio := &previousprioritiesv3.PreviousPrioritiesConfig{}
	if err := rp.GetRetryPriority().GetTypedConfig().UnmarshalTo(prio); err != nil || prio.GetUpdateFrequency() != 1 {
		t.Errorf("previous_priorities %v (%v), want update_frequency 1", prio, err)
	}
	if h := rp.GetRateLimitedRetryBackOff().GetResetHeaders(); len(h) == 0 || !strings.EqualFold(h[0].GetName(), "retry-after") {
		t.Errorf("rate_limited_retry_back_off reset_headers = %v, want retry-after", h)
	}
}
