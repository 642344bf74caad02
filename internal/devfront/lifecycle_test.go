package devfront

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Envoy ext_proc: one gRPC stream per HTTP request: one stream per HTTP request; the client never half-closes; the end of the
// request cancels the stream.
func TestOneStreamPerRequestCancelledAtEnd(t *testing.T) {
	ends := make(chan error, 4)
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "NONE", "SEND", "NONE")},
		script: func(s *pstream) error {
			for {
				m, err := s.recv()
				if err != nil {
					ends <- err
					return nil
				}
				if err := s.send(cont(m)); err != nil {
					ends <- err
					return nil
				}
			}
		},
	})
	for i := 0; i < 2; i++ {
		r := e.get(t, "/a")
		wantStatus(t, r, 200)
		s := e.proc.next(t)
		s.wait(t)
		if got := s.kinds(); !slices.Equal(got, []string{"request_headers", "response_headers"}) {
			t.Fatalf("request %d: messages %v", i, got)
		}
		err := <-ends
		if status.Code(err) != codes.Canceled {
			t.Fatalf("request %d: stream ended with %v, want Canceled (never a half-close / io.EOF)", i, err)
		}
	}
	e.proc.noStream(t)
	if st := e.envoy.Stats(); st["streams_started"] != 2 || st["stream_msgs_sent"] != 4 || st["stream_msgs_received"] != 4 {
		t.Fatalf("stats %v", st)
	}
}

// Envoy ext_proc: one gRPC stream per HTTP request: the stream opens lazily, on the first message: with the request path
// skipped, the first message is response_headers.
func TestStreamOpensLazily(t *testing.T) {
	e := newEnv(t, envOpts{boot: boot{extProc: modes("SKIP", "NONE", "SEND", "NONE")}})
	up := make(chan struct{})
	go func() { e.up.next(t); close(up) }()
	wantStatus(t, e.get(t, "/"), 200)
	<-up
	s := e.proc.next(t)
	s.wait(t)
	if got := s.kinds(); !slices.Equal(got, []string{"response_headers"}) {
		t.Fatalf("messages %v", got)
	}
}

// Envoy ext_proc: one gRPC stream per HTTP request: a processor returning OK ends processing for the rest of the request, with
// no error, even fail-closed; held data is released unmodified.
func TestProcessorOKCloseContinuesUnprocessed(t *testing.T) {
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "BUFFERED") + "failure_mode_allow: false\n"},
		script: func(s *pstream) error {
			if _, err := s.recv(); err != nil {
				return err
			}
			return nil // OK close while Envoy waits on the headers reply
		},
	})
	r := e.post(t, "/x", "hello")
	wantStatus(t, r, 200)
	if r.body != "ok" {
		t.Fatalf("body %q", r.body)
	}
	u := e.up.next(t)
	if u.Body != "hello" || u.ContentLength != 5 {
		t.Fatalf("upstream got %+v", u)
	}
	s := e.proc.next(t)
	s.wait(t)
	if got := s.kinds(); !slices.Equal(got, []string{"request_headers"}) {
		t.Fatalf("messages %v", got)
	}
}

