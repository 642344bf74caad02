package devfront

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Envoy ext_proc API: ProcessingResponse; Envoy ext_proc: message_timeout and failure_mode_allow: a reply of the wrong type is spurious: 1.35+ fail closed (500, or
// status_on_error on 1.36), ≤1.34 drop the processor and continue.
func TestSpuriousReply(t *testing.T) {
	wrong := func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			return cont(&extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_ResponseBody{}})
		}
		return nil
	}
	for _, tc := range []struct {
		version    int
		extra      string
		wantStatus int
		failOpen   bool
	}{
		{33, "", 200, false},
		{34, "", 200, false},
		{35, "", 500, false},
		{36, "", 500, false},
		{36, "status_on_error: { code: 503 }\n", 503, false},
		{36, "failure_mode_allow: true\n", 200, true},
	} {
		t.Run(fmt.Sprintf("1.%d %s", tc.version, tc.extra), func(t *testing.T) {
			e := newEnv(t, envOpts{version: tc.version,
				boot:   boot{extProc: modes("SEND", "NONE", "SEND", "NONE") + tc.extra},
				script: replier(wrong)})
			r := e.get(t, "/")
			wantStatus(t, r, tc.wantStatus)
			st := e.envoy.Stats()
			if st["spurious_msgs_received"] != 1 {
				t.Errorf("stats %v", st)
			}
			s := e.proc.next(t)
			s.wait(t)
			if got := s.kinds(); !slices.Equal(got, []string{"request_headers"}) {
				t.Errorf("messages %v: nothing more goes to the processor", got)
			}
			if tc.wantStatus == 200 {
				e.up.next(t)
				if tc.failOpen && st["failure_mode_allowed"] != 1 {
					t.Errorf("stats %v", st)
				}
			} else {
				e.up.none(t)
				if l := e.lastLog(t); l.ResponseCodeDetails != "spurious_message" {
					t.Errorf("details %q", l.ResponseCodeDetails)
				}
			}
		})
	}
}

// Envoy ext_proc API: ProcessingResponse: a reply when nothing is outstanding is spurious too; on 1.35+ fail-closed
// it ends the request with a local reply even while the upstream is answering.
func TestUnsolicitedReplyIsSpurious(t *testing.T) {
	stall := make(chan struct{})
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "NONE", "SKIP", "NONE")},
		script: func(s *pstream) error {
			m, _ := s.recv()
			_ = s.send(cont(m))
			_ = s.send(cont(m)) // a second request_headers reply
			_ = s.drain()
			return nil
		},
		upstream: func(w http.ResponseWriter, r *http.Request) { <-stall },
	})
	defer close(stall)
	r := e.get(t, "/")
	wantStatus(t, r, 500)
	if e.envoy.Stats()["spurious_msgs_received"] != 1 {
		t.Fatalf("stats %v", e.envoy.Stats())
	}
	if l := e.lastLog(t); l.ResponseCodeDetails != "spurious_message" {
		t.Fatalf("log %+v", l)
	}
}

// Envoy ext_proc API: ProcessingResponse.mode_override: override_message_timeout needs max_message_timeout, restarts the waiting
// timer once per message, is not the real reply (other fields ignored).
func TestOverrideMessageTimeout(t *testing.T) {
	override := func(d time.Duration) *extprocsvc.ProcessingResponse {
		return &extprocsvc.ProcessingResponse{OverrideMessageTimeout: durationpb.New(d),
			Response: &extprocsvc.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvc.HeadersResponse{
				Response: &extprocsvc.CommonResponse{HeaderMutation: setHeaders("x-from-override", "1")}}}}
	}
	for _, tc := range []struct {
		name          string
		extra         string
		overrides     []time.Duration
		wantDurations []time.Duration
		received      uint64
		ignored       uint64
	}{
		{"restarts once", "max_message_timeout: 10s\n", []time.Duration{5 * time.Second, 7 * time.Second},
			[]time.Duration{time.Second, 5 * time.Second}, 1, 1},
		{"needs max_message_timeout", "", []time.Duration{5 * time.Second}, []time.Duration{time.Second}, 0, 1},
		{"over max ignored", "max_message_timeout: 2s\n", []time.Duration{5 * time.Second}, []time.Duration{time.Second}, 0, 1},
		{"under 1ms ignored", "max_message_timeout: 2s\n", []time.Duration{500 * time.Microsecond}, []time.Duration{time.Second}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{
				boot: boot{extProc: modes("SEND", "NONE", "SKIP", "NONE") + "message_timeout: 1s\n" + tc.extra},
				script: func(s *pstream) error {
					m, _ := s.recv()
					for _, d := range tc.overrides {
						_ = s.send(override(d))
					}
					// The real reply must still follow; replies are handled in order.
					_ = s.send(cont(m))
					_ = s.drain()
					return nil
				},
			})
			wantStatus(t, e.get(t, "/"), 200)
			if u := e.up.next(t); u.Header.Get("X-From-Override") != "" {
				t.Error("fields of an override_message_timeout reply must be ignored")
			}
			if got := e.timers.durations(MessageTimeout); !slices.Equal(got, tc.wantDurations) {
				t.Errorf("message timers %v, want %v", got, tc.wantDurations)
			}
			st := e.envoy.Stats()
			if st["override_message_timeout_received"] != tc.received || st["override_message_timeout_ignored"] != tc.ignored {
				t.Errorf("stats %v", st)
			}
		})
	}
}

