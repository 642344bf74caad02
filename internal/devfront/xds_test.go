package devfront

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ---- scripted ADS server ----

// adsServer is an AggregatedDiscoveryService whose streams each test drives by hand:
// it sees every DiscoveryRequest and sends the responses it chooses.
type adsServer struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	addr    string
	streams chan *adsStream
}

type adsStream struct {
	srv  discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	reqs chan *discoveryv3.DiscoveryRequest
	end  chan error
}

func startADS(t *testing.T) *adsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &adsServer{addr: ln.Addr().String(), streams: make(chan *adsStream, 16)}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return s
}

func (s *adsServer) StreamAggregatedResources(srv discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	st := &adsStream{srv: srv, reqs: make(chan *discoveryv3.DiscoveryRequest, 64), end: make(chan error, 1)}
	s.streams <- st
	go func() {
		for {
			r, err := srv.Recv()
			if err != nil {
				return
			}
			st.reqs <- r
		}
	}()
	select {
	case err := <-st.end:
		return err
	case <-srv.Context().Done():
		return nil
	}
}

func (s *adsServer) next(t *testing.T) *adsStream {
	t.Helper()
	select {
	case st := <-s.streams:
		return st
	case <-timeoutCh():
		t.Fatal("no ADS stream opened")
		return nil
	}
}

func (st *adsStream) next(t *testing.T) *discoveryv3.DiscoveryRequest {
	t.Helper()
	select {
	case r := <-st.reqs:
		return r
	case <-timeoutCh():
		t.Fatal("no DiscoveryRequest")
		return nil
	}
}

// noRequest checks that nothing was requested so far.
func (st *adsStream) noRequest(t *testing.T) {
	t.Helper()
	select {
	case r := <-st.reqs:
		t.Fatalf("unexpected DiscoveryRequest: %v", r)
	default:
	}
}

func (st *adsStream) respond(t *testing.T, typ, version, nonce string, res ...proto.Message) {
	t.Helper()
	var anys []*anypb.Any
	for _, m := range res {
		if a, ok := m.(*anypb.Any); ok {
			anys = append(anys, a)
			continue
		}
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		anys = append(anys, a)
	}
	if err := st.srv.Send(&discoveryv3.DiscoveryResponse{VersionInfo: version, Nonce: nonce, TypeUrl: typ, Resources: anys}); err != nil {
		t.Fatal(err)
	}
}

// wantRequest checks a request's type, version, nonce and resource names, and whether it
// is a NACK; it returns the request.
func (st *adsStream) wantRequest(t *testing.T, typ, version, nonce string, nack bool) *discoveryv3.DiscoveryRequest {
	t.Helper()
	r := st.next(t)
	var names []string
	if typ == routeType {
		names = []string{"routes"}
	}
	if r.GetTypeUrl() != typ || r.GetVersionInfo() != version || r.GetResponseNonce() != nonce ||
		!slices.Equal(r.GetResourceNames(), names) || (r.GetErrorDetail() != nil) != nack {
		t.Fatalf("request = {type %s version %q nonce %q names %q error %v}, want {type %s version %q nonce %q names %q nack %v}",
			r.GetTypeUrl(), r.GetVersionInfo(), r.GetResponseNonce(), r.GetResourceNames(), r.GetErrorDetail(),
			typ, version, nonce, names, nack)
	}
	return r
}

// ---- resources ----

func xdsCluster(name, addr string) *clusterv3.Cluster {
	host, port, _ := net.SplitHostPort(addr)
	p := 0
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, p)}}}},
		}}},
	}
}

func xdsRoutes(routes ...*routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "routes", VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"}, Routes: routes,
	}}}
}

func toCluster(prefix, cluster string) *routev3.Route {
	return &routev3.Route{Name: prefix, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}}
}

