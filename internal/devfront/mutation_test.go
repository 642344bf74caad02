package devfront

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Envoy ext_proc API: HeaderMutation: the mutation engine and mutation_rules, applied to a request_headers reply.
func TestHeaderMutationRules(t *testing.T) {
	rm := func(k ...string) *extprocsvc.HeaderMutation { return &extprocsvc.HeaderMutation{RemoveHeaders: k} }
	many := func(n int) *extprocsvc.HeaderMutation {
		var kv []string
		for i := 0; i < n; i++ {
			kv = append(kv, fmt.Sprintf("x-h%d", i), "v")
		}
		return setHeaders(kv...)
	}
	type check func(t *testing.T, u upstreamReq)
	hdr := func(k, want string) check {
		return func(t *testing.T, u upstreamReq) {
			t.Helper()
			if got := strings.Join(u.Header.Values(k), "|"); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	}
	for _, tc := range []struct {
		name     string
		rules    string
		hm       *extprocsvc.HeaderMutation
		status   int    // 0 = 200
		details  string // for errors
		rejected uint64
		check    check
	}{
		{name: "plain set", hm: setHeaders("x-new", "1", "authorization", "Bearer k"), check: hdr("X-New", "1")},
		{name: "set overwrites", hm: setHeaders("x-custom", "B"), check: hdr("X-Custom", "B")},
		{name: "append adds a value", hm: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{appendHeader("x-custom", "B")}},
			check: hdr("X-Custom", "A|B")},
		{name: "append_action is ignored", hm: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-custom", RawValue: []byte("B")},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD}}}, check: hdr("X-Custom", "B")},
		{name: "value alone sets empty", hm: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{
			Header: &corev3.HeaderValue{Key: "x-custom", Value: "ignored"}}}},
			check: func(t *testing.T, u upstreamReq) {
				if v, ok := u.Header["X-Custom"]; !ok || len(v) != 1 || v[0] != "" {
					t.Errorf("x-custom %q", v)
				}
			}},
		{name: "value and raw_value is an error", hm: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{
			Header: &corev3.HeaderValue{Key: "x-a", Value: "1", RawValue: []byte("1")}}}},
			status: 500, details: "Only_one_of_value_or_raw_value_in_the_HeaderValue_message_should_be_set.", rejected: 1},
		{name: ":path set allowed", hm: setHeaders(":path", "/rewritten?x=1"),
			check: func(t *testing.T, u upstreamReq) {
				if u.Path != "/rewritten?x=1" {
					t.Errorf("path %q", u.Path)
				}
			}},
		{name: "routing headers denied", hm: setHeaders(":authority", "evil", "host", "evil", ":scheme", "https", ":method", "PUT"), rejected: 4,
			check: func(t *testing.T, u upstreamReq) {
				if u.Host != "orig.example" || u.Method != "GET" {
					t.Errorf("host %q method %q", u.Host, u.Method)
				}
			}},
		{name: "allow_all_routing", rules: "allow_all_routing: true", hm: setHeaders(":authority", "new.example"),
			check: func(t *testing.T, u upstreamReq) {
				if u.Host != "new.example" {
					t.Errorf("host %q", u.Host)
				}
			}},
		{name: "x-envoy denied", hm: setHeaders("x-envoy-foo", "1"), rejected: 1, check: hdr("X-Envoy-Foo", "")},
		{name: "allow_envoy", rules: "allow_envoy: true", hm: setHeaders("x-envoy-foo", "1"), check: hdr("X-Envoy-Foo", "1")},
		{name: "remove pseudo and host never", hm: rm(":path", "host", ":authority"), rejected: 3,
			rules: "allow_all_routing: true",
			check: func(t *testing.T, u upstreamReq) {
				if u.Path != "/m" || u.Host != "orig.example" {
					t.Errorf("path %q host %q", u.Path, u.Host)
				}
			}},
		{name: "remove regular", hm: rm("x-custom", "X-Other"), check: hdr("X-Custom", "")},
		{name: "append to pseudo denied", hm: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{appendHeader(":path", "/x")}},
			rejected: 1, check: func(t *testing.T, u upstreamReq) {
				if u.Path != "/m" {
					t.Errorf("path %q", u.Path)
				}
			}},
		{name: "disallow_is_error", rules: "disallow_is_error: true", hm: setHeaders("x-ok", "1", ":authority", "evil"),
			status: 500, details: "Invalid_attempt_to_modify_:authority", rejected: 1},
		{name: "disallow_is_error on remove", rules: "disallow_is_error: true", hm: rm("host"),
			status: 500, details: "Invalid_attempt_to_remove_host", rejected: 1},
		{name: "disallow_system", rules: "disallow_system: true", hm: setHeaders(":path", "/x"), rejected: 1,
			check: func(t *testing.T, u upstreamReq) {
				if u.Path != "/m" {
					t.Errorf("path %q", u.Path)
				}
			}},
		{name: "disallow_all", rules: "disallow_all: true", hm: setHeaders("x-new", "1"), rejected: 1, check: hdr("X-New", "")},
		{name: "allow_expression beats the envoy rule", rules: "allow_expression: { regex: \"x-envoy-.*\" }",
			hm: setHeaders("x-envoy-foo", "1"), check: hdr("X-Envoy-Foo", "1")},
		{name: "disallow_expression wins", rules: "allow_expression: { regex: \"x-.*\" }\ndisallow_expression: { regex: \"x-custom\" }",
			hm: setHeaders("x-custom", "B", "x-new", "1"), rejected: 1, check: hdr("X-Custom", "A")},
		{name: "regex is a full match", rules: "disallow_expression: { regex: \"x-cust\" }",
			hm: setHeaders("x-custom", "B"), check: hdr("X-Custom", "B")},
		{name: "invalid value character", hm: setHeaders("x-a", "1\r\nx-b: 2"), status: 500,
			details: "Invalid_character_in_set_headers_mutation.", rejected: 1},
		{name: "invalid name character", hm: setHeaders("bad key", "1"), status: 500,
			details: "Invalid_character_in_set_headers_mutation.", rejected: 1},
		{name: "more set_headers than the header count limit", hm: many(101), status: 500, rejected: 1},
		{name: "result over the header count limit", hm: many(95), status: 500, rejected: 1},
		{name: "at the header count limit", hm: many(80), check: hdr("X-H79", "v")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules := ""
			if tc.rules != "" {
				rules = "mutation_rules:\n" + indent(tc.rules, 2)
			}
			e := newEnv(t, envOpts{
				boot: boot{extProc: modes("SEND", "NONE", "SKIP", "NONE") + rules},
				script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					return cont(m, &extprocsvc.CommonResponse{HeaderMutation: tc.hm})
				}),
			})
			r := e.get(t, "/m", "Host", "orig.example", "X-Custom", "A", "X-Other", "o")
			want := tc.status
			if want == 0 {
				want = 200
			}
			wantStatus(t, r, want)
			if got := e.envoy.Stats()["rejected_header_mutations"]; got != tc.rejected {
				t.Errorf("rejected_header_mutations = %d, want %d", got, tc.rejected)
			}
			if want != 200 {
				e.up.none(t)
				if l := e.lastLog(t); tc.details != "" && l.ResponseCodeDetails != tc.details {
					t.Errorf("details %q, want %q", l.ResponseCodeDetails, tc.details)
				}
				return
			}
			tc.check(t, e.up.next(t))
		})
	}
}

