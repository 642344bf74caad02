package gateway

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const urlConfig = "version: 1\nproviders:\n  - {name: openai, schema: openai, url: https://api.openai.com}\nmodels:\n  - {name: m, provider: openai, model: gpt-4o}\n"

// TestReloadPublishes: a good reload publishes the new providers' clusters
// under a new version; a configuration that fails validation leaves the
// last good snapshot in force.
func TestReloadPublishes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(urlConfig)
	g, err := Start(context.Background(), Config{GRPCAddr: "127.0.0.1:0", ConfigPaths: []string{dir}, DrainTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	r, v1 := g.XDS().Current()
	if r == nil || strings.Join(r.ClusterNames(), ",") != "openai" {
		t.Fatalf("initial clusters %v", r)
	}

	write(strings.Replace(urlConfig, "models:", "  - {name: local, schema: openai, url: 'http://127.0.0.1:11434', models: [llama], direct_models: any, unpriced: allow}\nmodels:", 1))
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	r, v2 := g.XDS().Current()
	if v2 == v1 || strings.Join(r.ClusterNames(), ",") != "openai,local" {
		t.Fatalf("after reload: version %s (was %s), clusters %v", v2, v1, r.ClusterNames())
	}

	write(strings.Replace(urlConfig, "https://api.openai.com", "ftp://api.openai.com", 1))
	if err := g.Reload(); err == nil {
		t.Fatal("an invalid url was accepted")
	}
	if _, v3 := g.XDS().Current(); v3 != v2 {
		t.Errorf("a rejected configuration changed the xDS version %s → %s", v2, v3)
	}
}

// TestShutdownEndsADS: an open ADS stream (Envoy's, which never ends on its
// own) does not hold up the graceful drain.
func TestShutdownEndsADS(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(urlConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), Config{GRPCAddr: "127.0.0.1:0", ConfigPaths: []string{dir}, DrainTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "e"}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || len(resp.GetResources()) != 1 {
		t.Fatalf("CDS over the ext_proc listener: %v %v", resp, err)
	}
	g.Shutdown(context.Background()) // would wait DrainTimeout if the stream stayed open
	if _, err := stream.Recv(); err == nil {
		t.Error("the ADS stream is still open after shutdown")
	}
}