func toClusterHeader(prefix, header string, notFound routev3.RouteAction_ClusterNotFoundResponseCode) *routev3.Route {
	return &routev3.Route{Name: prefix, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier:            &routev3.RouteAction_ClusterHeader{ClusterHeader: header},
			ClusterNotFoundResponseCode: notFound,
		}}}
}

// ---- environment ----

const xdsBootstrap = `node: { id: standin, cluster: tollgate }
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: xds } }]
  cds_config: { ads: {}, resource_api_version: V3 }
static_resources:
  listeners:
  - name: test
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": ` + hcmTypeURL + `
          stat_prefix: test
          rds: { route_config_name: routes, config_source: { ads: {}, resource_api_version: V3 } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": ` + routerTypeURL + ` }
  clusters:
  - name: xds
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: xds
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }]
`

type xenv struct {
	*env
	ads  *adsServer
	warm chan warmCall // WarmCluster calls, when the test gates warming
}

type warmCall struct {
	name    string
	release chan struct{}
}

// newXDSEnv starts a stand-in on xdsBootstrap against a scripted ADS server. With
// gateWarming, every cluster warms only when the test releases it (releaseWarm).
func newXDSEnv(t *testing.T, gateWarming bool, clusters map[string]string) *xenv {
	t.Helper()
	return newXDSEnvBoot(t, xdsBootstrap, gateWarming, clusters)
}

func newXDSEnvBoot(t *testing.T, bootstrap string, gateWarming bool, clusters map[string]string) *xenv {
	t.Helper()
	x := &xenv{env: &env{timers: newFakeTimers()}, ads: startADS(t)}
	overrides := map[string]string{"xds": x.ads.addr}
	for k, v := range clusters {
		overrides[k] = v
	}
	opts := Options{Bootstrap: []byte(bootstrap), Clusters: overrides, NewTimer: x.timers.NewTimer}
	if gateWarming {
		x.warm = make(chan warmCall, 16)
		opts.WarmCluster = func(ctx context.Context, name string) {
			c := warmCall{name: name, release: make(chan struct{})}
			x.warm <- c
			select {
			case <-c.release:
			case <-ctx.Done():
			}
		}
	}
	var err error
	if x.envoy, err = Start(context.Background(), opts); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = x.envoy.Close() })
	x.client = newTestClient(t)
	return x
}

func newTestClient(t *testing.T) *http.Client {
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: testTimeout}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// releaseWarm waits for the warming of cluster name and lets it finish.
func (x *xenv) releaseWarm(t *testing.T, name string) {
	t.Helper()
	c := x.warming(t)
	if c.name != name {
		t.Fatalf("warming %q, want %q", c.name, name)
	}
	close(c.release)
}

func (x *xenv) warming(t *testing.T) warmCall {
	t.Helper()
	select {
	case c := <-x.warm:
		return c
	case <-timeoutCh():
		t.Fatal("no cluster warming")
		return warmCall{}
	}
}

func (x *xenv) waitApplied(t *testing.T, cds, rds string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := x.envoy.WaitApplied(ctx, cds, rds); err != nil {
		t.Fatal(err)
	}
}

// bringUp answers the initial CDS and RDS subscriptions with version "1".
func (x *xenv) bringUp(t *testing.T, routes *routev3.RouteConfiguration, clusters ...proto.Message) *adsStream {
	t.Helper()
	st := x.ads.next(t)
	st.wantRequest(t, clusterType, "", "", false)
	st.respond(t, clusterType, "1", "c1", clusters...)
	st.wantRequest(t, clusterType, "1", "c1", false)
	st.wantRequest(t, routeType, "", "", false)
	st.respond(t, routeType, "1", "r1", routes)
	st.wantRequest(t, routeType, "1", "r1", false)
	x.waitApplied(t, "1", "1")
	return st
}

// namedUpstream answers with its name.
func namedUpstream(t *testing.T, name string) *upstream {
	return startUpstream(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) })
}

func wantServed(t *testing.T, r result, body string) {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	if r.body != body {
		t.Fatalf("served by %q, want %q", r.body, body)
	}
}

