package devfront

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The ADS client against go-control-plane's own server and snapshot cache (what
// `tollgate serve` runs): snapshots are applied in order, and a snapshot the stand-in
// NACKs leaves the previous one in force.
func TestXDSWithGoControlPlane(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, cache, nil))
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)

	a, b := namedUpstream(t, "a"), namedUpstream(t, "b")
	set := func(version string, cl []types.Resource, rc types.Resource) {
		t.Helper()
		snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
			resourcev3.ClusterType: cl, resourcev3.RouteType: {rc}})
		if err != nil {
			t.Fatal(err)
		}
		if err := cache.SetSnapshot(ctx, "standin", snap); err != nil {
			t.Fatal(err)
		}
	}
	set("1", []types.Resource{xdsCluster("a", a.addr())}, xdsRoutes(toCluster("/", "a")))

	x := &xenv{env: &env{timers: newFakeTimers()}}
	x.envoy, err = Start(ctx, Options{Bootstrap: []byte(xdsBootstrap), Clusters: map[string]string{"xds": ln.Addr().String()},
		NewTimer: x.timers.NewTimer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.envoy.Close() })
	x.client = newTestClient(t)
	x.waitApplied(t, "1", "1")
	wantServed(t, x.get(t, "/"), "a")

	set("2", []types.Resource{xdsCluster("b", b.addr())}, xdsRoutes(toCluster("/", "b")))
	x.waitApplied(t, "2", "2")
	wantServed(t, x.get(t, "/"), "b")

	bad := xdsCluster("b", a.addr())
	bad.ConnectTimeout = durationpb.New(-time.Second)
	set("3", []types.Resource{bad}, xdsRoutes(toCluster("/", "b")))
	wctx, wcancel := context.WithTimeout(ctx, testTimeout)
	defer wcancel()
	s, err := x.envoy.WaitXDS(wctx, func(s XDSStatus) bool { return s.CDS.Rejected == "3" })
	if err != nil {
		t.Fatal(err)
	}
	if s.CDS.Applied != "2" || !strings.Contains(s.CDS.Error, "connect_timeout") {
		t.Fatalf("CDS status = %+v", s.CDS)
	}
	wantServed(t, x.get(t, "/"), "b")
}
