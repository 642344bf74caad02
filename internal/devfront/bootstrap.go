package devfront

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
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
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

const (
	hcmFilterName     = "envoy.filters.network.http_connection_manager"
	hcmTypeURL        = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	extProcTypeURL    = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
	routerTypeURL     = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	httpOptionsKey    = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	defaultBufferSize = 1 << 20 // per_connection_buffer_limit_bytes default (Envoy ext_proc: BUFFERED bodies and the buffer limit)
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
	//
	// A cluster with more than one endpoint (a fallback chain's priorities) cannot be
	// collapsed that way; its endpoints are pointed one by one with keys
	// "cluster/hostname" (every endpoint whose hostname, or else DNS address, is hostname)
	// or "cluster/#n" (the n-th lb_endpoint in config order, from 0). Each keeps its
	// hostname, priority, metadata and health status. The cluster loses its
	// transport_socket and transport_socket_matches (all endpoints then speak plain text,
	// so point them all for a real envoy), and becomes STATIC when every endpoint is
	// pointed, else STRICT_DNS.
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
		return nil, fmt.Errorf("devfront: marshal bootstrap: %w", err)
	}
	out, err := yaml.JSONToYAML(js)
	if err != nil {
		return nil, fmt.Errorf("devfront: bootstrap to YAML: %w", err)
	}
	return out, nil
}

func parseBootstrap(b []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("devfront: bootstrap YAML: %w", err)
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, bs); err != nil {
		return nil, fmt.Errorf("devfront: bootstrap: %w", err)
	}
	if err := bs.ValidateAll(); err != nil {
		return nil, fmt.Errorf("devfront: bootstrap: %w", err)
	}
	return bs, nil
}

func rewrite(bs *bootstrapv3.Bootstrap, o Rewrite) error {
	sr := bs.GetStaticResources()
	if sr == nil {
		return errors.New("devfront: bootstrap has no static_resources")
	}
	var keep *listenerv3.Listener
	for _, l := range sr.GetListeners() {
		if o.Listener == "" || l.GetName() == o.Listener {
			keep = l
			break
		}
	}
	if keep == nil {
		return fmt.Errorf("devfront: listener %q not found", o.Listener)
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

	grpc, err := grpcClusters(fc, sr.GetClusters())
	if err != nil {
		return err
	}
	whole := map[string]string{}
	endpoints := map[string]map[string]string{}
	for key, addr := range o.Clusters {
		if findCluster(sr.GetClusters(), key) != nil {
			whole[key] = addr
			continue
		}
		name, sel, ok := strings.Cut(key, "/")
		if !ok || sel == "" || findCluster(sr.GetClusters(), name) == nil {
			return fmt.Errorf("devfront: cluster %q not in bootstrap", key)
		}
		if endpoints[name] == nil {
			endpoints[name] = map[string]string{}
		}
		endpoints[name][sel] = addr
	}
	names := slices.Sorted(maps.Keys(whole))
	for name := range endpoints {
		if _, dup := whole[name]; dup {
			return fmt.Errorf("devfront: cluster %q is pointed both whole and by endpoint", name)
		}
		names = append(names, name)
	}
	for _, name := range names {
		c := findCluster(sr.GetClusters(), name)
		var err error
		if addr, ok := whole[name]; ok {
			if n := len(lbEndpoints(c)); n > 1 {
				err = fmt.Errorf("it has %d endpoints: point them one by one as %q/<hostname> or %q/#<n>", n, name, name)
			} else {
				err = pointCluster(c, addr)
			}
		} else {
			err = pointEndpoints(c, endpoints[name])
		}
		if err == nil && o.UpstreamHTTP1 && !grpc[name] {
			err = forceHTTP1(c)
		}
		if err != nil {
			return fmt.Errorf("devfront: cluster %q: %w", name, err)
		}
	}
	return nil
}

// grpcClusters names the clusters ext_proc filters (downstream or upstream) talk gRPC to.
func grpcClusters(fc *listenerv3.FilterChain, cs []*clusterv3.Cluster) (map[string]bool, error) {
	out := map[string]bool{}
	ep, _, err := extProcFilter(fc)
	if err != nil {
		return nil, err
	}
	if ep != nil {
		out[ep.GetGrpcService().GetEnvoyGrpc().GetClusterName()] = true
	}
	for _, c := range cs {
		a, ok := c.GetTypedExtensionProtocolOptions()[httpOptionsKey]
		if !ok {
			continue
		}
		opts := &upstreamhttpv3.HttpProtocolOptions{}
		if err := a.UnmarshalTo(opts); err != nil {
			return nil, fmt.Errorf("devfront: cluster %q: %w", c.GetName(), err)
		}
		for _, f := range opts.GetHttpFilters() {
			if f.GetTypedConfig().GetTypeUrl() != extProcTypeURL {
				continue
			}
			ep := &extprocv3.ExternalProcessor{}
			if err := f.GetTypedConfig().UnmarshalTo(ep); err != nil {
				return nil, fmt.Errorf("devfront: cluster %q: %w", c.GetName(), err)
			}
			out[ep.GetGrpcService().GetEnvoyGrpc().GetClusterName()] = true
		}
	}
	return out, nil
}

func lbEndpoints(c *clusterv3.Cluster) []*endpointv3.LbEndpoint {
	var out []*endpointv3.LbEndpoint
	for _, lle := range c.GetLoadAssignment().GetEndpoints() {
		out = append(out, lle.GetLbEndpoints()...)
	}
	return out
}

// endpointHostname is the hostname auto_host_rewrite uses: the endpoint's hostname, else
// its DNS address (what LOGICAL_DNS / STRICT_DNS would use).
func endpointHostname(ep *endpointv3.Endpoint) string {
	if h := ep.GetHostname(); h != "" {
		return h
	}
	if a := ep.GetAddress().GetSocketAddress().GetAddress(); a != "" {
		if _, err := netip.ParseAddr(a); err != nil {
			return a
		}
	}
	return ""
}

// parseAddress parses "host:port" or "unix:///path".
func parseAddress(addr string) (*corev3.Address, error) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: p}}}, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("address %q: bad port", addr)
	}
	return socketAddress(host, p), nil
}

