package e2e

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"google.golang.org/grpc"

	"github.com/tollgate-ai/tollgate/internal/devfront"
)

// edgeOptions set up the Envoy failure cases: Envoy's own local replies, which the
// bootstrap's local_reply_config turns into OpenAI errors.
type edgeOptions struct {
	bufferLimit int    // the listener's buffer limit, instead of 50 MiB
	processor   string // "dead" (closed port), "stuck" (never answers), "pass" (closes with OK at once)
	openaiDown  bool   // the openai cluster points at a closed port
	streamIdle  bool   // the test fires the stream idle timeout (harness.fireStreamIdle)
}

// edgeTimers are the stand-in timers edgeOptions take over.
type edgeTimers struct {
	streamIdle     chan time.Time // nil: real timers
	messageTimeout bool           // ext_proc message timers fire at once
}

func (e edgeTimers) timer(kind devfront.TimerKind) (<-chan time.Time, bool) {
	switch {
	case kind == devfront.StreamIdleTimeout && e.streamIdle != nil:
		return e.streamIdle, true
	case kind == devfront.MessageTimeout && e.messageTimeout:
		c := make(chan time.Time, 1)
		c <- time.Now()
		return c, true
	}
	return nil, false
}

// applyEdge rewrites the bootstrap and the cluster addresses for o.
func (h *harness) applyEdge(o edgeOptions, bootstrap []byte, clusters map[string]string) []byte {
	h.t.Helper()
	if o.bufferLimit > 0 {
		// The listener's limit is the first in the file; the ext_proc cluster keeps its own.
		bootstrap = bytes.Replace(bootstrap, []byte("per_connection_buffer_limit_bytes: 52428800"),
			[]byte("per_connection_buffer_limit_bytes: "+strconv.Itoa(o.bufferLimit)), 1)
	}
	switch o.processor {
	case "dead":
		clusters["tollgate_ext_proc"] = closedPort(h.t)
	case "stuck", "pass":
		clusters["tollgate_ext_proc"] = startFakeProcessor(h.t, o.processor == "stuck")
		h.edge.messageTimeout = o.processor == "stuck"
	}
	if o.openaiDown {
		clusters["openai"] = closedPort(h.t)
	}
	if o.streamIdle {
		h.edge.streamIdle = make(chan time.Time) // unbuffered: a send reaches an armed timer
	}
	return bootstrap
}

