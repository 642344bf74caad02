package devfront

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

const productBootstrap = "../../envoy/envoy.yaml"

// productScript behaves like the product's processor (docs/architecture.md): strip client
// x-tollgate-*, pick the cluster and rewrite the body in the request_body reply, switch
// stream:true 200 responses to STREAMED in the response_headers reply.
// onResponseBody, if set, runs after each response_body reply.
func productScript(t *testing.T, cluster string, onResponseBody func()) func(*pstream) error {
	return func(s *pstream) error {
		streaming := false
		for {
			m, err := s.recv()
			if err != nil {
				return nil
			}
			var r *extprocsvc.ProcessingResponse
			switch {
			case m.GetRequestHeaders() != nil:
				r = cont(m, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{RemoveHeaders: []string{"x-tollgate-cluster"}}})
			case m.GetRequestBody() != nil:
				body := string(m.GetRequestBody().GetBody())
				streaming = strings.Contains(body, `"stream":true`)
				if cluster == "" {
					r = cont(m)
					break
				}
				nb := strings.Replace(body, `"model":"fast"`, `"model":"gpt-4o-mini"`, 1)
				r = cont(m, &extprocsvc.CommonResponse{
					HeaderMutation:  setHeaders("x-tollgate-cluster", cluster, "content-length", strconv.Itoa(len(nb)), "authorization", "Bearer provider-key"),
					BodyMutation:    bodyMut(nb),
					ClearRouteCache: true,
				})
				r.DynamicMetadata = mustStruct(map[string]any{"tollgate": map[string]any{"model": "gpt-4o-mini", "provider": cluster}})
			case m.GetResponseHeaders() != nil:
				st, _ := header(m, ":status")
				if streaming && st == "200" {
					r = cont(m, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{RemoveHeaders: []string{"content-length"}}})
					r.ModeOverride = &extprocv3.ProcessingMode{RequestHeaderMode: modeSend, RequestBodyMode: modeBuffered,
						RequestTrailerMode: modeSkip, ResponseHeaderMode: modeSend, ResponseBodyMode: modeStreamed, ResponseTrailerMode: modeSkip}
				}
			}
			if r == nil {
				r = cont(m)
			}
			if err := s.send(r); err != nil {
				return nil
			}
			if m.GetResponseBody() != nil && onResponseBody != nil {
				onResponseBody()
			}
		}
	}
}

func productEnv(t *testing.T, version int, cluster string, up http.HandlerFunc, onResponseBody func()) *env {
	t.Helper()
	b, err := os.ReadFile(productBootstrap)
	if err != nil {
		t.Skipf("product bootstrap not available: %v", err)
	}
	e := &env{timers: newFakeTimers()}
	e.proc = startProcessor(t, productScript(t, cluster, onResponseBody))
	e.up = startUpstream(t, up)
	e.envoy, err = Start(context.Background(), Options{
		Bootstrap: b, Version: version, NewTimer: e.timers.NewTimer, ResponseChunks: Random(int64(version), 7),
		Clusters: map[string]string{"tollgate_ext_proc": e.proc.addr, "openai": e.up.addr()},
	})
	if err != nil {
		t.Fatalf("Start with %s: %v", productBootstrap, err)
	}
	t.Cleanup(func() { _ = e.envoy.Close() })
	e.client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: testTimeout}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// The product bootstrap drives the scripted product flow on every emulated version.
