package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/extproc/serve"
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
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"example and shipped bootstraps", []string{"check", "--config", "../../routing/config/example/tollgate.yaml",
			"--envoy", "../../envoy/envoy.yaml", "--envoy", "../../envoy/envoy-tls.yaml"}, 0, []string{"ok"}},
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
	g, err := serve.Start(context.Background(), serve.Config{GRPCAddr: "unix://" + sock})
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
