package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	funce "github.com/tetratelabs/func-e"
	"github.com/tetratelabs/func-e/api"
	"go.uber.org/zap"
)

// pinnedEnvoyVersion is the Envoy release `tollgate run` downloads (through func-e) when
// neither --envoy nor an envoy on PATH is found: the newest 1.36 patch, the newest minor
// the development front emulates (internal/devfront Options.Version). Bump both together.
const pinnedEnvoyVersion = "1.36.13"

// fetchEnvoy returns the path of Envoy o.envoyVersion, downloaded and cached by func-e in
// o.envoyHome. func-e's Go API only offers "run", so it runs `envoy --version`: that
// installs the version (a cache hit makes no request) and proves the binary runs here.
// The gateway then runs the cached binary as its own child, keeping log forwarding,
// signals and "either dies, both stop" in runEnvoy.
func fetchEnvoy(ctx context.Context, o runOptions) (string, error) {
	scratch, err := os.MkdirTemp("", "tollgate-func-e-")
	if err != nil {
		return "", fmt.Errorf("func-e scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)
	out := &lineLogger{log: o.log.Named("func-e")}
	opts := []api.RunOption{
		api.EnvoyVersion(o.envoyVersion),
		api.DataHome(o.envoyHome),
		// Only the downloads are worth keeping: func-e's per-run state goes to scratch.
		api.ConfigHome(filepath.Join(scratch, "config")),
		api.StateHome(filepath.Join(scratch, "state")),
		api.RuntimeDir(filepath.Join(scratch, "run")),
		api.Out(out), api.EnvoyOut(out), api.EnvoyErr(out),
	}
	if o.envoyVersionsURL != "" {
		opts = append(opts, api.EnvoyVersionsURL(o.envoyVersionsURL))
	}
	err = funce.Run(ctx, []string{"--version"}, opts...)
	out.flush()
	if err != nil {
		return "", fmt.Errorf("func-e could not install Envoy %s into %s: %w", o.envoyVersion, o.envoyHome, err)
	}
	// The install layout func-e documents for api.DataHome.
	bin := filepath.Join(o.envoyHome, "envoy-versions", o.envoyVersion, "bin", "envoy")
	if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("func-e installed Envoy %s but %s is not an executable: %v", o.envoyVersion, bin, err)
	}
	return bin, nil
}

// defaultEnvoyHome is where downloaded Envoy versions are cached: $TOLLGATE_ENVOY_HOME,
// else the user cache directory.
func defaultEnvoyHome(lookupEnv func(string) (string, bool)) string {
	if v, ok := lookupEnv("TOLLGATE_ENVOY_HOME"); ok && v != "" {
		return v
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "tollgate", "envoy")
	}
	return filepath.Join(os.TempDir(), "tollgate-envoy")
}

// lineLogger logs each complete line written to it.
type lineLogger struct {
	log *zap.Logger
	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := bytes.TrimSpace(l.buf[:i]); len(line) > 0 {
			l.log.Info(string(line))
		}
		l.buf = l.buf[i+1:]
	}
}

// flush logs a trailing line without a newline.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if line := bytes.TrimSpace(l.buf); len(line) > 0 {
		l.log.Info(string(line))
	}
	l.buf = nil
}
