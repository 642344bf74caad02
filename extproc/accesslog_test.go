package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type fixedClock time.Time

func (c fixedClock) Now() time.Time                         { return time.Time(c) }
func (c fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// TestAccessLogCaller holds the access log line to what zap writes when it
// captures the caller itself: the first line is captured, later ones reuse
// it (Server.access), and every line must be the same bytes, naming the
// line of finish that logs.
func TestAccessLogCaller(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		opts   []zap.Option
		caller bool
	}{
		{"production", []zap.Option{zap.AddCaller()}, true},
		{"no caller", nil, false},
		{"caller and stack", []zap.Option{zap.AddCaller(), zap.AddStacktrace(zapcore.InfoLevel)}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
			log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&out), zapcore.InfoLevel),
				append(tt.opts, zap.WithClock(fixedClock(at)))...)
			snap := testSnapshot(t)
			s := New(Options{Snapshot: func() *Snapshot { return snap }, Logger: log, Now: func() time.Time { return at }})
			chat := `{"model":"smart-default","messages":[{"role":"user","content":"hi"}]}`
			resp := string(readFixture(t, "openai/chat_response.json"))
			for range 3 {
				x := newExchange(context.Background(), s, snap)
				x.handle(chatHeaders())
				x.handle(reqBody(chat))
				x.handle(respHeaders(":status", "200", "content-type", "application/json"))
				x.handle(respBody(resp, true))
				x.finish()
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != 3 {
				t.Fatalf("got %d lines, want 3:\n%s", len(lines), out.String())
			}
			if lines[1] != lines[0] || lines[2] != lines[0] {
				t.Fatalf("lines differ:\n%s\n%s\n%s", lines[0], lines[1], lines[2])
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
				t.Fatal(err)
			}
			caller, ok := line["caller"].(string)
			if ok != tt.caller {
				t.Fatalf("caller %q, want one: %t", line["caller"], tt.caller)
			}
			if !tt.caller {
				return
			}
			file, n, _ := strings.Cut(caller, ":")
			if file != "extproc/exchange.go" {
				t.Fatalf("caller %q, want extproc/exchange.go", caller)
			}
			src, err := os.ReadFile("exchange.go")
			if err != nil {
				t.Fatal(err)
			}
			ln, _ := strconv.Atoi(n)
			if l := strings.Split(string(src), "\n"); ln < 1 || ln > len(l) || !strings.Contains(l[ln-1], `Check(zap.InfoLevel, "request")`) {
				t.Fatalf("caller %q is not the access log's Check", caller)
			}
		})
	}
}

// TestAccessLogLatency: the line's latency is the request's, from its
// first message to finish (the e2e harness orders lines by it).
func TestAccessLogLatency(t *testing.T) {
	var out bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&out), zapcore.InfoLevel))
	at, calls := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), 0
	now := func() time.Time { calls++; return at.Add(time.Duration(calls) * time.Millisecond) }
	snap := testSnapshot(t)
	s := New(Options{Snapshot: func() *Snapshot { return snap }, Logger: log, Now: now})
	x := newExchange(context.Background(), s, snap)
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"smart-default","messages":[{"role":"user","content":"hi"}]}`))
	x.handle(respHeaders(":status", "200", "content-type", "application/json"))
	x.handle(respBody(string(readFixture(t, "openai/chat_response.json")), true))
	x.finish()
	var line struct{ Latency float64 }
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if max := float64(calls) / 1000; line.Latency <= 0 || line.Latency > max {
		t.Fatalf("latency %v s, want in (0, %v]", line.Latency, max)
	}
}
