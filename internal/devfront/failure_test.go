package devfront

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Envoy ext_proc API: ImmediateResponse: ImmediateResponse.
func TestImmediateResponse(t *testing.T) {
	jsonCT := setHeaders("content-type", "application/json", "x-extra", "1")
	for _, tc := range []struct {
		name       string
		at         string
		reply      *extprocsvc.ProcessingResponse
		wantStatus int
		wantCT     string
		wantBody   string
		upstream   bool
	}{
		{"status 403 with JSON", "request_headers", immediate(403, `{"error":"no"}`, jsonCT), 403, "application/json", `{"error":"no"}`, false},
		{"unset status is 200", "request_headers", immediate(0, "hi", nil), 200, "text/plain", "hi", false},
		{"status below 200 is 200", "request_headers", immediate(150, "hi", nil), 200, "text/plain", "hi", false},
		{"from the body reply", "request_body", immediate(400, "bad", nil), 400, "text/plain", "bad", false},
		{"replaces the upstream response", "response_headers", immediate(502, "", nil), 502, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{
				boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "BUFFERED")},
				script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					if kindOf(m) == tc.at {
						return tc.reply
					}
					return nil
				}),
			})
			r := e.post(t, "/", "body")
			wantStatus(t, r, tc.wantStatus)
			if r.body != tc.wantBody || r.header.Get("Content-Type") != tc.wantCT {
				t.Errorf("got %v %q", r.header, r.body)
			}
			if tc.wantCT == "application/json" && r.header.Get("X-Extra") != "1" {
				t.Errorf("immediate response headers %v", r.header)
			}
			if tc.upstream {
				e.up.next(t)
			} else {
				e.up.none(t)
			}
			s := e.proc.next(t)
			s.wait(t)
			if got := s.kinds(); got[len(got)-1] != tc.at {
				t.Errorf("messages %v: nothing after the immediate response (its reply is not processed: Envoy sends no local reply to the processor)", got)
			}
			if status.Code(s.end) != codes.Canceled {
				t.Errorf("stream ended with %v, want Canceled", s.end)
			}
			if l := e.lastLog(t); l.ResponseCodeDetails != "test_reply" {
				t.Errorf("details %q (whitespace replaced)", l.ResponseCodeDetails)
			}
		})
	}
}

// Envoy ext_proc API: ImmediateResponse: an ImmediateResponse after response headers went out (STREAMED mid-stream)
// resets the client stream.
func TestImmediateResponseMidStreamResets(t *testing.T) {
	more := make(chan struct{})
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SKIP", "NONE", "SEND", "STREAMED")},
		upstream: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "chunk1")
			w.(http.Flusher).Flush()
			<-more
			_, _ = io.WriteString(w, "chunk2")
		},
		script: func(s *pstream) error {
			m, _ := s.recv()
			_ = s.send(cont(m))
			m, _ = s.recv() // chunk1
			_ = s.send(cont(m))
			close(more)
			_, _ = s.recv() // chunk2
			_ = s.send(immediate(500, "too late", nil))
			_ = s.drain()
			return nil
		},
	})
	resp, err := e.client.Get(e.envoy.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil || string(b) != "chunk1" || resp.StatusCode != 200 {
		t.Fatalf("want a truncated 200 after chunk1, got %d %q %v", resp.StatusCode, b, err)
	}
	if l := e.lastLog(t); !l.Reset || l.ResponseCode != 200 {
		t.Errorf("log %+v", l)
	}
}

// Envoy ext_proc API: ImmediateResponse: disable_immediate_response makes an ImmediateResponse spurious.
func TestDisableImmediateResponse(t *testing.T) {
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "NONE", "SKIP", "NONE") + "disable_immediate_response: true\n"},
		script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			return immediate(403, "denied", nil)
		}),
	})
	r := e.get(t, "/")
	wantStatus(t, r, 500) // 1.36 fail-closed spurious handling
	if r.body != "" || e.envoy.Stats()["spurious_msgs_received"] != 1 {
		t.Fatalf("body %q stats %v", r.body, e.envoy.Stats())
	}
	if l := e.lastLog(t); l.ResponseCodeDetails != "unhandled_immediate_response_due_to_config_disabled_it" {
		t.Errorf("details %q", l.ResponseCodeDetails)
	}
}

