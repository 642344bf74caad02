package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
)

const (
	clientParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	envoyParent  = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
)

func tracedExchange(t testing.TB, ctx context.Context) (*exchange, *tracetest.SpanRecorder) {
	snap := testSnapshot(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := New(Options{Snapshot: func() *Snapshot { return snap }, TracerProvider: tp})
	return newExchange(ctx, s, snap), rec
}

// TestTraceParent: the span's parent is Envoy's ext_proc span when the gRPC
// stream carries one, else the client's traceparent header.
func TestTraceParent(t *testing.T) {
	for _, tc := range []struct {
		name, md, header, wantParent string
	}{
		{"client header", "", clientParent, "b7ad6b7169203331"},
		{"envoy's span wins", envoyParent, clientParent, "00f067aa0ba902b7"},
		{"no context: a root span", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.md != "" {
				ctx = grpcmd.NewIncomingContext(ctx, grpcmd.Pairs("traceparent", tc.md))
			}
			x, rec := tracedExchange(t, ctx)
			var extra []string
			if tc.header != "" {
				extra = []string{"traceparent", tc.header}
			}
			resp, _ := x.handle(chatHeaders(extra...))
			x.finish()
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			s := spans[0]
			got := ""
			if s.Parent().IsValid() {
				got = s.Parent().SpanID().String()
			}
			if got != tc.wantParent || s.SpanKind() != trace.SpanKindServer {
				t.Fatalf("parent %q kind %v, want %q SERVER", got, s.SpanKind(), tc.wantParent)
			}
			// The upstream request carries the gateway span's context.
			up := setHeaders(resp.GetRequestHeaders().GetResponse().GetHeaderMutation())["traceparent"]
			if want := s.SpanContext().SpanID().String(); !strings.Contains(up, "-"+want+"-") {
				t.Fatalf("upstream traceparent %q, want span %s", up, want)
			}
		})
	}
}

func TestProviderName(t *testing.T) {
	for _, tc := range []struct{ schema, old, latest string }{
		{config.SchemaOpenAI, "openai", "openai"},
		{config.SchemaAnthropic, "anthropic", "anthropic"},
		{config.SchemaAzureOpenAI, "az.ai.openai", "azure.ai.openai"},
	} {
		p := &routing.Provider{Schema: tc.schema}
		if got := providerName(p, false); got != tc.old {
			t.Errorf("%s: gen_ai.system %q, want %q", tc.schema, got, tc.old)
		}
		if got := providerName(p, true); got != tc.latest {
			t.Errorf("%s: gen_ai.provider.name %q, want %q", tc.schema, got, tc.latest)
		}
	}
}

// TestTraceOffAllocatesNothing: with tracing off every hook returns before
// allocating, so a request costs what it did before tracing existed.
func TestTraceOffAllocatesNothing(t *testing.T) {
	x := newTestExchange(t)
	h := headersOf(chatHeaders("traceparent", clientParent).GetRequestHeaders().GetHeaders())
	var mu mutation
	body := []byte(`{"id":"x"}`)
	req := &upstreamRequest{body: body}
	end := x.start
	if n := testing.AllocsPerRun(100, func() {
		x.startSpan(h)
		x.traceHeaders(&mu)
		_ = captureInput(x, req)
		x.traceBody(body, true)
		x.srv.traceAttempt("rid-1", "openai", 1)
		x.endSpan(end)
	}); n != 0 {
		t.Fatalf("tracing off: %v allocations per request, want 0", n)
	}
	if mu.m != nil {
		t.Fatal("tracing off must not touch the upstream headers")
	}
}

// benchLifecycle runs one non-streaming chat request, all four ext_proc
// messages, over loopback gRPC, against a server built with o.
func benchLifecycle(b *testing.B, o Options) {
	snap := testSnapshot(b)
	o.Snapshot = func() *Snapshot { return snap }
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	extprocv3.RegisterExternalProcessorServer(gs, New(o))
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	client := extprocv3.NewExternalProcessorClient(conn)
	hdrs := chatHeaders("traceparent", clientParent)
	body := reqBody(strings.Replace(string(readFixture(b, "openai/chat_request_basic.json")), `"o4-mini"`, `"smart-default"`, 1))
	rh := respHeaders(":status", "200", "content-type", "application/json")
	rb := respBody(string(readFixture(b, "openai/chat_response.json")), true)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := client.Process(ctx)
		if err != nil {
			b.Fatal(err)
		}
		roundTrip(b, s, hdrs)
		roundTrip(b, s, body)
		roundTrip(b, s, rh)
		roundTrip(b, s, rb)
		cancel()
	}
}

