package extproc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate-ai/tollgate/internal/grpccodec"
)

// The memory benchmark runs the processor in a child process (this test
// binary, re-run as TestMemoryChild) so that its resident memory is the
// processor's alone, and measures the peak over real gRPC as Envoy drives
// it. Peak RSS is read from /proc (VmHWM, reset through clear_refs).

const memoryChildEnv = "TOLLGATE_MEMORY_CHILD"

// TestMemoryChild is the processor half of BenchmarkLargeBody; it does
// nothing in a normal test run.
func TestMemoryChild(t *testing.T) {
	if os.Getenv(memoryChildEnv) == "" {
		t.Skip("the processor process of BenchmarkLargeBody")
	}
	snap := testSnapshot(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpcServerOptions()...)
	extprocv3.RegisterExternalProcessorServer(gs, New(Options{Snapshot: func() *Snapshot { return snap }}))
	go func() { _ = gs.Serve(lis) }()
	fmt.Println("addr", lis.Addr())
	// Each "gc" line on stdin asks for a clean start: the garbage of earlier
	// requests collected, gRPC's buffer pools emptied (sync.Pool needs two
	// cycles) and the memory returned to the OS. Each "stats" line asks
	// where the memory is (no collection): bytes in heap objects and in the
	// runtime's span structures.
	stats := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/metadata/mspan/inuse:bytes"}}
	for sc := bufio.NewScanner(os.Stdin); sc.Scan(); {
		if sc.Text() == "stats" {
			metrics.Read(stats)
			fmt.Println("stats", stats[0].Value.Uint64(), stats[1].Value.Uint64())
			continue
		}
		runtime.GC()
		runtime.GC()
		debug.FreeOSMemory()
		fmt.Println("clean")
	}
	gs.Stop()
	if path := os.Getenv("TOLLGATE_MEMPROFILE"); path != "" {
		// Where the processor allocated: go tool pprof -sample_index=alloc_space
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// grpcServerOptions are the options extproc/serve gives its gRPC server
// (serve imports this package, so they are repeated here).
func grpcServerOptions() []grpc.ServerOption {
	if os.Getenv(memoryChildEnv) == "stdcodec" {
		return []grpc.ServerOption{grpc.MaxRecvMsgSize(64 << 20)}
	}
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(64 << 20), grpc.ForceServerCodecV2(grpccodec.Codec{Slack: grpccodec.DefaultSlack})}
}

// procStatus reads a "Vm..." line of /proc/pid/status in bytes.
func procStatus(b *testing.B, pid int, field string) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// largeChat is a chat request of about n bytes whose model the gateway
// rewrites, as nearly every request's is.
func largeChat(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 200)
	b.WriteString(`{"model":"smart-default","messages":[{"role":"user","content":"`)
	line := "The quick brown fox jumps over the lazy dog, caf\u00e9 \\\"quoted\\\" text.\\n"
	for b.Len() < n-10 {
		b.WriteString(line)
	}
	b.WriteString(`"}]}`)
	return b.Bytes()
}

