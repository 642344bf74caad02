package xds

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-ai/tollgate/envoy/validate"
)

func parse(t *testing.T, b []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	if ps := validate.Bootstrap(b); len(ps) > 0 {
		t.Fatalf("invalid bootstrap: %v\n%s", ps, b)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &bs); err != nil {
		t.Fatal(err)
	}
	return &bs
}

func hcmOf(t *testing.T, bs *bootstrapv3.Bootstrap) *hcmv3.HttpConnectionManager {
	t.Helper()
	var h hcmv3.HttpConnectionManager
	if err := bs.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&h); err != nil {
		t.Fatal(err)
	}
	return &h
}

func clusterNames(bs *bootstrapv3.Bootstrap) string {
	var names []string
	for _, c := range bs.GetStaticResources().GetClusters() {
		names = append(names, c.GetName())
	}
	return strings.Join(names, ",")
}

// TestADSBootstrap: the minimal bootstrap takes clusters and routes over ADS
// from the same address as ext_proc.
func TestADSBootstrap(t *testing.T) {
	b, err := Bootstrap(BootstrapOptions{ExtProc: "unix:///run/tollgate/grpc.sock", Listen: "0.0.0.0:8080", NodeID: "pod-1"})
	if err != nil {
		t.Fatal(err)
	}
	bs := parse(t, b)
	if got := clusterNames(bs); got != "tollgate_ext_proc,tollgate_xds" {
		t.Errorf("static clusters %s", got)
	}
	for _, c := range bs.GetStaticResources().GetClusters() {
		if p := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetPipe().GetPath(); p != "/run/tollgate/grpc.sock" {
			t.Errorf("%s reaches %q, want the socket", c.GetName(), p)
		}
	}
	ads := bs.GetDynamicResources().GetAdsConfig()
	if ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != XDSCluster || bs.GetDynamicResources().GetCdsConfig().GetAds() == nil {
		t.Errorf("dynamic_resources %v", bs.GetDynamicResources())
	}
	if bs.GetNode().GetId() != "pod-1" {
		t.Errorf("node %v", bs.GetNode())
	}
	rds := hcmOf(t, bs).GetRds()
	if rds.GetRouteConfigName() != RouteConfigName || rds.GetConfigSource().GetAds() == nil {
		t.Errorf("rds %v", rds)
	}
	if sa := bs.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress(); sa.GetAddress() != "0.0.0.0" || sa.GetPortValue() != 8080 {
		t.Errorf("listener %v", sa)
	}
	if strings.Contains(string(b), "spec §") {
		t.Error("bootstrap cites the spec notes instead of Envoy's docs")
	}
}

// TestStaticBootstrap: --static inlines the generated clusters and routes and
// has no xDS at all.
func TestStaticBootstrap(t *testing.T) {
	r := generate(t, twoProviders)
	r.External = nil
	r.Clusters = r.Clusters[:2]
	b, err := Bootstrap(BootstrapOptions{Static: r, TLS: &ListenerTLS{Cert: "/c.pem", Key: "/k.pem"}})
	if err != nil {
		t.Fatal(err)
	}
	bs := parse(t, b)
	if got := clusterNames(bs); got != "tollgate_ext_proc,openai,anthropic" {
		t.Errorf("static clusters %s", got)
	}
	if bs.GetDynamicResources() != nil || bs.GetNode() != nil {
		t.Error("a static bootstrap has dynamic_resources or a node")
	}
	if rc := hcmOf(t, bs).GetRouteConfig(); rc.GetName() != RouteConfigName || len(rc.GetVirtualHosts()[0].GetRoutes()) != 2 {
		t.Errorf("route_config %v", rc)
	}
	if bs.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetTransportSocket() == nil {
		t.Error("no listener TLS")
	}
}

func TestBootstrapBadAddresses(t *testing.T) {
	for _, o := range []BootstrapOptions{{Listen: "nohost"}, {Admin: "h:0"}, {ExtProc: "unix://"}, {ExtProc: "a b:1"}} {
		if _, err := Bootstrap(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
