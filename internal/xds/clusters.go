// Package xds turns a gateway configuration into the Envoy resources Tollgate
// serves over ADS (provider clusters, fallback-chain clusters, the route
// configuration) and into Envoy bootstraps, and runs the ADS server
// (go-control-plane's server and snapshot cache) that publishes them.
//
// Generation is a pure function of the configuration: the same config gives
// the same resources, so `tollgate envoy bootstrap --static`, `tollgate
// check` and `tollgate serve` agree by construction.
package xds

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate-ai/tollgate/routing/config"
)

// Names shared by the bootstrap, the generated resources and the stand-in.
const (
	ListenerName    = "tollgate"            // the static listener of every bootstrap
	RouteConfigName = "tollgate"            // the RDS resource (and the inline route_config)
	ExtProcCluster  = config.ExtProcCluster // tollgate_ext_proc: the ext_proc gRPC service
	XDSCluster      = config.XDSCluster     // tollgate_xds: the ADS service
	ClusterHeader   = "x-tollgate-cluster"  // the processor's choice of cluster
	MetadataNS      = "tollgate"            // dynamic and endpoint metadata namespace
	tlsSocket       = "envoy.transport_sockets.tls"
	protocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	socketMatchNS   = "envoy.transport_socket_match"
)

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // only for messages of linked-in types, which always marshal
	}
	return a
}

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func durationOr(v config.Duration, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(string(v)); err == nil && d > 0 {
		return d
	}
	return def
}

// upstream is one provider's generated connection settings.
type upstream struct {
	name     string
	ep       config.Endpoint
	http2    bool
	sni      string // empty: no SNI (an IP address)
	caFile   string
	connect  time.Duration
	idle     time.Duration // 0: Envoy's default
	breakers config.CircuitBreakers
}

func upstreamOf(p *config.Provider) (upstream, error) {
	ep, err := config.ParseURL(p.URL)
	if err != nil {
		return upstream{}, fmt.Errorf("provider %s: url: %w", p.Name, err)
	}
	u := upstream{name: p.Name, ep: ep, caFile: config.DefaultCAFile,
		connect: durationOr(p.ConnectTimeout, config.DefaultConnectTimeout),
		idle:    durationOr(p.IdleTimeout, 0), breakers: p.CircuitBreakers.WithDefaults()}
	// HTTPS providers negotiate HTTP/2 by ALPN; plain-HTTP servers (Ollama,
	// vLLM, a local mock) usually speak only HTTP/1.1 without prior knowledge.
	u.http2 = ep.TLS
	switch p.HTTPVersion {
	case config.HTTP2:
		u.http2 = true
	case config.HTTP11:
		u.http2 = false
	}
	if ep.TLS && !ep.IP {
		u.sni = ep.Host
	}
	if t := p.TLS; t != nil {
		if t.SNI != "" {
			u.sni = t.SNI
		}
		if t.CAFile != "" {
			u.caFile = t.CAFile
		}
	}
	return u, nil
}

// providerCluster is the cluster of one provider with a URL.
func providerCluster(u upstream) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                          u.name,
		ConnectTimeout:                dur(u.connect),
		CircuitBreakers:               breakers(u.breakers),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{protocolOptions: mustAny(protocolOpts(u.http2, u.idle, nil))},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: u.name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(u.ep)},
		}}},
	}
	if u.ep.IP {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	} else {
		// LOGICAL_DNS: one connection target at a time, re-resolved in the
		// background; right for one CDN-fronted host name
		// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/service_discovery#logical-dns).
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
	}
	if u.ep.TLS {
		c.TransportSocket = tlsTransport(u)
	}
	return c
}

func lbEndpoint(ep config.Endpoint) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		// The host name auto_host_rewrite sends as Host/:authority.
		Hostname: ep.Host,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ep.Host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ep.Port)},
		}}},
	}}}
}

// breakers lifts Envoy's default thresholds (1024 requests, 3 concurrent
// retries): long generations hold requests for minutes.
func breakers(b config.CircuitBreakers) *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(uint32(b.MaxConnections)),
		MaxPendingRequests: wrapperspb.UInt32(uint32(b.MaxPendingRequests)),
		MaxRequests:        wrapperspb.UInt32(uint32(b.MaxRequests)),
		RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: float64(b.RetryBudgetPercent)},
			MinRetryConcurrency: wrapperspb.UInt32(uint32(b.MinRetryConcurrency)),
		},
	}}}
}