// Envoy ext_proc API: HeaderMutation: :status may be set on responses (an integer ≥ 200).
func TestResponseStatusMutation(t *testing.T) {
	for _, tc := range []struct {
		set      string
		want     int
		rejected uint64
	}{{"201", 201, 0}, {"100", 200, 1}, {"abc", 200, 1}} {
		t.Run(tc.set, func(t *testing.T) {
			e := newEnv(t, envOpts{
				boot: boot{extProc: modes("SKIP", "NONE", "SEND", "NONE")},
				script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
					return cont(m, &extprocsvc.CommonResponse{HeaderMutation: setHeaders(":status", tc.set, "x-resp", "1")})
				}),
			})
			r := e.get(t, "/")
			wantStatus(t, r, tc.want)
			if r.header.Get("X-Resp") != "1" {
				t.Errorf("headers %v", r.header)
			}
			if got := e.envoy.Stats()["rejected_header_mutations"]; got != tc.rejected {
				t.Errorf("rejected %d", got)
			}
		})
	}
}

// Envoy ext_proc API: HeaderValue.raw_value; Envoy ext_proc: transfer-encoding: the client never gets transfer-encoding copied from the processor's
// view, and response header mutations reach the client.
func TestResponseHeaderMutation(t *testing.T) {
	e := newEnv(t, envOpts{
		boot: boot{extProc: modes("SKIP", "NONE", "SEND", "NONE")},
		upstream: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Drop", "1")
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("{}"))
		},
		script: replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			return cont(m, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{
				RemoveHeaders: []string{"x-drop"}, SetHeaders: setHeaders("x-usage", "7").SetHeaders}})
		}),
	})
	r := e.get(t, "/")
	wantStatus(t, r, 200)
	if r.header.Get("X-Drop") != "" || r.header.Get("X-Usage") != "7" || r.header.Get("Content-Type") != "application/json" || r.body != "{}" {
		t.Fatalf("client got %v %q", r.header, r.body)
	}
}

