package standin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Extension types a bootstrap may name in "@type"; protojson resolves an Any only if its
	// package is linked in.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

const (
	hcmFilterName     = "envoy.filters.network.http_connection_manager"
	hcmTypeURL        = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	extProcTypeURL    = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
	routerTypeURL     = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	httpOptionsKey    = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	defaultBufferSize = 1 << 20 // per_connection_buffer_limit_bytes default (spec §1.5)
)

// Rewrite says how RewriteBootstrap points a bootstrap at a test environment.
type Rewrite struct {
	// Listener names the listener to keep; "" keeps the first. Other listeners are dropped.
	Listener string
	// ListenerPort is the loopback port the kept listener binds (0 lets the OS choose).
	ListenerPort int
	// AdminPort is the admin port; 0 picks a free loopback port.
	AdminPort int
	// Clusters maps cluster names to "127.0.0.1:port" or "unix:///path". Each listed
	// cluster becomes STATIC with that one endpoint, its TLS transport socket removed. The
	// endpoint keeps the original hostname, so auto_host_rewrite still yields it.
	Clusters map[string]string
	// UpstreamHTTP1 makes every listed cluster other than the ext_proc cluster speak
	// HTTP/1.1 (plain test servers) instead of any configured HTTP/2.
	UpstreamHTTP1 bool
}

// RewriteBootstrap rewrites an Envoy bootstrap (YAML or JSON) for a test environment and
// returns YAML a real envoy accepts: one listener on 127.0.0.1 without TLS, admin on
// loopback, and the given clusters on loopback without TLS. The stand-in builds its own
// view from the same rewrite, so a real envoy and the stand-in agree.
func RewriteBootstrap(bootstrap []byte, o Rewrite) ([]byte, error) {
	bs, err := parseBootstrap(bootstrap)
	if err != nil {
		return nil, err
	}
	if err := rewrite(bs, o); err != nil {
		return nil, err
	}
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(bs)
	if err != nil {
		return nil, fmt.Errorf("standin: marshal bootstrap: %w", err)
	}
	out, err := yaml.JSONToYAML(js)
	if err != nil {
		return nil, fmt.Errorf("standin: bootstrap to YAML: %w", err)
	}
	return out, nil
}

func parseBootstrap(b []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("standin: bootstrap YAML: %w", err)
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, bs); err != nil {
		return nil, fmt.Errorf("standin: bootstrap: %w", err)
	}
	if err := bs.ValidateAll(); err != nil {
		return nil, fmt.Errorf("standin: bootstrap: %w", err)
	}
	return bs, nil
}

func rewrite(bs *bootstrapv3.Bootstrap, o Rewrite) error {
	sr := bs.GetStaticResources()
	if sr == nil {
		return errors.New("standin: bootstrap has no static_resources")
	}
	var keep *listenerv3.Listener
	for _, l := range sr.GetListeners() {
		if o.Listener == "" || l.GetName() == o.Listener {
			keep = l
			break
		}
	}
	if keep == nil {
		return fmt.Errorf("standin: listener %q not found", o.Listener)
	}
	sr.Listeners = []*listenerv3.Listener{keep}
	keep.Address = socketAddress("127.0.0.1", o.ListenerPort)
	keep.ListenerFilters = nil
	fc, _, err := hcmChain(keep)
	if err != nil {
		return err
	}
	fc.TransportSocket = nil
	fc.FilterChainMatch = nil
	keep.FilterChains = []*listenerv3.FilterChain{fc}
	keep.DefaultFilterChain = nil

	adminPort := o.AdminPort
	if adminPort == 0 {
		if adminPort, err = freePort(); err != nil {
			return err
		}
	}
	if bs.Admin == nil {
		bs.Admin = &bootstrapv3.Admin{}
	}
	bs.Admin.Address = socketAddress("127.0.0.1", adminPort)

	grpcCluster := ""
	if ep, _, err := extProcFilter(fc); err == nil && ep != nil {
		grpcCluster = ep.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	}
	for name, addr := range o.Clusters {
		c := findCluster(sr.GetClusters(), name)
		if c == nil {
			return fmt.Errorf("standin: cluster %q not in bootstrap", name)
		}
		if err := pointCluster(c, addr); err != nil {
			return fmt.Errorf("standin: cluster %q: %w", name, err)
		}
		if o.UpstreamHTTP1 && name != grpcCluster {
			if err := forceHTTP1(c); err != nil {
				return fmt.Errorf("standin: cluster %q: %w", name, err)
			}
		}
	}
	return nil
}

