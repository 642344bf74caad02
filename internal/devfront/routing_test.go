package devfront

import (
	"io"
	"net/http"
	"strings"
	"testing"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Envoy ext_proc API: CommonResponse.clear_route_cache: clear_route_cache is honoured on request-path replies that carry a
// header_mutation (an empty one counts); route_cache_action CLEAR/RETAIN.
func TestRouteCacheClearing(t *testing.T) {
	route := setHeaders("x-route", "other")
	for _, tc := range []struct {
		name    string
		cfg     string
		at      string
		cr      *extprocsvc.CommonResponse
		toOther bool
		counter string
	}{
		{"flag and mutation in headers reply", "", "request_headers", &extprocsvc.CommonResponse{HeaderMutation: route, ClearRouteCache: true}, true, ""},
		{"flag and mutation in body reply", "", "request_body", &extprocsvc.CommonResponse{HeaderMutation: route, ClearRouteCache: true}, true, ""},
		{"mutation without flag keeps the route", "", "request_body", &extprocsvc.CommonResponse{HeaderMutation: route}, false, ""},
		{"flag without mutation is ignored", "", "request_body", &extprocsvc.CommonResponse{ClearRouteCache: true}, false, "clear_route_cache_ignored"},
		{"CLEAR without flag", "route_cache_action: CLEAR\n", "request_body", &extprocsvc.CommonResponse{HeaderMutation: route}, true, ""},
		{"RETAIN", "route_cache_action: RETAIN\n", "request_body", &extprocsvc.CommonResponse{HeaderMutation: route, ClearRouteCache: true}, false, "clear_route_cache_disabled"},
		{"disable_clear_route_cache", "disable_clear_route_cache: true\n", "request_body", &extprocsvc.CommonResponse{HeaderMutation: route, ClearRouteCache: true}, false, "clear_route_cache_disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{
				boot: boot{extProc: modes("SEND", "BUFFERED", "SKIP", "NONE") + tc.cfg, routes: otherRoutes},
				script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					if kindOf(m) == tc.at {
						return cont(m, tc.cr)
					}
					return nil
				}),
			})
			wantStatus(t, e.post(t, "/", "x"), 200)
			if tc.toOther {
				e.other.next(t)
				e.up.none(t)
			} else {
				e.up.next(t)
				e.other.none(t)
			}
			if tc.counter != "" && e.envoy.Stats()[tc.counter] != 1 {
				t.Fatalf("stats %v", e.envoy.Stats())
			}
		})
	}
	t.Run("empty header mutation counts", func(t *testing.T) {
		e := newEnv(t, envOpts{
			boot: boot{extProc: modes("SEND", "BUFFERED", "SKIP", "NONE"), routes: otherRoutes},
			script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				if m.GetRequestHeaders() != nil {
					return cont(m, &extprocsvc.CommonResponse{HeaderMutation: route}) // route header set, cache kept
				}
				return cont(m, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{}, ClearRouteCache: true})
			}),
		})
		wantStatus(t, e.post(t, "/", "x"), 200)
		e.other.next(t)
	})
	t.Run("response path flag ignored", func(t *testing.T) {
		e := newEnv(t, envOpts{
			boot: boot{extProc: modes("SKIP", "NONE", "SEND", "NONE"), routes: otherRoutes},
			script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				return cont(m, &extprocsvc.CommonResponse{ClearRouteCache: true})
			}),
		})
		wantStatus(t, e.get(t, "/"), 200)
		if e.envoy.Stats()["clear_route_cache_ignored"] != 0 {
			t.Fatalf("stats %v", e.envoy.Stats())
		}
	})
}

