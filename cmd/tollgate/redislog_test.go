package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate-ai/tollgate/policy/keys"
)

// TestRedisLogger: go-redis's messages come out as JSON log lines, named
// and sampled, never as go-redis's own plain-text lines.
func TestRedisLogger(t *testing.T) {
	var buf bytes.Buffer
	l := newRedisLogger(newLogger(&buf, false, zapcore.InfoLevel))
	for i := range 500 {
		l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s", i, "dial tcp 127.0.0.1:6379: i/o timeout")
	}
	n := 0
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		n++
		var e struct{ Level, Logger, Msg, Detail string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		if e.Level != "warn" || e.Logger != "redis" || e.Msg != "redis client" || e.Detail == "" {
			t.Fatalf("line %+v", e)
		}
	}
	if n == 0 || n >= 500 {
		t.Fatalf("%d lines for 500 messages; want some, sampled", n)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeRedisLogsAreJSON: with Redis unreachable, what go-redis has to
// say reaches stderr as the gateway's JSON log lines, not as plain text.
func TestServeRedisLogsAreJSON(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: every dial is refused
	t.Setenv("TOLLGATE_TEST_REDIS_URL", "redis://"+addr)
	const key = "tg_redislogTest000000000000000000000000000000"
	dir := t.TempDir()
	cfg := fmt.Sprintf(`version: 1
providers:
  - {name: openai, schema: openai, cluster: openai}
models:
  - {name: m, provider: openai, model: gpt-4o-mini}
keys:
  - {id: k1, sha256: %s}
limits:
  backend: redis
  redis: {url: {env: TOLLGATE_TEST_REDIS_URL}}
  rate_limits:
    - {scope: key, requests_per_minute: 10}
`, keys.Hash(key))
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr lockedBuffer
	exited := make(chan int)
	go func() {
		exited <- run(ctx, []string{"serve", "--config", dir, "--grpc-addr", "127.0.0.1:0", "--admin-addr", ""}, io.Discard, &stderr)
	}()
	grpcAddr := waitServing(t, &stderr)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One request: its admission dials Redis, which refuses.
	s, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("POST")}, {Key: ":path", RawValue: []byte("/v1/chat/completions")}, {Key: "authorization", RawValue: []byte("Bearer " + key)}}}}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(`{"model":"m","messages":[]}`), EndOfStream: true}}},
	} {
		if err := s.Send(m); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	redisLines := 0
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var e struct{ Logger string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		if e.Logger == "redis" {
			redisLines++
		}
	}
	if redisLines == 0 {
		t.Fatalf("no go-redis line in the log:\n%s", stderr.String())
	}
}

// waitServing polls the log for the gateway's "tollgate serving" line and
// returns its gRPC address, within a bounded time.
func waitServing(t *testing.T, stderr *lockedBuffer) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a failure guard, not a synchronisation
	for {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var e struct {
				Msg      string
				GRPCAddr string `json:"grpc_addr"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "tollgate serving" {
				return e.GRPCAddr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never logged that it serves:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling an observable condition
	}
}
