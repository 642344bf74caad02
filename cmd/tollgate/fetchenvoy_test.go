package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/tollgate-ai/tollgate/internal/devfront"
)

// The test binary doubles as the Envoy that func-e "downloads": with fakeEnvoyEnv set it
// runs fakeEnvoyMain instead of the tests (see envoyArchive).
const (
	fakeEnvoyEnv     = "TOLLGATE_TEST_FAKE_ENVOY"
	fakeEnvoyExitEnv = "TOLLGATE_TEST_FAKE_ENVOY_EXIT" // exit with this code after printing the args
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnvoyEnv) == "1" {
		os.Exit(fakeEnvoyMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeEnvoyMain plays Envoy's command line: --version, or -c FILE served by the
// development front until SIGTERM (Envoy's graceful exit).
func fakeEnvoyMain(args []string) int {
	fmt.Printf("fake envoy %s (pid %d)\n", strings.Join(args, " "), os.Getpid())
	var config string
	for i, a := range args {
		switch {
		case a == "--version":
			fmt.Println("envoy  version: fake/" + pinnedEnvoyVersion + "/Clean/RELEASE/BoringSSL")
			return 0
		case a == "-c" && i+1 < len(args):
			config = args[i+1]
		}
	}
	if code, err := strconv.Atoi(os.Getenv(fakeEnvoyExitEnv)); err == nil {
		fmt.Fprintln(os.Stderr, "bad bootstrap")
		return code
	}
	bootstrap, err := os.ReadFile(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake envoy:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	front, err := devfront.Start(ctx, devfront.Options{Bootstrap: bootstrap})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake envoy:", err)
		return 1
	}
	fmt.Println("fake envoy listening on " + front.URL())
	<-ctx.Done()
	fmt.Println("fake envoy got TERM")
	if err := front.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "fake envoy:", err)
		return 1
	}
	return 0
}

