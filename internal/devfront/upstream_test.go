package devfront

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// dropHook reports the upstream filter's dropped local replies.
func dropHook() (<-chan struct{}, func(string)) {
	ch := make(chan struct{}, 4)
	return ch, func(ev string) {
		if ev == hookUpstreamDrop {
			ch <- struct{}{}
		}
	}
}

func waitFor(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-timeoutCh():
		t.Fatal("event did not happen")
	}
}

// upstreamStreams collects the upstream processor's streams in attempt order.
type upstreamStreams struct {
	mu sync.Mutex
	ss []*pstream
}

func (u *upstreamStreams) add(s *pstream) {
	u.mu.Lock()
	u.ss = append(u.ss, s)
	u.mu.Unlock()
}

// translating is an upstream processor in the product's shape (Envoy router: upstream_http_filters): per attempt it
// sets the provider's credential and removes the other provider's, marks the first
// attempt with a header, and rewrites the body for the provider with an exact
// content-length. first, if set, replaces the reply to attempt 1's request_headers.
func translating(first func(s *pstream, m *extprocsvc.ProcessingRequest) error) func(*pstream) error {
	return func(s *pstream) error {
		var provider string
		attempt := 0
		for {
			m, err := s.recv()
			if err != nil {
				return nil
			}
			var r *extprocsvc.ProcessingResponse
			switch {
			case m.GetRequestHeaders() != nil:
				provider = attr(m, providerAttr).GetStringValue()
				attempt = int(attr(m, "upstream.request_attempt_count").GetNumberValue())
				if attempt == 1 && first != nil {
					if err := first(s, m); err != nil {
						return err
					}
					continue
				}
				hm := setHeaders("x-key-"+provider, "secret-"+provider)
				for _, other := range []string{"openai", "anthropic"} {
					if other != provider {
						hm.RemoveHeaders = append(hm.RemoveHeaders, "x-key-"+other)
					}
				}
				if attempt == 1 {
					hm.SetHeaders = append(hm.SetHeaders, setHeaders("x-first", "yes").SetHeaders...)
				}
				r = cont(m, &extprocsvc.CommonResponse{HeaderMutation: hm})
			case m.GetRequestBody() != nil:
				nb := provider + ":" + string(m.GetRequestBody().GetBody())
				r = cont(m, &extprocsvc.CommonResponse{
					HeaderMutation: setHeaders("content-length", strconv.Itoa(len(nb))),
					BodyMutation:   bodyMut(nb),
				})
			default:
				r = cont(m)
			}
			if err := s.send(r); err != nil {
				return nil
			}
		}
	}
}