// BenchmarkLifecycleChatTracing compares a chat request with tracing off
// (its allocations match BenchmarkLifecycleChat's) and on, every span
// sampled and handed to an exporter that drops it: the SDK's cost per
// request, without the network.
func BenchmarkLifecycleChatTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) { benchLifecycle(b, Options{}) })
	b.Run("on", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		benchLifecycle(b, Options{TracerProvider: tp, Propagator: propagation.TraceContext{}})
	})
}

// BenchmarkExchangeTracing is the same request without gRPC: the
// processor's own cost, with and without a span.
func BenchmarkExchangeTracing(b *testing.B) {
	body := reqBody(strings.Replace(string(readFixture(b, "openai/chat_request_basic.json")), `"o4-mini"`, `"smart-default"`, 1))
	rh := respHeaders(":status", "200", "content-type", "application/json")
	rb := respBody(string(readFixture(b, "openai/chat_response.json")), true)
	hdrs := chatHeaders("traceparent", clientParent)
	orig := bytes.Clone(body.GetRequestBody().Body)
	run := func(b *testing.B, s *Server, snap *Snapshot) {
		b.ReportAllocs()
		for b.Loop() {
			// The chain edits the body in place (the alias is rewritten):
			// each op gets the client's bytes, as each gRPC message does.
			copy(body.GetRequestBody().Body, orig)
			x := newExchange(context.Background(), s, snap)
			x.handle(hdrs)
			x.handle(body)
			x.handle(rh)
			x.handle(rb)
			x.finish()
		}
	}
	b.Run("off", func(b *testing.B) {
		snap := testSnapshot(b)
		run(b, New(Options{Snapshot: func() *Snapshot { return snap }}), snap)
	})
	b.Run("on", func(b *testing.B) {
		snap := testSnapshot(b)
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
		run(b, New(Options{Snapshot: func() *Snapshot { return snap }, TracerProvider: tp}), snap)
	})
}