// BenchmarkLargeBody is one 50 MB chat request through a processor process
// over gRPC: request headers, the buffered body (validated, model rewritten,
// forwarded as a body mutation), response headers and a small response. It
// reports the processor's peak resident memory above its resident memory
// before the requests, in bytes and as a multiple of the body. To compare
// with grpc-go's own codec: TOLLGATE_MEMORY_CHILD=stdcodec.
func BenchmarkLargeBody(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryChild$")
	codec := "grpccodec"
	if os.Getenv(memoryChildEnv) == "stdcodec" { // to compare: TOLLGATE_MEMORY_CHILD=stdcodec go test -bench LargeBody
		codec = "stdcodec"
	}
	cmd.Env = append(os.Environ(), memoryChildEnv+"="+codec)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	out := bufio.NewReader(stdout)
	line := func() string {
		l, err := out.ReadString('\n')
		if err != nil {
			b.Fatalf("the processor process: %v", err)
		}
		return strings.TrimSpace(l)
	}
	addr := ""
	for addr == "" {
		addr, _ = strings.CutPrefix(line(), "addr ")
	}
	if addr == "" {
		b.Fatal("the processor process did not start")
	}
	clean := func() {
		if _, err := io.WriteString(stdin, "gc\n"); err != nil {
			b.Fatal(err)
		}
		for line() != "clean" {
		}
	}
	// heapStats returns the processor's bytes in heap objects and in span
	// structures.
	heapStats := func() (heap, spans int64) {
		if _, err := io.WriteString(stdin, "stats\n"); err != nil {
			b.Fatal(err)
		}
		for {
			if v, ok := strings.CutPrefix(line(), "stats "); ok {
				if _, err := fmt.Sscan(v, &heap, &spans); err != nil {
					b.Fatal(err)
				}
				return heap, spans
			}
		}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(128<<20)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	client := extprocv3.NewExternalProcessorClient(conn)

	const size = 50 << 20
	body := reqBody(string(largeChat(size)))
	try := func(body *extprocv3.ProcessingRequest) error {
		size := len(body.GetRequestBody().GetBody())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s, err := client.Process(ctx)
		if err != nil {
			return err
		}
		out := []byte(nil)
		for i, m := range []*extprocv3.ProcessingRequest{chatHeaders(), body, respHeaders(":status", "200", "content-type", "application/json"),
			respBody(`{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, true)} {
			if err := s.Send(m); err != nil {
				return err
			}
			r, err := s.Recv()
			if err != nil {
				return err
			}
			if i == 1 {
				out = r.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
			}
		}
		if len(out) < size-10 || !bytes.HasPrefix(out, []byte(`{"model":"gpt-4o-mini"`)) {
			return fmt.Errorf("the body was not forwarded rewritten: %d bytes %.40q", len(out), out)
		}
		return nil
	}
	one := func(body *extprocv3.ProcessingRequest) {
		if err := try(body); err != nil {
			b.Fatal(err)
		}
	}
	one(reqBody(string(largeChat(1 << 20)))) // warm up: gRPC buffers, code pages
	pid := cmd.Process.Pid
	resetPeak := func() int64 {
		base := procStatus(b, pid, "VmRSS")
		if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0); err != nil {
			b.Skipf("cannot reset the peak RSS: %v", err)
		}
		return base
	}
	report := func(b *testing.B, peak int64) {
		b.ReportMetric(float64(peak), "peak-B")
		b.ReportMetric(float64(peak)/size, "peak/body")
	}
	// one: each request from a clean process, what one request costs. Where
	// it goes: heap-B is the growth of heap objects by the request's end
	// (gRPC's frame buffers, back in its pool but still in the heap, the
	// codec's copy, everything else; nothing is collected after the copy,
	// the heap's goal being twice the live heap), spans-B the growth of the
	// runtime's span structures (one per 16 KB frame buffer).
	b.Run("one", func(b *testing.B) {
		peak, heap, spans := int64(0), int64(0), int64(0)
		b.SetBytes(size)
		for b.Loop() {
			b.StopTimer()
			clean()
			heap0, spans0 := heapStats()
			base := resetPeak()
			b.StartTimer()
			one(body)
			peak = max(peak, procStatus(b, pid, "VmHWM")-base)
			b.StopTimer()
			heap1, spans1 := heapStats()
			heap, spans = max(heap, heap1-heap0), max(spans, spans1-spans0)
			b.StartTimer()
		}
		report(b, peak)
		b.ReportMetric(float64(heap), "heap-B")
		b.ReportMetric(float64(spans), "spans-B")
	})
	// back-to-back: requests one after another, so the garbage of earlier
	// ones waits for the collector (up to GOGC's headroom).
	b.Run("back-to-back", func(b *testing.B) {
		clean()
		base := resetPeak()
		b.SetBytes(size)
		for b.Loop() {
			one(body)
		}
		report(b, procStatus(b, pid, "VmHWM")-base)
	})
	// concurrent-4: four requests in flight at once, from a clean process.
	b.Run("concurrent-4", func(b *testing.B) {
		peak := int64(0)
		b.SetBytes(4 * size)
		for b.Loop() {
			b.StopTimer()
			clean()
			base := resetPeak()
			b.StartTimer()
			errs := make(chan error, 4)
			for range 4 {
				go func() { errs <- try(body) }()
			}
			for range 4 {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			peak = max(peak, procStatus(b, pid, "VmHWM")-base)
		}
		report(b, peak)
	})
}

// TestLargeBodyOverGRPC sends a body above grpccodec.Large through the
// server's codec both ways, as Envoy would: the reply's body mutation must
// decode (the codec splits it across two encodings of the field) to exactly
// the rewritten body.
func TestLargeBodyOverGRPC(t *testing.T) {
	snap := testSnapshot(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpcServerOptions()...)
	extprocv3.RegisterExternalProcessorServer(gs, New(Options{Snapshot: func() *Snapshot { return snap }}))
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := extprocv3.NewExternalProcessorClient(conn)
	for _, tc := range []struct{ name, prefix, want string }{
		{"shorter model", `{"model":"smart-default","stream":true,`, `{"model":"gpt-4o-mini","stream":true,`},
		{"direct model", `{"model":"local/m","stream":true,`, `{"model":"m","stream":true,`},
	} {
		in := string(largeChat(1 << 20))
		in = tc.prefix + in[len(`{"model":"smart-default",`):]
		s, err := client.Process(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []*extprocv3.ProcessingRequest{chatHeaders(), reqBody(in)} {
			if err := s.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		r, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		want := tc.want + in[len(tc.prefix):len(in)-1] + `,"stream_options":{"include_usage":true}}`
		if got := string(r.GetRequestBody().GetResponse().GetBodyMutation().GetBody()); got != want {
			t.Fatalf("%s: forwarded %d bytes %.60q…, want %d bytes %.60q…", tc.name, len(got), got, len(want), want)
		}
		if cl := setHeaders(r.GetRequestBody().GetResponse().GetHeaderMutation())["content-length"]; cl != strconv.Itoa(len(want)) {
			t.Fatalf("%s: content-length %s for %d bytes", tc.name, cl, len(want))
		}
	}
}
