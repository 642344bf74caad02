//go:build unix

package extproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
// Each workload runs at two concurrencies, inflight-1 and inflight-16: that
// many requests in flight at once, each on a stream of its own as Envoy opens
// one per HTTP request. With one, every message wakes an idle server, a cost
// the null processor pays as much as Tollgate; with sixteen, messages from
// other streams arrive while the server runs, as in a busy gateway. The two
// run against the same two server processes.
//
// Each server reports its process's CPU (getrusage RUSAGE_SELF: user and
// system, threads that exited included), voluntary context switches and
// heap objects allocated when asked on stdin, once before the first block
// and once after the last: what a server does between blocks (a collection,
// a stream's teardown) is counted too. Metrics: server-cpu-ns/req
// (Tollgate), floor-server-cpu-ns/req (the null processor), x-floor,
// own-%-floor, own-allocs/req (heap objects above the floor's),
// server-vcsw/msg and floor-server-vcsw/msg (the servers' sleeps per message)
// and, for streams, own-cpu-ns/chunk, defined as in BenchmarkFloor.
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
			for _, inflight := range []int{1, 16} {
				b.Run(fmt.Sprintf("inflight-%d", inflight), func(b *testing.B) {
					// The servers take turns in blocks so that both see the
					// same machine. A block gives every sender about four
					// requests, so that its tail, run with fewer in flight, is
					// a small part of it; with one in flight, eight requests as
					// in BenchmarkFloor.
					block := max(8, 4*inflight)
					own0, base0 := tg.usage(b), fl.usage(b)
					b.ResetTimer()
					for i := 0; i < b.N; i += block {
						n := min(block, b.N-i)
						if err := sendRequests(tg.client, ownMsgs, w.cacheHit, n, inflight); err != nil {
							b.Fatalf("tollgate: %v", err)
						}
						if err := sendRequests(fl.client, msgs, false, n, inflight); err != nil {
							b.Fatalf("null processor: %v", err)
						}
					}
					b.StopTimer()
					own, base := tg.usage(b).sub(own0), fl.usage(b).sub(base0)
					n, nmsg := float64(b.N), float64(b.N*len(msgs))
					b.ReportMetric(float64(own.cpu.Nanoseconds())/n, "server-cpu-ns/req")
					b.ReportMetric(float64(base.cpu.Nanoseconds())/n, "floor-server-cpu-ns/req")
					b.ReportMetric(float64(own.cpu)/float64(base.cpu), "x-floor")
					b.ReportMetric(100*float64(own.cpu-base.cpu)/float64(base.cpu), "own-%-floor")
					b.ReportMetric((float64(own.objects)-float64(base.objects))/n, "own-allocs/req")
					b.ReportMetric(float64(own.objects)/n, "server-allocs/req")
					b.ReportMetric(float64(own.vcsw)/nmsg, "server-vcsw/msg")
					b.ReportMetric(float64(base.vcsw)/nmsg, "floor-server-vcsw/msg")
					if w.chunks > 0 {
						b.ReportMetric(float64((own.cpu-base.cpu).Nanoseconds())/n/float64(w.chunks+2), "own-cpu-ns/chunk")
					}
				})
			}
		})
	}
}

// sendRequests sends n requests with up to inflight of them in flight at
// once, each on a stream of its own (sendRequest). The calling goroutine is
// one of the senders: with one in flight, the requests are sent just as
// runRequest sends them.
func sendRequests(c extprocv3.ExternalProcessorClient, msgs []*extprocv3.ProcessingRequest, immediate bool, n, inflight int) error {
	var next atomic.Int64
	errs := make([]error, min(n, inflight))
	send := func(i int) {
		for next.Add(1) <= int64(n) {
			if errs[i] = sendRequest(c, msgs, immediate); errs[i] != nil {
				return
			}
		}
	}
	var wg sync.WaitGroup
	for i := 1; i < len(errs); i++ {
		wg.Go(func() { send(i) })
	}
	if len(errs) > 0 {
		send(0)
	}
	wg.Wait()
	return errors.Join(errs...)
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
// "cpu <ns> <objects> <switches>": its CPU time, heap objects allocated and
// voluntary context switches so far. It exits when stdin closes.
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
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		fmt.Println("cpu", ru.Utime.Nano()+ru.Stime.Nano(), heapObjects(), int64(ru.Nvcsw))
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

// floorUsage is what a server process has used so far.
type floorUsage struct {
	cpu     time.Duration
	objects uint64 // heap objects allocated
	vcsw    int64  // voluntary context switches: the times a thread slept
}

func (u floorUsage) sub(v floorUsage) floorUsage {
	return floorUsage{cpu: u.cpu - v.cpu, objects: u.objects - v.objects, vcsw: u.vcsw - v.vcsw}
}

// usage asks the server process what it has used so far.
func (s *floorServer) usage(b *testing.B) floorUsage {
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
			var u floorUsage
			if _, err := fmt.Sscan(v, &ns, &u.objects, &u.vcsw); err != nil {
				b.Fatalf("server process %s: %q: %v", s.role, line, err)
			}
			u.cpu = time.Duration(ns)
			return u
		}
	}
}