// ---- tests ----

// CDS is subscribed first; RDS only once the first CDS response is applied and its
// clusters warmed (xDS protocol, "Eventual consistency considerations"); the node
// identifies the stand-in.
func TestXDSSubscriptionOrder(t *testing.T) {
	x := newXDSEnv(t, true, nil)
	a := namedUpstream(t, "a")
	st := x.ads.next(t)
	r := st.wantRequest(t, clusterType, "", "", false)
	if r.GetNode().GetId() != "standin" || r.GetNode().GetCluster() != "tollgate" {
		t.Fatalf("node = %v", r.GetNode())
	}
	st.respond(t, clusterType, "1", "c1", xdsCluster("a", a.addr()))
	st.wantRequest(t, clusterType, "1", "c1", false) // ACK at once, before warming ends
	c := x.warming(t)
	st.noRequest(t) // no RDS while the initial clusters warm
	if s := x.envoy.XDS(); s.CDS.Applied != "" || s.CDS.Accepted != "1" {
		t.Fatalf("CDS status while warming = %+v", s.CDS)
	}
	close(c.release)
	st.wantRequest(t, routeType, "", "", false)
	st.respond(t, routeType, "1", "r1", xdsRoutes(toCluster("/", "a")))
	st.wantRequest(t, routeType, "1", "r1", false)
	x.waitApplied(t, "1", "1")
	wantServed(t, x.get(t, "/"), "a")
	if got := x.lastLog(t).Cluster; got != "a" {
		t.Fatalf("cluster = %q", got)
	}
	if s := x.envoy.Stats(); s["cluster_manager.cds.update_success"] != 1 || s["http.test.rds.routes.update_success"] != 1 {
		t.Fatalf("stats = %v", s)
	}
}

// Each response is ACKed with its version and nonce, or NACKed with the previous accepted
// version, its nonce and an error_detail; a NACKed update changes nothing.
func TestXDSAckNack(t *testing.T) {
	a, b := namedUpstream(t, "a"), namedUpstream(t, "b")
	badTimeout := xdsCluster("b", b.addr())
	badTimeout.ConnectTimeout = durationpb.New(-time.Second)
	unknown, err := anypb.New(xdsCluster("b", b.addr()))
	if err != nil {
		t.Fatal(err)
	}
	unknown.Value = protowire.AppendVarint(protowire.AppendTag(unknown.Value, 9999, protowire.VarintType), 1)
	eds := xdsCluster("b", b.addr())
	eds.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
	eds.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}
	validated := xdsRoutes(toCluster("/", "nope"))
	validated.ValidateClusters = wrapperspb.Bool(true)
	hedged := xdsRoutes(toCluster("/", "b"))
	hedged.VirtualHosts[0].HedgePolicy = &routev3.HedgePolicy{HedgeOnPerTryTimeout: true}

	cases := []struct {
		name    string
		typ     string
		res     []proto.Message
		wantErr string
	}{
		{"cluster failing validation", clusterType, []proto.Message{xdsCluster("a", a.addr()), badTimeout}, "connect_timeout"},
		{"cluster with an unknown field", clusterType, []proto.Message{unknown}, "unknown field"},
		{"duplicate clusters", clusterType, []proto.Message{xdsCluster("b", b.addr()), xdsCluster("b", a.addr())}, "duplicate cluster"},
		{"EDS cluster", clusterType, []proto.Message{eds}, "EDS is not emulated"},
		{"wrong resource type", clusterType, []proto.Message{xdsRoutes()}, "RouteConfiguration in a"},
		{"route to an unknown cluster with validate_clusters", routeType, []proto.Message{validated}, `unknown cluster "nope"`},
		{"route feature not emulated", routeType, []proto.Message{hedged}, "hedge_policy is not emulated"},
	}
	x := newXDSEnv(t, false, nil)
	st := x.bringUp(t, xdsRoutes(toCluster("/", "a")), xdsCluster("a", a.addr()))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			version, nonce := "bad"+string(rune('a'+i)), "n"+string(rune('a'+i))
			st.respond(t, tc.typ, version, nonce, tc.res...)
			r := st.wantRequest(t, tc.typ, "1", nonce, true)
			if r.GetErrorDetail().GetCode() != int32(codes.InvalidArgument) || !strings.Contains(r.GetErrorDetail().GetMessage(), tc.wantErr) {
				t.Fatalf("error_detail = %v, want INVALID_ARGUMENT with %q", r.GetErrorDetail(), tc.wantErr)
			}
			s := x.envoy.XDS()
			ts := s.CDS
			if tc.typ == routeType {
				ts = s.RDS
			}
			if ts.Applied != "1" || ts.Accepted != "1" || ts.Rejected != version || !strings.Contains(ts.Error, tc.wantErr) {
				t.Fatalf("status = %+v", ts)
			}
			wantServed(t, x.get(t, "/"), "a") // nothing changed
		})
	}
	// A good update after NACKs is ACKed with its own version.
	st.respond(t, clusterType, "2", "c2", xdsCluster("a", b.addr()))
	st.wantRequest(t, clusterType, "2", "c2", false)
	x.waitApplied(t, "2", "")
	wantServed(t, x.get(t, "/"), "b")
	if s := x.envoy.XDS(); s.CDS.Nacks != 5 || s.RDS.Nacks != 2 || s.CDS.Acks != 2 {
		t.Fatalf("status = %+v", s)
	}
}

