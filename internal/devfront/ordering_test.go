package devfront

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

const otherRoutes = `
- name: to_other
  match:
    prefix: "/"
    headers: [{ name: x-route, string_match: { exact: other } }]
  request_headers_to_remove: [x-route]
  route: { cluster: other, auto_host_rewrite: true }
- name: default
  match: { prefix: "/" }
  route: { cluster: upstream }
`

// hookCh returns a hook that reports events on a channel.
func hookCh() (func(string), chan string) {
	ch := make(chan string, 64)
	return func(ev string) {
		select {
		case ch <- ev:
		default:
		}
	}, ch
}

func waitEvent(t *testing.T, ch chan string, ev string) {
	t.Helper()
	for {
		select {
		case got := <-ch:
			if got == ev {
				return
			}
		case <-timeoutCh():
			t.Errorf("event %s not seen", ev)
			return
		}
	}
}

// Envoy ext_proc: processing_mode message order BUFFERED: data arriving during the headers call is held; one body message
// follows the headers reply; the headers stay held until the body reply, so its header
// mutation and clear_route_cache still take effect (Envoy ext_proc API: CommonResponse.clear_route_cache).
func TestBufferedRequestHoldsHeadersUntilBodyReply(t *testing.T) {
	hook, events := hookCh()
	var e *env
	e = newEnv(t, envOpts{
		hook: hook,
		boot: boot{extProc: modes("SEND", "BUFFERED", "SKIP", "NONE"), routes: otherRoutes},
		script: func(s *pstream) error {
			m, err := s.recv()
			if err != nil || kindOf(m) != "request_headers" {
				t.Errorf("first message %v %v", m, err)
				return nil
			}
			waitEvent(t, events, hookRequestHeld)
			if err := s.send(cont(m)); err != nil {
				return nil
			}
			m, err = s.recv()
			if err != nil {
				return nil
			}
			if b := m.GetRequestBody(); string(b.GetBody()) != "the whole body" || !b.GetEndOfStream() {
				t.Errorf("body message %v", m)
			}
			e.up.none(t) // the router has not run yet
			e.other.none(t)
			_ = s.send(cont(m, &extprocsvc.CommonResponse{
				HeaderMutation: setHeaders("x-route", "other", "x-from-body", "1"), ClearRouteCache: true}))
			_ = s.drain()
			return nil
		},
	})
	r := e.post(t, "/b", "the whole body")
	wantStatus(t, r, 200)
	u := e.other.next(t)
	if u.Header.Get("X-From-Body") != "1" || u.Header.Get("X-Route") != "" || u.Body != "the whole body" {
		t.Fatalf("upstream got %+v", u)
	}
	if u.Host != "other.example.com" {
		t.Errorf("auto_host_rewrite: Host %q", u.Host)
	}
	e.up.none(t)
	if l := e.lastLog(t); l.Route != "to_other" || l.Cluster != "other" || l.ResponseCodeDetails != "via_upstream" {
		t.Errorf("log %+v", l)
	}
}

// Envoy ext_proc: processing_mode message order STREAMED (request): held data goes as one chunk after the headers reply;
// chunks are pipelined (chunk N+1 is sent before reply N); replies apply in FIFO order;
// the last chunk may be empty with end_of_stream.
func TestStreamedRequestPipelined(t *testing.T) {
	hook, events := hookCh()
	step := make(chan string)
	e := newEnv(t, envOpts{
		hook: hook,
		boot: boot{extProc: modes("SEND", "STREAMED", "SKIP", "NONE")},
		script: func(s *pstream) error {
			m, _ := s.recv()
			if got, _ := header(m, "content-length"); got != "" {
				t.Errorf("chunked request has content-length %q", got)
			}
			waitEvent(t, events, hookRequestHeld)
			_ = s.send(cont(m))
			var chunks []*extprocsvc.ProcessingRequest
			for _, want := range []struct {
				body string
				eos  bool
			}{{"aaaa", false}, {"bbbb", false}, {"", true}} {
				m, err := s.recv()
				if err != nil {
					t.Errorf("recv: %v", err)
					return nil
				}
				if b := m.GetRequestBody(); string(b.GetBody()) != want.body || b.GetEndOfStream() != want.eos {
					t.Errorf("chunk %q eos=%v, want %q eos=%v", b.GetBody(), b.GetEndOfStream(), want.body, want.eos)
				}
				chunks = append(chunks, m)
				step <- want.body // let the client send more, still without replying
			}
			_ = s.send(cont(chunks[0], &extprocsvc.CommonResponse{BodyMutation: bodyMut("AAAA")}))
			_ = s.send(cont(chunks[1]))
			_ = s.send(cont(chunks[2], &extprocsvc.CommonResponse{BodyMutation: bodyMut("!")}))
			_ = s.drain()
			return nil
		},
	})
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("aaaa"))
		<-step
		_, _ = pw.Write([]byte("bbbb"))
		<-step
		_ = pw.Close()
		<-step
	}()
	r := e.do(t, http.MethodPost, "/s", pr)
	wantStatus(t, r, 200)
	u := e.up.next(t)
	if u.Body != "AAAAbbbb!" {
		t.Fatalf("upstream body %q", u.Body)
	}
}