// Envoy ext_proc API: ProcessingResponse.mode_override: mode_override.
func TestModeOverride(t *testing.T) {
	const productModes = modesBuffered + `
allow_mode_override: true
allowed_override_modes:
- { request_header_mode: SEND, request_body_mode: BUFFERED, request_trailer_mode: SKIP, response_header_mode: SEND, response_body_mode: STREAMED, response_trailer_mode: SKIP }
`
	full := &extprocv3.ProcessingMode{RequestHeaderMode: modeSend, RequestBodyMode: modeBuffered, RequestTrailerMode: modeSkip,
		ResponseHeaderMode: modeSend, ResponseBodyMode: modeStreamed, ResponseTrailerMode: modeSkip}
	onlyBodies := &extprocv3.ProcessingMode{RequestBodyMode: modeBuffered, ResponseBodyMode: modeStreamed}
	for _, tc := range []struct {
		name     string
		version  int
		cfg      string
		at       string // message whose reply carries the override
		mo       *extprocv3.ProcessingMode
		streamed bool // the response body arrives as STREAMED chunks
	}{
		{"product override at response_headers", 36, productModes, "response_headers", full, true},
		{"product override on 1.33", 33, productModes, "response_headers", full, true},
		{"DEFAULT header modes keep config on 1.34+", 36, productModes, "response_headers", onlyBodies, true},
		{"DEFAULT header modes on 1.33 replace wholesale: not in the allowed list", 33, productModes, "response_headers", onlyBodies, false},
		{"override at request_headers", 36, productModes, "request_headers", full, true},
		{"not allowed without allow_mode_override", 36, modesBuffered, "response_headers", full, false},
		{"not in allowed_override_modes", 36, productModes, "response_headers",
			&extprocv3.ProcessingMode{RequestBodyMode: modeBuffered, ResponseHeaderMode: modeSend, ResponseBodyMode: modePartial}, false},
		{"ignored in a body reply", 36, productModes, "request_body", full, false},
		{"ignored with send_body_without_waiting", 36, productModes + "send_body_without_waiting_for_header_response: true\n", "response_headers", full, false},
		{"any override without allowed list", 36, modesBuffered + "allow_mode_override: true\n", "response_headers", onlyBodies, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proceed := make(chan struct{})
			var once sync.Once
			e := newEnv(t, envOpts{
				version: tc.version,
				boot:    boot{extProc: tc.cfg},
				upstream: func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.WriteString(w, "re")
					w.(http.Flusher).Flush()
					<-proceed
					_, _ = io.WriteString(w, "sp")
				},
				script: func(s *pstream) error {
					for {
						m, err := s.recv()
						if err != nil {
							return nil
						}
						r := cont(m)
						if kindOf(m) == tc.at {
							r.ModeOverride = tc.mo
						}
						if err := s.send(r); err != nil {
							return nil
						}
						if m.GetResponseHeaders() != nil {
							once.Do(func() { close(proceed) })
						}
					}
				},
			})
			r := e.post(t, "/", "req")
			wantStatus(t, r, 200)
			if r.body != "resp" {
				t.Fatalf("body %q", r.body)
			}
			s := e.proc.next(t)
			s.wait(t)
			var first *extprocsvc.HttpBody
			for _, m := range s.messages() {
				if b := m.GetResponseBody(); b != nil {
					first = b
					break
				}
			}
			if first == nil {
				t.Fatalf("no response body message: %v", s.kinds())
			}
			if got := !first.GetEndOfStream(); got != tc.streamed {
				t.Fatalf("streamed = %v, want %v (first response chunk %q eos=%v)", got, tc.streamed, first.GetBody(), first.GetEndOfStream())
			}
			if !slices.Contains(s.kinds(), "request_body") {
				t.Fatalf("request body mode must stay BUFFERED: %v", s.kinds())
			}
		})
	}
}

const modesBuffered = "processing_mode: { request_header_mode: SEND, request_body_mode: BUFFERED, request_trailer_mode: SKIP, response_header_mode: SEND, response_body_mode: BUFFERED, response_trailer_mode: SKIP }\n"