// One upstream ext_proc stream per attempt: the attempt's attributes, the downstream
// filter's metadata, headers shared across attempts, bodies per attempt (Envoy router: upstream_http_filters).
func TestUpstreamExtProcPerAttempt(t *testing.T) {
	var ups upstreamStreams
	e := newChainEnv(t, chainOpts{
		retry: "retry_on: retriable-status-codes\nretriable_status_codes: [429]\n" + prevPriorities,
		downMode: modes("SEND", "BUFFERED", "SKIP", "NONE") +
			"metadata_options: { receiving_namespaces: { untyped: [tollgate] } }\n",
		down: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			r := cont(m)
			if m.GetRequestBody() != nil {
				r.DynamicMetadata = mustStruct(map[string]any{"tollgate": map[string]any{"model": "m1"}})
			}
			return r
		}),
		upFilters: upstreamExtProc,
		up: func(s *pstream) error {
			ups.add(s)
			return translating(nil)(s)
		},
		endpoints: []endpointSpec{{provider: "openai", handler: answer(429)}, {provider: "anthropic", priority: 1}},
	})
	done := e.async(t, http.MethodPost, "/v1/x", "hello")
	e.timers.fire(t, RetryBackoff)
	r := wait(t, done)
	wantStatus(t, r, 200)
	if r.body != "anthropic ok" {
		t.Fatalf("body %q", r.body)
	}

	p0, p1 := e.ups[0].next(t), e.ups[1].next(t)
	if p0.Body != "openai:hello" || p0.Header.Get("X-Key-Openai") != "secret-openai" || p0.Host != "openai.example" {
		t.Errorf("p0 got %+v", p0)
	}
	// Attempt 1's mutations persist (the router's headers are shared); the body is the
	// router's buffered copy, translated again.
	if p1.Body != "anthropic:hello" || p1.ContentLength != int64(len("anthropic:hello")) ||
		p1.Header.Get("X-Key-Anthropic") != "secret-anthropic" || p1.Header.Get("X-Key-Openai") != "" ||
		p1.Header.Get("X-First") != "yes" || p1.Host != "anthropic.example" {
		t.Errorf("p1 got %+v", p1)
	}

	s1, s2 := e.up.next(t), e.up.next(t)
	s1.wait(t)
	s2.wait(t)
	for i, s := range []*pstream{s1, s2} {
		ms := s.messages()
		if got := strings.Join(s.kinds(), ","); got != "request_headers,request_body" {
			t.Fatalf("attempt %d messages %s", i+1, got)
		}
		wantProvider := []string{"openai", "anthropic"}[i]
		if a := ms[0].GetAttributes()[attributesKey].GetFields(); a["xds.cluster_name"].GetStringValue() != "chain" ||
			a[providerAttr].GetStringValue() != wantProvider || a["upstream.request_attempt_count"].GetNumberValue() != float64(i+1) {
			t.Errorf("attempt %d attributes %v", i+1, a)
		}
		if ms[1].GetAttributes() != nil {
			t.Errorf("attempt %d: attributes on the body message too", i+1)
		}
		for _, m := range ms {
			if got := m.GetMetadataContext().GetFilterMetadata()["tollgate"].AsMap()["model"]; got != "m1" {
				t.Errorf("attempt %d: metadata_context %v", i+1, m.GetMetadataContext())
			}
		}
		if ms[0].GetProtocolConfig().GetRequestBodyMode() != modeBuffered {
			t.Errorf("attempt %d: protocol_config %v", i+1, ms[0].GetProtocolConfig())
		}
		if status.Code(s.end) != codes.Canceled {
			t.Errorf("attempt %d stream ended with %v, want Canceled", i+1, s.end)
		}
	}
	// Attempt 2's processor sees attempt 1's header mutations and host, and the original body.
	m := s2.messages()
	if v, _ := header(m[0], "x-first"); v != "yes" {
		t.Errorf("attempt 2 headers lack attempt 1's x-first")
	}
	if v, _ := header(m[0], ":authority"); v != "openai.example" {
		t.Errorf("attempt 2 :authority %q, want attempt 1's rewrite", v)
	}
	if b := string(m[1].GetRequestBody().GetBody()); b != "hello" {
		t.Errorf("attempt 2 body %q, want the router's copy", b)
	}
	if s := e.envoy.Stats(); s["upstream.streams_started"] != 2 || s["streams_started"] != 1 {
		t.Errorf("stats %v", s)
	}
	if l := e.env().lastLog(t); l.DynamicMetadata["tollgate"].AsMap()["model"] != "m1" || l.UpstreamAttempts != 2 {
		t.Errorf("log %+v", l)
	}
}