// Envoy ext_proc API: HeaderValue.raw_value: header encoding.
func TestHeaderEncoding(t *testing.T) {
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "NONE", "SEND", "NONE")},
		upstream: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Up", "1")
			w.WriteHeader(201)
			w.(http.Flusher).Flush() // chunked response
			_, _ = io.WriteString(w, "chunked body")
		},
	})
	r := e.post(t, "/p?q=1", "", "Host", "Example.COM:8080", "X-Custom", "A", "Connection", "keep-alive, x-drop",
		"Keep-Alive", "timeout=5", "Proxy-Connection", "x", "X-Envoy-Internal", "true")
	wantStatus(t, r, 201)
	if r.body != "chunked body" || r.header.Get("X-Up") != "1" {
		t.Fatalf("client got %q %v", r.body, r.header)
	}
	s := e.proc.next(t)
	s.wait(t)
	ms := s.messages()
	rh := ms[0].GetRequestHeaders()
	if !rh.GetEndOfStream() {
		t.Error("POST with Content-Length: 0 must have end_of_stream on headers")
	}
	keys := map[string]bool{}
	for _, h := range rh.GetHeaders().GetHeaders() {
		keys[h.GetKey()] = true
		if h.GetKey() != strings.ToLower(h.GetKey()) {
			t.Errorf("key %q not lower-case", h.GetKey())
		}
		if h.GetValue() != "" {
			t.Errorf("%s: value %q set; only raw_value is used", h.GetKey(), h.GetValue())
		}
	}
	for k, want := range map[string]string{":method": "POST", ":path": "/p?q=1", ":scheme": "http",
		":authority": "Example.COM:8080", "x-custom": "A"} {
		if got, _ := header(ms[0], k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "x-envoy-internal", "host"} {
		if keys[k] {
			t.Errorf("%s must be stripped", k)
		}
	}
	if id, _ := header(ms[0], "x-request-id"); len(id) != 36 {
		t.Errorf("x-request-id %q", id)
	}
	if got, _ := header(ms[1], ":status"); got != "201" {
		t.Errorf(":status %q", got)
	}
	// An HTTP/1.1 upstream's transfer-encoding reaches the processor (Envoy ext_proc API: HeaderValue.raw_value).
	if got, _ := header(ms[1], "transfer-encoding"); got != "chunked" {
		t.Errorf("response transfer-encoding %q", got)
	}
}

// Envoy ext_proc: a body-less request ends at its headers: GET and Content-Length: 0 have end_of_stream on headers and no body
// message; a body has none on headers.
func TestEndOfStreamOnHeaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		body    string
		wantEOS bool
		want    []string
	}{
		{"GET", "GET", "", true, []string{"request_headers", "response_headers", "response_body"}},
		{"POST empty", "POST", "", true, []string{"request_headers", "response_headers", "response_body"}},
		{"POST body", "POST", "abc", false, []string{"request_headers", "request_body", "response_headers", "response_body"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "BUFFERED")}})
			var r result
			if tc.method == "GET" {
				r = e.get(t, "/")
			} else {
				r = e.post(t, "/", tc.body)
			}
			wantStatus(t, r, 200)
			s := e.proc.next(t)
			s.wait(t)
			if got := s.kinds(); !slices.Equal(got, tc.want) {
				t.Fatalf("messages %v, want %v", got, tc.want)
			}
			if got := s.messages()[0].GetRequestHeaders().GetEndOfStream(); got != tc.wantEOS {
				t.Fatalf("end_of_stream = %v", got)
			}
		})
	}
}