// pointEndpoints points the selected endpoints of c at addresses, keeping everything else
// about them (priority, metadata, health status, hostname).
func pointEndpoints(c *clusterv3.Cluster, sels map[string]string) error {
	used := map[string]bool{}
	all, pointed, pipes := lbEndpoints(c), 0, false
	for i, le := range all {
		ep := le.GetEndpoint()
		if ep == nil {
			continue
		}
		hostname := endpointHostname(ep)
		sel := "#" + strconv.Itoa(i)
		addr, ok := sels[sel]
		if !ok {
			sel = hostname
			addr, ok = sels[sel]
		}
		if !ok {
			continue
		}
		a, err := parseAddress(addr)
		if err != nil {
			return err
		}
		used[sel] = true
		pointed++
		pipes = pipes || a.GetPipe() != nil
		ep.Address, ep.Hostname = a, hostname
	}
	for sel := range sels {
		if !used[sel] {
			return fmt.Errorf("no endpoint %q (want a hostname or #index of its %d lb_endpoints)", sel, len(all))
		}
	}
	switch {
	case pointed == len(all):
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		c.DnsLookupFamily = clusterv3.Cluster_AUTO
	case pipes && c.GetType() != clusterv3.Cluster_STATIC:
		return errors.New("a unix address needs every endpoint of a DNS cluster pointed (it becomes STATIC)")
	case c.GetType() == clusterv3.Cluster_LOGICAL_DNS:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
	}
	c.TransportSocket = nil
	c.TransportSocketMatches = nil
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
		return 0, fmt.Errorf("devfront: free port: %w", err)
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
// keeping the endpoint's hostname (for auto_host_rewrite), priority and metadata.
func pointCluster(c *clusterv3.Cluster, addr string) error {
	if les := lbEndpoints(c); len(les) == 1 && les[0].GetEndpoint() != nil {
		return pointEndpoints(c, map[string]string{"#0": addr})
	}
	address, err := parseAddress(addr)
	if err != nil {
		return err
	}
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.DnsLookupFamily = clusterv3.Cluster_AUTO
	c.TransportSocket = nil
	c.TransportSocketMatches = nil
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: c.GetName(),
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: address}},
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
				return nil, nil, fmt.Errorf("devfront: listener %q: %w", l.GetName(), err)
			}
			return fc, h, nil
		}
	}
	return nil, nil, fmt.Errorf("devfront: listener %q has no http_connection_manager", l.GetName())
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