// FuzzHeaderMutation: whatever a processor sends, the engine either rejects it or leaves
// a map Envoy could encode: valid lower-case names, valid values, pseudo-headers first,
// within the limits, with the protected headers untouched.
func FuzzHeaderMutation(f *testing.F) {
	f.Add("x-a", []byte("1"), "", false, "host", uint8(0))
	f.Add(":path", []byte("/x"), "", true, ":authority", uint8(1))
	f.Add("Host", []byte("evil"), "v", false, "x-b", uint8(2))
	f.Add("x-envoy-q", []byte("a\r\nb"), "", false, ":status", uint8(3))
	f.Fuzz(func(t *testing.T, key string, raw []byte, value string, appendMode bool, remove string, rules uint8) {
		c, err := newChecker(nil)
		if err != nil {
			t.Fatal(err)
		}
		c.allowAllRouting, c.allowEnvoy, c.disallowSystem, c.disallowIsError = rules&1 != 0, rules&2 != 0, rules&4 != 0, rules&8 != 0
		h := &headerMap{}
		for _, kv := range [][2]string{{":authority", "a.example"}, {":path", "/p"}, {":method", "GET"}, {":scheme", "http"}, {"host", "a.example"}, {"x-b", "b"}} {
			h.add(kv[0], kv[1])
		}
		opt := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, RawValue: raw, Value: value}}
		if appendMode {
			opt = appendHeader(key, string(raw))
		}
		m := &extprocsvc.HeaderMutation{RemoveHeaders: []string{remove}, SetHeaders: []*corev3.HeaderValueOption{opt}}
		if err := applyHeaderMutation(m, h, c, mutationLimits{maxCount: 100, maxBytes: 60 << 10}, false, false, func() {}); err != nil {
			return
		}
		pseudo := true
		for _, e := range h.e {
			if !validHeaderName(e.k) || e.k != strings.ToLower(e.k) || (!strings.HasPrefix(e.k, ":") && !validHeaderValue(e.v)) {
				t.Fatalf("invalid entry %q: %q", e.k, e.v)
			}
			if strings.HasPrefix(e.k, ":") && !pseudo {
				t.Fatalf("pseudo-header %q after regular headers", e.k)
			}
			pseudo = strings.HasPrefix(e.k, ":")
		}
		for _, k := range []string{":path", ":method", ":scheme", ":authority", "host"} {
			if !h.has(k) {
				t.Fatalf("%s removed", k)
			}
		}
		if !c.allowAllRouting {
			if h.value(":authority") != "a.example" || h.value(":method") != "GET" || len(h.values("host")) != 1 {
				t.Fatalf("routing header changed: %v", h.e)
			}
		}
	})
}