// fireStreamIdle fires stream idle timers until done is closed: stale timers of the
// stream may take a tick, the live one answers.
func (h *harness) fireStreamIdle(done <-chan struct{}) {
	for {
		select {
		case h.edge.streamIdle <- time.Now():
		case <-done:
			return
		}
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// fakeProcessor is an ext_proc server that never answers (stuck) or ends every stream
// with OK at once, which Envoy reads as "continue without the processor".
type fakeProcessor struct {
	extprocv3.UnimplementedExternalProcessorServer
	stuck bool
}

func (p fakeProcessor) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	if p.stuck {
		<-s.Context().Done()
	}
	return nil
}

func startFakeProcessor(t *testing.T, stuck bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(g, fakeProcessor{stuck: stuck})
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

// TestHeadersBothWays: the provider never sees the gateway's identity headers or the
// client's account scope, and the client never sees the provider's account headers.
func TestHeadersBothWays(t *testing.T) {
	clientHeaders := []option.RequestOption{
		option.WithOrganization("org-client-chosen"), option.WithProject("proj_client_chosen"),
		option.WithHeader("x-agent-id", agentID), option.WithHeader("OpenAI-Beta", "assistants=v2"),
		option.WithHeader("Anthropic-Beta", "context-1m-2025-08-07"), option.WithHeader("Anthropic-Version", "2099-01-01"),
		option.WithHeader("X-Tollgate-Metadata-Workspace_id", "w-1"),
	}
	stripped := []string{"OpenAI-Organization", "OpenAI-Project", "OpenAI-Beta", "X-Agent-Id", "Anthropic-Beta",
		"X-Tollgate-Metadata-Workspace_id"}
	leaks := []string{"openai-organization", "openai-project", "anthropic-organization-id"}
	fronts(t, harnessOptions{}, func(t *testing.T, h *harness) {
		for _, tc := range []struct {
			model    string
			provider func() []string // header names of the provider's last request
			version  string          // the anthropic-version the provider must see
		}{
			{"smart-default", nil, ""},
			{"claude-default", nil, "2023-06-01"},
		} {
			var resp *http.Response
			opts := append(append([]option.RequestOption{}, clientHeaders...), option.WithResponseInto(&resp))
			if _, err := h.client.Chat.Completions.New(context.Background(), chatParams(tc.model), opts...); err != nil {
				t.Fatalf("%s: %v", tc.model, err)
			}
			srv := h.openai
			if tc.version != "" {
				srv = h.anthropic
			}
			got := lastRequest(t, srv).Header
			for _, k := range stripped {
				if v := got.Get(k); v != "" {
					t.Errorf("%s: the provider received %s: %q", tc.model, k, v)
				}
			}
			if tc.version != "" && got.Get("Anthropic-Version") != tc.version {
				t.Errorf("%s: anthropic-version %q, want the gateway's %q", tc.model, got.Get("Anthropic-Version"), tc.version)
			}
			for name := range resp.Header {
				l := strings.ToLower(name)
				if contains(leaks, l) || strings.HasPrefix(l, "x-ratelimit-") || strings.HasPrefix(l, "anthropic-ratelimit-") {
					t.Errorf("%s: the client received the provider's %s", tc.model, name)
				}
			}
			if resp.Header.Get("X-Tollgate-Request-Id") == "" {
				t.Errorf("%s: no x-tollgate-request-id", tc.model)
			}
		}
	})
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// TestRefusalRequestID: a gateway refusal carries Envoy's request id, which openai-go
// exposes through the error's response, and keeps its own body.
func TestRefusalRequestID(t *testing.T) {
	fronts(t, harnessOptions{}, func(t *testing.T, h *harness) {
		_, err := h.client.Chat.Completions.New(context.Background(), chatParams("no-such-model"))
		var apiErr *openai.Error
		if !asAPIError(err, &apiErr) {
			t.Fatalf("want *openai.Error, got %v", err)
		}
		if apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
			t.Fatalf("got %d %q, want the gateway's own 404 model_not_found", apiErr.StatusCode, apiErr.Code)
		}
		id := apiErr.Response.Header.Get("X-Request-Id")
		if id == "" || id != apiErr.Response.Header.Get("X-Tollgate-Request-Id") {
			t.Fatalf("x-request-id %q, x-tollgate-request-id %q", id, apiErr.Response.Header.Get("X-Tollgate-Request-Id"))
		}
		other := h.newClient("tg_unknown_key_000000000000000000000")
		_, err = other.Models.List(context.Background())
		if !asAPIError(err, &apiErr) || apiErr.Code != "invalid_api_key" || apiErr.Response.Header.Get("X-Request-Id") == "" {
			t.Fatalf("invalid key: %v", err)
		}
	})
}

// stallingBody sends head and then nothing until release is closed.
type stallingBody struct {
	head    []byte
	release chan struct{}
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	<-b.release
	return 0, context.Canceled
}

// TestEnvoyErrorsAreOpenAIErrors: every error Envoy generates itself reaches openai-go as
// a typed *openai.Error with an envoy_* code and a request id. Stand-in only: the cases
// drive its timers (a real Envoy would wait out its 10 s and 900 s timeouts).
func TestEnvoyErrorsAreOpenAIErrors(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	tests := []struct {
		name   string
		opts   edgeOptions
		call   func(h *harness) error
		status int
		code   string
	}{
		{"413 request body over the buffer limit", edgeOptions{bufferLimit: 64 << 10}, func(h *harness) error {
			p := chatParams("smart-default")
			p.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage(big)}
			_, err := h.client.Chat.Completions.New(context.Background(), p)
			return err
		}, 413, "envoy_payload_too_large"},
		{"408 request body never completes", edgeOptions{streamIdle: true}, func(h *harness) error {
			body := &stallingBody{head: []byte(`{"model":"smart-default","messages":[`), release: make(chan struct{})}
			defer close(body.release)
			done := make(chan struct{})
			go h.fireStreamIdle(done)
			defer close(done)
			_, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default"),
				option.WithRequestBody("application/json", body))
			return err
		}, 408, "envoy_request_timeout"},
		{"500 processor unreachable", edgeOptions{processor: "dead"}, chatCall, 500, "envoy_processor_error"},
		{"504 processor timeout", edgeOptions{processor: "stuck"}, chatCall, 504, "envoy_timeout"},
		{"503 no healthy upstream", edgeOptions{openaiDown: true}, chatCall, 503, "envoy_upstream_unavailable"},
		{"404 no route", edgeOptions{processor: "pass"}, chatCall, 404, "envoy_no_route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{edge: tt.opts})
			err := tt.call(h)
			var apiErr *openai.Error
			if !asAPIError(err, &apiErr) {
				t.Fatalf("want *openai.Error, got %v", err)
			}
			if apiErr.StatusCode != tt.status || apiErr.Code != tt.code || apiErr.Message == "" || apiErr.Type == "" {
				t.Fatalf("got %d code %q type %q message %q, want %d %s (body %s)", apiErr.StatusCode, apiErr.Code,
					apiErr.Type, apiErr.Message, tt.status, tt.code, apiErr.RawJSON())
			}
			if ct := apiErr.Response.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q", ct)
			}
			if apiErr.Response.Header.Get("X-Request-Id") == "" {
				t.Error("no x-request-id")
			}
		})
	}
}

func chatCall(h *harness) error {
	_, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default"))
	return err
}