// A new cluster is unknown until warmed: routes to it answer cluster_not_found with the
// route's cluster_not_found_response_code (503 by default). An updated cluster keeps
// serving its old definition until the new one is warmed.
func TestXDSClusterWarming(t *testing.T) {
	a, b, c := namedUpstream(t, "a"), namedUpstream(t, "b"), namedUpstream(t, "c")
	x := newXDSEnv(t, true, nil)
	st := x.ads.next(t)
	st.wantRequest(t, clusterType, "", "", false)
	st.respond(t, clusterType, "1", "c1", xdsCluster("a", a.addr()))
	st.wantRequest(t, clusterType, "1", "c1", false)
	x.releaseWarm(t, "a")
	st.wantRequest(t, routeType, "", "", false)
	st.respond(t, routeType, "1", "r1", xdsRoutes(
		toClusterHeader("/nf", "x-cluster", routev3.RouteAction_NOT_FOUND),
		toCluster("/fixed", "b"), // no validate_clusters: accepted, fails at request time
		toClusterHeader("/", "x-cluster", routev3.RouteAction_SERVICE_UNAVAILABLE)))
	st.wantRequest(t, routeType, "1", "r1", false)
	x.waitApplied(t, "1", "1")

	unknownB := func(t *testing.T) {
		t.Helper()
		for _, tc := range []struct {
			path string
			code int
		}{{"/", 503}, {"/nf", 404}, {"/fixed", 503}} {
			r := x.get(t, tc.path, "x-cluster", "b")
			wantStatus(t, r, tc.code)
			if d := x.lastLog(t).ResponseCodeDetails; d != "cluster_not_found" {
				t.Fatalf("%s: details = %q", tc.path, d)
			}
		}
	}
	unknownB(t)

	// b is added and warms: still unknown until warmed.
	st.respond(t, clusterType, "2", "c2", xdsCluster("a", a.addr()), xdsCluster("b", b.addr()))
	st.wantRequest(t, clusterType, "2", "c2", false)
	wb := x.warming(t)
	if wb.name != "b" {
		t.Fatalf("warming %q, want only b (a is unchanged)", wb.name)
	}
	unknownB(t)
	if got := x.envoy.XDS().CDS.Applied; got != "1" {
		t.Fatalf("CDS applied = %q while b warms", got)
	}
	close(wb.release)
	x.waitApplied(t, "2", "")
	wantServed(t, x.get(t, "/", "x-cluster", "b"), "b")
	wantServed(t, x.get(t, "/fixed"), "b")

	// a changes endpoint: the old a serves until the new a is warmed.
	st.respond(t, clusterType, "3", "c3", xdsCluster("a", c.addr()), xdsCluster("b", b.addr()))
	st.wantRequest(t, clusterType, "3", "c3", false)
	wa := x.warming(t)
	wantServed(t, x.get(t, "/", "x-cluster", "a"), "a")
	close(wa.release)
	x.waitApplied(t, "3", "")
	wantServed(t, x.get(t, "/", "x-cluster", "a"), "c")

	// A cluster removed while warming never becomes known.
	st.respond(t, clusterType, "4", "c4", xdsCluster("a", c.addr()), xdsCluster("b", b.addr()), xdsCluster("d", a.addr()))
	st.wantRequest(t, clusterType, "4", "c4", false)
	wd := x.warming(t)
	st.respond(t, clusterType, "5", "c5", xdsCluster("a", c.addr()), xdsCluster("b", b.addr()))
	st.wantRequest(t, clusterType, "5", "c5", false)
	x.waitApplied(t, "5", "")
	close(wd.release)
	wantStatus(t, x.get(t, "/", "x-cluster", "d"), 503)
}

