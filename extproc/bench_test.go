package extproc

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// benchClient starts the processor on a loopback gRPC server and returns a
// client connected to it, as Envoy would be.
func benchClient(b *testing.B) extprocv3.ExternalProcessorClient {
	b.Helper()
	snap := testSnapshot(b)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	extprocv3.RegisterExternalProcessorServer(gs, New(Options{Snapshot: func() *Snapshot { return snap }}))
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return extprocv3.NewExternalProcessorClient(conn)
}

func roundTrip(b *testing.B, s extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	if err := s.Send(req); err != nil {
		b.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		b.Fatal(err)
	}
	return resp
}

// BenchmarkLifecycleChat is one non-streaming chat request, all four ext_proc
// messages, over gRPC.
func BenchmarkLifecycleChat(b *testing.B) {
	client := benchClient(b)
	hdrs := chatHeaders()
	body := reqBody(string(readFixture(b, "openai/chat_request_basic.json")))
	body.GetRequestBody().Body = []byte(strings.Replace(string(body.GetRequestBody().Body), `"o4-mini"`, `"smart-default"`, 1))
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
		if r := roundTrip(b, s, body); r.GetRequestBody() == nil {
			b.Fatalf("refused: %v", r)
		}
		roundTrip(b, s, rh)
		roundTrip(b, s, rb)
		cancel() // Envoy resets the stream at the end of the request (Envoy ext_proc: one gRPC stream per HTTP request)
	}
}

// sseChunks is a 100-event chat completion stream, one event per chunk.
func sseChunks(n int) []*extprocv3.ProcessingRequest {
	out := make([]*extprocv3.ProcessingRequest, 0, n+2)
	for i := range n {
		ev := fmt.Sprintf(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"token %d "},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"abc"}`+"\n\n", i)
		out = append(out, respBody(ev, false))
	}
	out = append(out, respBody(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":100,"total_tokens":110}}`+"\n\n", false))
	return append(out, respBody("data: [DONE]\n\n", true))
}

func benchmarkStream(b *testing.B, req string) {
	client := benchClient(b)
	hdrs := chatHeaders()
	body := reqBody(req)
	rh := respHeaders(":status", "200", "content-type", "text/event-stream")
	chunks := sseChunks(100)
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
		for _, c := range chunks {
			roundTrip(b, s, c)
		}
		cancel()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(chunks)), "ns/chunk")
}

// BenchmarkLifecycleStream is one streaming chat request with 100 content
// chunks where the client asked for usage: the processor only observes.
func BenchmarkLifecycleStream(b *testing.B) {
	benchmarkStream(b, `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
}

// BenchmarkLifecycleStreamRewrite is the same stream when the gateway added
// include_usage and must remove it again from every chunk.
func BenchmarkLifecycleStreamRewrite(b *testing.B) {
	benchmarkStream(b, `{"model":"smart-default","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
}

// BenchmarkProcessorChunk is the processor's own cost per streamed SSE chunk,
// without gRPC: what Tollgate adds on top of the transport.
func BenchmarkProcessorChunk(b *testing.B) {
	for _, tc := range []struct{ name, req string }{
		{"observe", `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true}}`},
		{"rewrite", `{"model":"smart-default","stream":true}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			chunks := sseChunks(100)[:100] // content chunks only: the steady state
			x := newTestExchange(b)
			x.handle(chatHeaders())
			x.handle(reqBody(tc.req))
			x.handle(respHeaders(":status", "200", "content-type", "text/event-stream"))
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				x.handle(chunks[i%len(chunks)])
				i++
			}
		})
	}
}
