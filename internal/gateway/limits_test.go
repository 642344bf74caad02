package gateway

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/test/redistest"
)

const testKey = "tg_limitsTest0000000000000000000000000000000"

// patient are Redis waits for tests that are not about them: on a loaded
// machine under -race a Redis answer can take longer than the defaults, and
// a timed-out admission fails open, which would change what they count.
const patient = "dial_timeout: 5s, read_timeout: 5s, write_timeout: 5s, admission_timeout: 5s, reconcile_timeout: 30s"

// limitsConfig is a gateway config with the given limits section, in which
// PATIENT stands for the patient Redis waits.
func limitsConfig(limits string) string {
	limits = strings.ReplaceAll(limits, "PATIENT", patient)
	return fmt.Sprintf(`version: 1
providers:
  - {name: openai, schema: openai, cluster: openai, credential: {header: authorization, prefix: "Bearer ", source: {env: K}}}
models:
  - {name: smart-default, provider: openai, model: gpt-4o-mini}
keys:
  - {id: k1, sha256: %s}
limits:
%s
`, keys.Hash(testKey), limits)
}

// startGateway runs a gateway process on loopback with the given config.
func startGateway(t *testing.T, cfg, redisURL string) *Gateway {
	t.Helper()
	return startGatewayLog(t, cfg, redisURL, nil)
}

func startGatewayLog(t *testing.T, cfg, redisURL string, log *zap.Logger) *Gateway {
	t.Helper()
	return startGatewayWith(t, gatewayOpts{cfg: cfg, redisURL: redisURL, log: log})
}

// gatewayOpts are what a test gateway varies.
type gatewayOpts struct {
	cfg, redisURL string
	log           *zap.Logger
	now           func() time.Time     // the limiter's clock; nil: time.Now
	reg           *prometheus.Registry // nil: a fresh one
}

func startGatewayWith(t *testing.T, o gatewayOpts) *Gateway {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(o.cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), Config{
		GRPCAddr:    "127.0.0.1:0",
		ConfigPaths: []string{dir},
		Logger:      o.log,
		Registry:    o.reg,
		Now:         o.now,
		LookupEnv: func(k string) (string, bool) {
			return map[string]string{"K": "sk-x", "REDIS_URL": o.redisURL}[k], true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	return g
}

// frozen is a limiter clock that never moves: buckets never drain, so how
// many requests a limit admits does not depend on how fast the machine is.
func frozen() func() time.Time {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	return func() time.Time { return at }
}

// admitted sends one chat request's headers and body over ext_proc, as
// Envoy would, and reports whether the gateway let it go upstream (a body
// reply) or refused it (an ImmediateResponse), with the refusal status.
func admitted(ctx context.Context, client extprocv3.ExternalProcessorClient) (bool, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // Envoy resets the stream at the end of the request (Envoy ext_proc: one gRPC stream per HTTP request)
	s, err := client.Process(ctx)
	if err != nil {
		return false, 0, err
	}
	msgs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer "+testKey, "x-request-id", "r")}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
			Body: []byte(`{"model":"smart-default","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`), EndOfStream: true}}},
	}
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			return false, 0, err
		}
		resp, err := s.Recv()
		if err != nil {
			return false, 0, err
		}
		if ir := resp.GetImmediateResponse(); ir != nil {
			return false, int(ir.GetStatus().GetCode()), nil
		}
	}
	return true, 0, nil
}

func dial(t *testing.T, g *Gateway) extprocv3.ExternalProcessorClient {
	t.Helper()
	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return extprocv3.NewExternalProcessorClient(conn)
}