// Envoy ext_proc API: HeaderValue.raw_value; Envoy ext_proc: request_attributes: attributes once per direction, metadata_context on every message,
// protocol_config on the first message (1.34+), observability_mode false.
func TestPerMessageFields(t *testing.T) {
	for _, v := range []int{33, 36} {
		t.Run(string(rune('0'+v/10))+string(rune('0'+v%10)), func(t *testing.T) {
			e := newEnv(t, envOpts{
				version: v,
				boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "BUFFERED") + `
request_attributes: ["request.id", "request.path", "request.host", "request.method", "source.address", "xds.route_name", "xds.cluster_name", "no.such.attr"]
response_attributes: ["response.code", "xds.cluster_name", "xds.route_name", "upstream.request_attempt_count"]
metadata_options:
  receiving_namespaces: { untyped: ["ns"] }
  forwarding_namespaces: { untyped: ["ns"] }
`},
				script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					r := cont(m)
					if m.GetRequestHeaders() != nil {
						r.DynamicMetadata = mustStruct(map[string]any{"ns": map[string]any{"k": "v"}})
					}
					return r
				}),
			})
			wantStatus(t, e.post(t, "/path?x", "body", "Host", "h.example"), 200)
			s := e.proc.next(t)
			s.wait(t)
			ms := s.messages()
			if len(ms) != 4 {
				t.Fatalf("messages %v", s.kinds())
			}
			reqAttrs := ms[0].GetAttributes()[attributesKey].GetFields()
			id, _ := header(ms[0], "x-request-id")
			for k, want := range map[string]string{"request.id": id, "request.path": "/path?x", "request.host": "h.example",
				"request.method": "POST", "xds.route_name": "default"} {
				if got := reqAttrs[k].GetStringValue(); got != want {
					t.Errorf("request attr %s = %q, want %q", k, got, want)
				}
			}
			if !strings.HasPrefix(reqAttrs["source.address"].GetStringValue(), "127.0.0.1:") {
				t.Errorf("source.address %v", reqAttrs["source.address"])
			}
			for _, k := range []string{"xds.cluster_name", "no.such.attr"} {
				if _, ok := reqAttrs[k]; ok {
					t.Errorf("request attr %s must be omitted", k)
				}
			}
			respAttrs := ms[2].GetAttributes()[attributesKey].GetFields()
			if respAttrs["response.code"].GetNumberValue() != 200 || respAttrs["xds.cluster_name"].GetStringValue() != "upstream" ||
				respAttrs["upstream.request_attempt_count"].GetNumberValue() != 1 {
				t.Errorf("response attrs %v", respAttrs)
			}
			for i, m := range ms {
				if (i == 0 || i == 2) != (m.GetAttributes() != nil) {
					t.Errorf("message %d (%s): attributes %v", i, kindOf(m), m.GetAttributes())
				}
				if m.GetMetadataContext() == nil {
					t.Errorf("message %d: no metadata_context", i)
				}
				if i > 0 && m.GetMetadataContext().GetFilterMetadata()["ns"].GetFields()["k"].GetStringValue() != "v" {
					t.Errorf("message %d: metadata_context %v", i, m.GetMetadataContext())
				}
				if m.GetObservabilityMode() {
					t.Errorf("message %d: observability_mode", i)
				}
				if want := i == 0 && v >= 34; (m.GetProtocolConfig() != nil) != want {
					t.Errorf("message %d: protocol_config %v", i, m.GetProtocolConfig())
				}
			}
			if v >= 34 && ms[0].GetProtocolConfig().GetRequestBodyMode() != modeBuffered {
				t.Errorf("protocol_config %v", ms[0].GetProtocolConfig())
			}
		})
	}
}

// Envoy ext_proc API: HeaderValue.raw_value: x-request-id is added when absent and kept when present; an edge Envoy
// (use_remote_address) regenerates it and sets x-forwarded-for/-proto.
func TestRequestIDAndForwarding(t *testing.T) {
	for _, tc := range []struct {
		name string
		hcm  string
		keep bool
	}{{"internal", "", true}, {"edge", "use_remote_address: true\n", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{boot: boot{extProc: modes("SEND", "NONE", "SKIP", "NONE"), hcmExtra: tc.hcm}})
			wantStatus(t, e.get(t, "/", "X-Request-Id", "client-id", "X-Forwarded-For", "10.0.0.1"), 200)
			s := e.proc.next(t)
			s.wait(t)
			m := s.messages()[0]
			id, _ := header(m, "x-request-id")
			xff, _ := header(m, "x-forwarded-for")
			xfp, hasXFP := header(m, "x-forwarded-proto")
			if tc.keep {
				if id != "client-id" || xff != "10.0.0.1" || hasXFP {
					t.Fatalf("id %q xff %q xfp %q", id, xff, xfp)
				}
				return
			}
			if id == "client-id" || len(id) != 36 || xff != "10.0.0.1,127.0.0.1" || xfp != "http" {
				t.Fatalf("id %q xff %q xfp %q", id, xff, xfp)
			}
			if u := e.up.next(t); u.Header.Get("X-Request-Id") != id {
				t.Fatalf("upstream x-request-id %q", u.Header.Get("X-Request-Id"))
			}
		})
	}
}
