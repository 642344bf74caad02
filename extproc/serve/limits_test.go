package serve

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/test/redistest"
)

const testKey = "tg_limitsTest0000000000000000000000000000000"

func limitsConfig(limits string) string {
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
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), Config{
		GRPCAddr:    "127.0.0.1:0",
		ConfigPaths: []string{dir},
		Logger:      log,
		LookupEnv: func(k string) (string, bool) {
			return map[string]string{"K": "sk-x", "REDIS_URL": redisURL}[k], true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	return g
}

// admitted sends one chat request's headers and body over ext_proc, as
// Envoy would, and reports whether the gateway let it go upstream (a body
// reply) or refused it (an ImmediateResponse), with the refusal status.
func admitted(ctx context.Context, client extprocv3.ExternalProcessorClient) (bool, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // Envoy resets the stream at the end of the request (spec §1.1)
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
// admit exactly the configured requests per minute between them.
func TestRedisLimitAcrossReplicas(t *testing.T) {
	r := redistest.Start(t)
	url := "redis://" + r.Addr()
	cfg := limitsConfig(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "rpm-test:"}
  rate_limits:
    - {scope: key, requests_per_minute: 100}`)
	var clients []extprocv3.ExternalProcessorClient
	for range 3 {
		clients = append(clients, dial(t, startGateway(t, cfg, url)))
	}
	ok, refused := burst(t, clients, 500)
	if ok != 100 || refused[429] != 400 {
		t.Fatalf("admitted %d, refused %v; want exactly 100 admitted and 400 refused with 429", ok, refused)
	}
}

// TestRedisBudgetAcrossReplicas: a budget spent through one replica refuses
// the next request on another.
func TestRedisBudgetAcrossReplicas(t *testing.T) {
	r := redistest.Start(t)
	url := "redis://" + r.Addr()
	// max_tokens 10 and a tiny prompt: the estimate is far below the per-request cap.
	cfg := limitsConfig(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "budget-test:"}
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
  redis: {url: {env: REDIS_URL}, prefix: "outage-open:"}
  on_backend_failure: {requests: open}
  rate_limits:
    - {scope: key, requests_per_minute: 1}`), url))
	closed := dial(t, startGateway(t, limitsConfig(`  backend: redis
  redis: {url: {env: REDIS_URL}, prefix: "outage-closed:"}
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
	// Redis restarted empty: the request limit starts afresh.
	if ok, _, _ := admitted(context.Background(), open); !ok {
		t.Fatal("request limit after Redis came back")
	}
	if ok, status, _ := admitted(context.Background(), open); ok || status != 429 {
		t.Fatalf("limit not enforced after recovery: admitted=%v status=%d", ok, status)
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
  redis: {url: {env: REDIS_URL}, prefix: "tpm-test:"}
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
	case <-time.After(10 * time.Second): // a failure guard, not a synchronisation
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