// New RDS and CDS versions apply to new requests only: a request in flight finishes on
// the cluster it was sent to even after CDS removed that cluster (Envoy drains it); a
// retry of such a request finds no cluster and answers 503 no_healthy_upstream.
func TestXDSSwitchForNewRequestsOnly(t *testing.T) {
	arrived, hold := make(chan struct{}, 4), make(chan struct{})
	a := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-hold
		if r.URL.Path == "/retry" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, "a")
	})
	b := namedUpstream(t, "b")
	x := newXDSEnv(t, false, map[string]string{"a": a.addr()}) // a is pointed by Options.Clusters
	retry := toCluster("/retry", "a")
	retry.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(1)}
	st := x.bringUp(t, xdsRoutes(retry, toCluster("/", "a")), xdsCluster("a", "127.0.0.1:1"))

	inflight := make(chan result, 2)
	go func() { inflight <- x.get(t, "/slow") }()
	go func() { inflight <- x.get(t, "/retry") }()
	for range 2 {
		select {
		case <-arrived:
		case <-timeoutCh():
			t.Fatal("requests did not reach a")
		}
	}
	st.respond(t, clusterType, "2", "c2", xdsCluster("b", b.addr()))
	st.wantRequest(t, clusterType, "2", "c2", false)
	st.respond(t, routeType, "2", "r2", xdsRoutes(toCluster("/", "b")))
	st.wantRequest(t, routeType, "2", "r2", false)
	x.waitApplied(t, "2", "2")
	wantServed(t, x.get(t, "/slow"), "b")

	close(hold)
	x.timers.fire(t, RetryBackoff)
	got := map[int]string{}
	for range 2 {
		r := <-inflight
		got[r.status] = r.body
	}
	if got[200] != "a" || got[503] != "no healthy upstream" {
		t.Fatalf("in-flight results = %v", got)
	}
	details := map[string]string{}
	for _, l := range x.envoy.Log() {
		details[l.Path+" "+l.Cluster] = l.ResponseCodeDetails
	}
	if details["/slow a"] != "via_upstream" || details["/retry a"] != "no_healthy_upstream" || details["/slow b"] != "via_upstream" {
		t.Fatalf("access log = %v", details)
	}
}