// Envoy drops the upstream filter's local replies (ImmediateResponse, errors, timeouts):
// the attempt stalls until its per-try idle timeout, which is retried (Envoy ext_proc API: ImmediateResponse; Envoy ext_proc: message_timeout and failure_mode_allow).
// clear_route_cache is ignored and counted (Envoy ext_proc API: CommonResponse.clear_route_cache). As in the product, a downstream
// BUFFERED filter hands the router the whole body at once, so no request data reaches the
// upstream filter after its reply.
func TestUpstreamExtProcIgnoredReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   func(s *pstream, m *extprocsvc.ProcessingRequest) error
		timeout bool // fire the message timer
		stalls  bool
		counter string
	}{
		{"ImmediateResponse", func(s *pstream, m *extprocsvc.ProcessingRequest) error {
			return s.send(immediate(403, "no", nil))
		}, false, true, "upstream.send_immediate_resp_upstream_ignored"},
		{"gRPC error", func(s *pstream, m *extprocsvc.ProcessingRequest) error {
			return status.Error(codes.Internal, "boom")
		}, false, true, "upstream.send_immediate_resp_upstream_ignored"},
		{"message timeout", func(s *pstream, m *extprocsvc.ProcessingRequest) error {
			_ = s.drain()
			return nil
		}, true, true, "upstream.message_timeouts"},
		{"content-length mismatch", func(s *pstream, m *extprocsvc.ProcessingRequest) error {
			if err := s.send(cont(m)); err != nil {
				return err
			}
			b, err := s.recv()
			if err != nil {
				return nil
			}
			return s.send(cont(b, &extprocsvc.CommonResponse{BodyMutation: bodyMut("longer than before")}))
		}, false, true, "upstream.send_immediate_resp_upstream_ignored"},
		{"clear_route_cache", func(s *pstream, m *extprocsvc.ProcessingRequest) error {
			return s.send(cont(m, &extprocsvc.CommonResponse{HeaderMutation: setHeaders("x-a", "1"), ClearRouteCache: true}))
		}, false, false, "upstream.clear_route_cache_upstream_ignored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dropped, hook := dropHook()
			e := newChainEnv(t, chainOpts{
				hook:      hook,
				downMode:  modes("SEND", "BUFFERED", "SKIP", "NONE"),
				retry:     "retry_on: 5xx\nper_try_idle_timeout: 30s\n" + prevPriorities,
				upFilters: upstreamExtProc,
				up:        translating(tc.first),
				endpoints: []endpointSpec{{provider: "openai"}, {provider: "anthropic", priority: 1}},
			})
			done := e.async(t, http.MethodPost, "/", "hello")
			if tc.timeout {
				e.timers.fireWith(t, MessageTimeout, 10*time.Second) // the upstream filter's
			}
			if !tc.stalls {
				r := wait(t, done)
				if r.status != 200 || r.body != "openai ok" {
					t.Fatalf("got %d %q", r.status, r.body)
				}
				if e.envoy.Stats()[tc.counter] != 1 {
					t.Fatalf("stats %v", e.envoy.Stats())
				}
				return
			}
			// The attempt is stuck: nothing reached p0, nothing reached the client.
			waitFor(t, dropped)
			if d := e.timers.fire(t, PerTryIdleTimeout); d.Seconds() != 30 {
				t.Errorf("per-try idle %v", d)
			}
			e.timers.fire(t, RetryBackoff)
			r := wait(t, done)
			if r.status != 200 || r.body != "anthropic ok" {
				t.Fatalf("got %d %q", r.status, r.body)
			}
			e.ups[0].none(t)
			s := e.envoy.Stats()
			if s[tc.counter] != 1 || s["upstream_rq_per_try_idle_timeout"] != 1 {
				t.Fatalf("stats %v", s)
			}
			if u := e.ups[1].next(t); u.Body != "anthropic:hello" {
				t.Errorf("p1 got %+v", u)
			}
		})
	}
	t.Run("stall without retries ends at the stream idle timeout", func(t *testing.T) {
		dropped, hook := dropHook()
		e := newChainEnv(t, chainOpts{
			hook:      hook,
			downMode:  modes("SEND", "BUFFERED", "SKIP", "NONE"),
			upFilters: upstreamExtProc,
			up: translating(func(s *pstream, m *extprocsvc.ProcessingRequest) error {
				return s.send(immediate(403, "no", nil))
			}),
			endpoints: []endpointSpec{{provider: "openai"}},
		})
		done := e.async(t, http.MethodPost, "/", "hello")
		waitFor(t, dropped)
		e.timers.fire(t, StreamIdleTimeout)
		r := wait(t, done)
		if r.status != 408 || e.envoy.Stats()["upstream.send_immediate_resp_upstream_ignored"] != 1 {
			t.Fatalf("got %d, stats %v", r.status, e.envoy.Stats())
		}
		e.ups[0].none(t)
	})
	// The filter's headers callback stopped iteration; once processing is complete, the
	// next decodeData returns Continue and the filter manager resumes the chain: the
	// request goes out unprocessed (ext_proc decodeData "Continue (complete)").
	t.Run("request data after the dropped reply resumes the request unprocessed", func(t *testing.T) {
		dropped, hook := dropHook()
		e := newChainEnv(t, chainOpts{
			hook:      hook,
			upFilters: upstreamExtProc,
			up: translating(func(s *pstream, m *extprocsvc.ProcessingRequest) error {
				return s.send(immediate(403, "no", nil))
			}),
			endpoints: []endpointSpec{{provider: "openai"}},
		})
		pr, pw := io.Pipe()
		done := make(chan result, 1)
		go func() { done <- e.env().do(t, http.MethodPost, "/", pr) }()
		_, _ = pw.Write([]byte("hel"))
		waitFor(t, dropped)
		_, _ = pw.Write([]byte("lo"))
		_ = pw.Close()
		if r := wait(t, done); r.status != 200 || r.body != "openai ok" {
			t.Fatalf("got %d %q", r.status, r.body)
		}
		if u := e.ups[0].next(t); u.Body != "hello" || u.Header.Get("X-Key-Openai") != "" {
			t.Fatalf("p0 got %+v, want the unprocessed request", u)
		}
	})
}

