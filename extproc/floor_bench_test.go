//go:build unix

package extproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/internal/cache"
	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/internal/grpccodec"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/policy/tenancy"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/test/redistest"
)

// BenchmarkFloor measures Tollgate against the floor: a null processor that
// answers every ext_proc message with an empty reply of its kind, in the
// same process and run, over loopback gRPC with the server's codec, fed the
// same messages Envoy sends under the bootstraps' processing modes (request
// headers and attributes, the buffered request body, response headers and
// attributes, then the buffered response body or, after the streaming
// mode_override, one message per SSE chunk).
//
// CPU is the process's (getrusage) around blocks of requests to each server
// in turn, so both figures include the same client's work. Metrics:
// cpu-ns/req (Tollgate), floor-cpu-ns/req, x-floor (their ratio),
// own-%-floor ((Tollgate − floor) ÷ floor) and own-allocs/req (heap objects
// Tollgate allocates above the floor). A ratio survives a noisy machine
// better than a time does.
//
// TOLLGATE_BENCH_FORWARD_METADATA=1 replays, to Tollgate only, the message
// pattern of a downstream filter with forwarding_namespaces (the bootstraps
// before docs/performance.md's change): every message after the request
// body reply then carries the tollgate metadata back.
func BenchmarkFloor(b *testing.B) {
	chatResp := floorResponse(b)
	for _, w := range floorWorkloads(b) {
		b.Run(w.name, func(b *testing.B) {
			msgs := envoyMessages(w.body, chatResp, w.chunks, w.app)
			snap, opts := w.server(b)
			tollgate, floor := floorClients(b, snap, opts)
			if w.cacheHit {
				// The first request misses and stores the answer; from then
				// on Envoy sends only the headers and the body, and the body
				// reply is the cached answer.
				runRequest(b, tollgate, msgs, false)
				msgs = msgs[:2]
			}
			ownMsgs := msgs
			if os.Getenv("TOLLGATE_BENCH_FORWARD_METADATA") == "1" && !w.cacheHit {
				ownMsgs = forwardMetadata(b, tollgate, msgs)
			}
			runRequest(b, tollgate, ownMsgs, w.cacheHit) // warm both: connections, pools
			runRequest(b, floor, msgs, false)
			var own, base time.Duration
			var ownAllocs, baseAllocs uint64
			b.ReportAllocs()
			b.ResetTimer()
			const block = 8 // requests per server in turn: bounds the spill of one server's tail work into the other's window
			for i := 0; i < b.N; i += block {
				n := min(block, b.N-i)
				c0, a0 := cpuTime(b), heapObjects()
				for range n {
					runRequest(b, tollgate, ownMsgs, w.cacheHit)
				}
				c1, a1 := cpuTime(b), heapObjects()
				for range n {
					runRequest(b, floor, msgs, false)
				}
				c2, a2 := cpuTime(b), heapObjects()
				own, base = own+c1-c0, base+c2-c1
				ownAllocs, baseAllocs = ownAllocs+a1-a0, baseAllocs+a2-a1
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(own.Nanoseconds())/n, "cpu-ns/req")
			b.ReportMetric(float64(base.Nanoseconds())/n, "floor-cpu-ns/req")
			b.ReportMetric(float64(own)/float64(base), "x-floor")
			b.ReportMetric(100*float64(own-base)/float64(base), "own-%-floor")
			b.ReportMetric((float64(ownAllocs)-float64(baseAllocs))/n, "own-allocs/req")
			if w.chunks > 0 {
				b.ReportMetric(float64((own-base).Nanoseconds())/n/float64(w.chunks+2), "own-cpu-ns/chunk")
			}
		})
	}
}

