package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// demoKey is the example config's public demo key, as in the README's quick start.
const demoKey = "tg_demo_0123456789abcdefghijklmnopqrstuvwxyzAB"

// syncBuffer is a log sink tests read while the command writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitLog polls the log until it contains s, for at most a bounded time.
func (b *syncBuffer) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never contained %q:\n%s", s, b.String())
		}
		time.Sleep(10 * time.Millisecond) // polling an observable condition, bounded above
	}
}

type runningGateway struct {
	url    string
	logs   *syncBuffer
	cancel context.CancelFunc
	code   chan int
}

// stop cancels the run as Ctrl-C would and returns its exit code.
func (r *runningGateway) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case c := <-r.code:
		return c
	case <-time.After(60 * time.Second):
		t.Fatalf("tollgate run did not stop:\n%s", r.logs.String())
		return -1
	}
}

// startRun runs `tollgate run` in-process on loopback ports of its own choosing, without
// OPENAI_API_KEY, and waits for its front to be ready.
func startRun(t *testing.T, o runOptions) *runningGateway {
	t.Helper()
	logs := &syncBuffer{}
	o.log = newLogger(logs, false, zapcore.DebugLevel)
	o.listen = "127.0.0.1:0"
	o.grpcAddr, o.adminAddr = "127.0.0.1:0", ""
	o.drain = 10 * time.Second
	o.lookupEnv = func(string) (string, bool) { return "", false }
	if o.envoyVersionsURL == "" { // never the internet: a download fails as offline
		o.envoyVersion, o.envoyHome, o.envoyVersionsURL = pinnedEnvoyVersion, t.TempDir(), offlineVersionsURL(t)
	}
	ready := make(chan string, 1)
	o.ready = func(url string) { ready <- url }
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningGateway{logs: logs, cancel: cancel, code: make(chan int, 1)}
	go func() { r.code <- runGateway(ctx, o) }()
	select {
	case r.url = <-ready:
	case c := <-r.code:
		cancel()
		t.Fatalf("tollgate run exited with %d before it was ready:\n%s", c, logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("tollgate run not ready:\n%s", logs.String())
	}
	t.Cleanup(func() {
		cancel()
		if t.Failed() {
			t.Logf("tollgate run log:\n%s", logs.String())
		}
	})
	return r
}

func noEnvoy(string) (string, error) { return "", exec.ErrNotFound }

func postJSON(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+demoKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestRunQuickStart is the README's quick start: `make run` without Envoy and without
// OPENAI_API_KEY, then the curl request, which must get a 200 with content and cost headers.
func TestRunQuickStart(t *testing.T) {
	r := startRun(t, runOptions{front: frontAuto, lookPath: noEnvoy})
	if !strings.Contains(r.logs.String(), "DEVELOPMENT FRONT") || !strings.Contains(r.logs.String(), "NOT FOR PRODUCTION") {
		t.Fatalf("no development-front warning at start-up:\n%s", r.logs.String())
	}

	resp, body := postJSON(t, r.url+"/v1/chat/completions", `{"model":"smart-default","messages":[{"role":"user","content":"Hello"}]}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var cc struct {
		Choices []struct{ Message struct{ Content string } }
	}
	if err := json.Unmarshal(body, &cc); err != nil || len(cc.Choices) != 1 || !strings.Contains(cc.Choices[0].Message.Content, "You said: Hello") {
		t.Fatalf("completion %s (%v)", body, err)
	}
	for h, want := range map[string]string{
		"x-tollgate-provider": "mock", "x-tollgate-model": "tollgate-mock", "x-tollgate-usage": "provider",
		"x-tollgate-prompt-tokens": "3", "x-tollgate-completion-tokens": "8", "x-tollgate-total-tokens": "11",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if c := resp.Header.Get("x-tollgate-cost-usd"); c == "" || strings.Trim(c, "0.") != "" {
		t.Errorf("x-tollgate-cost-usd = %q, want a zero amount", c)
	}

	t.Run("stream", func(t *testing.T) {
		resp, body := postJSON(t, r.url+"/v1/chat/completions", `{"model":"fast-default","stream":true,"messages":[{"role":"user","content":"Hi"}]}`)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if !strings.Contains(string(body), `"content":" said:"`) || !strings.Contains(string(body), "data: [DONE]") {
			t.Fatalf("stream:\n%s", body)
		}
		// The client did not ask for usage, so the usage chunk the gateway asked for is removed.
		if strings.Contains(string(body), `"usage":{`) {
			t.Fatalf("usage chunk the client did not ask for:\n%s", body)
		}
	})
	t.Run("embeddings", func(t *testing.T) {
		resp, body := postJSON(t, r.url+"/v1/embeddings", `{"model":"embed-default","input":"Hello"}`)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("x-tollgate-model") != "tollgate-mock-embed" {
			t.Fatalf("status %d model %q: %s", resp.StatusCode, resp.Header.Get("x-tollgate-model"), body)
		}
	})
	t.Run("mock failure", func(t *testing.T) {
		resp, body := postJSON(t, r.url+"/v1/chat/completions", `{"model":"smart-default","messages":[{"role":"user","content":"[mock:500]"}]}`)
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), `"code":"server_error"`) {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("bad key", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer tg_wrong")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit code %d after Ctrl-C:\n%s", code, r.logs.String())
	}
}

func TestRunFrontEnvoyWithoutEnvoy(t *testing.T) {
	logs := &syncBuffer{}
	code := runGateway(context.Background(), runOptions{front: frontEnvoy, lookPath: noEnvoy, log: newLogger(logs, false, zapcore.InfoLevel)})
	if code != 1 || !strings.Contains(logs.String(), "envoy is not on PATH and --envoy-version is empty") || !strings.Contains(logs.String(), "--envoy PATH") {
		t.Fatalf("code %d, log:\n%s", code, logs.String())
	}
}

// fakeEnvoy writes an executable that plays envoy's command line: it reports its
// arguments and whether the bootstrap has the run's clusters, then runs script.
func fakeEnvoy(t *testing.T, script string) string {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to play envoy")
	}
	path := filepath.Join(t.TempDir(), "envoy")
	text := "#!/bin/sh\necho \"fake envoy $*\"\n" +
		"grep -q tollgate_ext_proc \"$2\" && grep -q 'address: 127.0.0.1' \"$2\" && echo \"has loopback clusters\"\n" + script
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunEnvoyChild(t *testing.T) {
	t.Run("Ctrl-C stops envoy and the processor", func(t *testing.T) {
		// "trap set" tells the test the TERM handler is installed: a SIGTERM before it would kill sh outright.
		bin := fakeEnvoy(t, "sleep 600 & child=$!\ntrap 'kill $child; echo got TERM; exit 0' TERM\necho trap set\nwait $child\n")
		r := startRun(t, runOptions{front: frontEnvoy, envoyPath: bin, envoyLevel: "warn", lookPath: noEnvoy})
		r.logs.waitLog(t, "fake envoy -c ")
		r.logs.waitLog(t, "--log-level warn")
		r.logs.waitLog(t, "has loopback clusters")
		r.logs.waitLog(t, "trap set")
		if !strings.Contains(r.logs.String(), "envoy\t") && !strings.Contains(r.logs.String(), `"logger":"envoy"`) {
			t.Fatalf("envoy's output is not under the envoy logger:\n%s", r.logs.String())
		}
		if code := r.stop(t); code != 0 {
			t.Fatalf("exit code %d", code)
		}
		if !strings.Contains(r.logs.String(), "got TERM") || !strings.Contains(r.logs.String(), "tollgate stopped") {
			t.Fatalf("envoy or the processor was not stopped gracefully:\n%s", r.logs.String())
		}
	})
	t.Run("envoy dies: the processor stops, non-zero exit", func(t *testing.T) {
		bin := fakeEnvoy(t, "echo 'bad bootstrap' >&2\nexit 3\n")
		r := startRun(t, runOptions{front: frontAuto, envoyPath: bin, lookPath: noEnvoy})
		select {
		case code := <-r.code:
			if code != 1 {
				t.Fatalf("exit code %d", code)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("tollgate run kept running after envoy died")
		}
		for _, s := range []string{"bad bootstrap", "envoy exited: stopping the processor", "tollgate stopped"} {
			if !strings.Contains(r.logs.String(), s) {
				t.Fatalf("log lacks %q:\n%s", s, r.logs.String())
			}
		}
	})
}

// TestRunEnvoyFromPATH: with no --envoy, an envoy on PATH is the one run
// (before any download); with both, --envoy wins.
func TestRunEnvoyFromPATH(t *testing.T) {
	onPath := fakeEnvoy(t, "echo on-path envoy\nsleep 600 & child=$!\ntrap 'kill $child; exit 0' TERM\necho trap set\nwait $child\n")
	lookPath := func(name string) (string, error) {
		if name != "envoy" {
			return "", exec.ErrNotFound
		}
		return onPath, nil
	}
	r := startRun(t, runOptions{front: frontAuto, lookPath: lookPath})
	r.logs.waitLog(t, "on-path envoy")
	r.logs.waitLog(t, "trap set")
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	flag := fakeEnvoy(t, "echo flag envoy\nsleep 600 & child=$!\ntrap 'kill $child; exit 0' TERM\necho trap set\nwait $child\n")
	r = startRun(t, runOptions{front: frontAuto, envoyPath: flag, lookPath: lookPath})
	r.logs.waitLog(t, "flag envoy")
	r.logs.waitLog(t, "trap set")
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if strings.Contains(r.logs.String(), "on-path envoy") {
		t.Fatal("envoy on PATH ran although --envoy was given")
	}
}