// The connection is opened in parallel with the upstream filters (Envoy router: upstream_http_filters): a connection
// failure is retried even while the attempt's processor has not answered, and resets
// that attempt's stream.
func TestUpstreamExtProcConnectFailureCancelsStream(t *testing.T) {
	e := newChainEnv(t, chainOpts{
		retry:     "retry_on: connect-failure\n" + prevPriorities,
		upFilters: upstreamExtProc,
		up: translating(func(s *pstream, m *extprocsvc.ProcessingRequest) error {
			_ = s.drain() // never answers attempt 1
			return nil
		}),
		endpoints: []endpointSpec{{provider: "openai", closed: true}, {provider: "anthropic", priority: 1}},
	})
	done := e.async(t, http.MethodPost, "/", "hello")
	e.timers.fire(t, RetryBackoff)
	r := wait(t, done)
	if r.status != 200 || r.body != "anthropic ok" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	s := e.envoy.Stats()
	if s["upstream_cx_connect_fail"] != 1 || s["upstream.streams_started"] != 2 || s["upstream.streams_closed"] != 2 ||
		s["upstream.message_timeouts"] != 0 {
		t.Errorf("stats %v", s)
	}
}

// envoy.filters.http.header_mutation after ext_proc, re-adding content-length from
// dynamic metadata after a CONTINUE_AND_REPLACE (Envoy AI Gateway's pattern, Envoy router: upstream_http_filters).
func TestUpstreamHeaderMutation(t *testing.T) {
	const hm = `- name: envoy.filters.http.header_mutation
  typed_config:
    "@type": ` + headerMutationTypeURL + `
    mutations:
      request_mutations:
      - append:
          header: { key: content-length, value: "%DYNAMIC_METADATA(tollgate:content_length)%" }
          append_action: ADD_IF_ABSENT
      - append:
          header: { key: x-model, value: "m=%DYNAMIC_METADATA(tollgate:model)%;%%" }
          append_action: OVERWRITE_IF_EXISTS_OR_ADD
      - remove: x-drop
      response_mutations:
      - append: { header: { key: x-served-by, value: "%DYNAMIC_METADATA(tollgate:provider)%" } }
`
	ext := strings.Replace(upstreamExtProc, "request_body_mode: BUFFERED", "request_body_mode: NONE", 1)
	e := newChainEnv(t, chainOpts{
		upFilters: ext + hm,
		up: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			nb := `{"translated":true}`
			r := cont(m, &extprocsvc.CommonResponse{Status: extprocsvc.CommonResponse_CONTINUE_AND_REPLACE, BodyMutation: bodyMut(nb)})
			r.DynamicMetadata = mustStruct(map[string]any{"tollgate": map[string]any{
				"content_length": strconv.Itoa(len(nb)), "model": 7, "provider": "openai"}})
			return r
		}),
		endpoints: []endpointSpec{{provider: "openai"}},
	})
	r := wait(t, e.async(t, http.MethodPost, "/", `{"original":"body"}`, "X-Drop", "1"))
	wantStatus(t, r, 200)
	if r.header.Get("X-Served-By") != "openai" {
		t.Errorf("response headers %v", r.header)
	}
	u := e.ups[0].next(t)
	if u.Body != `{"translated":true}` || u.ContentLength != int64(len(u.Body)) || u.Header.Get("X-Model") != "m=7;%" || u.Header.Get("X-Drop") != "" {
		t.Fatalf("upstream got %+v", u)
	}
}

