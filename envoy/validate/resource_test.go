package validate

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestResource(t *testing.T) {
	cluster := func(edit func(c *clusterv3.Cluster)) *clusterv3.Cluster {
		c := &clusterv3.Cluster{Name: "openai", ConnectTimeout: durationpb.New(time.Second),
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}}
		if edit != nil {
			edit(c)
		}
		return c
	}
	badFilters, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	badFilters.Value = []byte{0xff}
	cases := []struct {
		name     string
		m        proto.Message
		wantPath string // "" = no problem
		wantMsg  string
	}{
		{"route to a cluster no resource defines", &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "elsewhere"}}},
			}}}}}, "", ""},
		{"PGV rule", cluster(func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			c.ConnectTimeout = durationpb.New(-time.Second)
		}), "connect_timeout", "greater than"},
		{"start-up check", cluster(nil), "load_assignment.endpoints", "LOGICAL_DNS"},
		{"undecodable Any", cluster(func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": badFilters}
		}), `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`, "unpack"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := Resource(tc.m)
			if tc.wantPath == "" {
				if len(ps) > 0 {
					t.Fatalf("problems = %v", ps)
				}
				return
			}
			if len(ps) != 1 || ps[0].Path != tc.wantPath || !strings.Contains(ps[0].Message, tc.wantMsg) {
				t.Fatalf("problems = %v, want one at %q with %q", ps, tc.wantPath, tc.wantMsg)
			}
		})
	}
}