// A request snaps the route table when it starts: an RDS update while its headers are
// with the ext_proc server does not re-route it, but the router looks its cluster up when
// it takes the request, so a cluster removed meanwhile is not found (Envoy's snapped
// route config, and the router asking the cluster manager).
func TestXDSRouteTableSnappedPerRequest(t *testing.T) {
	held, gate := make(chan struct{}, 4), make(chan struct{}, 4)
	proc := startProcessor(t, func(s *pstream) error {
		for {
			m, err := s.recv()
			if err != nil {
				return nil
			}
			if m.GetRequestHeaders() != nil {
				held <- struct{}{}
				<-gate
			}
			if err := s.send(cont(m)); err != nil {
				return nil
			}
		}
	})
	boot := strings.Replace(xdsBootstrap, "          http_filters:\n", "          http_filters:\n"+
		"          - name: envoy.filters.http.ext_proc\n"+
		"            typed_config:\n"+
		"              \"@type\": "+extProcTypeURL+"\n"+
		"              grpc_service: { envoy_grpc: { cluster_name: ext_proc } }\n", 1)
	boot += `  - name: ext_proc
    type: STATIC
    load_assignment:
      cluster_name: ext_proc
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }]
`
	a, b := namedUpstream(t, "a"), namedUpstream(t, "b")
	x := newXDSEnvBoot(t, boot, false, map[string]string{"ext_proc": proc.addr})
	st := x.bringUp(t, xdsRoutes(toCluster("/", "a")), xdsCluster("a", a.addr()), xdsCluster("b", b.addr()))
	waitHeld := func() {
		t.Helper()
		select {
		case <-held:
		case <-timeoutCh():
			t.Fatal("no request headers at the processor")
		}
	}

	first := make(chan result, 1)
	go func() { first <- x.get(t, "/") }()
	waitHeld()
	st.respond(t, routeType, "2", "r2", xdsRoutes(toCluster("/", "b")))
	st.wantRequest(t, routeType, "2", "r2", false)
	x.waitApplied(t, "", "2")
	gate <- struct{}{}
	wantServed(t, <-first, "a") // routed by the table it started with
	gate <- struct{}{}
	wantServed(t, x.get(t, "/"), "b") // a new request uses the new table

	second := make(chan result, 1)
	go func() { second <- x.get(t, "/") }()
	waitHeld()
	st.respond(t, clusterType, "2", "c2", xdsCluster("a", a.addr()))
	st.wantRequest(t, clusterType, "2", "c2", false)
	x.waitApplied(t, "2", "")
	gate <- struct{}{}
	r := <-second
	wantStatus(t, r, http.StatusServiceUnavailable)
	if d := x.lastLog(t).ResponseCodeDetails; d != "cluster_not_found" {
		t.Fatalf("details = %q", d)
	}
}

// A broken stream is reopened after a bounded, jittered exponential back-off, and every
// subscription is sent again in order with the last accepted version and no nonce.
func TestXDSReconnect(t *testing.T) {
	a := namedUpstream(t, "a")
	x := newXDSEnv(t, false, nil)
	st := x.bringUp(t, xdsRoutes(toCluster("/", "a")), xdsCluster("a", a.addr()))
	st.end <- status.Error(codes.Unavailable, "control plane restarting")
	if _, err := x.envoy.WaitXDS(context.Background(), func(s XDSStatus) bool { return !s.Connected }); err != nil {
		t.Fatal(err)
	}
	wantServed(t, x.get(t, "/"), "a") // the config in force stays while disconnected

	// Streams that fail before any response back off further, up to 30 s.
	ceiling := 500 * time.Millisecond
	for i := range 8 {
		if d := x.timers.fire(t, XDSRetryBackoff); d <= 0 || d > ceiling+time.Millisecond {
			t.Fatalf("back-off %d = %v, want in (0, %v]", i, d, ceiling)
		}
		ceiling = min(2*ceiling, 30*time.Second)
		s := x.ads.next(t)
		r := s.wantRequest(t, clusterType, "1", "", false)
		if r.GetNode().GetId() != "standin" {
			t.Fatalf("node = %v", r.GetNode())
		}
		s.wantRequest(t, routeType, "1", "", false)
		st = s
		if i < 7 {
			st.end <- status.Error(codes.Unavailable, "again")
		}
	}
	// A response resets the back-off.
	st.respond(t, clusterType, "2", "c2", xdsCluster("a", a.addr()))
	st.wantRequest(t, clusterType, "2", "c2", false)
	st.end <- status.Error(codes.Unavailable, "again")
	if d := x.timers.fire(t, XDSRetryBackoff); d > 500*time.Millisecond+time.Millisecond {
		t.Fatalf("back-off after a response = %v", d)
	}
	st = x.ads.next(t)
	st.wantRequest(t, clusterType, "2", "", false)
	st.wantRequest(t, routeType, "1", "", false)
	if s := x.envoy.XDS(); !s.Connected || s.Streams != 10 {
		t.Fatalf("status = %+v", s)
	}
}

