package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/internal/gateway"
	"github.com/tollgate-ai/tollgate/policy/keys"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nproviders:\n  - name: openai\n    schema: grpc\n    cluster: openai\n    extra: 1\nmodels:\n  - {name: a, provider: nope, model: m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badEnvoy := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(badEnvoy, []byte("static_resources:\n  listeners:\n  - name: x\n    bogus_field: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ext := filepath.Join(dir, "ext.yaml")
	if err := os.WriteFile(ext, []byte("version: 1\nproviders:\n  - {name: own, schema: openai, cluster: mine}\n  - {name: openai, schema: openai, url: 'https://api.openai.com'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chains := filepath.Join(dir, "chains.yaml")
	if err := os.WriteFile(chains, []byte("version: 1\nproviders:\n  - {name: a, schema: openai, url: 'https://a.example'}\n  - {name: b, schema: openai, url: 'http://b.example'}\nmodels:\n  - {name: s, fallback: {targets: [{provider: a, model: gpt-4o}, {provider: b, model: gpt-4o}]}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"example and shipped bootstraps", []string{"check", "--config", "../../routing/config/example/tollgate.yaml",
			"--envoy", "../../envoy/envoy.yaml", "--envoy", "../../envoy/envoy-tls.yaml"}, 0, []string{"ok"}},
		{"generated clusters arrive over ADS or inline", []string{"check", "--config", "../../envoy/config/providers.yaml", "--config", "../../envoy/config/fallback.yaml",
			"--envoy", "../../envoy/envoy-ads.yaml", "--envoy", "../../envoy/envoy-fallback.yaml"}, 0, []string{"ok"}},
		{"a static bootstrap lacks a generated cluster", []string{"check", "--config", "../../envoy/config/providers.yaml", "--config", "../../envoy/config/fallback.yaml",
			"--envoy", "../../envoy/envoy.yaml"}, 1, []string{`envoy.yaml: static_resources.clusters: no cluster "chain_smart_default"`}},
		{"an externally managed cluster must be in the bootstrap", []string{"check", "--config", ext, "--envoy", "../../envoy/envoy-ads.yaml"}, 1,
			[]string{`envoy-ads.yaml: static_resources.clusters: no cluster "mine"`}},
		{"generated resources are checked", []string{"check", "--config", chains}, 1,
			[]string{"models[0].fallback", "different HTTP versions"}},
		{"every config problem with its path", []string{"check", "--config", bad}, 1,
			[]string{"bad.yaml", "providers[0].schema", `unknown field "extra"`, "models[0].provider"}},
		{"envoy problem", []string{"check", "--envoy", badEnvoy}, 1, []string{"envoy.yaml", "bogus_field"}},
		{"nothing to check", []string{"check"}, 2, nil},
		{"missing file", []string{"check", "--config", filepath.Join(dir, "absent.yaml")}, 1, []string{"absent.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, s := range tt.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "tollgate ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t); code != 2 {
		t.Fatalf("no command: %d", code)
	}
}

// TestHealthOverUnixSocket runs the gateway on a Unix socket, as the Helm
// chart's socket mode does, and probes it with `tollgate health`.
func TestHealthOverUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "tollgate.sock")
	g, err := gateway.Start(context.Background(), gateway.Config{GRPCAddr: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.GRPCAddr(); got != "unix://"+sock {
		t.Fatalf("addr %s", got)
	}
	code, out, errOut := runCLI(t, "health", "--grpc-addr", "unix://"+sock)
	if code != 0 || strings.TrimSpace(out) != "SERVING" {
		t.Fatalf("health: %d %q %q", code, out, errOut)
	}
	g.Shutdown(context.Background())
	if code, _, _ := runCLI(t, "health", "--grpc-addr", "unix://"+sock, "--timeout", "500ms"); code == 0 {
		t.Fatal("health succeeded after shutdown")
	}
}

func TestServeRefusesInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("version: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, _ := runCLI(t, "serve", "--config", dir, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "")
	if code != 1 {
		t.Fatalf("serve on an invalid config exited %d, want 1", code)
	}
}

func TestServeStopsOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // SIGTERM already received: serve starts, drains nothing, exits 0
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"serve", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestKeysNew(t *testing.T) {
	code, out, errOut := runCLI(t, "keys", "new", "--tenant", "acme", "--app", "chatbot", "--id", "acme-chatbot-1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var key string
	for _, line := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(line, "# key: "); ok {
			key = k
		}
	}
	if !strings.HasPrefix(key, "tg_") || len(key) < 3+43 {
		t.Fatalf("no key printed:\n%s", out)
	}
	// The printed entry is valid config and authenticates the printed key.
	dir := t.TempDir()
	entry := strings.Join(strings.Split(out, "\n")[3:], "\n  ")
	cfg := "version: 1\ntenants:\n  - name: acme\n    apps: [{name: chatbot}]\nkeys:\n  " + entry + "\n"
	if err := os.WriteFile(filepath.Join(dir, "keys.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, "check", "--config", dir); code != 0 {
		t.Fatalf("printed entry does not validate:\n%s\n%s", cfg, out)
	}
	if !strings.Contains(out, keys.Hash(key)) || !strings.Contains(out, "app: chatbot") {
		t.Fatalf("entry:\n%s", out)
	}
	for _, bad := range [][]string{{"keys", "new"}, {"keys", "new", "--tenant", "a b"}, {"keys"}} {
		if code, _, _ := runCLI(t, bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}

// TestCheckRefusesWhatServeRefuses feeds every kind of configuration that
// config.Load accepts but serve refuses to start with to both commands:
// check must fail on each, naming the problem, and pass exactly the
// configurations serve starts with.
func TestCheckRefusesWhatServeRefuses(t *testing.T) {
	const provider = `version: 1
providers:
  - {name: openai, schema: openai, cluster: openai, models: [gpt-4o, my-finetune], direct_models: %s}
  - {name: azure, schema: azure-openai, cluster: azure, api_version: "2024-10-21", models: [gpt-4o-prod]%s}
`
	cfg := func(direct, azure, rest string) string { return fmt.Sprintf(provider, direct, azure) + rest }
	tests := []struct {
		name   string
		config string
		ok     bool
		want   []string // in check's output
	}{
		{"all priced", cfg("none", "", "models:\n  - {name: smart, provider: openai, model: gpt-4o}\n"), true, nil},
		{"an Azure deployment without a price", cfg("none", "", "models:\n  - {name: azure-default, provider: azure, model: gpt-4o-prod}\n"), false,
			[]string{"models[azure-default]", `"azure-default" routes to model "gpt-4o-prod" of provider "azure"`, "price_as"}},
		{"a deployment named like an OpenAI model gets no OpenAI price", cfg("none", "", "models:\n  - {name: a, provider: azure, model: gpt-4o}\n"), false,
			[]string{"models[a]", `provider "azure"`}},
		{"price_as maps the deployment", cfg("none", ", price_as: {gpt-4o-prod: openai/gpt-4o}", "models:\n  - {name: azure-default, provider: azure, model: gpt-4o-prod}\n"), true, nil},
		{"a provider-scoped price entry", cfg("none", "", "models:\n  - {name: azure-default, provider: azure, model: gpt-4o-prod}\npricing:\n  models:\n    azure-gpt-4o-prod: {provider: azure, model: gpt-4o-prod, input: 2.75, output: 11}\n"), true, nil},
		{"unpriced: allow", cfg("none", ", unpriced: allow", "models:\n  - {name: azure-default, provider: azure, model: gpt-4o-prod}\n"), true, nil},
		{"price_as to an entry that does not exist", cfg("none", ", price_as: {gpt-4o-prod: openai/gpt-9}", "models:\n  - {name: azure-default, provider: azure, model: gpt-4o-prod}\n"), false,
			[]string{"pricing", "azure/gpt-4o-prod → openai/gpt-9"}},
		{"a pool member without a price", cfg("none", "", "models:\n  - name: pool\n    targets: [{provider: openai, model: gpt-4o}, {provider: openai, model: my-finetune}]\n"), false,
			[]string{"models[pool].targets[1]", `"my-finetune"`}},
		{"a fallback member without a price", cfg("none", "", "models:\n  - name: chain\n    fallback: {cluster: chain, targets: [{provider: openai, model: gpt-4o}, {provider: azure, model: gpt-4o-prod}]}\n"), false,
			[]string{"models[chain].fallback.targets[1]"}},
		{"a directly addressable model without a price", cfg("listed", "", ""), false,
			[]string{"providers[openai].models[my-finetune]", `"openai/my-finetune"`}},
		{"a configured price entry that clashes with the built-in table", cfg("none", "", "pricing:\n  models:\n    gpt-4o-cheap: {provider: openai, model: gpt-4o, input: 1, output: 1}\n"), false,
			[]string{"pricing.models[gpt-4o-cheap]", `duplicates entry "gpt-4o"`}},
		{"a configured entry that leaves a built-in model without a base tier", cfg("none", "", "pricing:\n  models:\n    gemini-2.5-pro: {provider: gemini, min_prompt_tokens: 10, input: 1, output: 1}\n"), false,
			[]string{"pricing.models[", "no tier for prompts from 0 tokens"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			// serve with SIGTERM already received: exit 0 if it started, 1 if it refused the configuration.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var sout, serr bytes.Buffer
			serveCode := run(ctx, []string{"serve", "--config", dir, "--grpc-addr", "127.0.0.1:0", "--admin-addr", ""}, &sout, &serr)
			code, out, errOut := runCLI(t, "check", "--config", dir)
			if tt.ok != (serveCode == 0) {
				t.Fatalf("serve exited %d, want ok=%v: %s", serveCode, tt.ok, serr.String())
			}
			if (code == 0) != (serveCode == 0) {
				t.Fatalf("check exited %d but serve %d\ncheck: %s%s\nserve: %s", code, serveCode, out, errOut, serr.String())
			}
			for _, s := range tt.want {
				if !strings.Contains(out, s) {
					t.Errorf("check output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}
