package devfront

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Envoy ext_proc: content-length after a body mutation: content-length is removed at header time for STREAMED and for BUFFERED with
// headers SKIP; the processor still sees it in a headers message; BUFFERED+SEND keeps it.
func TestContentLengthRemoval(t *testing.T) {
	for _, tc := range []struct {
		name, reqH, reqB string
		wantUpstreamCL   int64 // -1: chunked
		wantMsgs         []string
	}{
		{"buffered+send keeps", "SEND", "BUFFERED", 5, []string{"request_headers", "request_body"}},
		{"buffered+skip removes", "SKIP", "BUFFERED", -1, []string{"request_body"}},
		{"streamed removes", "SEND", "STREAMED", -1, []string{"request_headers", "request_body"}},
		{"none keeps", "SEND", "NONE", 5, []string{"request_headers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{boot: boot{extProc: modes(tc.reqH, tc.reqB, "SKIP", "NONE")}})
			wantStatus(t, e.post(t, "/", "12345"), 200)
			u := e.up.next(t)
			if u.ContentLength != tc.wantUpstreamCL || u.Body != "12345" {
				t.Fatalf("upstream content-length %d body %q", u.ContentLength, u.Body)
			}
			s := e.proc.next(t)
			s.wait(t)
			if got := s.kinds(); !slices.Equal(got, tc.wantMsgs) {
				t.Fatalf("messages %v", got)
			}
			if tc.reqH == "SEND" {
				if cl, _ := header(s.messages()[0], "content-length"); cl != "5" {
					t.Fatalf("processor saw content-length %q", cl)
				}
			}
		})
	}
}

// Envoy ext_proc: content-length after a body mutation: in STREAMED a set_headers content-length is ignored.
func TestStreamedIgnoresContentLengthSet(t *testing.T) {
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "STREAMED", "SKIP", "NONE")},
		script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if m.GetRequestHeaders() != nil {
				return cont(m, &extprocsvc.CommonResponse{HeaderMutation: setHeaders("content-length", "99", "x-set", "1")})
			}
			return nil
		}),
	})
	wantStatus(t, e.post(t, "/", "abc"), 200)
	u := e.up.next(t)
	if u.ContentLength != -1 || u.Header.Get("X-Set") != "1" || u.Body != "abc" {
		t.Fatalf("upstream %+v", u)
	}
}

// Envoy ext_proc: BUFFERED bodies and the buffer limit: a BUFFERED request body over the buffer limit is a local 413 and never
// reaches the processor; a BUFFERED response over it a local 500.
func TestBufferLimit(t *testing.T) {
	big := strings.Repeat("x", 3000)
	t.Run("request 413", func(t *testing.T) {
		e := newEnv(t, envOpts{boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "BUFFERED"), bufferLimit: 1024}})
		r := e.post(t, "/", big)
		wantStatus(t, r, 413)
		if r.body != "Payload Too Large" {
			t.Errorf("body %q", r.body)
		}
		s := e.proc.next(t)
		s.wait(t)
		if got := s.kinds(); !slices.Equal(got, []string{"request_headers"}) {
			t.Fatalf("messages %v: the body must never be sent, nor the local reply", got)
		}
		e.up.none(t)
		if l := e.lastLog(t); l.ResponseCodeDetails != "request_payload_too_large" || l.ResponseCode != 413 {
			t.Errorf("log %+v", l)
		}
		if e.envoy.Stats()["downstream_rq_too_large"] != 1 {
			t.Errorf("stats %v", e.envoy.Stats())
		}
	})
	t.Run("request at the limit passes", func(t *testing.T) {
		e := newEnv(t, envOpts{boot: boot{extProc: modes("SEND", "BUFFERED", "SKIP", "NONE"), bufferLimit: 1024}})
		wantStatus(t, e.post(t, "/", big[:1024]), 200)
	})
	t.Run("response 500", func(t *testing.T) {
		e := newEnv(t, envOpts{
			boot:     boot{extProc: modes("SEND", "NONE", "SEND", "BUFFERED"), bufferLimit: 1024},
			upstream: func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(big)) },
		})
		r := e.get(t, "/")
		wantStatus(t, r, 500)
		s := e.proc.next(t)
		s.wait(t)
		if got := s.kinds(); !slices.Equal(got, []string{"request_headers", "response_headers"}) {
			t.Fatalf("messages %v", got)
		}
		if l := e.lastLog(t); l.ResponseCodeDetails != "response_payload_too_large" {
			t.Errorf("log %+v", l)
		}
	})
	t.Run("streamed never 413", func(t *testing.T) {
		e := newEnv(t, envOpts{boot: boot{extProc: modes("SEND", "STREAMED", "SKIP", "NONE"), bufferLimit: 1024}})
		wantStatus(t, e.post(t, "/", big), 200)
		if u := e.up.next(t); u.Body != big {
			t.Fatalf("upstream body %d bytes", len(u.Body))
		}
	})
}