// floorWorkloads are the rows of BenchmarkFloor and BenchmarkFloorServers.
func floorWorkloads(tb testing.TB) []floorWorkload {
	small := strings.Replace(string(readFixture(tb, "openai/chat_request_basic.json")), `"o4-mini"`, `"smart-default"`, 1)
	return []floorWorkload{
		{name: "chat-small", body: small},
		{name: "chat-4KB", body: string(largeChat(4 << 10))},
		{name: "chat-400KB", body: string(largeChat(400 << 10))},
		// An alias named as its provider's model: nothing to rewrite, so
		// the body is read but does not travel back.
		{name: "chat-400KB-unchanged", body: strings.Replace(string(largeChat(400<<10)), `"smart-default"`, `"gpt-4o-mini"`, 1), setup: sameNameAlias},
		{name: "chat-4KB-guardrails", body: string(largeChat(4 << 10)), app: "guarded", setup: guardrailsSetup},
		{name: "chat-cache-hit", body: cacheableChat, app: "cached", setup: cacheSetup, cacheHit: true},
		{name: "chat-limits-redis", body: small, setup: redisLimitsSetup},
		{name: "chat-small-production", body: small, setup: productionSetup},
		{name: "chat-4KB-production", body: string(largeChat(4 << 10)), setup: productionSetup},
		{name: "stream-10", body: `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, chunks: 10},
		{name: "stream-10-rewrite", body: `{"model":"smart-default","stream":true,"messages":[{"role":"user","content":"hi"}]}`, chunks: 10},
		{name: "stream-100", body: `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, chunks: 100},
		{name: "stream-100-rewrite", body: `{"model":"smart-default","stream":true,"messages":[{"role":"user","content":"hi"}]}`, chunks: 100},
	}
}

// floorResponse is the non-streaming workloads' response body.
func floorResponse(tb testing.TB) string { return string(readFixture(tb, "openai/chat_response.json")) }

// floorWorkload is one row of BenchmarkFloor and BenchmarkFloorServers.
type floorWorkload struct {
	name   string
	body   string // the chat request
	chunks int    // 0: non-streaming
	app    string // x-tollgate-app-id, when the workload needs an app's policy
	// setup configures Tollgate's server for the workload (the floor has
	// nothing to configure).
	setup func(tb testing.TB, snap *Snapshot, o *Options)
	// cacheHit: Tollgate answers the body from its response cache.
	cacheHit bool
}

// server is what Tollgate serves in the workload: the test snapshot and
// options, configured by setup.
func (w floorWorkload) server(tb testing.TB) (*Snapshot, Options) {
	snap, opts := testSnapshot(tb), Options{}
	if w.setup != nil {
		w.setup(tb, snap, &opts)
	}
	return snap, opts
}

// productionSetup configures what `tollgate serve` gives the processor and
// the other workloads leave out: the JSON access log at info (to io.Discard)
// and the Prometheus metrics (productionOptions).
func productionSetup(_ testing.TB, _ *Snapshot, o *Options) { productionOptions(o) }

// guardrailsSetup gives the app "guarded" an input policy that scans every
// message with each detector family and lets the prompt pass: PII and
// secrets flagged (nothing in the prompt matches), a deny list, a custom
// regex, prompt-injection scoring and a size bound.
func guardrailsSetup(tb testing.TB, snap *Snapshot, _ *Options) {
	gs, err := guardrails.NewSet(guardrails.Config{Policies: []guardrails.PolicyConfig{{Name: "scan", Input: []guardrails.GuardrailConfig{
		{Name: "pii", Type: "pii", Action: guardrails.Flag},
		{Name: "secrets", Type: "secrets", Action: guardrails.Flag},
		{Name: "words", Type: "deny_list", Action: guardrails.Block, Terms: []string{"forbidden", "classified"}},
		{Name: "ticket", Type: "regex", Action: guardrails.Flag, Patterns: []string{`TICKET-[0-9]{6}`}},
		{Name: "injection", Type: "prompt_injection", Action: guardrails.Block},
		{Name: "size", Type: "prompt_size", Action: guardrails.Block, MaxChars: 1 << 20},
	}}}})
	if err != nil {
		tb.Fatal(err)
	}
	snap.Guardrails = gs
	snap.Tenants = appTenancy(tb, config.App{Name: "guarded", GuardrailPolicy: "scan"})
}