func socketAddress(host string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("standin: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func findCluster(cs []*clusterv3.Cluster, name string) *clusterv3.Cluster {
	for _, c := range cs {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// pointCluster makes c a STATIC cluster with the single endpoint addr, without TLS,
// keeping the original endpoint's hostname for auto_host_rewrite.
func pointCluster(c *clusterv3.Cluster, addr string) error {
	hostname := ""
	for _, lle := range c.GetLoadAssignment().GetEndpoints() {
		for _, le := range lle.GetLbEndpoints() {
			ep := le.GetEndpoint()
			if ep == nil {
				continue
			}
			hostname = ep.GetHostname()
			if hostname == "" {
				if a := ep.GetAddress().GetSocketAddress().GetAddress(); a != "" {
					if _, err := netip.ParseAddr(a); err != nil {
						hostname = a // a DNS name: what LOGICAL_DNS would have used
					}
				}
			}
			break
		}
		break
	}
	var address *corev3.Address
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: p}}}
	} else {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("address %q: %w", addr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("address %q: bad port", addr)
		}
		address = socketAddress(host, p)
	}
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.DnsLookupFamily = clusterv3.Cluster_AUTO
	c.TransportSocket = nil
	c.TransportSocketMatches = nil
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: c.GetName(),
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: address, Hostname: hostname,
			}},
		}}}},
	}
	return nil
}

func forceHTTP1(c *clusterv3.Cluster) error {
	a, ok := c.GetTypedExtensionProtocolOptions()[httpOptionsKey]
	if !ok {
		return nil
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	if err := a.UnmarshalTo(opts); err != nil {
		return err
	}
	opts.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
				HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
			},
		},
	}
	na, err := anypb.New(opts)
	if err != nil {
		return err
	}
	c.TypedExtensionProtocolOptions[httpOptionsKey] = na
	return nil
}

// hcmChain finds the listener's first filter chain whose network filter is the HCM.
func hcmChain(l *listenerv3.Listener) (*listenerv3.FilterChain, *hcmv3.HttpConnectionManager, error) {
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetTypedConfig().GetTypeUrl() != hcmTypeURL {
				continue
			}
			h := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
				return nil, nil, fmt.Errorf("standin: listener %q: %w", l.GetName(), err)
			}
			return fc, h, nil
		}
	}
	return nil, nil, fmt.Errorf("standin: listener %q has no http_connection_manager", l.GetName())
}

// extProcFilter returns the chain's ext_proc filter config and its filter name, if any.
func extProcFilter(fc *listenerv3.FilterChain) (*extprocv3.ExternalProcessor, string, error) {
	for _, f := range fc.GetFilters() {
		if f.GetTypedConfig().GetTypeUrl() != hcmTypeURL {
			continue
		}
		h := &hcmv3.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
			return nil, "", err
		}
		for _, hf := range h.GetHttpFilters() {
			if hf.GetTypedConfig().GetTypeUrl() == extProcTypeURL {
				ep := &extprocv3.ExternalProcessor{}
				if err := hf.GetTypedConfig().UnmarshalTo(ep); err != nil {
					return nil, "", err
				}
				return ep, hf.GetName(), nil
			}
		}
	}
	return nil, "", nil
}