// Envoy ext_proc: message_timeout and failure_mode_allow: the message timer — 504 fail-closed, pass-through fail-open.
func TestMessageTimeout(t *testing.T) {
	for _, tc := range []struct {
		name       string
		extra      string
		wantStatus int
	}{
		{"fail closed", "", 504},
		{"fail closed ignores status_on_error", "status_on_error: { code: 503 }\n", 504},
		{"fail open", "failure_mode_allow: true\n", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{
				boot: boot{extProc: modes("SEND", "BUFFERED", "SKIP", "NONE") + tc.extra},
				script: func(s *pstream) error {
					_ = s.drain() // never answers
					return nil
				},
			})
			done := make(chan result, 1)
			go func() { done <- e.post(t, "/", "payload") }()
			if d := e.timers.fire(t, MessageTimeout); d != 200e6 {
				t.Errorf("default message_timeout %v, want 200ms", d)
			}
			r := <-done
			wantStatus(t, r, tc.wantStatus)
			st := e.envoy.Stats()
			if st["message_timeouts"] != 1 {
				t.Errorf("stats %v", st)
			}
			if tc.wantStatus == 504 {
				if l := e.lastLog(t); l.ResponseCodeDetails != "ext_proc_error_per-message_timeout_exceeded" || r.body != "" {
					t.Errorf("details %q body %q", l.ResponseCodeDetails, r.body)
				}
				e.up.none(t)
				return
			}
			if u := e.up.next(t); u.Body != "payload" {
				t.Errorf("upstream %+v", u)
			}
			if st["failure_mode_allowed"] != 1 {
				t.Errorf("stats %v", st)
			}
		})
	}
}

// Envoy ext_proc: message_timeout and failure_mode_allow: a non-OK status from the processor, and an unreachable processor.
func TestGRPCFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		version    int
		extra      string
		noProc     bool
		wantStatus int
		details    string
	}{
		{"non-OK status fail-closed", 36, "", false, 500, "ext_proc_error_gRPC_error_13{boom_now}"},
		{"status_on_error", 36, "status_on_error: { code: 502 }\n", false, 502, "ext_proc_error_gRPC_error_13{boom_now}"},
		{"non-OK status fail-open", 36, "failure_mode_allow: true\n", false, 200, "via_upstream"},
		{"1.35 is always 500", 35, "", false, 500, "ext_proc_error_gRPC_error_13{boom_now}"},
		{"unreachable fail-closed", 36, "", true, 500, ""},
		{"unreachable fail-open", 36, "failure_mode_allow: true\n", true, 200, "via_upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{
				version: tc.version,
				noProc:  tc.noProc,
				boot:    boot{extProc: modes("SEND", "BUFFERED", "SKIP", "NONE") + tc.extra},
				script: func(s *pstream) error {
					_, _ = s.recv()
					return status.Error(codes.Internal, "boom now")
				},
			})
			r := e.post(t, "/", "x")
			wantStatus(t, r, tc.wantStatus)
			if tc.wantStatus != 200 && r.body != "" {
				t.Errorf("error body %q, want empty", r.body)
			}
			l := e.lastLog(t)
			if tc.details != "" && l.ResponseCodeDetails != tc.details {
				t.Errorf("details %q, want %q", l.ResponseCodeDetails, tc.details)
			}
			if tc.noProc && tc.wantStatus != 200 && !strings.HasPrefix(l.ResponseCodeDetails, fmt.Sprintf("ext_proc_error_gRPC_error_%d{", codes.Unavailable)) {
				t.Errorf("details %q, want Unavailable", l.ResponseCodeDetails)
			}
			st := e.envoy.Stats()
			if st["streams_failed"] != 1 {
				t.Errorf("stats %v", st)
			}
			if tc.wantStatus == 200 {
				e.up.next(t)
				if st["failure_mode_allowed"] != 1 {
					t.Errorf("stats %v", st)
				}
			} else {
				e.up.none(t)
			}
		})
	}
}