// burst sends n concurrent requests spread over the clients and counts
// admissions and refusals by status.
func burst(t *testing.T, clients []extprocv3.ExternalProcessorClient, n int) (int64, map[int]int64) {
	t.Helper()
	var ok atomic.Int64
	var mu sync.Mutex
	refused := map[int]int64{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, status, err := admitted(context.Background(), clients[i%len(clients)])
			if err != nil {
				t.Error(err)
				return
			}
			if a {
				ok.Add(1)
				return
			}
			mu.Lock()
			refused[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return ok.Load(), refused
}

// TestRedisLimitAcrossReplicas: three gateway processes sharing one Redis
// admit exactly the configured requests per minute between them. The
// limiter's clock is frozen, so the bucket does not drain during the burst
// however slow the machine: this tests atomicity, not speed.
func TestRedisLimitAcrossReplicas(t *testing.T) {
	r := redistest.Start(t)
	url := "redis://" + r.Addr()
	// A long admission deadline: under -race on a loaded machine a short one
	// could fail open, which is another test's subject.
	cfg := limitsConfig(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "rpm-test:", PATIENT}
  rate_limits:
    - {scope: key, requests_per_minute: 100}`)
	now := frozen()
	var clients []extprocv3.ExternalProcessorClient
	for range 3 {
		clients = append(clients, dial(t, startGatewayWith(t, gatewayOpts{cfg: cfg, redisURL: url, now: now})))
	}
	ok, refused := burst(t, clients, 500)
	if ok != 100 || refused[429] != 400 {
		t.Fatalf("admitted %d, refused %v; want exactly 100 admitted and 400 refused with 429", ok, refused)
	}
}

// TestRedisLimitAcrossReplicasRealClock: on the real clock the bucket drains
// while the burst runs, so the documented bound applies: over an interval of
// length d at most L x (1 + d/60s) are admitted, and a full bucket's L
// first.
func TestRedisLimitAcrossReplicasRealClock(t *testing.T) {
	r := redistest.Start(t)
	url := "redis://" + r.Addr()
	const limit = 100
	cfg := limitsConfig(fmt.Sprintf(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "rpm-real:", PATIENT}
  rate_limits:
    - {scope: key, requests_per_minute: %d}`, limit))
	var clients []extprocv3.ExternalProcessorClient
	for range 3 {
		clients = append(clients, dial(t, startGateway(t, cfg, url)))
	}
	start := time.Now()
	ok, refused := burst(t, clients, 500)
	d := time.Since(start) // covers every admission of the burst
	bound := limit + int64(math.Ceil(float64(limit)*d.Seconds()/60))
	if ok < limit || ok > bound || ok+refused[429] != 500 {
		t.Fatalf("admitted %d, refused %v in %v; want between %d and %d admitted (L x (1 + d/60s)), the rest refused with 429", ok, refused, d, limit, bound)
	}
	t.Logf("admitted %d of 500 in %v (bound %d)", ok, d, bound)
}