// envoyArchive is a release archive as func-e expects one (a top directory holding
// bin/envoy) whose envoy re-executes this test binary as fakeEnvoyMain.
func envoyArchive(t *testing.T, top string) []byte {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\n%s=1 exec %s \"$@\"\n", fakeEnvoyEnv, strconv.Quote(self))
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: top + "/bin/envoy", Mode: 0o755, Size: int64(len(script)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(script)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// envoyArchiveServer plays func-e's archive site on loopback: envoy-versions.json listing
// pinnedEnvoyVersion for this platform, and its archive. It counts the requests.
type envoyArchiveServer struct {
	url                string
	versions, archives atomic.Int32
}

func newEnvoyArchiveServer(t *testing.T) *envoyArchiveServer {
	t.Helper()
	platform := runtime.GOOS + "-" + runtime.GOARCH
	top := "envoy-v" + pinnedEnvoyVersion + "-" + platform
	archive := envoyArchive(t, top)
	sum := sha256.Sum256(archive)
	s := &envoyArchiveServer{}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/envoy-versions.json"
	// The shape of func-e's envoy-versions.json (func-e internal/version.ReleaseVersions).
	versions, err := json.Marshal(map[string]any{
		"versions": map[string]any{pinnedEnvoyVersion: map[string]any{
			"releaseDate": "2026-10-12",
			"tarballs":    map[string]string{runtime.GOOS + "/" + runtime.GOARCH: srv.URL + "/" + top + ".tar.gz"},
		}},
		"sha256sums": map[string]string{top + ".tar.gz": hex.EncodeToString(sum[:])},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("GET /envoy-versions.json", func(w http.ResponseWriter, _ *http.Request) {
		s.versions.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(versions)
	})
	mux.HandleFunc("GET /"+top+".tar.gz", func(w http.ResponseWriter, _ *http.Request) {
		s.archives.Add(1)
		_, _ = w.Write(archive)
	})
	return s
}

// offlineVersionsURL is a loopback versions URL that fails, as func-e's does offline.
func offlineVersionsURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "offline", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/envoy-versions.json"
}

// envoyLines returns the messages logged under the "envoy" logger.
func envoyLines(logs string) []string {
	var msgs []string
	for line := range strings.Lines(logs) {
		var e struct{ Logger, Msg string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Logger == "envoy" {
			msgs = append(msgs, e.Msg)
		}
	}
	return msgs
}

func envoyLine(logs, prefix string) string {
	for _, m := range envoyLines(logs) {
		if strings.HasPrefix(m, prefix) {
			return m
		}
	}
	return ""
}

// waitEnvoyLine polls the log for a line under the envoy logger, bounded.
func waitEnvoyLine(t *testing.T, logs *syncBuffer, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := envoyLine(logs.String(), prefix); m != "" {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no envoy log line %q:\n%s", prefix, logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling an observable condition, bounded above
	}
}

func TestRunDownloadsEnvoyWithFuncE(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the archive's envoy script")
	}
	arch := newEnvoyArchiveServer(t)
	home := t.TempDir()
	opts := runOptions{front: frontEnvoy, lookPath: noEnvoy, envoyLevel: "warn",
		envoyVersion: pinnedEnvoyVersion, envoyHome: home, envoyVersionsURL: arch.url}

	r := startRun(t, opts)
	if v, a := arch.versions.Load(), arch.archives.Load(); v != 1 || a != 1 {
		t.Fatalf("first run: %d versions and %d archive requests, want 1 and 1", v, a)
	}
	// Arguments: the bootstrap file, the log level, a short drain.
	args := waitEnvoyLine(t, r.logs, "fake envoy -c ")
	if !strings.Contains(args, " --log-level warn --drain-time-s 1 ") {
		t.Fatalf("envoy arguments %q", args)
	}
	if cached := `"envoy":"` + home + "/envoy-versions/" + pinnedEnvoyVersion + `/bin/envoy"`; !strings.Contains(r.logs.String(), cached) {
		t.Fatalf("the child is not the cached download %s:\n%s", cached, r.logs.String())
	}
	pid := fakePID(t, args)
	// The gateway works through the downloaded Envoy: the fake serves the written bootstrap.
	url := strings.TrimPrefix(waitEnvoyLine(t, r.logs, "fake envoy listening on "), "fake envoy listening on ")
	resp, body := postJSON(t, url+"/v1/chat/completions", `{"model":"smart-default","messages":[{"role":"user","content":"Hello"}]}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("x-tollgate-provider") != "mock" {
		t.Fatalf("through the downloaded envoy: status %d provider %q: %s", resp.StatusCode, resp.Header.Get("x-tollgate-provider"), body)
	}
	// Shutdown: cancelling the run stops envoy (SIGTERM) and the processor.
	if code := r.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if envoyLine(r.logs.String(), "fake envoy got TERM") == "" || !strings.Contains(r.logs.String(), "tollgate stopped") {
		t.Fatalf("envoy or the processor was not stopped gracefully:\n%s", r.logs.String())
	}
	if p, err := os.FindProcess(pid); err == nil {
		if err := p.Signal(syscall.Signal(0)); !errors.Is(err, os.ErrProcessDone) {
			t.Fatalf("envoy pid %d still exists after the run: %v", pid, err)
		}
	}

	t.Run("second run uses the cache", func(t *testing.T) {
		r := startRun(t, opts)
		waitEnvoyLine(t, r.logs, "fake envoy listening on ")
		if v, a := arch.versions.Load(), arch.archives.Load(); v != 1 || a != 1 {
			t.Fatalf("after the second run: %d versions and %d archive requests, want still 1 and 1", v, a)
		}
		if code := r.stop(t); code != 0 {
			t.Fatalf("exit code %d", code)
		}
	})

	t.Run("envoy dies: the processor stops, non-zero exit", func(t *testing.T) {
		t.Setenv(fakeEnvoyExitEnv, "3")
		r := startRun(t, opts)
		select {
		case code := <-r.code:
			if code != 1 {
				t.Fatalf("exit code %d", code)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("tollgate run kept running after envoy died")
		}
		if envoyLine(r.logs.String(), "bad bootstrap") == "" {
			t.Fatalf("envoy's stderr is not under the envoy logger:\n%s", r.logs.String())
		}
		for _, s := range []string{"envoy exited: stopping the processor", "tollgate stopped"} {
			if !strings.Contains(r.logs.String(), s) {
				t.Fatalf("log lacks %q:\n%s", s, r.logs.String())
			}
		}
	})
}

// fakePID reads the pid fakeEnvoyMain prints after its arguments.
func fakePID(t *testing.T, line string) int {
	t.Helper()
	i := strings.LastIndex(line, "(pid ")
	pid, err := strconv.Atoi(strings.TrimSuffix(line[i+len("(pid "):], ")"))
	if i < 0 || err != nil {
		t.Fatalf("no pid in %q", line)
	}
	return pid
}

func TestRunEnvoyDownloadFails(t *testing.T) {
	tests := []struct {
		name     string
		front    string
		wantCode int
		wantLog  []string
	}{
		{"auto falls back to the development front", frontAuto, 0,
			[]string{"could not be downloaded (offline?): falling back to the development front", "DEVELOPMENT FRONT"}},
		{"--front envoy fails", frontEnvoy, 1,
			[]string{"no Envoy for --front envoy", "the download failed (offline?)", "503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := runOptions{front: tt.front, lookPath: noEnvoy, log: newLogger(logs, false, zapcore.InfoLevel),
				envoyVersion: pinnedEnvoyVersion, envoyHome: t.TempDir(), envoyVersionsURL: offlineVersionsURL(t),
				listen: "127.0.0.1:0", grpcAddr: "127.0.0.1:0",
				lookupEnv: func(string) (string, bool) { return "", false },
				ready:     func(string) { cancel() }}
			if code := runGateway(ctx, o); code != tt.wantCode {
				t.Fatalf("exit code %d, want %d:\n%s", code, tt.wantCode, logs.String())
			}
			for _, s := range tt.wantLog {
				if !strings.Contains(logs.String(), s) {
					t.Fatalf("log lacks %q:\n%s", s, logs.String())
				}
			}
		})
	}
}

func TestDefaultEnvoyHome(t *testing.T) {
	env := func(v string) func(string) (string, bool) {
		return func(k string) (string, bool) { return v, k == "TOLLGATE_ENVOY_HOME" && v != "" }
	}
	if got := defaultEnvoyHome(env("/srv/envoy")); got != "/srv/envoy" {
		t.Fatalf("TOLLGATE_ENVOY_HOME ignored: %q", got)
	}
	if got := defaultEnvoyHome(env("")); !strings.HasSuffix(got, "envoy") || got == "" {
		t.Fatalf("default %q", got)
	}
}

// Ctrl-C during the download stops the run instead of falling back to the development front.
func TestRunStoppedDuringEnvoyDownload(t *testing.T) {
	requested := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(requested) })
		<-r.Context().Done() // a download that never finishes
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-requested
		cancel()
	}()
	logs := &syncBuffer{}
	o := runOptions{front: frontAuto, lookPath: noEnvoy, log: newLogger(logs, false, zapcore.InfoLevel),
		envoyVersion: pinnedEnvoyVersion, envoyHome: t.TempDir(), envoyVersionsURL: srv.URL + "/envoy-versions.json"}
	if code := runGateway(ctx, o); code != 1 || !strings.Contains(logs.String(), "stopped while getting Envoy") ||
		strings.Contains(logs.String(), "DEVELOPMENT FRONT") {
		t.Fatalf("exit code %d:\n%s", code, logs.String())
	}
}