// Start rejects upstream filter chains it cannot emulate, and Envoy's own start-up
// errors.
func TestUpstreamFiltersRejected(t *testing.T) {
	for _, tc := range []struct{ name, filters, want string }{
		{"response processing", strings.Replace(upstreamExtProc, "response_header_mode: SKIP", "response_header_mode: SEND", 1), "response_header_mode: SKIP"},
		{"response header mode left at DEFAULT", strings.Replace(upstreamExtProc, "response_header_mode: SKIP, ", "", 1), "response_header_mode: SKIP"},
		{"mode override", upstreamExtProc + "    allow_mode_override: true\n", "allow_mode_override"},
		{"unknown filter", "- name: envoy.filters.http.buffer\n  typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }\n", "not emulated"},
		{"unsupported format", `- name: envoy.filters.http.header_mutation
  typed_config:
    "@type": ` + headerMutationTypeURL + `
    mutations: { request_mutations: [{ append: { header: { key: x, value: "%REQ(:path)%" } } }] }
`, "not emulated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := chainOpts{upFilters: tc.filters, endpoints: []endpointSpec{{provider: "a"}}}
			_, err := Start(context.Background(), Options{Bootstrap: []byte(o.yaml())})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	t.Run("upstream_codec not last", func(t *testing.T) {
		o := chainOpts{endpoints: []endpointSpec{{provider: "a"}},
			upFilters: "- name: envoy.filters.http.upstream_codec\n  typed_config: { \"@type\": " + upstreamCodecTypeURL + " }\n" + upstreamExtProc}
		_, err := Start(context.Background(), Options{Bootstrap: []byte(o.yaml())})
		if err == nil || !strings.Contains(err.Error(), "terminal") {
			t.Fatalf("err = %v", err)
		}
	})
}

// The expression and format forms the stand-in understands, and what it refuses.
func TestExpressionParsing(t *testing.T) {
	for _, tc := range []struct {
		in   string
		keys []string
		ok   bool
	}{
		{`['tollgate']['provider']`, []string{"tollgate", "provider"}, true},
		{`["tollgate"]["provider"]`, []string{"tollgate", "provider"}, true},
		{`['a.b']['c']['d']`, []string{"a.b", "c", "d"}, true},
		{`['tollgate'].provider`, nil, false},
		{`['tollgate"]`, nil, false},
		{`[tollgate]`, nil, false},
	} {
		keys, ok := bracketKeys(tc.in)
		if ok != tc.ok || strings.Join(keys, "|") != strings.Join(tc.keys, "|") {
			t.Errorf("bracketKeys(%q) = %q %v", tc.in, keys, ok)
		}
	}
	for _, tc := range []struct{ in, err string }{
		{"%DYNAMIC_METADATA(ns:key)%", ""},
		{"a%%b%DYNAMIC_METADATA(ns:k1:k2)%c", ""},
		{"%DYNAMIC_METADATA(ns)%", "NAMESPACE:KEY"},
		{"%DYNAMIC_METADATA(ns:key)", "unterminated"},
		{"%START_TIME%", "not emulated"},
	} {
		_, err := parseFormat(tc.in)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseFormat(%q) = %v, want %q", tc.in, err, tc.err)
		}
	}
}