// TestRedisBudgetAcrossReplicas: a budget spent through one replica refuses
// the next request on another.
func TestRedisBudgetAcrossReplicas(t *testing.T) {
	r := redistest.Start(t)
	url := "redis://" + r.Addr()
	// max_tokens 10 and a tiny prompt: the estimate is far below the per-request cap.
	cfg := limitsConfig(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "budget-test:", PATIENT}
  budgets:
    - {scope: key, daily_usd: "0.000001", max_cost_per_request_usd: "1"}`)
	a, b := dial(t, startGateway(t, cfg, url)), dial(t, startGateway(t, cfg, url))
	if ok, status, err := admitted(context.Background(), a); err != nil || !ok {
		t.Fatalf("first request: %v %d %v", ok, status, err)
	}
	// Spend the budget the way a finished request does: through reconcile on
	// replica a. Admission with a spent budget must fail on replica b.
	spendThrough(t, a)
	if ok, status, err := admitted(context.Background(), b); err != nil || ok || status != 429 {
		t.Fatalf("after the budget was spent on another replica: admitted=%v status=%d err=%v", ok, status, err)
	}
}

// spendThrough runs a full request with a provider usage report through a
// gateway so its cost is charged to the budgets.
func spendThrough(t *testing.T, client extprocv3.ExternalProcessorClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *extprocv3.ProcessingRequest) {
		if err := s.Send(m); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
		Headers: headerMap(":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer "+testKey)}}})
	send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
		Body: []byte(`{"model":"smart-default","max_tokens":10,"messages":[]}`), EndOfStream: true}}})
	send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: headerMap(":status", "200", "content-type", "application/json")}}})
	send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
		Body: []byte(`{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}}`), EndOfStream: true}}})
	cancel()
	// The charge happens when the stream ends; wait for it by asking until
	// the budget shows spent (bounded: each attempt is a real request).
	for range 200 {
		ok, _, err := admitted(context.Background(), client)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
	}
	t.Fatal("the budget never showed as spent")
}

// TestRedisOutage: with Redis down, requests follow the failure policy
// (open for request limits, closed for budgets), and behaviour is normal
// again when Redis is back.
func TestRedisOutage(t *testing.T) {
	r := redistest.Start(t)
	url := "redis://" + r.Addr()
	open := dial(t, startGateway(t, limitsConfig(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "outage-open:", PATIENT}
  on_backend_failure: {requests: open}
  rate_limits:
    - {scope: key, requests_per_minute: 1}`), url))
	closed := dial(t, startGateway(t, limitsConfig(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "outage-closed:", PATIENT}
  on_backend_failure: {budgets: closed}
  budgets:
    - {scope: key, daily_usd: 100}`), url))

	if ok, _, _ := admitted(context.Background(), open); !ok {
		t.Fatal("first request refused")
	}
	if ok, status, _ := admitted(context.Background(), open); ok || status != 429 {
		t.Fatalf("second request in the minute: admitted=%v status=%d", ok, status)
	}
	r.Stop()
	if ok, _, _ := admitted(context.Background(), open); !ok {
		t.Fatal("fail-open request limit refused while Redis is down")
	}
	if ok, status, _ := admitted(context.Background(), closed); ok || status != 503 {
		t.Fatalf("fail-closed budget while Redis is down: admitted=%v status=%d, want 503", ok, status)
	}
	r.Start()
	// go-redis reconnects on the next command; a bounded number of tries.
	for i := 0; ; i++ {
		ok, _, err := admitted(context.Background(), closed)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if i == 50 {
			t.Fatal("budgets still refused after Redis came back")
		}
	}
	// Redis restarted empty, but the request admitted open during the outage
	// may be charged when its queued reconciliation replays (when exactly
	// depends on the retry timer): either way the limit holds again, and a
	// refusal is the limit's 429, never the backend's 503.
	n := 0
	for range 2 {
		ok, status, err := admitted(context.Background(), open)
		switch {
		case err != nil:
			t.Fatal(err)
		case ok:
			n++
		case status != 429:
			t.Fatalf("after recovery: status %d, want the limit's 429", status)
		}
	}
	if n > 1 {
		t.Fatalf("limit not enforced after recovery: %d of 2 admitted against 1 per minute", n)
	}
}

func TestMemoryLimit(t *testing.T) {
	g := startGateway(t, limitsConfig(`  rate_limits:
    - {scope: key, requests_per_minute: 10}
    - {scope: global, requests_per_minute: 1000}`), "")
	ok, refused := burst(t, []extprocv3.ExternalProcessorClient{dial(t, g)}, 30)
	if ok != 10 || refused[429] != 20 {
		t.Fatalf("admitted %d, refused %v", ok, refused)
	}
}

// TestRedisTokenLimitOvershoot: three gateways share a tokens-per-minute
// limit; every request under-reserves by the same error (the provider
// reports more tokens than were reserved). Charged usage may exceed the
// limit by no more than one request's reservation error.
func TestRedisTokenLimitOvershoot(t *testing.T) {
	r := redistest.Start(t)
	url := "redis://" + r.Addr()
	const limit, extra = 600, 25 // tokens per minute; each request uses 25 more than it reserved
	cfg := limitsConfig(fmt.Sprintf(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "tpm-test:", PATIENT}
  rate_limits:
    - {scope: key, tokens_per_minute: %d}`, limit))
	log, finished := requestSignals()
	var clients []extprocv3.ExternalProcessorClient
	for range 3 {
		clients = append(clients, dial(t, startGatewayLog(t, cfg, url, log)))
	}
	body := []byte(`{"model":"smart-default","max_tokens":10,"messages":[]}`)
	reserved := int64((len(body)+3)/4) + 10 // the gateway's estimate: 4 bytes per token, plus max_tokens
	used := reserved + extra
	var charged int64
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("the token limit never refused")
		}
		ok := fullRequest(t, clients[i%3], body, used)
		if !ok {
			break
		}
		charged += used
		// Reconciliation happens when the gateway ends the stream; wait for
		// that request's log line, so the next admission sees its charge.
		waitSignal(t, finished)
	}
	if charged > limit+extra {
		t.Fatalf("charged %d tokens against a %d limit: overshoot %d exceeds one request's reservation error %d", charged, limit, charged-limit, extra)
	}
	if charged < limit-used {
		t.Fatalf("charged only %d of %d: refused too early", charged, limit)
	}
}

