package extproc

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Split tests cut a fixture into two chunks and check that nothing the
// client or the meter sees depends on where Envoy cut it. Every offset of a
// large fixture costs seconds under -race; splitOffsets bounds that, and
// FuzzStreamSplit searches the offsets it leaves out.

// exhaustiveMax is the largest fixture split at every offset.
const exhaustiveMax = 1024

// sampledOffsets is how many offsets, besides the boundaries, a larger
// fixture is split at.
const sampledOffsets = 96

// splitOffsets returns the offsets a split test cuts stream at: all of them
// for a small stream; for a larger one, the ends, every offset within two
// bytes of an event boundary (a blank line, "\n\n" or "\r\n\r\n") and a
// sample of the rest drawn from a fixed seed, so a failure reproduces.
func splitOffsets(stream []byte) []int {
	n := len(stream)
	if n <= exhaustiveMax {
		all := make([]int, n+1)
		for i := range all {
			all[i] = i
		}
		return all
	}
	seen := map[int]bool{}
	add := func(i int) {
		if i >= 0 && i <= n {
			seen[i] = true
		}
	}
	for i := range 8 {
		add(i)
		add(n - i)
	}
	for _, sep := range [][]byte{[]byte("\n\n"), []byte("\r\n\r\n")} {
		for off := 0; ; {
			j := bytes.Index(stream[off:], sep)
			if j < 0 {
				break
			}
			at := off + j + len(sep)
			for d := -len(sep) - 2; d <= 2; d++ {
				add(at + d)
			}
			off = at
		}
	}
	rng := rand.New(rand.NewPCG(uint64(n), 12))
	for range sampledOffsets {
		add(rng.IntN(n + 1))
	}
	out := make([]int, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

func TestSplitOffsets(t *testing.T) {
	small := bytes.Repeat([]byte("a"), exhaustiveMax)
	if got := splitOffsets(small); len(got) != exhaustiveMax+1 || got[0] != 0 || got[exhaustiveMax] != exhaustiveMax {
		t.Fatalf("a small stream is split everywhere: %d offsets", len(got))
	}
	large := []byte(strings.Repeat("data: {\"x\":1}\n\n", 200))
	got := splitOffsets(large)
	if !slices.Equal(got, splitOffsets(large)) {
		t.Fatal("offsets must not change run to run")
	}
	for _, want := range []int{0, 1, len(large) - 1, len(large), 13, 15, 17, 30, 3000 - 1} {
		if !slices.Contains(got, want) {
			t.Errorf("offset %d missing", want)
		}
	}
	if len(got) >= len(large)/2 {
		t.Fatalf("%d offsets for %d bytes: not sampled", len(got), len(large))
	}
}

// splitFixtures are the OpenAI-format streams FuzzStreamSplit cuts.
var splitFixtures = []string{"openai/chat_stream.sse", "openai/chat_stream_tool_calls.sse", "azure_openai/chat_stream.sse"}

// FuzzStreamSplit cuts an OpenAI-format stream fixture in three chunks at
// two fuzzed offsets: the usage and the client's bytes (less the metering
// comment, whose timings vary) are those of the whole stream in one chunk.
func FuzzStreamSplit(f *testing.F) {
	f.Add(uint8(0), uint16(0), uint16(0))
	f.Add(uint8(1), uint16(100), uint16(2000))
	f.Add(uint8(2), uint16(4000), uint16(7))
	f.Fuzz(func(t *testing.T, which uint8, a, b uint16) {
		stream := readFixture(t, splitFixtures[int(which)%len(splitFixtures)])
		i, j := int(a)%(len(stream)+1), int(b)%(len(stream)+1)
		if i > j {
			i, j = j, i
		}
		want, wantUsage := splitRun(t, stream)
		got, u := splitRun(t, stream[:i], stream[i:j], stream[j:])
		if got != want || u != wantUsage {
			t.Fatalf("split at %d and %d: usage %+v, want %+v; client bytes\n%s\nwant\n%s", i, j, u, wantUsage, got, want)
		}
	})
}

// splitRun streams the chunks through an exchange whose client asked for
// usage, and returns the client's bytes without the metering comment.
func splitRun(t *testing.T, chunks ...[]byte) (string, usage.Usage) {
	t.Helper()
	x := newTestExchange(t)
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"smart-default","stream":true,"stream_options":{"include_usage":true}}`))
	x.handle(respHeaders(":status", "200", "content-type", "text/event-stream"))
	var out strings.Builder
	for k, c := range chunks {
		resp, _ := x.handle(respBody(string(c), k == len(chunks)-1))
		out.Write(clientBytes(resp, c))
	}
	u, ok := x.body.usage()
	if !ok {
		t.Fatal("no usage")
	}
	got, _ := cutComment(t, out.String())
	return got, u
}