// Without answers, initial_fetch_timeout ends each initial fetch: RDS is subscribed after
// the CDS timeout, and the listener serves (404s: no routes yet) after the RDS one.
func TestXDSInitialFetchTimeout(t *testing.T) {
	x := newXDSEnv(t, false, nil)
	st := x.ads.next(t)
	st.wantRequest(t, clusterType, "", "", false)
	if d := x.timers.fire(t, XDSInitialFetchTimeout); d != 15*time.Second {
		t.Fatalf("CDS initial_fetch_timeout = %v", d)
	}
	st.wantRequest(t, routeType, "", "", false)
	done := make(chan result, 1)
	go func() { done <- x.get(t, "/") }()
	x.timers.fire(t, XDSInitialFetchTimeout)
	r := <-done
	wantStatus(t, r, http.StatusNotFound)
	if d := x.lastLog(t).ResponseCodeDetails; d != "route_not_found" {
		t.Fatalf("details = %q", d)
	}
}

// Bootstraps the stand-in cannot follow fail Start with a reason.
func TestXDSBootstrapErrors(t *testing.T) {
	cases := []struct{ name, from, to, want string }{
		{"delta", "api_type: GRPC", "api_type: DELTA_GRPC", "only api_type GRPC"},
		{"lds", "  cds_config: { ads: {}, resource_api_version: V3 }", "  cds_config: { ads: {}, resource_api_version: V3 }\n  lds_config: { ads: {} }", "LDS is not emulated"},
		{"cds not over ads", "cds_config: { ads: {}, resource_api_version: V3 }", "cds_config: { path_config_source: { path: /tmp/cds.yaml } }", "only cds_config {ads: {}}"},
		{"rds not over ads", "config_source: { ads: {}, resource_api_version: V3 }", "config_source: { path_config_source: { path: /tmp/rds.yaml } }", "config_source {ads: {}}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := strings.Replace(xdsBootstrap, tc.from, tc.to, 1)
			if b == xdsBootstrap {
				t.Fatal("replacement did not apply")
			}
			_, err := Start(context.Background(), Options{Bootstrap: []byte(b), Clusters: map[string]string{"xds": "127.0.0.1:1"}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start error = %v, want %q", err, tc.want)
			}
		})
	}
}

// decodeResource parses bytes from the control plane: any bytes must give a resource or an
// error, never a panic, and an accepted cluster must load or be refused cleanly.
func FuzzDecodeResource(f *testing.F) {
	for _, m := range []proto.Message{xdsCluster("a", "127.0.0.1:8080"), xdsRoutes(toCluster("/", "a"))} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		_, route := m.(*routev3.RouteConfiguration)
		f.Add(b, route)
	}
	f.Add([]byte{0x0a, 0x01, 'a', 0xf8, 0x70, 0x01}, true)
	f.Fuzz(func(t *testing.T, b []byte, route bool) {
		if route {
			rc := &routev3.RouteConfiguration{}
			if decodeResource(&anypb.Any{TypeUrl: routeType, Value: b}, routeType, rc) == nil {
				_, _ = compileRoutes(rc)
			}
			return
		}
		cl := &clusterv3.Cluster{}
		if decodeResource(&anypb.Any{TypeUrl: clusterType, Value: b}, clusterType, cl) == nil {
			_, _ = loadCluster(cl, 36)
		}
	})
}