// sameNameAlias adds the alias gpt-4o-mini for openai's gpt-4o-mini, as a
// config naming its aliases after the providers' models does.
func sameNameAlias(tb testing.TB, snap *Snapshot, _ *Options) {
	cfg := &config.Config{Version: 1,
		Providers: []config.Provider{{Name: "openai", Schema: "openai", Cluster: "openai", BasePath: "/v1",
			Credential: &config.Credential{Header: "authorization", Prefix: "Bearer ", Source: config.SecretRef{Env: "TEST_OPENAI_KEY"}}}},
		Models: []config.Model{{Name: "gpt-4o-mini", Provider: "openai", Model: "gpt-4o-mini"}},
	}
	table, errs := routing.New(cfg, func(string) (string, bool) { return "sk-provider-secret", true })
	if len(errs) > 0 {
		tb.Fatal(errs)
	}
	snap.Routes = table
}

// cacheableChat is a request the response cache keeps (temperature 0).
const cacheableChat = `{"model":"smart-default","temperature":0,"messages":[{"role":"user","content":"What is the capital of France?"}]}`

// cacheSetup opts the app "cached" into the response cache, in memory.
func cacheSetup(tb testing.TB, snap *Snapshot, o *Options) {
	snap.Tenants = appTenancy(tb, config.App{Name: "cached", Cache: &config.AppCache{Enabled: true}})
	snap.Cache = &CacheSettings{Strategy: cache.Content, Scopes: map[string]string{}}
	o.Cache = cache.NewMemory(1<<20, 1<<20, time.Hour, nil)
}