// Envoy ext_proc API: BodyMutation; Envoy ext_proc: content-length after a body mutation: body replacement and the content-length check in BUFFERED+SEND.
func TestBufferedBodyMutation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cr         *extprocsvc.CommonResponse
		wantStatus int
		wantBody   string // upstream body
		wantCL     int64
		details    string
	}{
		{"replace with matching content-length", &extprocsvc.CommonResponse{
			BodyMutation: bodyMut("new"), HeaderMutation: setHeaders("content-length", "3")}, 200, "new", 3, "via_upstream"},
		{"replace, content-length removed", &extprocsvc.CommonResponse{
			BodyMutation: bodyMut("longer body"), HeaderMutation: &extprocsvc.HeaderMutation{RemoveHeaders: []string{"content-length"}}},
			200, "longer body", -1, "via_upstream"},
		{"replace, stale content-length", &extprocsvc.CommonResponse{BodyMutation: bodyMut("toolong")}, 500, "", 0,
			"mismatch_between_content_length_and_the_length_of_the_mutated_body"},
		{"clear_body checks as zero length", &extprocsvc.CommonResponse{
			BodyMutation: &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_ClearBody{ClearBody: true}}}, 500, "", 0,
			"mismatch_between_content_length_and_the_length_of_the_mutated_body"},
		{"clear_body with content-length 0", &extprocsvc.CommonResponse{
			BodyMutation:   &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_ClearBody{ClearBody: true}},
			HeaderMutation: setHeaders("content-length", "0")}, 200, "", 0, "via_upstream"},
		{"same length", &extprocsvc.CommonResponse{BodyMutation: bodyMut("ABCDE")}, 200, "ABCDE", 5, "via_upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{
				boot: boot{extProc: modes("SEND", "BUFFERED", "SKIP", "NONE")},
				script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					if m.GetRequestBody() != nil {
						return cont(m, tc.cr)
					}
					return nil
				}),
			})
			r := e.post(t, "/", "abcde")
			wantStatus(t, r, tc.wantStatus)
			if l := e.lastLog(t); l.ResponseCodeDetails != tc.details {
				t.Errorf("details %q", l.ResponseCodeDetails)
			}
			if tc.wantStatus != 200 {
				if r.body != "" {
					t.Errorf("error reply body %q, want empty", r.body)
				}
				e.up.none(t)
				return
			}
			u := e.up.next(t)
			if u.Body != tc.wantBody || u.ContentLength != tc.wantCL {
				t.Fatalf("upstream body %q content-length %d", u.Body, u.ContentLength)
			}
		})
	}
}

// Envoy ext_proc API: CommonResponse.status: CONTINUE_AND_REPLACE in a headers reply may change :method, replaces the
// body (removing content-length), and sends no more body messages for that direction.
func TestContinueAndReplace(t *testing.T) {
	t.Run("GET becomes POST", func(t *testing.T) {
		e := newEnv(t, envOpts{
			boot: boot{extProc: modes("SEND", "BUFFERED", "SKIP", "NONE")},
			script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				return cont(m, &extprocsvc.CommonResponse{Status: extprocsvc.CommonResponse_CONTINUE_AND_REPLACE,
					HeaderMutation: setHeaders(":method", "POST"), BodyMutation: bodyMut(`{"new":1}`)})
			}),
		})
		wantStatus(t, e.get(t, "/r"), 200)
		u := e.up.next(t)
		if u.Method != "POST" || u.Body != `{"new":1}` || u.ContentLength != -1 {
			t.Fatalf("upstream %+v", u)
		}
		s := e.proc.next(t)
		s.wait(t)
		if got := s.kinds(); !slices.Equal(got, []string{"request_headers"}) {
			t.Fatalf("messages %v", got)
		}
	})
	t.Run("original body drained", func(t *testing.T) {
		e := newEnv(t, envOpts{
			boot: boot{extProc: modes("SEND", "BUFFERED", "SKIP", "NONE")},
			script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				return cont(m, &extprocsvc.CommonResponse{Status: extprocsvc.CommonResponse_CONTINUE_AND_REPLACE,
					BodyMutation: bodyMut("replacement")})
			}),
		})
		wantStatus(t, e.post(t, "/r", strings.Repeat("o", 100000)), 200)
		if u := e.up.next(t); u.Body != "replacement" {
			t.Fatalf("upstream body %d bytes %q...", len(u.Body), u.Body[:min(len(u.Body), 20)])
		}
		s := e.proc.next(t)
		s.wait(t)
		if got := s.kinds(); !slices.Equal(got, []string{"request_headers"}) {
			t.Fatalf("messages %v", got)
		}
	})
	t.Run(":method needs CONTINUE_AND_REPLACE", func(t *testing.T) {
		e := newEnv(t, envOpts{
			boot: boot{extProc: modes("SEND", "NONE", "SKIP", "NONE")},
			script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				return cont(m, &extprocsvc.CommonResponse{HeaderMutation: setHeaders(":method", "PUT")})
			}),
		})
		wantStatus(t, e.get(t, "/r"), 200)
		if u := e.up.next(t); u.Method != "GET" {
			t.Fatalf("method %s", u.Method)
		}
		if e.envoy.Stats()["rejected_header_mutations"] != 1 {
			t.Fatalf("stats %v", e.envoy.Stats())
		}
	})
}
