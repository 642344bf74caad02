//go:build unix

package extproc

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

// BenchmarkFloorServers is BenchmarkFloor with each server in a process of
// its own (this test binary, re-run as TestFloorServerChild), and only the
// servers' CPU counted: the benchmark process is Envoy's stand-in, and its
// work (encoding the messages, decoding the replies, a 400 KB body mutation
// among them) is in neither figure. Same workloads, same messages, same
// alternating blocks of requests.
//
// Each server reports its process's CPU (getrusage RUSAGE_SELF: user and
// system, threads that exited included) and heap objects allocated when
// asked on stdin, once before the first block and once after the last: what
// a server does between blocks (a collection, a stream's teardown) is
// counted too. Metrics: server-cpu-ns/req (Tollgate), floor-server-cpu-ns/req
// (the null processor), x-floor, own-%-floor, own-allocs/req (heap objects
// above the floor's) and, for streams, own-cpu-ns/chunk, defined as in
// BenchmarkFloor.
func BenchmarkFloorServers(b *testing.B) {
	chatResp := floorResponse(b)
	for _, w := range floorWorkloads(b) {
		b.Run(w.name, func(b *testing.B) {
			msgs := envoyMessages(w.body, chatResp, w.chunks, w.app)
			tg := startFloorServer(b, floorServerTollgate+w.name) // first: it may skip (no redis-server)
			fl := startFloorServer(b, floorServerNull)
			if w.cacheHit {
				runRequest(b, tg.client, msgs, false) // stores the answer, as in BenchmarkFloor
				msgs = msgs[:2]
			}
			ownMsgs := msgs
			if os.Getenv("TOLLGATE_BENCH_FORWARD_METADATA") == "1" && !w.cacheHit {
				ownMsgs = forwardMetadata(b, tg.client, msgs)
			}
			runRequest(b, tg.client, ownMsgs, w.cacheHit) // warm both: connections, pools
			runRequest(b, fl.client, msgs, false)
			own0, ownAllocs0 := tg.usage(b)
			base0, baseAllocs0 := fl.usage(b)
			b.ResetTimer()
			const block = 8 // as BenchmarkFloor: both servers see the same machine
			for i := 0; i < b.N; i += block {
				n := min(block, b.N-i)
				for range n {
					runRequest(b, tg.client, ownMsgs, w.cacheHit)
				}
				for range n {
					runRequest(b, fl.client, msgs, false)
				}
			}
			b.StopTimer()
			own1, ownAllocs1 := tg.usage(b)
			base1, baseAllocs1 := fl.usage(b)
			own, base := own1-own0, base1-base0
			n := float64(b.N)
			b.ReportMetric(float64(own.Nanoseconds())/n, "server-cpu-ns/req")
			b.ReportMetric(float64(base.Nanoseconds())/n, "floor-server-cpu-ns/req")
			b.ReportMetric(float64(own)/float64(base), "x-floor")
			b.ReportMetric(100*float64(own-base)/float64(base), "own-%-floor")
			b.ReportMetric((float64(ownAllocs1-ownAllocs0)-float64(baseAllocs1-baseAllocs0))/n, "own-allocs/req")
			if w.chunks > 0 {
				b.ReportMetric(float64((own-base).Nanoseconds())/n/float64(w.chunks+2), "own-cpu-ns/chunk")
			}
		})
	}
}

// floorServerEnv tells this test binary, re-run, to be one server of
// BenchmarkFloorServers: floorServerNull, or floorServerTollgate followed by
// the workload's name.
const (
	floorServerEnv      = "TOLLGATE_FLOOR_SERVER"
	floorServerNull     = "null"
	floorServerTollgate = "tollgate/"
)

// TestFloorServerChild is a server process of BenchmarkFloorServers; it does
// nothing in a normal test run. It serves on a loopback port, writes
// "addr <host:port>", then answers each "cpu" line on stdin with
// "cpu <ns> <objects>": its CPU time and heap objects allocated so far. It
// exits when stdin closes.
func TestFloorServerChild(t *testing.T) {
	role := os.Getenv(floorServerEnv)
	if role == "" {
		t.Skip("a server process of BenchmarkFloorServers")
	}
	var srv extprocv3.ExternalProcessorServer = nullProcessor{}
	if name, ok := strings.CutPrefix(role, floorServerTollgate); ok {
		ws := floorWorkloads(t)
		i := slices.IndexFunc(ws, func(w floorWorkload) bool { return w.name == name })
		if i < 0 {
			t.Fatalf("%s=%s: no such workload", floorServerEnv, role)
		}
		snap, o := ws[i].server(t) // its cleanups (a redis-server) run after the gRPC server stops
		o.Snapshot = func() *Snapshot { return snap }
		srv = New(o)
	} else if role != floorServerNull {
		t.Fatalf("%s=%s: want %s or %s<workload>", floorServerEnv, role, floorServerNull, floorServerTollgate)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpcServerOptions()...)
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	fmt.Println("addr", lis.Addr())
	for sc := bufio.NewScanner(os.Stdin); sc.Scan(); {
		if sc.Text() != "cpu" {
			t.Fatalf("unknown command %q", sc.Text())
		}
		cpu := cpuTime(t)
		// Each P counts allocations a span at a time (the span's free
		// slots when it takes one); ReadMemStats flushes the Ps' spans so
		// that the count that follows is exact.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Println("cpu", cpu.Nanoseconds(), heapObjects())
	}
}

// floorServer is the benchmark's side of a TestFloorServerChild process.
type floorServer struct {
	role   string
	in     io.Writer
	out    *bufio.Reader
	client extprocv3.ExternalProcessorClient
}

// startFloorServer starts a server process in role and returns once it
// serves; b skips if the process skipped (a workload's prerequisite
// missing). The process ends with b: its stdin closed, it stops serving and
// exits; if it has not within a few seconds, its process group (a
// redis-server with it) is killed.
func startFloorServer(b *testing.B, role string) *floorServer {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloorServerChild$", "-test.v")
	cmd.Env = append(os.Environ(), floorServerEnv+"="+role)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	// A pipe of our own rather than StdoutPipe: Wait, below, would close
	// that one, losing what an exited process wrote (why it skipped).
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			b.Errorf("server process %s did not exit: killed", role)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		r.Close()
	})
	s := &floorServer{role: role, in: stdin, out: bufio.NewReader(r)}
	var before []string // the process's output before its address
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			if slices.ContainsFunc(before, func(l string) bool { return strings.HasPrefix(l, "--- SKIP") }) {
				b.Skipf("server process %s skipped:\n%s", role, strings.Join(before, "\n"))
			}
			b.Fatalf("server process %s: %v before serving:\n%s", role, err, strings.Join(before, "\n"))
		}
		line = strings.TrimRight(line, "\n")
		if addr, ok := strings.CutPrefix(line, "addr "); ok {
			s.client = floorDial(b, addr)
			return s
		}
		before = append(before, line)
	}
}

// usage is the server process's CPU time and heap objects allocated so far.
func (s *floorServer) usage(b *testing.B) (time.Duration, uint64) {
	if _, err := io.WriteString(s.in, "cpu\n"); err != nil {
		b.Fatalf("server process %s: %v", s.role, err)
	}
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			b.Fatalf("server process %s: %v", s.role, err)
		}
		if v, ok := strings.CutPrefix(line, "cpu "); ok {
			var ns int64
			var objects uint64
			if _, err := fmt.Sscan(v, &ns, &objects); err != nil {
				b.Fatalf("server process %s: %q: %v", s.role, line, err)
			}
			return time.Duration(ns), objects
		}
	}
}
