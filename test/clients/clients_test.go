// Package clients runs real OpenAI-ecosystem clients (the official openai Node SDK,
// LangChain, the Vercel AI SDK; see clients.test.mjs) against `tollgate run` with the
// development front and the built-in mock provider, started as a separate process.
package clients

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// skipOrFail skips when the Node toolchain is missing, except in CI, where it fails.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("client tests cannot run in CI: %s", why)
	}
	t.Skipf("client tests skipped: %s (install Node 20+ and run `npm ci` in test/clients)", why)
}

var urlRE = regexp.MustCompile(`send requests to (http://127\.0\.0\.1:\d+)`)

func TestClients(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		skipOrFail(t, "node is not on PATH")
	}
	if _, err := os.Stat("node_modules"); err != nil {
		skipOrFail(t, "test/clients/node_modules is missing")
	}
	bin := filepath.Join(t.TempDir(), "tollgate")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/tollgate")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gw := exec.CommandContext(ctx, bin, "run", "--front", "emulated", "--listen", "127.0.0.1:0",
		"--admin-addr", "")
	gw.Env = withoutEnv(os.Environ(), "OPENAI_API_KEY")
	gw.Cancel = func() error { return gw.Process.Signal(os.Interrupt) }
	stderr, err := gw.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var url string
	var startLog strings.Builder
	for url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tollgate run exited before it was ready:\n%s", startLog.String())
			}
			startLog.WriteString(l + "\n")
			if m := urlRE.FindStringSubmatch(l); m != nil {
				url = m[1]
			}
		case <-ctx.Done():
			t.Fatalf("tollgate run not ready:\n%s", startLog.String())
		}
	}
	var gwLog strings.Builder
	logged := make(chan struct{})
	go func() {
		for l := range lines {
			gwLog.WriteString(l + "\n")
		}
		close(logged)
	}()

	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "clients.test.mjs")
	cmd.Env = append(os.Environ(), "TOLLGATE_URL="+url)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Errorf("client tests failed: %v", err)
	}

	_ = gw.Process.Signal(os.Interrupt)
	werr := gw.Wait()
	<-logged
	if werr != nil {
		t.Errorf("tollgate run did not exit cleanly on Ctrl-C: %v\n%s", werr, gwLog.String())
	}
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