// fullRequest runs one request through a gateway with a provider usage
// report of used tokens, and reports whether it was admitted.
func fullRequest(t *testing.T, client extprocv3.ExternalProcessorClient, body []byte, used int64) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer "+testKey)}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}},
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(":status", "200", "content-type", "application/json")}}},
		{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
			Body: fmt.Appendf(nil, `{"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":0,"total_tokens":%d}}`, used, used), EndOfStream: true}}},
	}
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			t.Fatal(err)
		}
		resp, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ir := resp.GetImmediateResponse(); ir != nil {
			if ir.GetStatus().GetCode() != 429 {
				t.Fatalf("refused with %d", ir.GetStatus().GetCode())
			}
			return false
		}
	}
	_ = s.CloseSend() // the end of the request: the gateway returns and reconciles
	return true
}

// requestSignals returns a logger that sends on the channel each time a
// gateway logs a finished request: the request's reconciliation is done by
// then.
func requestSignals() (*zap.Logger, <-chan struct{}) {
	ch := make(chan struct{}, 1024)
	discard := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel)
	core := zapcore.RegisterHooks(discard, func(e zapcore.Entry) error {
		if e.Message == "request" {
			ch <- struct{}{}
		}
		return nil
	})
	return zap.New(core), ch
}

func waitSignal(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second): // a failure guard, not a synchronisation
		t.Fatal("no request log line")
	}
}