func protocolOpts(http2 bool, idle time.Duration, filters []*hcmv3.HttpFilter) *httpv3.HttpProtocolOptions {
	o := &httpv3.HttpProtocolOptions{HttpFilters: filters}
	if http2 {
		o.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}}
	} else {
		o.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}}
	}
	if idle > 0 {
		o.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: dur(idle)}
	}
	return o
}

// tlsTransport verifies the provider's certificate against the CA bundle and
// its name (SNI, or the IP address), and negotiates the HTTP version by ALPN
// to match the explicit protocol.
func tlsTransport(u upstream) *corev3.TransportSocket {
	alpn := "http/1.1"
	if u.http2 {
		alpn = "h2"
	}
	san := &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: u.sni}}}
	if u.sni == "" {
		san = &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_IP_ADDRESS,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: u.ep.Host}}}
	}
	ctx := &tlsv3.UpstreamTlsContext{Sni: u.sni, CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{alpn},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: u.caFile}},
			// An exact DNS matcher also accepts a matching wildcard SAN in the certificate.
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{san},
		}},
	}}
	return &corev3.TransportSocket{Name: tlsSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

// chainCluster is a fallback chain's cluster: its providers as endpoints at
// increasing priorities, each with its own TLS settings, and the upstream
// ext_proc filter that translates and authenticates every attempt for its
// provider (Envoy AI Gateway's pattern, an ext_proc filter among the
// cluster's upstream http_filters:
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/upstreams/http/v3/http_protocol_options.proto).
func chainCluster(name string, members []upstream) (*clusterv3.Cluster, error) {
	connect := time.Duration(0)
	for _, m := range members {
		if m.http2 != members[0].http2 {
			return nil, fmt.Errorf("providers %s and %s use different HTTP versions; one chain cluster has one (set http_version)", members[0].name, m.name)
		}
		connect = max(connect, m.connect)
	}
	la := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	var matches []*clusterv3.Cluster_TransportSocketMatch
	for i, m := range members {
		ep := lbEndpoint(m.ep)
		ep.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			// The provider the upstream processor reads from its request_attributes.
			MetadataNS: {Fields: map[string]*structpb.Value{"provider": structpb.NewStringValue(m.name)}},
			// Selects this endpoint's TLS settings in transport_socket_matches.
			socketMatchNS: {Fields: map[string]*structpb.Value{"provider": structpb.NewStringValue(m.name)}},
		}}
		la.Endpoints = append(la.Endpoints, &endpointv3.LocalityLbEndpoints{Priority: uint32(i), LbEndpoints: []*endpointv3.LbEndpoint{ep}})
		if m.ep.TLS {
			// TLS per endpoint, each with its own SNI and SAN: auto_sni would
			// take the previous attempt's Host on a retry.
			matches = append(matches, &clusterv3.Cluster_TransportSocketMatch{
				Name:            m.name,
				Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"provider": structpb.NewStringValue(m.name)}},
				TransportSocket: tlsTransport(m),
			})
		}
	}
	filters := []*hcmv3.HttpFilter{
		{Name: "envoy.filters.http.ext_proc", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(upstreamExtProc())}},
		{Name: "envoy.filters.http.upstream_codec", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&upstreamcodecv3.UpstreamCodec{})}},
	}
	return &clusterv3.Cluster{
		Name: name,
		// STRICT_DNS: several endpoints with host names (LOGICAL_DNS allows one).
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		DnsLookupFamily:               clusterv3.Cluster_V4_PREFERRED,
		ConnectTimeout:                dur(connect),
		CircuitBreakers:               breakers(config.DefaultCircuitBreakers),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{protocolOptions: mustAny(protocolOpts(members[0].http2, 0, filters))},
		LoadAssignment:                la,
		TransportSocketMatches:        matches,
	}, nil
}

// upstreamExtProc is the chain cluster's ext_proc filter. Envoy drops its
// local replies in upstream placement, so it only translates and
// authenticates; requests are refused downstream.
func upstreamExtProc() *extprocv3.ExternalProcessor {
	return &extprocv3.ExternalProcessor{
		GrpcService:       &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtProcCluster}}},
		FailureModeAllow:  false,
		MessageTimeout:    dur(10 * time.Second),
		MaxMessageTimeout: dur(60 * time.Second),
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		RequestAttributes: []string{
			"xds.cluster_name",
			"xds.upstream_host_metadata.filter_metadata['tollgate']['provider']",
			"upstream.request_attempt_count",
		},
		MetadataOptions: &extprocv3.MetadataOptions{
			ForwardingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{MetadataNS}},
			ReceivingNamespaces:  &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{MetadataNS}},
		},
	}
}