// The router emulation: matchers, cluster_header, direct_response, header operations,
// host rewrites.
func TestRouting(t *testing.T) {
	const routes = `
- name: exact
  match: { path: /exact }
  route: { cluster: other, host_rewrite_literal: literal.example }
- name: regex
  match: { safe_regex: { regex: "/re/[0-9]+" } }
  route: { cluster: other }
- name: inverted
  match:
    prefix: /inv
    headers: [{ name: x-mode, string_match: { exact: keep }, invert_match: true }]
  route: { cluster: other }
- name: by_header
  match:
    prefix: /
    headers: [{ name: x-cluster, present_match: true }]
  request_headers_to_remove: [x-cluster]
  request_headers_to_add:
  - header: { key: x-added, value: route }
  route: { cluster_header: x-cluster, auto_host_rewrite: true }
- name: direct
  match: { prefix: /direct }
  direct_response: { status: 418, body: { inline_string: '{"error":"teapot"}' } }
  response_headers_to_add:
  - header: { key: content-type, value: application/json }
    append_action: OVERWRITE_IF_EXISTS_OR_ADD
- name: default
  match: { prefix: /api }
  route: { cluster: upstream }
`
	e := newEnv(t, envOpts{boot: boot{routes: routes}})
	for _, tc := range []struct {
		name     string
		path     string
		hdr      []string
		status   int
		upstream string // "up", "other" or ""
		details  string
		check    func(t *testing.T, r result, u upstreamReq)
	}{
		{"path exact", "/exact", nil, 200, "other", "via_upstream", func(t *testing.T, r result, u upstreamReq) {
			if u.Host != "literal.example" {
				t.Errorf("host_rewrite_literal: %q", u.Host)
			}
		}},
		{"path exact ignores query", "/exact?q", nil, 200, "other", "via_upstream", nil},
		{"regex full match", "/re/12", nil, 200, "other", "via_upstream", nil},
		{"regex partial does not match", "/re/12x", nil, 404, "", "route_not_found", nil},
		{"invert_match", "/inv", nil, 200, "other", "via_upstream", nil},
		{"invert_match excludes", "/inv", []string{"X-Mode", "keep"}, 404, "", "route_not_found", nil},
		{"cluster_header", "/anything", []string{"X-Cluster", "upstream"}, 200, "up", "via_upstream", func(t *testing.T, r result, u upstreamReq) {
			if u.Header.Get("X-Cluster") != "" || u.Header.Get("X-Added") != "route" {
				t.Errorf("headers %v", u.Header)
			}
		}},
		{"auto_host_rewrite keeps the endpoint hostname", "/anything", []string{"X-Cluster", "other"}, 200, "other", "via_upstream",
			func(t *testing.T, r result, u upstreamReq) {
				if u.Host != "other.example.com" {
					t.Errorf("Host %q", u.Host)
				}
			}},
		{"cluster_header unknown cluster", "/x", []string{"X-Cluster", "nope"}, 503, "", "cluster_not_found", nil},
		{"cluster_header empty", "/x", []string{"X-Cluster", ""}, 503, "", "cluster_not_found", nil},
		{"direct_response", "/direct", nil, 418, "", "direct_response", func(t *testing.T, r result, u upstreamReq) {
			if r.body != `{"error":"teapot"}` || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("direct response %v %q", r.header, r.body)
			}
		}},
		{"no route", "/nothing", nil, 404, "", "route_not_found", nil},
		{"default", "/api/v1", nil, 200, "up", "via_upstream", func(t *testing.T, r result, u upstreamReq) {
			if u.Path != "/api/v1" || u.Host != strings.TrimPrefix(e.envoy.URL(), "http://") {
				t.Errorf("path %q host %q", u.Path, u.Host)
			}
			if u.Header.Get("X-Envoy-Expected-Rq-Timeout-Ms") != "15000" || u.Header.Get("User-Agent") == "" {
				t.Errorf("headers %v", u.Header)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.get(t, tc.path, tc.hdr...)
			wantStatus(t, r, tc.status)
			var u upstreamReq
			switch tc.upstream {
			case "up":
				u = e.up.next(t)
			case "other":
				u = e.other.next(t)
			default:
				e.up.none(t)
				e.other.none(t)
			}
			if l := e.lastLog(t); l.ResponseCodeDetails != tc.details {
				t.Errorf("details %q, want %q", l.ResponseCodeDetails, tc.details)
			}
			if tc.check != nil {
				tc.check(t, r, u)
			}
		})
	}
}

