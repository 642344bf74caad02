package e2e

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-ai/tollgate/internal/xds"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// e2eBasePath is the base path the SDK tests also run under.
const e2eBasePath = "/api/v1/llm"

// basePaths runs fn at the root and under e2eBasePath.
func basePaths(t *testing.T, fn func(t *testing.T, basePath string)) {
	t.Helper()
	for name, bp := range map[string]string{"root": "", "base_path": e2eBasePath} {
		t.Run(name, func(t *testing.T) { fn(t, bp) })
	}
}

// frontsUnderBasePaths is fronts at the root and under e2eBasePath.
func frontsUnderBasePaths(t *testing.T, o harnessOptions, fn func(t *testing.T, h *harness)) {
	t.Helper()
	basePaths(t, func(t *testing.T, bp string) {
		o := o
		o.basePath = bp
		fronts(t, o, fn)
	})
}

// withBasePathRoutes replaces a bootstrap's routes with the ones
// internal/xds generates for a base path, as tollgate envoy bootstrap and
// the ADS server would serve them.
func withBasePathRoutes(t *testing.T, bootstrap []byte, basePath string) []byte {
	t.Helper()
	r, err := xds.Generate(&config.Config{Version: config.Version, BasePath: basePath})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := protojson.Marshal(r.Routes)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	const at = "static_resources.listeners.0.filter_chains.0.filters.0.typed_config.route_config"
	if !gjson.GetBytes(js, at).Exists() {
		t.Fatalf("no %s in the bootstrap", at)
	}
	out, err := sjson.SetRawBytes(js, at, routes)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBasePathOutside: under a base path, the old paths and paths beside
// it are 404s in OpenAI's format that never reach the processor (the
// bootstrap's local-reply mapper writes the body Envoy sends).
func TestBasePathOutside(t *testing.T) {
	h := newHarness(t, harnessOptions{basePath: e2eBasePath})
	for _, path := range []string{"/v1/chat/completions", "/api/v1/llmx/v1/chat/completions", "/api/v1/v1/models"} {
		req, err := http.NewRequest("POST", h.front.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+gatewayKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b [1024]byte
		n, _ := resp.Body.Read(b[:])
		resp.Body.Close()
		if resp.StatusCode != 404 || gjson.GetBytes(b[:n], "error.code").Str != "envoy_no_route" || gjson.GetBytes(b[:n], "error.type").Str != "invalid_request_error" {
			t.Errorf("%s: status %d body %s", path, resp.StatusCode, b[:n])
		}
	}
	if n := len(h.openai.Requests()); n != 0 {
		t.Fatalf("%d requests outside the base path reached the provider", n)
	}
	if h.envoyLog != nil {
		recs := h.envoyLog()
		for _, rec := range recs {
			if rec.Route != "outside_base_path" {
				t.Errorf("route %q, want outside_base_path", rec.Route)
			}
		}
		if len(recs) != 3 {
			t.Errorf("%d access records, want 3", len(recs))
		}
	}
	// Under it, the SDK works.
	if _, err := h.client.Models.List(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestModelRetrieve: models.retrieve is scoped like the list.
func TestModelRetrieve(t *testing.T) {
	basePaths(t, func(t *testing.T, bp string) {
		h := newHarness(t, harnessOptions{basePath: bp})
		for _, id := range []string{"smart-default", "openai/gpt-4o-mini"} {
			m, err := h.client.Models.Get(context.Background(), id)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if m.ID != id || m.Object != "model" || m.OwnedBy != "openai" {
				t.Fatalf("%s: %+v", id, m)
			}
		}
		for _, id := range []string{"no-such-model", "openai/gpt-9"} {
			_, err := h.client.Models.Get(context.Background(), id)
			checkAPIError(t, err, 404, "model_not_found")
		}
		if n := len(h.openai.Requests()); n != 0 {
			t.Fatalf("models.retrieve reached the provider (%d requests)", n)
		}
	})
}

// TestAzureClientPaths: the AzureOpenAI client's model list and the Azure
// v1 paths (model in the body) reach the same processors.
func TestAzureClientPaths(t *testing.T) {
	basePaths(t, func(t *testing.T, bp string) {
		h := newHarness(t, harnessOptions{basePath: bp})
		az := openai.NewClient(azure.WithEndpoint(h.front.URL()+bp, "2024-10-21"), azure.WithAPIKey(gatewayKey),
			azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
		page, err := az.Models.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) == 0 {
			t.Fatal("the Azure client listed no models")
		}
		m, err := az.Models.Get(context.Background(), "smart-default")
		if err != nil || m.ID != "smart-default" {
			t.Fatalf("azure models.retrieve %+v %v", m, err)
		}
		if _, err := az.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
			t.Fatal(err)
		}
		checkUpstream(t, lastRequest(t, h.openai), "/v1/chat/completions", "gpt-4o-mini")

		v1 := h.newClient(gatewayKey, option.WithBaseURL(h.front.URL()+bp+"/openai/v1/"))
		resp, err := v1.Chat.Completions.New(context.Background(), chatParams("smart-default"))
		if err != nil || len(resp.Choices) == 0 {
			t.Fatalf("azure v1 chat %+v %v", resp, err)
		}
		checkUpstream(t, lastRequest(t, h.openai), "/v1/chat/completions", "gpt-4o-mini")
		if _, err := v1.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model: "embed-default", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hi")},
		}); err != nil {
			t.Fatal(err)
		}
		checkUpstream(t, lastRequest(t, h.openai), "/v1/embeddings", "text-embedding-3-small")
		if page, err := v1.Models.List(context.Background()); err != nil || len(page.Data) == 0 {
			t.Fatalf("azure v1 models %v", err)
		}
	})
}

func checkAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) || e.StatusCode != status || e.Code != code {
		t.Fatalf("error %v, want %d %s", err, status, code)
	}
}