// redisLimitsSetup puts the key under a requests and a tokens per minute
// limit and a daily budget, none ever reached, counted by a real
// redis-server on a loopback port: one admission and one reconciliation
// round trip per request.
func redisLimitsSetup(tb testing.TB, snap *Snapshot, o *Options) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Skip("redis-server is not on PATH: the Redis limits workload needs one")
	}
	srv := redistest.Start(tb)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 2 * time.Second, ContextTimeoutEnabled: true})
	tb.Cleanup(func() { _ = client.Close() })
	l := limits.NewRedis(client, limits.RedisOptions{AdmitTimeout: 10 * time.Second, ReconcileTimeout: 10 * time.Second})
	tb.Cleanup(func() { _ = l.Close() })
	rules, err := NewLimits(&config.Limits{
		RateLimits: []config.RateLimit{{Scope: config.ScopeKey, RequestsPerMinute: 10_000_000, TokensPerMinute: 1_000_000_000}},
		Budgets:    []config.BudgetRule{{Scope: config.ScopeTenant, DailyUSD: "10000"}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	snap.Limits, o.Limiter = rules, l
}

// appTenancy is the default tenant with the given apps.
func appTenancy(tb testing.TB, apps ...config.App) *tenancy.Directory {
	d, errs := configopts.NewTenancy(&config.Config{Tenants: []config.Tenant{{Name: config.DefaultTenant, Apps: apps}}},
		func(string) (string, bool) { return "", false })
	if len(errs) > 0 {
		tb.Fatal(errs)
	}
	return d
}

// envoyMessages is one request's ext_proc messages, as Envoy sends them
// under the bootstraps' processing modes and attributes.
func envoyMessages(request, respJSON string, chunks int, app string) []*extprocv3.ProcessingRequest {
	hdrs := chatHeaders()
	if app != "" {
		hdrs = chatHeaders("x-tollgate-app-id", app)
	}
	hdrs.Attributes = attributes(map[string]any{"request.id": "rid-1"})
	msgs := []*extprocv3.ProcessingRequest{hdrs, reqBody(request)}
	ct := "application/json"
	if chunks > 0 {
		ct = "text/event-stream"
	}
	rh := respHeaders(":status", "200", "content-type", ct)
	rh.Attributes = attributes(map[string]any{"xds.cluster_name": "openai", "response.code": 200.0, "upstream.request_attempt_count": 1.0})
	msgs = append(msgs, rh)
	if chunks == 0 {
		return append(msgs, respBody(respJSON, true))
	}
	return append(msgs, sseChunks(chunks)...)
}

func attributes(m map[string]any) map[string]*structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return map[string]*structpb.Struct{attrsKey: s}
}

// forwardMetadata returns msgs with, on every message after the request
// body, the dynamic metadata Tollgate's body reply sets: what Envoy sends
// back with forwarding_namespaces on the downstream filter. The floor keeps
// the messages without it: a processor that needs nothing back pays nothing.
func forwardMetadata(b *testing.B, c extprocv3.ExternalProcessorClient, msgs []*extprocv3.ProcessingRequest) []*extprocv3.ProcessingRequest {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Process(ctx)
	if err != nil {
		b.Fatal(err)
	}
	roundTrip(b, s, msgs[0])
	md := roundTrip(b, s, msgs[1]).GetDynamicMetadata()
	if md == nil {
		b.Fatal("the body reply set no dynamic metadata")
	}
	out := slices.Clone(msgs)
	for i := 2; i < len(out); i++ {
		m := proto.Clone(out[i]).(*extprocv3.ProcessingRequest)
		m.MetadataContext = metadataContext(md)
		out[i] = m
	}
	return out
}

func metadataContext(md *structpb.Struct) *corev3.Metadata {
	out := map[string]*structpb.Struct{}
	for ns, v := range md.GetFields() {
		out[ns] = v.GetStructValue()
	}
	return &corev3.Metadata{FilterMetadata: out}
}

// runRequest sends one request's messages on a new stream, one round trip
// each, and resets the stream at the end as Envoy does. Only the last
// message may be answered with an ImmediateResponse, and must be when
// immediate is set (a cache hit).
func runRequest(b *testing.B, c extprocv3.ExternalProcessorClient, msgs []*extprocv3.ProcessingRequest, immediate bool) {
	if err := sendRequest(c, msgs, immediate); err != nil {
		b.Fatal(err)
	}
}

// sendRequest is runRequest for any goroutine: it returns what went wrong.
func sendRequest(c extprocv3.ExternalProcessorClient, msgs []*extprocv3.ProcessingRequest, immediate bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Process(ctx)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	for i, m := range msgs {
		if err := s.Send(m); err != nil {
			return fmt.Errorf("message %d: send: %w", i, err)
		}
		resp, err := s.Recv()
		if err != nil {
			return fmt.Errorf("message %d: receive: %w", i, err)
		}
		ir := resp.GetImmediateResponse()
		if want := immediate && i == len(msgs)-1; (ir != nil) != want {
			return fmt.Errorf("message %d: immediate response %v, want one: %v", i, ir, want)
		}
	}
	return nil
}

// floorClients starts Tollgate and the null processor on loopback gRPC
// servers with the server's options and returns a client of each, with the
// same codec. Tollgate serves snap with o.
func floorClients(b *testing.B, snap *Snapshot, o Options) (tollgate, floor extprocv3.ExternalProcessorClient) {
	serve := func(srv extprocv3.ExternalProcessorServer) extprocv3.ExternalProcessorClient {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		gs := grpc.NewServer(grpcServerOptions()...)
		extprocv3.RegisterExternalProcessorServer(gs, srv)
		go func() { _ = gs.Serve(lis) }()
		b.Cleanup(gs.Stop)
		return floorDial(b, lis.Addr().String())
	}
	o.Snapshot = func() *Snapshot { return snap }
	return serve(New(o)), serve(nullProcessor{})
}

// floorDial is a client of the ext_proc server at addr, with the server's
// codec, closed when b ends.
func floorDial(b *testing.B, addr string) extprocv3.ExternalProcessorClient {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpccodec.Codec{Slack: grpccodec.DefaultSlack}), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return extprocv3.NewExternalProcessorClient(conn)
}

// nullProcessor answers every message with an empty reply of its kind: the
// floor any processor pays for the same messages.
type nullProcessor struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (nullProcessor) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		resp := &extprocv3.ProcessingResponse{}
		switch req.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_RequestBody:
			resp.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			resp.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		default:
			resp.Response = &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}
		}
		if err := s.Send(resp); err != nil {
			return nil
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapObjects is the count of heap objects allocated so far, exact:
// ReadMemStats flushes the per-P allocation caches, which runtime/metrics
// counts a span at a time. It stops the world once per read, in each
// server's window alike.
func heapObjects() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}
