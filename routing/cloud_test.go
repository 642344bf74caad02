package routing

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/routing/config"
)

func TestCloudProviders(t *testing.T) {
	cfg := &config.Config{Providers: []config.Provider{
		{Name: "bedrock", Schema: config.SchemaBedrock, Cluster: "bedrock",
			AWS: &config.AWS{Region: "us-east-1", Host: "bedrock-runtime.us-east-1.amazonaws.com",
				AccessKeyID: &config.SecretRef{Env: "AK"}, SecretAccessKey: &config.SecretRef{Env: "SK"}}},
		{Name: "bedrock-nokeys", Schema: config.SchemaBedrock, Cluster: "bedrock",
			AWS: &config.AWS{Region: "us-east-1", Host: "h", AccessKeyID: &config.SecretRef{Env: "MISSING"}, SecretAccessKey: &config.SecretRef{Env: "SK"}}},
		{Name: "vertex-bad", Schema: config.SchemaVertexAI, Cluster: "vertex", BasePath: "/v1/projects/p/locations/l",
			Vertex: &config.Vertex{Project: "p", Location: "l", ServiceAccount: config.SecretRef{Env: "SA"}}},
	}}
	env := map[string]string{"AK": "AKIDROUTINGTEST00001", "SK": "routing-secret", "SA": `{"type":"service_account","private_key":"not a key"}`}
	table, warns := New(cfg, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if len(warns) != 2 {
		t.Fatalf("warnings %v", warns)
	}
	for _, w := range warns {
		if !errors.Is(w, ErrNoCredential) || strings.Contains(w.Error(), "routing-secret") || strings.Contains(w.Error(), "not a key") {
			t.Fatalf("warning %v", w)
		}
	}
	b := table.providers["bedrock"]
	if !b.MintsCredential() {
		t.Fatal("bedrock does not mint")
	}
	if p, ok := b.UpstreamPath(EndpointChat, "m", true); !ok || p != "/model/m/converse-stream" {
		t.Fatalf("path %q", p)
	}
	if _, ok := b.Path(EndpointEmbeddings, "m"); ok {
		t.Fatal("bedrock offers embeddings")
	}
	hs, err := b.Authenticate(context.Background(), Outgoing{Method: "POST", Path: "/model/m/converse", Body: []byte(`{}`), Time: time.Now()})
	if err != nil || len(hs) < 3 || !strings.HasPrefix(hs[0][1], "AWS4-HMAC-SHA256 Credential=AKIDROUTINGTEST00001/") {
		t.Fatalf("%v %v", hs, err)
	}
	if _, err := table.providers["bedrock-nokeys"].Authenticate(context.Background(), Outgoing{}); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("err %v", err)
	}
	v := table.providers["vertex-bad"]
	if p, _ := v.UpstreamPath(EndpointChat, "claude-sonnet-4-5@20250929", false); p != "/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict" {
		t.Fatalf("vertex path %q", p)
	}
	if _, err := v.Authenticate(context.Background(), Outgoing{}); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("err %v", err)
	}
}
