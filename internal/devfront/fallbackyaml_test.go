package devfront

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

const fallbackBootstrap = "../../envoy/envoy-fallback.yaml"

// fallbackProcessor plays both of the product's processors on one server, as Tollgate
// does: the downstream stream (request.id attribute) routes the alias to the chain and
// reads the response; each upstream stream (attempt-count attribute) translates and
// authenticates its attempt for the provider its attributes name.
type fallbackProcessor struct {
	mu        sync.Mutex
	providers []string // the provider of each upstream attempt, in order
	answered  string   // the provider the downstream filter's response attributes named
}

func (p *fallbackProcessor) script(s *pstream) error {
	first, err := s.recv()
	if err != nil {
		return nil
	}
	if attr(first, "upstream.request_attempt_count") != nil {
		return p.upstream(s, first)
	}
	return p.downstream(s, first)
}

func (p *fallbackProcessor) downstream(s *pstream, m *extprocsvc.ProcessingRequest) error {
	streaming := false
	for {
		var r *extprocsvc.ProcessingResponse
		switch {
		case m.GetRequestHeaders() != nil:
			r = cont(m, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{RemoveHeaders: []string{"x-tollgate-cluster"}}})
		case m.GetRequestBody() != nil:
			streaming = strings.Contains(string(m.GetRequestBody().GetBody()), `"stream":true`)
			r = cont(m, &extprocsvc.CommonResponse{HeaderMutation: setHeaders("x-tollgate-cluster", "chain_smart_default"), ClearRouteCache: true})
			r.DynamicMetadata = mustStruct(map[string]any{"tollgate": map[string]any{"alias": "smart"}})
		case m.GetResponseHeaders() != nil:
			p.mu.Lock()
			p.answered = attr(m, "xds.upstream_host_metadata.filter_metadata['tollgate']['provider']").GetStringValue()
			p.mu.Unlock()
			if st, _ := header(m, ":status"); streaming && st == "200" {
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
		var err error
		if m, err = s.recv(); err != nil {
			return nil
		}
	}
}

func (p *fallbackProcessor) upstream(s *pstream, m *extprocsvc.ProcessingRequest) error {
	provider := attr(m, "xds.upstream_host_metadata.filter_metadata['tollgate']['provider']").GetStringValue()
	p.mu.Lock()
	p.providers = append(p.providers, provider)
	p.mu.Unlock()
	// Set the attempt's whole header set: the router's headers persist across attempts.
	hm := setHeaders(":path", "/v1/chat/completions", "authorization", "Bearer sk-openai")
	hm.RemoveHeaders = []string{"x-api-key", "anthropic-version"}
	if provider == "anthropic" {
		hm = setHeaders(":path", "/v1/messages", "x-api-key", "sk-ant", "anthropic-version", "2023-06-01")
		hm.RemoveHeaders = []string{"authorization"}
	}
	if err := s.send(cont(m, &extprocsvc.CommonResponse{HeaderMutation: hm})); err != nil {
		return nil
	}
	for {
		m, err := s.recv()
		if err != nil {
			return nil
		}
		r := cont(m)
		if b := m.GetRequestBody(); b != nil {
			nb := `{"for":"` + provider + `",` + strings.TrimPrefix(string(b.GetBody()), "{")
			r = cont(m, &extprocsvc.CommonResponse{HeaderMutation: setHeaders("content-length", strconv.Itoa(len(nb))), BodyMutation: bodyMut(nb)})
		}
		if err := s.send(r); err != nil {
			return nil
		}
	}
}

type fallbackEnv struct {
	*chainEnv
	proc *fallbackProcessor
}

// newFallbackEnv starts envoy/envoy-fallback.yaml with p0 (api.openai.com) and p1
// (api.anthropic.com) pointed at test servers; p0Closed points p0 at a closed port.
func newFallbackEnv(t *testing.T, p0 http.HandlerFunc, p0Closed bool) *fallbackEnv {
	t.Helper()
	b, err := os.ReadFile(fallbackBootstrap)
	if err != nil {
		t.Skipf("fallback bootstrap not available: %v", err)
	}
	fp := &fallbackProcessor{}
	e := &fallbackEnv{chainEnv: &chainEnv{timers: newFakeTimers(), order: make(chan string, 16)}, proc: fp}
	e.down = startProcessor(t, fp.script)
	if p0 == nil {
		p0 = answer(200)
	}
	u0 := startUpstream(t, p0)
	u1 := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"answer":"from anthropic"}`)
	})
	e.ups = []*upstream{u0, u1}
	p0Addr := u0.addr()
	if p0Closed {
		p0Addr = closedAddr(t)
	}
	e.envoy, err = Start(context.Background(), Options{Bootstrap: b, NewTimer: e.timers.NewTimer, Clusters: map[string]string{
		"tollgate_ext_proc":                     e.down.addr,
		"chain_smart_default/api.openai.com":    p0Addr,
		"chain_smart_default/api.anthropic.com": u1.addr(),
	}})
	if err != nil {
		t.Fatalf("Start with %s: %v", fallbackBootstrap, err)
	}
	t.Cleanup(func() { _ = e.envoy.Close() })
	e.client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: testTimeout}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// The shipped fallback chain: p0 fails (429 with Retry-After, connection failure, 500,
// hung past the per-try idle timeout), the request goes to p1, translated and
// authenticated for it by its own upstream ext_proc stream; the client gets p1's answer.
func TestFallbackBootstrap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p0       http.HandlerFunc
		closed   bool
		idle     bool          // p0 hangs: fire the per-try idle timer
		backoff  time.Duration // lower bound of the back-off
		backoffs string        // counter of the back-off kind
	}{
		{"429 with Retry-After", answer(429, "Retry-After", "1"), false, false, time.Second, "upstream_rq_retry_backoff_ratelimited"},
		{"connection failure", nil, true, false, 0, "upstream_rq_retry_backoff_exponential"},
		{"500", answer(500), false, false, 0, "upstream_rq_retry_backoff_exponential"},
		{"hung past per_try_idle_timeout", nil, false, true, 0, "upstream_rq_retry_backoff_exponential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p0, arrived := tc.p0, make(chan struct{}, 1)
			if tc.idle {
				p0 = func(w http.ResponseWriter, r *http.Request) {
					arrived <- struct{}{}
					hanging(w, r)
				}
			}
			e := newFallbackEnv(t, p0, tc.closed)
			done := e.async(t, http.MethodPost, "/v1/chat/completions", `{"model":"smart","messages":[]}`,
				"Content-Type", "application/json", "X-Tollgate-Cluster", "openai")
			if tc.idle {
				// The per-try idle timer runs from the connection and the end of the request,
				// so it covers the upstream filter's time too: fire it once p0 has the request.
				waitFor(t, arrived)
				if d := e.timers.fire(t, PerTryIdleTimeout); d != time.Minute {
					t.Errorf("per-try idle timeout %v", d)
				}
			}
			d := e.timers.fire(t, RetryBackoff)
			if d < tc.backoff || (tc.backoff > 0 && d >= tc.backoff*3/2) || (tc.backoff == 0 && d >= 100*time.Millisecond) {
				t.Errorf("back-off %v", d)
			}
			r := wait(t, done)
			wantStatus(t, r, 200)
			if r.body != `{"answer":"from anthropic"}` {
				t.Fatalf("body %q", r.body)
			}
			u := e.ups[1].next(t)
			if u.Host != "api.anthropic.com" || u.Path != "/v1/messages" || u.Header.Get("X-Api-Key") != "sk-ant" ||
				u.Header.Get("Authorization") != "" || u.Header.Get("X-Tollgate-Cluster") != "" ||
				u.Body != `{"for":"anthropic","model":"smart","messages":[]}` || u.ContentLength != int64(len(u.Body)) {
				t.Errorf("p1 got %+v", u)
			}
			e.proc.mu.Lock()
			providers, answered := strings.Join(e.proc.providers, ","), e.proc.answered
			e.proc.mu.Unlock()
			want := "openai,anthropic"
			if tc.closed && providers != want {
				// The connection failed while attempt 1's stream was opening: Envoy connects in
				// parallel with the upstream filters, and a reset stream's first message may
				// arrive late or never.
				want = map[string]string{"anthropic": "anthropic", "anthropic,openai": "anthropic,openai"}[providers]
			}
			if providers != want || answered != "anthropic" {
				t.Errorf("upstream attempts for %q, response attributed to %q", providers, answered)
			}
			l := e.env().lastLog(t)
			if l.Route != "chain_smart_default" || l.Cluster != "chain_smart_default" || l.UpstreamAttempts != 2 ||
				l.UpstreamHostname != "api.anthropic.com" || l.UpstreamPriority != 1 || l.DynamicMetadata["tollgate"].AsMap()["alias"] != "smart" {
				t.Errorf("log %+v", l)
			}
			if s := e.envoy.Stats(); s[tc.backoffs] != 1 || s["upstream.streams_started"] != 2 {
				t.Errorf("stats %v", s)
			}
		})
	}
}

// Once the first bytes of a stream reached the client there is no fallback: p0 failing
// mid-stream resets the client's stream, and p1 is never tried.
func TestFallbackBootstrapNoRetryMidStream(t *testing.T) {
	const event = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"
	sent := make(chan struct{})
	e := newFallbackEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, event)
		w.(http.Flusher).Flush()
		<-sent
		dropAfterRequest(w, r)
	}, false)
	req, _ := http.NewRequest(http.MethodPost, e.envoy.URL()+"/v1/chat/completions",
		strings.NewReader(`{"model":"smart","stream":true}`))
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len(event))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != event {
		t.Fatalf("first event %q %v", buf, err)
	}
	close(sent)
	if rest, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("want a reset stream, got a clean end after %q", rest)
	}
	e.ups[1].none(t)
	if l := e.env().lastLog(t); !l.Reset || l.UpstreamAttempts != 1 || l.UpstreamHostname != "api.openai.com" {
		t.Errorf("log %+v", l)
	}
	if d := e.timers.durations(RetryBackoff); len(d) != 0 {
		t.Errorf("back-off armed: %v", d)
	}
}

// RewriteBootstrap points the chain's endpoints for a real envoy: every endpoint keeps
// its hostname, priority and metadata, TLS matches are removed, and the result is a
// bootstrap the stand-in accepts too.
func TestRewriteBootstrapEndpoints(t *testing.T) {
	b, err := os.ReadFile(fallbackBootstrap)
	if err != nil {
		t.Skipf("fallback bootstrap not available: %v", err)
	}
	rw := func(clusters map[string]string) (*clusterFields, error) {
		out, err := RewriteBootstrap(b, Rewrite{UpstreamHTTP1: true, Clusters: clusters})
		if err != nil {
			return nil, err
		}
		bs, err := parseBootstrap(out)
		if err != nil {
			t.Fatalf("rewritten bootstrap does not parse: %v", err)
		}
		if _, err := loadConfig(bs, 36); err != nil {
			t.Fatalf("the stand-in rejects the rewrite: %v", err)
		}
		return chainFields(t, bs), nil
	}
	all, err := rw(map[string]string{"tollgate_ext_proc": "127.0.0.1:1",
		"chain_smart_default/api.openai.com": "127.0.0.1:2", "chain_smart_default/#1": "127.0.0.1:3"})
	if err != nil {
		t.Fatal(err)
	}
	want := "STATIC;0 api.openai.com 127.0.0.1:2 openai;1 api.anthropic.com 127.0.0.1:3 anthropic;tls=false;http1=true;filters=2"
	if got := all.String(); got != want {
		t.Errorf("all pointed:\n got %s\nwant %s", got, want)
	}
	some, err := rw(map[string]string{"chain_smart_default/api.anthropic.com": "127.0.0.1:3"})
	if err != nil {
		t.Fatal(err)
	}
	want = "STRICT_DNS;0 api.openai.com api.openai.com:443 openai;1 api.anthropic.com 127.0.0.1:3 anthropic;tls=false;http1=true;filters=2"
	if got := some.String(); got != want {
		t.Errorf("one pointed:\n got %s\nwant %s", got, want)
	}
	for _, tc := range []struct {
		clusters map[string]string
		want     string
	}{
		{map[string]string{"chain_smart_default": "127.0.0.1:2"}, "has 2 endpoints"},
		{map[string]string{"chain_smart_default/api.example.com": "127.0.0.1:2"}, `no endpoint "api.example.com"`},
		{map[string]string{"chain_smart_default/#2": "127.0.0.1:2"}, `no endpoint "#2"`},
		{map[string]string{"nope/x": "127.0.0.1:2"}, "not in bootstrap"},
		{map[string]string{"chain_smart_default/#0": "unix:///tmp/x.sock"}, "unix address"},
	} {
		if _, err := rw(tc.clusters); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q", tc.clusters, err, tc.want)
		}
	}
}

// clusterFields summarises the chain cluster of a rewritten bootstrap.
type clusterFields struct {
	kind      string
	endpoints []string
	tls       bool
	http1     bool
	filters   int
}

func (c *clusterFields) String() string {
	return fmt.Sprintf("%s;%s;tls=%v;http1=%v;filters=%d", c.kind, strings.Join(c.endpoints, ";"), c.tls, c.http1, c.filters)
}

func chainFields(t *testing.T, bs *bootstrapv3.Bootstrap) *clusterFields {
	t.Helper()
	c := findCluster(bs.GetStaticResources().GetClusters(), "chain_smart_default")
	f := &clusterFields{kind: c.GetType().String(), tls: c.GetTransportSocket() != nil || len(c.GetTransportSocketMatches()) > 0}
	for _, lle := range c.GetLoadAssignment().GetEndpoints() {
		for _, le := range lle.GetLbEndpoints() {
			sa := le.GetEndpoint().GetAddress().GetSocketAddress()
			f.endpoints = append(f.endpoints, fmt.Sprintf("%d %s %s:%d %s", lle.GetPriority(), le.GetEndpoint().GetHostname(),
				sa.GetAddress(), sa.GetPortValue(), le.GetMetadata().GetFilterMetadata()["tollgate"].AsMap()["provider"]))
		}
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	if err := c.GetTypedExtensionProtocolOptions()[httpOptionsKey].UnmarshalTo(opts); err != nil {
		t.Fatal(err)
	}
	f.http1 = opts.GetExplicitHttpConfig().GetHttpProtocolOptions() != nil
	f.filters = len(opts.GetHttpFilters())
	return f
}