func TestReadMessages(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		choices  bool
		want     string // JSON of the conventions' messages
	}{
		{"text", `[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]`, false,
			`[{"role":"system","parts":[{"type":"text","content":"be brief"}]},{"role":"user","parts":[{"type":"text","content":"hi"}]}]`},
		{"content parts", `[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]`, false,
			`[{"role":"user","parts":[{"type":"text","content":"a"},{"type":"text","content":"b"}]}]`},
		{"tool call and response", `[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"42"}]`, false,
			`[{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"f","arguments":"{}"}]},{"role":"tool","parts":[{"type":"tool_call_response","id":"c1","response":"42"}]}]`},
		{"choices", `[{"index":0,"message":{"role":"assistant","content":"yes"},"finish_reason":"stop"}]`, true,
			`[{"role":"assistant","parts":[{"type":"text","content":"yes"}],"finish_reason":"stop"}]`},
		{"not an array", `"x"`, false, `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(readMessages(gjson.Parse(tc.in), tc.choices))
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %s (%v)\nwant %s", got, err, tc.want)
			}
		})
	}
}

// FuzzTraceBody: the response bytes a provider sends (through the readers)
// are untrusted; reading ids, finish reasons and captured content from them
// must never panic, and what is captured must stay valid JSON.
func FuzzTraceBody(f *testing.F) {
	f.Add([]byte(`{"id":"chatcmpl-1","model":"m","choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`), false)
	f.Add([]byte("data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"), true)
	f.Add([]byte("data: {\ndata: {\"choices\":[{\"delta\":{\"content\":5}}]}\n"), true)
	f.Add([]byte(`{"choices":[{"message":{"tool_calls":[{"function":{"arguments":"\u0000"}}]}}]}`), false)
	f.Fuzz(func(t *testing.T, body []byte, stream bool) {
		x, _ := tracedExchange(t, context.Background())
		x.handle(chatHeaders())
		x.tr.capture = true
		x.rec.status = 200
		if stream {
			x.body = &streamReader{x: x}
		} else {
			x.body = &jsonReader{x: x}
		}
		x.traceBody(body, true)
		for _, kv := range x.tr.recordContent(true, "openai") {
			if !json.Valid([]byte(kv.Value.AsString())) {
				t.Fatalf("%s is not JSON: %q", kv.Key, kv.Value.AsString())
			}
		}
		x.finish()
	})
}

// FuzzReadMessages: a client's messages (captured for apps that opt in) are
// untrusted; converting them never panics and always marshals.
func FuzzReadMessages(f *testing.F) {
	f.Add([]byte(`[{"role":"user","content":"hi"}]`))
	f.Add([]byte(`[{"role":"user","content":[{"type":"text","text":1}]},{"role":"tool","content":{"a":1}}]`))
	f.Add([]byte(`[{"tool_calls":"x"},7,null]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, choices := range []bool{false, true} {
			if _, err := json.Marshal(readMessages(gjson.ParseBytes(b), choices)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestTraceCacheTokens: cache reads and writes (both TTLs) reach the span,
// under the conventions' names with the latest conventions and under
// tollgate.* in both modes.
func TestTraceCacheTokens(t *testing.T) {
	for _, latest := range []bool{false, true} {
		h := newMeterHarness(t, false) // has Anthropic and the price table
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		s := New(Options{Snapshot: func() *Snapshot { return h.snap }, TracerProvider: tp, LatestGenAI: latest})
		x := newExchange(context.Background(), s, h.snap)
		x.handle(chatHeaders())
		x.handle(reqBody(`{"model":"anthropic/claude-sonnet-4-5","messages":[{"role":"user","content":"Summarise the contract."}]}`))
		x.handle(respHeaders(":status", "200", "content-type", "application/json"))
		x.handle(respBody(string(readFixture(t, "anthropic/messages_response_cache_write_1h.json")), true))
		x.finish()
		spans := rec.Ended()
		if len(spans) != 1 {
			t.Fatalf("latest=%v: %d spans", latest, len(spans))
		}
		got := map[string]int64{}
		for _, kv := range spans[0].Attributes() {
			got[string(kv.Key)] = kv.Value.AsInt64()
		}
		want := map[string]int64{"tollgate.usage.cached_tokens": 2500, "tollgate.usage.cache_write_tokens": 10000}
		if latest {
			want["gen_ai.usage.cache_read.input_tokens"] = 2500
			want["gen_ai.usage.cache_creation.input_tokens"] = 10000
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("latest=%v: %s = %d, want %d", latest, k, got[k], v)
			}
		}
		if _, ok := got["gen_ai.usage.cache_creation.input_tokens"]; ok && !latest {
			t.Error("cache_creation emitted under the default (v1.36.0) conventions")
		}
	}
}

// TestTraceRequestAttributes: the span carries the request parameters the
// client set (as the conventions name them) and the provider's address when
// its config has a url; a provider behind an external cluster has none.
func TestTraceRequestAttributes(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		address    string
		port       int
		want       map[string]string // attribute → Value.Emit()
		absent     []string
	}{
		{"all parameters, provider with a url",
			`{"model":"smart-default","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"max_completion_tokens":64,"temperature":0.2,"top_p":0.9,` +
				`"frequency_penalty":0.5,"presence_penalty":-0.5,"seed":42,"n":3,"stop":["END","\n\n"],"response_format":{"type":"json_schema"}}`,
			"api.openai.com", 443,
			map[string]string{"gen_ai.request.max_tokens": "64", "gen_ai.request.temperature": "0.2", "gen_ai.request.top_p": "0.9",
				"gen_ai.request.frequency_penalty": "0.5", "gen_ai.request.presence_penalty": "-0.5", "gen_ai.request.seed": "42",
				"gen_ai.request.choice.count": "3", "gen_ai.request.stop_sequences": `["END","\n\n"]`, "gen_ai.output.type": "json",
				"server.address": "api.openai.com", "server.port": "443"},
			nil},
		{"defaults left out, external cluster",
			`{"model":"smart-default","messages":[{"role":"user","content":"hi"}],"n":1,"stop":"END","temperature":"hot"}`,
			"", 0,
			map[string]string{"gen_ai.request.stop_sequences": `["END"]`},
			[]string{"gen_ai.request.choice.count", "gen_ai.request.temperature", "gen_ai.request.max_tokens", "server.address", "server.port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, rec := tracedExchange(t, context.Background())
			tgt, _ := x.snap.Routes.Choose("smart-default", func(int) int { return 0 })
			tgt.Provider.Address, tgt.Provider.Port = tc.address, tc.port
			x.handle(chatHeaders())
			x.handle(reqBody(tc.body))
			x.finish()
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			got := map[string]string{}
			for _, kv := range spans[0].Attributes() {
				got[string(kv.Key)] = kv.Value.String()
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range tc.absent {
				if v, ok := got[k]; ok {
					t.Errorf("%s = %q, want absent", k, v)
				}
			}
		})
	}
}