func TestProductBootstrap(t *testing.T) {
	for _, v := range []int{33, 34, 35, 36} {
		t.Run(fmt.Sprintf("1.%d", v), func(t *testing.T) {
			t.Run("chat completion routed by the body reply", func(t *testing.T) {
				e := productEnv(t, v, "openai", func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `{"id":"x","usage":{"total_tokens":3}}`)
				}, nil)
				r := e.post(t, "/v1//chat/./completions", `{"model":"fast","messages":[]}`,
					"X-Tollgate-Cluster", "anthropic", "Content-Type", "application/json")
				wantStatus(t, r, 200)
				if r.body != `{"id":"x","usage":{"total_tokens":3}}` {
					t.Fatalf("body %q", r.body)
				}
				u := e.up.next(t)
				if u.Host != "api.openai.com" || u.Path != "/v1/chat/completions" || u.Header.Get("X-Tollgate-Cluster") != "" ||
					u.Body != `{"model":"gpt-4o-mini","messages":[]}` || u.ContentLength != int64(len(u.Body)) ||
					u.Header.Get("Authorization") != "Bearer provider-key" || u.Header.Get("X-Forwarded-For") != "127.0.0.1" {
					t.Fatalf("upstream got %+v", u)
				}
				l := e.lastLog(t)
				if l.Route != "provider" || l.Cluster != "openai" || l.ResponseCode != 200 || l.UpstreamAttempts != 1 ||
					l.DynamicMetadata["tollgate"].AsMap()["model"] != "gpt-4o-mini" || l.Path != "/v1/chat/completions" {
					t.Fatalf("log %+v", l)
				}
				s := e.proc.next(t)
				s.wait(t)
				if p, _ := header(s.messages()[0], ":path"); p != "/v1/chat/completions" {
					t.Errorf("normalize_path + merge_slashes: processor saw %q", p)
				}
				if d := e.timers.durations(MessageTimeout); len(d) == 0 || d[0].String() != "10s" {
					t.Errorf("message timers %v", d)
				}
			})
			t.Run("no provider selected", func(t *testing.T) {
				e := productEnv(t, v, "", nil, nil)
				r := e.post(t, "/v1/chat/completions", `{"model":"unknown"}`)
				wantStatus(t, r, 404)
				if r.header.Get("Content-Type") != "application/json" || !strings.Contains(r.body, `"code":"envoy_no_route"`) {
					t.Fatalf("direct response %v %q", r.header, r.body)
				}
				if l := e.lastLog(t); l.Route != "no_provider" || l.ResponseCodeDetails != "direct_response" {
					t.Fatalf("log %+v", l)
				}
				e.up.none(t)
			})
			t.Run("streaming switched to STREAMED", func(t *testing.T) {
				events := []string{"data: {\"a\":1}\n\n", "data: {\"b\":2}\n\n", "data: [DONE]\n\n"}
				// The provider sends the next event only after the processor answered a
				// chunk, so the events cannot all arrive during the headers call (in which
				// case Envoy sends the complete body as one message, whatever the mode).
				replied := make(chan struct{}, 64)
				e := productEnv(t, v, "openai", func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					for i, ev := range events {
						if i > 0 {
							<-replied
						}
						_, _ = io.WriteString(w, ev)
						w.(http.Flusher).Flush()
					}
				}, func() { replied <- struct{}{} })
				r := e.post(t, "/v1/chat/completions", `{"model":"fast","stream":true}`)
				wantStatus(t, r, 200)
				if r.body != strings.Join(events, "") {
					t.Fatalf("body %q", r.body)
				}
				s := e.proc.next(t)
				s.wait(t)
				n := 0
				for _, m := range s.messages() {
					if m.GetResponseBody() != nil {
						n++
					}
				}
				if n < 2 {
					t.Fatalf("want STREAMED response chunks, got %d body messages (%v)", n, s.kinds())
				}
			})
		})
	}
}