// headerMap builds an Envoy header map from name, value pairs.
func headerMap(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

// TestRedisHung: with redis-server stopped by SIGSTOP (it accepts
// connections and never answers) while requests keep coming, every
// admission ends within the configured admission deadline: fail-open
// gateways let requests through, fail-closed ones refuse them with 503.
// Reconciliations that time out are queued; once Redis answers again they
// are applied, each exactly once, so the budget counter holds the cost of
// every request.
func TestRedisHung(t *testing.T) {
	// Long enough that a slow but healthy Redis on a loaded machine is not a
	// failure; still far under go-redis's defaults (3s per try, 4 tries).
	const deadline = time.Second
	const margin = 3 * time.Second // generous for a loaded machine; go-redis's defaults would wait 3s per try, 4 tries
	r := redistest.Start(t)
	url := "redis://" + r.Addr()
	backend := func(prefix, failure string) string {
		return limitsConfig(fmt.Sprintf(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "%s", dial_timeout: %v, read_timeout: %v, write_timeout: %v, admission_timeout: %v, reconcile_timeout: %v}
  on_backend_failure: %s
  rate_limits:
    - {scope: key, requests_per_minute: 100000, tokens_per_minute: 100000000}
  budgets:
    - {scope: key, daily_usd: 1000}`, prefix, deadline, deadline, deadline, deadline, deadline, failure))
	}
	now := frozen()
	log, finished := requestSignals()
	openCfg := backend("hung-open:", "{requests: open, tokens: open, budgets: open}")
	var open []extprocv3.ExternalProcessorClient
	var regs []*prometheus.Registry
	for range 2 {
		reg := prometheus.NewRegistry()
		regs = append(regs, reg)
		open = append(open, dial(t, startGatewayWith(t, gatewayOpts{cfg: openCfg, redisURL: url, log: log, now: now, reg: reg})))
	}
	closed := dial(t, startGatewayWith(t, gatewayOpts{cfg: backend("hung-closed:", "{budgets: closed}"), redisURL: url, now: now}))
	body := []byte(`{"model":"smart-default","max_tokens":10,"messages":[]}`)
	const used = 2000

	// Before the pause: the cost of one request, as Redis counts it.
	const before = 4
	for i := range before {
		if status, _, err := timedRequest(context.Background(), open[i%2], body, used); err != nil || status != 0 {
			t.Fatalf("before the pause: status %d, %v", status, err)
		}
		waitSignal(t, finished)
	}
	for _, reg := range regs { // a reconciliation that timed out on a loaded machine is applied from the queue
		waitMetric(t, reg, "tollgate_limits_reconcile_queued", 0)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	spendKey := "hung-open:d:" + now().Format("20060102") + ":key:k1"
	spent, err := rc.Get(context.Background(), spendKey).Int64()
	if err != nil || spent <= 0 || spent%before != 0 {
		t.Fatalf("spend before the pause: %d, %v", spent, err)
	}
	perRequest := spent / before

	r.Pause()
	const n = 24 // per kind, all at once
	type result struct {
		closed  bool
		status  int
		latency time.Duration
		err     error
	}
	results := make(chan result, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, isClosed := open[i%2], i >= n
			if isClosed {
				c = closed
			}
			status, lat, err := timedRequest(context.Background(), c, body, used)
			results <- result{isClosed, status, lat, err}
		}()
	}
	wg.Wait()
	close(results)
	for res := range results {
		switch {
		case res.err != nil:
			t.Errorf("request: %v", res.err)
		case res.latency > deadline+margin:
			t.Errorf("admission took %v with Redis hung; the admission deadline is %v", res.latency, deadline)
		case res.closed && res.status != 503:
			t.Errorf("fail-closed budget with Redis hung: status %d, want 503", res.status)
		case !res.closed && res.status != 0:
			t.Errorf("fail-open with Redis hung: status %d, want admitted", res.status)
		}
	}
	for range n { // every admitted request reconciled (queued) and logged
		waitSignal(t, finished)
	}

	r.Resume()
	// The first admission that reaches Redis again wakes the retry queues.
	for _, c := range open {
		if status, _, err := timedRequest(context.Background(), c, body, used); err != nil || status != 0 {
			t.Fatalf("after resuming: status %d, %v", status, err)
		}
		waitSignal(t, finished)
	}
	for i, reg := range regs {
		waitMetric(t, reg, "tollgate_limits_reconcile_queued", 0)
		if v := metricValue(t, reg, "tollgate_limits_reconcile_dropped_total"); v != 0 {
			t.Fatalf("gateway %d dropped %v reconciliations", i, v)
		}
	}
	want := (before + n + 2) * perRequest
	if got, err := rc.Get(context.Background(), spendKey).Int64(); err != nil || got != want {
		t.Fatalf("spend after recovery = %d, %v; want %d (%d requests, each charged exactly once)", got, err, want, before+n+2)
	}
}

// timedRequest runs one request through a gateway; when it is admitted
// (status 0) the provider answers with used tokens. latency is how long
// the admission decision took.
func timedRequest(ctx context.Context, client extprocv3.ExternalProcessorClient, body []byte, used int64) (status int, latency time.Duration, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := client.Process(ctx)
	if err != nil {
		return 0, 0, err
	}
	exchange := func(m *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
		if err := s.Send(m); err != nil {
			return nil, err
		}
		return s.Recv()
	}
	if _, err := exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
		Headers: headerMap(":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer "+testKey)}}}); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	resp, err := exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}})
	latency = time.Since(start)
	if err != nil {
		return 0, latency, err
	}
	if ir := resp.GetImmediateResponse(); ir != nil {
		return int(ir.GetStatus().GetCode()), latency, nil
	}
	for _, m := range []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(":status", "200", "content-type", "application/json")}}},
		{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
			Body: fmt.Appendf(nil, `{"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, used/2, used/2, used), EndOfStream: true}}},
	} {
		if _, err := exchange(m); err != nil {
			return 0, latency, err
		}
	}
	_ = s.CloseSend() // the end of the request: the gateway returns and reconciles
	return 0, latency, nil
}

// metricValue reads a gauge or counter without labels from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// waitMetric polls until a metric has the value, within a bounded time.
func waitMetric(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a failure guard, not a synchronisation
	for metricValue(t, reg, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v; want %v", name, metricValue(t, reg, name), want)
		}
		time.Sleep(5 * time.Millisecond) // polling an observable condition
	}
}

// TestRedisTokenBoundWithoutMaxTokens: three gateways share one Redis and a
// tokens-per-minute limit; 200 concurrent streams omit max_tokens and the
// provider would generate 8,000 tokens each. The gateway sends
// default_max_tokens upstream and reserves exactly that, so what is charged
// stays within the documented bound: the limit plus, per admitted request,
// the prompt estimate's error (the limiter's clock is frozen, so nothing
// drains while the streams run). Without the cap the provider's 8,000 tokens
// were charged: about 7.6 times the limit.
func TestRedisTokenBoundWithoutMaxTokens(t *testing.T) {
	const (
		limit     = 100_000
		defaultMT = 1024
		generate  = 8000 // what the provider produces when nothing stops it
		promptErr = 5    // the provider counts this many prompt tokens more than the gateway's estimate
		streams   = 200
	)
	r := redistest.Start(t)
	url := "redis://" + r.Addr()
	cfg := limitsConfig(fmt.Sprintf(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "tpm-cap:", PATIENT}
  default_max_tokens: %d
  rate_limits:
    - {scope: key, tokens_per_minute: %d}`, defaultMT, limit))
	now := frozen()
	log, finished := requestSignals()
	var clients []extprocv3.ExternalProcessorClient
	for range 3 {
		clients = append(clients, dial(t, startGatewayWith(t, gatewayOpts{cfg: cfg, redisURL: url, log: log, now: now})))
	}
	body := []byte(`{"model":"smart-default","stream":true,"messages":[{"role":"user","content":"Write a long story."}]}`)
	prompt := int64((len(body)+3)/4) + promptErr // the gateway estimates 4 bytes per token

	var admitted, charged, capped atomic.Int64
	var wg sync.WaitGroup
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, upCap, err := cappedStream(context.Background(), clients[i%3], body, prompt, generate)
			switch {
			case err != nil:
				t.Error(err)
			case ok:
				admitted.Add(1)
				if upCap == defaultMT {
					capped.Add(1)
				}
				charged.Add(prompt + min(generate, cmpOr(upCap, generate)))
			}
		}()
	}
	wg.Wait()
	for range streams { // every stream, admitted or refused, logs one line when it has been settled
		waitSignal(t, finished)
	}
	n := admitted.Load()
	if n == 0 || capped.Load() != n {
		t.Fatalf("%d admitted, %d of them capped at %d upstream", n, capped.Load(), defaultMT)
	}
	bound := limit + n*promptErr
	if charged.Load() > bound {
		t.Fatalf("charged %d tokens against a %d limit (%.1fx); the bound is %d", charged.Load(), limit, float64(charged.Load())/limit, bound)
	}
	// The limiter agrees: its bucket holds what was charged (in 1/60000
	// token units), and the next request is refused.
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	if level, err := rc.HGet(context.Background(), "tpm-cap:t:key:k1", "l").Int64(); err != nil || level != charged.Load()*60_000 {
		t.Fatalf("bucket level %d, %v; want %d tokens", level/60_000, err, charged.Load())
	}
	ok, _, err := cappedStream(context.Background(), clients[0], body, prompt, generate)
	if err != nil || ok {
		t.Fatalf("one more stream after the limit: admitted=%v, %v", ok, err)
	}
	t.Logf("%d of %d streams admitted, %d tokens charged against %d (bound %d)", n, streams, charged.Load(), limit, bound)
}

func cmpOr(a, b int64) int64 {
	if a != 0 {
		return a
	}
	return b
}

// cappedStream runs one streaming chat request. When admitted, it reads the
// output cap the gateway sent upstream (0: none) and answers as a provider
// that generates up to generate tokens, fewer when capped, with a usage
// chunk.
func cappedStream(ctx context.Context, client extprocv3.ExternalProcessorClient, body []byte, prompt, generate int64) (admitted bool, upCap int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := client.Process(ctx)
	if err != nil {
		return false, 0, err
	}
	exchange := func(m *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
		if err := s.Send(m); err != nil {
			return nil, err
		}
		return s.Recv()
	}
	if _, err := exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
		Headers: headerMap(":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer "+testKey)}}}); err != nil {
		return false, 0, err
	}
	resp, err := exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}})
	if err != nil {
		return false, 0, err
	}
	if ir := resp.GetImmediateResponse(); ir != nil {
		if code := ir.GetStatus().GetCode(); code != 429 {
			return false, 0, fmt.Errorf("refused with %d", code)
		}
		return false, 0, nil
	}
	upstream := body
	if m := resp.GetRequestBody().GetResponse().GetBodyMutation(); m != nil {
		upstream = m.GetBody()
	}
	for _, f := range []string{"max_completion_tokens", "max_tokens"} {
		if v := gjson.GetBytes(upstream, f); v.Exists() {
			upCap = v.Int()
		}
	}
	out := generate
	if upCap > 0 {
		out = min(out, upCap)
	}
	events := fmt.Appendf(nil, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once\"}}]}\n\n"+
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\ndata: [DONE]\n\n", prompt, out, prompt+out)
	for _, m := range []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(":status", "200", "content-type", "text/event-stream")}}},
		{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: events, EndOfStream: true}}},
	} {
		if _, err := exchange(m); err != nil {
			return true, upCap, err
		}
	}
	_ = s.CloseSend() // the end of the request: the gateway returns and reconciles
	return true, upCap, nil
}
