package xds

import (
	"context"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// startADS serves s on a loopback gRPC server and opens one ADS stream to it.
func startADS(t *testing.T, s *Server) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

var node = &corev3.Node{Id: "envoy-1", Cluster: "tollgate"}

func recv(t *testing.T, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, typeURL string) *discoveryv3.DiscoveryResponse {
	t.Helper()
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTypeUrl() != typeURL {
		t.Fatalf("response of type %s, want %s", resp.GetTypeUrl(), typeURL)
	}
	return resp
}

func clustersIn(t *testing.T, resp *discoveryv3.DiscoveryResponse) string {
	t.Helper()
	var names []string
	for _, a := range resp.GetResources() {
		var c clusterv3.Cluster
		if err := a.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		names = append(names, c.GetName())
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// TestServerPublishes: an ADS client gets the clusters (CDS) and the route
// configuration (RDS), ACKs them, and receives a new version when the
// configuration changes.
func TestServerPublishes(t *testing.T) {
	ctx := context.Background()
	s := NewServer(ctx, nil)
	v1, err := s.Publish(ctx, generate(t, twoProviders))
	if err != nil {
		t.Fatal(err)
	}
	stream := startADS(t, s)

	// CDS first, as Envoy does (wildcard: no names).
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	cds := recv(t, stream, resource.ClusterType)
	if cds.GetVersionInfo() != v1 || clustersIn(t, cds) != "anthropic,openai" {
		t.Fatalf("CDS version %s clusters %s, want %s anthropic,openai", cds.GetVersionInfo(), clustersIn(t, cds), v1)
	}
	// ACK, then RDS for the bootstrap's route configuration.
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType, VersionInfo: v1, ResponseNonce: cds.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.RouteType, ResourceNames: []string{RouteConfigName}}); err != nil {
		t.Fatal(err)
	}
	rds := recv(t, stream, resource.RouteType)
	var rc routev3.RouteConfiguration
	if len(rds.GetResources()) != 1 || rds.GetResources()[0].UnmarshalTo(&rc) != nil || rc.GetName() != RouteConfigName {
		t.Fatalf("RDS %v", rds)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.RouteType, ResourceNames: []string{RouteConfigName}, VersionInfo: v1, ResponseNonce: rds.GetNonce()}); err != nil {
		t.Fatal(err)
	}

	// A reload adds a provider: a new CDS version reaches the open stream.
	v2, err := s.Publish(ctx, generate(t, twoProviders+"  - {name: local, schema: openai, url: 'http://127.0.0.1:8081'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v2 == v1 {
		t.Fatal("a changed configuration kept its version")
	}
	cds = recv(t, stream, resource.ClusterType)
	if cds.GetVersionInfo() != v2 || clustersIn(t, cds) != "anthropic,local,openai" {
		t.Errorf("CDS after reload: version %s clusters %s", cds.GetVersionInfo(), clustersIn(t, cds))
	}
	if r, v := s.Current(); v != v2 || len(r.Clusters) != 3 {
		t.Errorf("Current %s %v", v, r.ClusterNames())
	}
}