// Route timeouts with injected timers: route timeout and per-try idle timeout → 504
// before response headers; after them, a reset.
func TestRouteTimeouts(t *testing.T) {
	const routes = `
- name: slow
  match: { prefix: / }
  route:
    cluster: upstream
    timeout: 30s
    retry_policy: { per_try_idle_timeout: 5s }
`
	for _, tc := range []struct {
		kind    TimerKind
		details string
	}{{RouteTimeout, "upstream_response_timeout"}, {PerTryIdleTimeout, "upstream_per_try_idle_timeout"}} {
		t.Run(string(tc.kind), func(t *testing.T) {
			stall := make(chan struct{})
			e := newEnv(t, envOpts{
				boot:     boot{routes: routes},
				upstream: func(w http.ResponseWriter, r *http.Request) { <-stall },
			})
			defer close(stall)
			done := make(chan result, 1)
			go func() { done <- e.get(t, "/") }()
			e.timers.fire(t, tc.kind)
			r := <-done
			wantStatus(t, r, 504)
			if r.body != "upstream request timeout" {
				t.Errorf("body %q", r.body)
			}
			if l := e.lastLog(t); l.ResponseCodeDetails != tc.details {
				t.Errorf("details %q", l.ResponseCodeDetails)
			}
		})
	}
	t.Run("timeout 0 disables", func(t *testing.T) {
		e := newEnv(t, envOpts{boot: boot{routes: `
- name: r
  match: { prefix: / }
  route: { cluster: upstream, timeout: 0s }
`}})
		wantStatus(t, e.get(t, "/"), 200)
		if d := e.timers.durations(RouteTimeout); len(d) != 0 {
			t.Fatalf("route timers %v", d)
		}
	})
	t.Run("reset after response headers", func(t *testing.T) {
		stall := make(chan struct{})
		e := newEnv(t, envOpts{
			boot: boot{routes: routes},
			upstream: func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte("partial"))
				w.(http.Flusher).Flush()
				<-stall
			},
		})
		defer close(stall)
		resp, err := e.client.Get(e.envoy.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, len("partial"))
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		e.timers.fire(t, PerTryIdleTimeout) // the timer re-armed by the last upstream data
		if rest, err := io.ReadAll(resp.Body); err == nil {
			t.Fatalf("want a reset stream, got the end of the body (%q)", rest)
		}
		if l := e.lastLog(t); !l.Reset {
			t.Errorf("log %+v", l)
		}
	})
}

// Envoy ext_proc API: ProcessingResponse.dynamic_metadata: dynamic_metadata only for receiving namespaces, merged per key, logged and
// forwarded back.
func TestDynamicMetadata(t *testing.T) {
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SEND", "BUFFERED", "SEND", "NONE") + `
metadata_options:
  receiving_namespaces: { untyped: ["tollgate", "other.ns"] }
  forwarding_namespaces: { untyped: ["tollgate"] }
`},
		script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			r := cont(m)
			switch kindOf(m) {
			case "request_headers":
				r.DynamicMetadata = mustStruct(map[string]any{
					"tollgate": map[string]any{"model": "a", "tenant": "t1"},
					"denied":   map[string]any{"x": 1},
					"other.ns": "not an object",
				})
			case "request_body":
				r.DynamicMetadata = mustStruct(map[string]any{"tollgate": map[string]any{"model": "b", "provider": "openai"}})
			case "response_headers":
				r.DynamicMetadata = mustStruct(map[string]any{"tollgate": map[string]any{"usage": map[string]any{"total": 3}}})
			}
			return r
		}),
	})
	wantStatus(t, e.post(t, "/", "x"), 200)
	l := e.lastLog(t)
	tg := l.DynamicMetadata["tollgate"].AsMap()
	if tg["model"] != "b" || tg["tenant"] != "t1" || tg["provider"] != "openai" || tg["usage"] == nil {
		t.Errorf("tollgate metadata %v", tg)
	}
	if _, ok := l.DynamicMetadata["denied"]; ok {
		t.Error("a namespace outside receiving_namespaces must be dropped")
	}
	if o, ok := l.DynamicMetadata["other.ns"]; !ok || len(o.GetFields()) != 0 {
		t.Errorf("a non-object value becomes an empty struct: %v", o)
	}
	s := e.proc.next(t)
	s.wait(t)
	ms := s.messages()
	if got := ms[1].GetMetadataContext().GetFilterMetadata()["tollgate"].AsMap(); got["model"] != "a" {
		t.Errorf("forwarded metadata on request_body %v", got)
	}
	if _, ok := ms[1].GetMetadataContext().GetFilterMetadata()["other.ns"]; ok {
		t.Error("only forwarding namespaces are sent back")
	}
	if got := ms[2].GetMetadataContext().GetFilterMetadata()["tollgate"].AsMap(); got["provider"] != "openai" {
		t.Errorf("forwarded metadata on response_headers %v", got)
	}
}