// RewriteBootstrap points a bootstrap at loopback for a real envoy, and its output is a
// valid bootstrap the stand-in also accepts.
func TestRewriteBootstrap(t *testing.T) {
	b, err := os.ReadFile(productBootstrap)
	if err != nil {
		t.Skipf("product bootstrap not available: %v", err)
	}
	out, err := RewriteBootstrap(b, Rewrite{ListenerPort: 18080, AdminPort: 19901, UpstreamHTTP1: true,
		Clusters: map[string]string{"tollgate_ext_proc": "unix:///tmp/tg.sock", "openai": "127.0.0.1:18081"}})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := parseBootstrap(out)
	if err != nil {
		t.Fatalf("rewritten bootstrap does not parse: %v\n%s", err, out)
	}
	l := bs.GetStaticResources().GetListeners()
	if len(l) != 1 || l[0].GetAddress().GetSocketAddress().GetAddress() != "127.0.0.1" ||
		l[0].GetAddress().GetSocketAddress().GetPortValue() != 18080 || l[0].GetFilterChains()[0].GetTransportSocket() != nil {
		t.Fatalf("listener %v", l)
	}
	if a := bs.GetAdmin().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 19901 {
		t.Fatalf("admin %v", a)
	}
	for _, c := range bs.GetStaticResources().GetClusters() {
		ep := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint()
		switch c.GetName() {
		case "openai":
			if c.GetTransportSocket() != nil || ep.GetHostname() != "api.openai.com" ||
				ep.GetAddress().GetSocketAddress().GetPortValue() != 18081 || c.GetType().String() != "STATIC" {
				t.Errorf("openai cluster %v", c)
			}
			opts := &upstreamhttpv3.HttpProtocolOptions{}
			if err := c.GetTypedExtensionProtocolOptions()[httpOptionsKey].UnmarshalTo(opts); err != nil ||
				opts.GetExplicitHttpConfig().GetHttpProtocolOptions() == nil {
				t.Errorf("UpstreamHTTP1 not applied: %v %v", opts, err)
			}
		case "tollgate_ext_proc":
			opts := &upstreamhttpv3.HttpProtocolOptions{}
			_ = c.GetTypedExtensionProtocolOptions()[httpOptionsKey].UnmarshalTo(opts)
			if ep.GetAddress().GetPipe().GetPath() != "/tmp/tg.sock" || opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
				t.Errorf("ext_proc cluster %v", c)
			}
		case "anthropic":
			if c.GetTransportSocket() == nil {
				t.Errorf("clusters not listed keep their TLS")
			}
		}
	}
	// The stand-in accepts its own rewrite.
	if _, err := loadConfig(bs, 36); err != nil {
		t.Fatal(err)
	}
}

// Start rejects what it cannot emulate faithfully, and Envoy's own start-up errors.
func TestStartRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    boot
		v    int
		want string
	}{
		{"FULL_DUPLEX", boot{extProc: "processing_mode: { request_body_mode: FULL_DUPLEX_STREAMED, request_trailer_mode: SEND }\n"}, 36, "FULL_DUPLEX"},
		{"route_cache_action and disable_clear_route_cache", boot{extProc: "route_cache_action: CLEAR\ndisable_clear_route_cache: true\n"}, 36, "disable_clear_route_cache"},
		{"status_on_error before 1.36", boot{extProc: "status_on_error: { code: 503 }\n"}, 35, "status_on_error"},
		{"unknown route cluster", boot{routes: "- match: { prefix: / }\n  route: { cluster: nope }\n"}, 36, "unknown cluster"},
		{"observability_mode", boot{extProc: "observability_mode: true\n"}, 36, "observability_mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Start(context.Background(), Options{Bootstrap: []byte(tc.b.yaml()), Version: tc.v})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := Start(context.Background(), Options{Bootstrap: []byte(boot{}.yaml()), Version: 37}); err == nil {
		t.Fatal("version 37 accepted")
	}
}

// The TLS variant of the product bootstrap runs too: RewriteBootstrap strips the
// listener's TLS. A cluster left on its public address is never dialled.
func TestProductTLSBootstrapAndPublicClusters(t *testing.T) {
	b, err := os.ReadFile("../../envoy/envoy-tls.yaml")
	if err != nil {
		t.Skipf("TLS bootstrap not available: %v", err)
	}
	proc := startProcessor(t, productScript(t, "anthropic", nil))
	e, err := Start(context.Background(), Options{Bootstrap: b, Clusters: map[string]string{"tollgate_ext_proc": proc.addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	resp, err := http.Post(e.URL()+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"fast"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if l := e.Log(); len(l) != 1 || l[0].Cluster != "anthropic" || l[0].ResponseCodeDetails != "upstream_reset_before_response_started{connection_failure}" {
		t.Fatalf("log %+v", l)
	}
}
