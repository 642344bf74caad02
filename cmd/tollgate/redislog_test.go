package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.uber.org/zap/zapcore"
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