// Envoy ext_proc: message_timeout and failure_mode_allow: a failure after response headers went out resets the stream.
func TestGRPCFailureAfterResponseHeadersResets(t *testing.T) {
	more := make(chan struct{})
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SKIP", "NONE", "SEND", "STREAMED")},
		upstream: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "one")
			w.(http.Flusher).Flush()
			<-more
			_, _ = io.WriteString(w, "two")
		},
		script: func(s *pstream) error {
			m, _ := s.recv()
			_ = s.send(cont(m))
			m, _ = s.recv()
			_ = s.send(cont(m))
			close(more)
			_, _ = s.recv()
			return status.Error(codes.Unavailable, "gone")
		},
	})
	r := e.get(t, "/")
	if r.err == nil || r.status != 200 || r.body != "one" {
		t.Fatalf("want a truncated 200, got %d %q %v", r.status, r.body, r.err)
	}
}

// Envoy ext_proc: local replies are not sent to the processor: Envoy's own local replies never reach the processor.
func TestLocalRepliesNotProcessed(t *testing.T) {
	const routes = `
- name: direct
  match: { prefix: /direct }
  direct_response: { status: 404, body: { inline_string: nope } }
- name: by_header
  match: { prefix: / }
  route: { cluster_header: x-cluster }
`
	for _, tc := range []struct {
		name   string
		path   string
		body   string
		status int
	}{
		{"direct_response", "/direct", "", 404},
		{"cluster_not_found", "/x", "", 503},
		{"413", "/x", string(make([]byte, 4096)), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "BUFFERED"), routes: routes, bufferLimit: 1024}})
			wantStatus(t, e.post(t, tc.path, tc.body), tc.status)
			s := e.proc.next(t)
			s.wait(t)
			for _, k := range s.kinds() {
				if k == "response_headers" || k == "response_body" {
					t.Fatalf("local reply sent to the processor: %v", s.kinds())
				}
			}
			if !slices.Contains(s.kinds(), "request_headers") {
				t.Fatalf("messages %v", s.kinds())
			}
		})
	}
}

// The HCM stream idle timer (route idle_timeout overrides stream_idle_timeout): 408
// before response headers.
func TestStreamIdleTimeout(t *testing.T) {
	const routes = `
- name: r
  match: { prefix: / }
  route: { cluster: upstream, idle_timeout: 3s, retry_policy: { per_try_timeout: 2s } }
`
	stall, arrived := make(chan struct{}), make(chan struct{})
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "NONE", "SKIP", "NONE"), routes: routes, hcmExtra: "stream_idle_timeout: 60s\n"},
		upstream: func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-stall
		},
	})
	defer close(stall)
	done := make(chan result, 1)
	go func() { done <- e.get(t, "/") }()
	<-arrived
	// The HCM's idle timer runs from the start; the route's replaces it once routed.
	if d := e.timers.fire(t, StreamIdleTimeout); d != 3*time.Second {
		t.Errorf("fired idle timer of %v, want the route's 3s", d)
	}
	r := <-done
	wantStatus(t, r, 408)
	if l := e.lastLog(t); l.ResponseCodeDetails != "stream_idle_timeout" || r.body != "stream timeout" {
		t.Errorf("details %q body %q", l.ResponseCodeDetails, r.body)
	}
	if d := e.timers.durations(StreamIdleTimeout); d[0] != time.Minute || !slices.Contains(d, 3*time.Second) {
		t.Errorf("idle timers %v", d)
	}
	if d := e.timers.durations(PerTryTimeout); !slices.Equal(d, []time.Duration{2 * time.Second}) {
		t.Errorf("per-try timers %v", d)
	}
}

// A client that goes away resets the ext_proc stream.
func TestClientDisconnectCancelsStream(t *testing.T) {
	got := make(chan error, 1)
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "NONE", "SKIP", "NONE")},
		script: func(s *pstream) error {
			_, _ = s.recv()
			got <- s.drain() // never replies
			return nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.envoy.URL()+"/", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := e.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	s := e.proc.next(t)
	_ = s
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("request succeeded")
	}
	if err := <-got; status.Code(err) != codes.Canceled {
		t.Fatalf("stream ended with %v", err)
	}
}
