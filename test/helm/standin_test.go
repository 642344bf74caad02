package helm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/internal/devfront"
	"github.com/tollgate-ai/tollgate/internal/gateway"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

// devKey is the clear-text gateway key of ci/dev-values.yaml.
const devKey = "tg_dev_0123456789abcdefghijklmnopqrstuvwxyz"

// TestChartServesThroughStandin renders the chart with providers and a fallback chain declared only in
// the routing config, starts tollgate serve on the rendered ConfigMaps and Secrets, and runs the Envoy
// stand-in from the rendered bootstrap: its clusters and routes come over ADS, a request reaches the
// provider, and the chain falls back to its second member when the first answers 500.
func TestChartServesThroughStandin(t *testing.T) {
	helm := helmBinary(t)
	var fakes [2]*fakeprovider.Server
	for i := range fakes {
		s, err := fakeprovider.Start(fakeprovider.Options{Kind: fakeprovider.OpenAI})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		fakes[i] = s
	}
	values := fmt.Sprintf(`
credentials: {enabled: false}
routing:
  config:
    version: 1
    providers:
      - {name: primary, schema: openai, url: "http://%s", base_path: /v1, models: [gpt-4o], direct_models: any, unpriced: allow}
      - {name: secondary, schema: openai, url: "http://%s", base_path: /v1, models: [gpt-4o], direct_models: any, unpriced: allow}
    models:
      - {name: direct, provider: primary, model: gpt-4o}
      - name: resilient
        fallback:
          targets:
            - {provider: primary, model: gpt-4o}
            - {provider: secondary, model: gpt-4o}
`, fakes[0].Addr(), fakes[1].Addr())
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustRender(t, helm, "-f", filepath.Join(chartDir, "ci", "dev-values.yaml"), "--set", "tls.enabled=false", "-f", file)

	gw, err := gateway.Start(context.Background(), gateway.Config{GRPCAddr: "127.0.0.1:0", ConfigPaths: configDirs(t, r), DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Shutdown(context.Background()) })

	// The rendered bootstrap as is; only the pod-local ext_proc and xDS target (a socket in the pod) is
	// pointed at this gateway. No provider address is overridden: they all come over ADS.
	bootstrap := []byte(r.configMaps[fullname+"-envoy"].Data["envoy.yaml"])
	e, err := devfront.Start(context.Background(), devfront.Options{Bootstrap: bootstrap, Listener: "tollgate",
		Clusters: map[string]string{"tollgate_ext_proc": gw.GRPCAddr(), "tollgate_xds": gw.GRPCAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	_, version := gw.XDS().Current()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a failure guard
	defer cancel()
	if err := e.WaitApplied(ctx, version, version); err != nil {
		t.Fatalf("xDS version %s not applied: %v (%+v)", version, err, e.XDS())
	}

	chat := func(model string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", e.URL()+"/v1/chat/completions",
			strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+devKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := chat("direct"); code != 200 || len(fakes[0].Requests()) != 1 {
		t.Fatalf("direct: %d %s, %d requests at the provider", code, body, len(fakes[0].Requests()))
	}
	fakes[0].Fail(fakeprovider.Status(500, ""))
	if code, body := chat("resilient"); code != 200 {
		t.Fatalf("resilient: %d %s", code, body)
	}
	if n0, n1 := len(fakes[0].Requests()), len(fakes[1].Requests()); n0 != 2 || n1 != 1 {
		t.Fatalf("requests: %d at the first member (want 2), %d at the second (want 1)", n0, n1)
	}
	if got := fakes[1].Requests()[0]; got.Path != "/v1/chat/completions" || !strings.Contains(string(got.Body), `"gpt-4o"`) {
		t.Errorf("fallback attempt: %s %s", got.Path, got.Body)
	}
}
