package devfront

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Envoy ext_proc: processing_mode message order: send_body_without_waiting_for_header_response sends STREAMED chunks while
// the headers reply is pending.
func TestSendBodyWithoutWaiting(t *testing.T) {
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "STREAMED", "SKIP", "NONE") + "send_body_without_waiting_for_header_response: true\n"},
		script: func(s *pstream) error {
			h, _ := s.recv()
			b, _ := s.recv() // the body arrives before the headers reply
			if string(b.GetRequestBody().GetBody()) != "early" {
				t.Errorf("second message %v", b)
			}
			_ = s.send(cont(h, &extprocsvc.CommonResponse{HeaderMutation: setHeaders("x-h", "1")}))
			_ = s.send(cont(b, &extprocsvc.CommonResponse{BodyMutation: bodyMut("EARLY")}))
			_ = s.drain()
			return nil
		},
	})
	wantStatus(t, e.post(t, "/", "early"), 200)
	if u := e.up.next(t); u.Body != "EARLY" || u.Header.Get("X-H") != "1" {
		t.Fatalf("upstream %+v", u)
	}
}

// Envoy ext_proc: processing_mode message order BUFFERED_PARTIAL: up to the limit is sent with end_of_stream=false, the rest
// streams through after that reply; a smaller body behaves like BUFFERED.
func TestBufferedPartial(t *testing.T) {
	t.Run("over the limit", func(t *testing.T) {
		big := strings.Repeat("p", 5000)
		var first []byte
		hook, events := hookCh()
		e := newEnv(t, envOpts{
			hook:      hook,
			reqChunks: Fixed(512),
			boot:      boot{extProc: modes("SEND", "BUFFERED_PARTIAL", "SKIP", "NONE"), bufferLimit: 1024},
			script: func(s *pstream) error {
				h, _ := s.recv()
				_ = s.send(cont(h))
				m, err := s.recv()
				if err != nil {
					return nil
				}
				first = m.GetRequestBody().GetBody()
				if m.GetRequestBody().GetEndOfStream() {
					t.Error("partial message must not end the stream")
				}
				_ = s.send(cont(m))
				_ = s.drain()
				return nil
			},
		})
		pr, pw := io.Pipe()
		go func() {
			// Only once the headers reply was handled, so the body cannot be complete
			// during the headers call (Envoy would then send it whole).
			waitEvent(t, events, hookReqHeadersDone)
			_, _ = io.WriteString(pw, big)
			_ = pw.Close()
		}()
		wantStatus(t, e.do(t, http.MethodPost, "/", pr), 200)
		if u := e.up.next(t); u.Body != big || u.ContentLength != -1 {
			t.Fatalf("upstream %d bytes, content-length %d", len(u.Body), u.ContentLength)
		}
		s := e.proc.next(t)
		s.wait(t)
		if got := s.kinds(); !slices.Equal(got, []string{"request_headers", "request_body"}) || len(first) <= 1024 || len(first) > 2048 {
			t.Fatalf("messages %v, partial body %d bytes", got, len(first))
		}
	})
	t.Run("under the limit", func(t *testing.T) {
		e := newEnv(t, envOpts{
			boot: boot{extProc: modes("SEND", "BUFFERED_PARTIAL", "SKIP", "NONE"), bufferLimit: 1024},
			script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				if m.GetRequestBody() != nil {
					return cont(m, &extprocsvc.CommonResponse{BodyMutation: bodyMut("small!"), HeaderMutation: setHeaders("x-b", "1")})
				}
				return nil
			}),
		})
		wantStatus(t, e.post(t, "/", "small"), 200)
		if u := e.up.next(t); u.Body != "small!" || u.Header.Get("X-B") != "1" {
			t.Fatalf("upstream %+v", u)
		}
	})
}

// Envoy ext_proc: BUFFERED bodies and the buffer limit: a BUFFERED response over the limit after its headers went out (headers SKIP)
// resets the stream.
func TestBufferedResponseTooLargeAfterHeadersResets(t *testing.T) {
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SKIP", "NONE", "SKIP", "BUFFERED"), bufferLimit: 1024},
		upstream: func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			_, _ = w.Write(make([]byte, 4096))
		},
	})
	r := e.get(t, "/")
	if r.err == nil || r.status != 200 {
		t.Fatalf("want a reset after 200 headers, got %d %v", r.status, r.err)
	}
	if l := e.lastLog(t); !l.Reset || l.ResponseCodeDetails != "response_payload_too_large" {
		t.Fatalf("log %+v", l)
	}
}

// Envoy ext_proc: a body-less request ends at its headers: HEAD and 204 responses have end_of_stream on response headers.
func TestBodylessResponses(t *testing.T) {
	for _, tc := range []struct {
		method string
		code   int
	}{{"HEAD", 200}, {"GET", 204}, {"GET", 304}} {
		t.Run(fmt.Sprint(tc.method, tc.code), func(t *testing.T) {
			e := newEnv(t, envOpts{
				boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "BUFFERED")},
				upstream: func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", "10")
					w.WriteHeader(tc.code)
				},
			})
			r := e.do(t, tc.method, "/", nil)
			wantStatus(t, r, tc.code)
			s := e.proc.next(t)
			s.wait(t)
			ms := s.messages()
			if got := s.kinds(); !slices.Equal(got, []string{"request_headers", "response_headers"}) || !ms[1].GetResponseHeaders().GetEndOfStream() {
				t.Fatalf("messages %v", got)
			}
		})
	}
}

// Envoy ext_proc API: CommonResponse.clear_route_cache: ExtProcPerRoute from the initial route: disabled, or another processing mode.
func TestPerRouteConfig(t *testing.T) {
	const routes = `
- name: disabled_route
  match: { prefix: /off }
  route: { cluster: upstream }
  typed_per_filter_config:
    envoy.filters.http.ext_proc:
      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
      disabled: true
- name: headers_only
  match: { prefix: /hdr }
  route: { cluster: upstream }
  typed_per_filter_config:
    envoy.filters.http.ext_proc:
      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
      overrides: { processing_mode: { request_header_mode: SEND, response_header_mode: SKIP } }
- name: default
  match: { prefix: / }
  route: { cluster: upstream }
`
	e := newEnv(t, envOpts{boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "BUFFERED"), routes: routes}})
	wantStatus(t, e.post(t, "/off", "x"), 200)
	e.proc.noStream(t)
	wantStatus(t, e.post(t, "/hdr", "x"), 200)
	s := e.proc.next(t)
	s.wait(t)
	if got := s.kinds(); !slices.Equal(got, []string{"request_headers"}) {
		t.Fatalf("messages %v", got)
	}
}

// The ext_proc stream carries the cluster as :authority and the configured initial
// metadata (Envoy ext_proc: one gRPC stream per HTTP request).
func TestStreamMetadata(t *testing.T) {
	e := newEnv(t, envOpts{boot: boot{extProc: modes("SEND", "NONE", "SKIP", "NONE") + `
grpc_service:
  envoy_grpc: { cluster_name: ext_proc, authority: processor.internal }
  initial_metadata: [{ key: x-tenant, value: t1 }]
`}})
	wantStatus(t, e.get(t, "/"), 200)
	s := e.proc.next(t)
	s.wait(t)
	if got := s.md.Get("x-tenant"); !slices.Equal(got, []string{"t1"}) {
		t.Errorf("initial metadata %v", s.md)
	}
	if got := s.md.Get(":authority"); !slices.Equal(got, []string{"processor.internal"}) {
		t.Errorf(":authority %v", got)
	}
}
