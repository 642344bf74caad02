//go:build unix

package extproc

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// BenchmarkStreams holds many streamed chat responses open at once (1,000 by
// default) over loopback gRPC, to Tollgate and to the null processor of
// BenchmarkFloor, with the same clients and codec. Each stream is opened as
// Envoy opens it (request headers, request body, response headers after
// the streaming mode_override) and then gets one SSE content chunk at a
// time, paced so that every stream gets a chunk every
// TOLLGATE_BENCH_CHUNK_EVERY (200ms by default): the chunks of all streams
// arrive spread over time, as tokens do, not in lockstep.
//
// One op is one chunk to a Tollgate stream and one to a floor stream, so
// both servers are measured under the same load at the same time. Metrics:
//
//   - own-B/stream: memory one open stream holds in Tollgate above what it
//     holds in the null processor (live heap plus goroutine stacks, after
//     two collections, with every stream open and mid-response);
//     B/stream and floor-B/stream are the two figures.
//   - p99-us and floor-p99-us (p50 too): processing latency per message, the
//     time from sending a chunk to receiving its reply, at 1 µs resolution.
//   - chunks/s: the rate each server was sent chunks at (below the pace
//     when the machine could not keep up).
//
// TOLLGATE_BENCH_STREAMS changes how many streams are held open;
// TOLLGATE_BENCH_HEAPPROFILE=FILE writes a heap profile with Tollgate's
// streams open (go tool pprof -sample_index=inuse_space).
func BenchmarkStreams(b *testing.B) {
	n := envInt(b, "TOLLGATE_BENCH_STREAMS", 1000)
	every := 200 * time.Millisecond
	if v := os.Getenv("TOLLGATE_BENCH_CHUNK_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("TOLLGATE_BENCH_CHUNK_EVERY=%q: want a positive duration", v)
		}
		every = d
	}
	msgs := envoyMessages(`{"model":"smart-default","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, "", 1, "")
	open, chunk := msgs[:3], msgs[3] // headers, body, response headers; a content chunk

	tollgate, floor := floorClients(b, testSnapshot(b), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // resets every stream, as Envoy does at the end of a request

	profile := os.Getenv("TOLLGATE_BENCH_HEAPPROFILE")
	if profile != "" {
		runtime.MemProfileRate = 1 // every allocation, for the profile below
	}
	before := streamMemory()
	own := openStreams(ctx, b, tollgate, n, open, chunk)
	mid := streamMemory()
	if profile != "" {
		writeHeapProfile(b, profile) // what Tollgate's open streams hold
	}
	base := openStreams(ctx, b, floor, n, open, chunk)
	after := streamMemory()
	if b.Failed() {
		return
	}
	perStream := func(from, to memSample) (heap, stack float64) {
		return float64(to.heap-from.heap) / float64(n), float64(to.stack-from.stack) / float64(n)
	}
	ownHeap, ownStack := perStream(before, mid)
	baseHeap, baseStack := perStream(mid, after)

	ownLat, baseLat := newLatencies(), newLatencies()
	ownWork, ownDone := own.serve(b, ownLat)
	baseWork, baseDone := base.serve(b, baseLat)
	gap := every / time.Duration(n) // between two chunks to the same server
	b.ResetTimer()
	start := time.Now()
	i := 0
	for b.Loop() {
		if wait := time.Until(start.Add(time.Duration(i) * gap)); wait > 0 {
			time.Sleep(wait) // pacing the load, not synchronisation
		}
		ownWork <- i % n
		baseWork <- i % n
		i++
	}
	close(ownWork)
	close(baseWork)
	ownDone.Wait()
	baseDone.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	b.ReportMetric(ownHeap+ownStack, "B/stream")
	b.ReportMetric(baseHeap+baseStack, "floor-B/stream")
	b.ReportMetric(ownHeap+ownStack-baseHeap-baseStack, "own-B/stream")
	b.ReportMetric(ownHeap-baseHeap, "own-heap-B/stream")
	b.ReportMetric(ownLat.quantile(0.5), "p50-us")
	b.ReportMetric(ownLat.quantile(0.99), "p99-us")
	b.ReportMetric(baseLat.quantile(0.5), "floor-p50-us")
	b.ReportMetric(baseLat.quantile(0.99), "floor-p99-us")
	b.ReportMetric(float64(i)/elapsed.Seconds(), "chunks/s")
}

// openStreams opens n streams on c, each through request headers, request
// body, response headers and two SSE chunks, so the processor holds every
// stream mid-response with its readers' buffers sized.
func openStreams(ctx context.Context, b *testing.B, c extprocv3.ExternalProcessorClient, n int, open []*extprocv3.ProcessingRequest, chunk *extprocv3.ProcessingRequest) *openSet {
	set := &openSet{streams: make([]extprocv3.ExternalProcessor_ProcessClient, n), busy: make([]sync.Mutex, n), chunk: chunk}
	setup := append(slices.Clone(open), chunk, chunk)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range streamWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				s, err := c.Process(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				set.streams[i] = s
				for _, m := range setup {
					if _, err := exchangeOne(s, m); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return set
}

// streamWorkers is how many messages each server may have in flight.
const streamWorkers = 32

// openSet is the open streams to one server.
type openSet struct {
	streams []extprocv3.ExternalProcessor_ProcessClient
	busy    []sync.Mutex // a stream carries one message at a time
	chunk   *extprocv3.ProcessingRequest
}

// serve starts the workers that send a chunk on each stream index they
// are given and record its latency; close the channel, then wait.
func (o *openSet) serve(b *testing.B, lat *latencies) (chan<- int, *sync.WaitGroup) {
	work := make(chan int, streamWorkers)
	wg := &sync.WaitGroup{}
	for range streamWorkers {
		wg.Go(func() {
			for i := range work {
				o.busy[i].Lock()
				d, err := exchangeOne(o.streams[i], o.chunk)
				o.busy[i].Unlock()
				if err != nil {
					b.Error(err)
					continue
				}
				lat.add(d)
			}
		})
	}
	return work, wg
}

// exchangeOne sends one message and waits for its reply: the time between
// is the message's processing latency as Envoy sees it.
func exchangeOne(s extprocv3.ExternalProcessor_ProcessClient, m *extprocv3.ProcessingRequest) (time.Duration, error) {
	t := time.Now()
	if err := s.Send(m); err != nil {
		return 0, err
	}
	r, err := s.Recv()
	if err != nil {
		return 0, err
	}
	if r.GetImmediateResponse() != nil {
		return 0, errRefused
	}
	return time.Since(t), nil
}

var errRefused = &refusedError{}

type refusedError struct{}

func (*refusedError) Error() string { return "the processor refused the request" }

// latencies is a histogram of 1 µs buckets up to 1 s (the last bucket
// holds everything slower), safe for concurrent use and free of
// allocations while recording.
type latencies struct{ us []atomic.Uint64 }

func newLatencies() *latencies { return &latencies{us: make([]atomic.Uint64, 1_000_000)} }

func (l *latencies) add(d time.Duration) {
	l.us[min(int(d.Microseconds()), len(l.us)-1)].Add(1)
}

// quantile is the smallest bucket, in µs, at or below which q of the
// samples fall.
func (l *latencies) quantile(q float64) float64 {
	var total uint64
	for i := range l.us {
		total += l.us[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := uint64(q*float64(total) + 0.5)
	var seen uint64
	for i := range l.us {
		if seen += l.us[i].Load(); seen >= max(want, 1) {
			return float64(i)
		}
	}
	return float64(len(l.us) - 1)
}

// memSample is the memory the process holds for its objects: the live heap
// and the goroutine stacks.
type memSample struct{ heap, stack int64 }

// streamMemory collects twice (the second frees what the first only
// marked, and shrinks stacks the first found oversized) and reads both.
func streamMemory() memSample {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return memSample{heap: int64(s[0].Value.Uint64()), stack: int64(s[1].Value.Uint64())}
}

// envInt reads a positive integer from the environment, or def.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func writeHeapProfile(b *testing.B, name string) {
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