// Envoy ext_proc: processing_mode message order STREAMED (response): held data is one consolidated chunk; each reply's bytes
// are written and flushed to the client before the upstream sends more (SSE streams).
func TestStreamedResponseConsolidatesAndFlushes(t *testing.T) {
	hook, events := hookCh()
	more := make(chan struct{})
	e := newEnv(t, envOpts{
		hook:      hook,
		resChunks: EmptyEnd(Fixed(3)),
		boot:      boot{extProc: modes("SKIP", "NONE", "SEND", "STREAMED")},
		upstream: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: 1\n\n")
			w.(http.Flusher).Flush()
			<-more
			_, _ = io.WriteString(w, "data: 2\n\n")
		},
		script: func(s *pstream) error {
			m, _ := s.recv()
			waitEvent(t, events, hookResponseHeld)
			_ = s.send(cont(m))
			first, _ := s.recv()
			if b := first.GetResponseBody(); string(b.GetBody()) != "data: 1\n\n" || b.GetEndOfStream() {
				t.Errorf("consolidated held chunk %q eos=%v", b.GetBody(), b.GetEndOfStream())
			}
			_ = s.send(cont(first, &extprocsvc.CommonResponse{BodyMutation: bodyMut("DATA: 1\n\n"),
				HeaderMutation: setHeaders("x-ignored", "1")}))
			var got bytes.Buffer
			for {
				m, err := s.recv()
				if err != nil {
					break
				}
				b := m.GetResponseBody()
				if len(b.GetBody()) > 3 {
					t.Errorf("chunk %q longer than Fixed(3)", b.GetBody())
				}
				got.Write(b.GetBody())
				_ = s.send(cont(m))
				if b.GetEndOfStream() {
					if len(b.GetBody()) != 0 {
						t.Errorf("EmptyEnd: last chunk %q", b.GetBody())
					}
					break
				}
			}
			if got.String() != "data: 2\n\n" {
				t.Errorf("later chunks %q", got.String())
			}
			_ = s.drain()
			return nil
		},
	})
	resp, err := e.client.Get(e.envoy.URL() + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Ignored") != "" {
		t.Error("a header mutation in a STREAMED body reply must be ignored")
	}
	if resp.ContentLength != -1 {
		t.Errorf("STREAMED response kept content-length %d", resp.ContentLength)
	}
	buf := make([]byte, len("DATA: 1\n\n"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "DATA: 1\n\n" {
		t.Fatalf("first event %q %v", buf, err)
	}
	close(more) // the first event arrived before the upstream sent the second
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "data: 2\n\n" {
		t.Fatalf("rest %q %v", rest, err)
	}
}

// Envoy ext_proc: request and response directions interleave: with a STREAMED request the response may start before the request ends;
// each direction keeps its own state machine on the one stream.
func TestDirectionsInterleave(t *testing.T) {
	release := make(chan struct{})
	sawResponse := make(chan []string, 1)
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "STREAMED", "SEND", "NONE")},
		upstream: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-release
		},
		script: func(s *pstream) error {
			for {
				m, err := s.recv()
				if err != nil {
					return nil
				}
				if m.GetResponseHeaders() != nil {
					sawResponse <- s.kinds()
				}
				if err := s.send(cont(m)); err != nil {
					return nil
				}
			}
		},
	})
	pr, pw := io.Pipe()
	done := make(chan result, 1)
	go func() { done <- e.do(t, http.MethodPost, "/i", pr) }()
	go func() { _, _ = pw.Write([]byte("first")) }()
	var kinds []string
	select {
	case kinds = <-sawResponse:
	case <-timeoutCh():
		t.Fatal("no response_headers while the request body was open")
	}
	s := e.proc.next(t)
	for _, m := range s.messages() {
		if m.GetRequestBody().GetEndOfStream() {
			t.Fatalf("request ended before the response started: %v", kinds)
		}
	}
	_ = pw.Close()
	close(release)
	wantStatus(t, <-done, 200)
	s.wait(t)
	got := s.kinds()
	if got[len(got)-1] != "request_body" || !s.messages()[len(got)-1].GetRequestBody().GetEndOfStream() {
		t.Fatalf("the last request chunk should follow response_headers: %v", got)
	}
}
