package sse

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ev is an Event copied out of the scanner's buffers, comparable with ==.
type ev struct {
	Raw, Name, Data, ID     string
	HasName, HasData, HasID bool
	Comment                 bool
}

func (e ev) String() string {
	return fmt.Sprintf("{Raw:%q Name:%q/%v Data:%q/%v ID:%q/%v Comment:%v}",
		e.Raw, e.Name, e.HasName, e.Data, e.HasData, e.ID, e.HasID, e.Comment)
}

func copyEvent(e Event) ev {
	return ev{
		Raw: string(e.Raw), Name: string(e.Name), Data: string(e.Data), ID: string(e.ID),
		HasName: e.Name != nil, HasData: e.Data != nil, HasID: e.ID != nil,
		Comment: e.IsComment(),
	}
}

// drain returns every complete event buffered in s.
func drain(t testing.TB, s *Scanner) []ev {
	t.Helper()
	var out []ev
	for range 1 << 20 { // bounded: far more than any test input has events
		e, ok := s.Next()
		if !ok {
			return out
		}
		out = append(out, copyEvent(e))
	}
	t.Fatal("Next did not stop")
	return nil
}

// scanChunks feeds chunks one at a time, draining after each, optionally
// calls Finish, and returns the events and the final Rest.
func scanChunks(t testing.TB, chunks [][]byte, finish bool) ([]ev, string) {
	t.Helper()
	var s Scanner
	var out []ev
	for _, c := range chunks {
		s.Feed(c)
		out = append(out, drain(t, &s)...)
	}
	if finish {
		s.Finish()
		out = append(out, drain(t, &s)...)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	return out, string(s.Rest())
}

// reference is a deliberately naive, whole-input SSE parser written
// independently of Scanner, used as the oracle.
func reference(in string, eof bool) ([]ev, string) {
	var out []ev
	var cur ev
	var dataLines []string
	hasField := false
	start, i, first := 0, 0, true
	for i < len(in) {
		j := strings.IndexAny(in[i:], "\r\n")
		if j < 0 {
			break
		}
		j += i
		next := j + 1
		if in[j] == '\r' {
			if j+1 == len(in) {
				if !eof {
					break
				}
			} else if in[j+1] == '\n' {
				next++
			}
		}
		line := in[i:j]
		if first {
			first = false
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		i = next
		switch {
		case line == "":
			cur.Raw = in[start:next]
			if dataLines != nil {
				cur.Data, cur.HasData = strings.Join(dataLines, "\n"), true
			}
			cur.Comment = !hasField
			out = append(out, cur)
			cur, dataLines, hasField, start = ev{}, nil, false, next
		case line[0] == ':':
		default:
			hasField = true
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "data":
				dataLines = append(dataLines, value)
			case "event":
				cur.Name, cur.HasName = value, true
			case "id":
				if !strings.Contains(value, "\x00") {
					cur.ID, cur.HasID = value, true
				}
			}
		}
	}
	return out, in[start:]
}

func TestScannerTable(t *testing.T) {
	data := func(raw, d string) ev { return ev{Raw: raw, Data: d, HasData: true} }
	tests := []struct {
		name string
		in   string
		want []ev
		rest string
	}{
		{"lf", "data: a\n\n", []ev{data("data: a\n\n", "a")}, ""},
		{"crlf", "data: a\r\n\r\n", []ev{data("data: a\r\n\r\n", "a")}, ""},
		{"cr", "data: a\r\rdata: b\r\r", []ev{data("data: a\r\r", "a")}, "data: b\r\r"}, // final \r may precede \n
		{"mixed cr then crlf", "data: a\r\r\n", []ev{data("data: a\r\r\n", "a")}, ""},
		{"mixed lf then cr", "data: a\n\rdata: b\r\n\n", []ev{data("data: a\n\r", "a"), data("data: b\r\n\n", "b")}, ""},
		{"crlf then lf", "data: a\r\n\n", []ev{data("data: a\r\n\n", "a")}, ""},
		{"no space", "data:a\n\n", []ev{data("data:a\n\n", "a")}, ""},
		{"only one space stripped", "data:  a \n\n", []ev{data("data:  a \n\n", " a ")}, ""},
		{"tab kept", "data:\ta\n\n", []ev{data("data:\ta\n\n", "\ta")}, ""},
		{"colon in value", "data: {\"a\":1}\n\n", []ev{data("data: {\"a\":1}\n\n", `{"a":1}`)}, ""},
		{"empty data", "data:\n\n", []ev{data("data:\n\n", "")}, ""},
		{"bare field name", "data\n\n", []ev{data("data\n\n", "")}, ""},
		{"multi-line data", "data: a\ndata:\ndata: c\n\n", []ev{data("data: a\ndata:\ndata: c\n\n", "a\n\nc")}, ""},
		{"two data lines", "data: {\ndata: }\n\n", []ev{data("data: {\ndata: }\n\n", "{\n}")}, ""},
		{"openai done", "data: {\"x\":1}\n\ndata: [DONE]\n\n", []ev{data("data: {\"x\":1}\n\n", `{"x":1}`), data("data: [DONE]\n\n", "[DONE]")}, ""},
		{
			"anthropic frame with padding",
			"event: ping\ndata: {\"type\": \"ping\"}   \n\n",
			[]ev{{Raw: "event: ping\ndata: {\"type\": \"ping\"}   \n\n", Name: "ping", HasName: true, Data: `{"type": "ping"}   `, HasData: true}},
			"",
		},
		{
			"data before event, last event wins",
			"data: x\nevent: a\nevent: b\n\n",
			[]ev{{Raw: "data: x\nevent: a\nevent: b\n\n", Name: "b", HasName: true, Data: "x", HasData: true}},
			"",
		},
		{"id", "id: 7\ndata: x\n\n", []ev{{Raw: "id: 7\ndata: x\n\n", ID: "7", HasID: true, Data: "x", HasData: true}}, ""},
		{"empty id", "id\n\n", []ev{{Raw: "id\n\n", ID: "", HasID: true}}, ""},
		{"id with NUL ignored", "id: a\x00b\n\n", []ev{{Raw: "id: a\x00b\n\n"}}, ""},
		{"keep-alive comment", ": keep-alive\n\n", []ev{{Raw: ": keep-alive\n\n", Comment: true}}, ""},
		{"comment inside event", ": c\ndata: x\n: d\n\n", []ev{data(": c\ndata: x\n: d\n\n", "x")}, ""},
		{"comment not data", ":data: x\n\n", []ev{{Raw: ":data: x\n\n", Comment: true}}, ""},
		{"unknown field", "retry: 10\nfoo: bar\n\n", []ev{{Raw: "retry: 10\nfoo: bar\n\n"}}, ""},
		{"field names are case-sensitive", "Data: x\n\n", []ev{{Raw: "Data: x\n\n"}}, ""},
		{"space before colon is part of name", "data : x\n\n", []ev{{Raw: "data : x\n\n"}}, ""},
		{"stray blank lines", "\n\ndata: a\n\n\n", []ev{{Raw: "\n", Comment: true}, {Raw: "\n", Comment: true}, data("data: a\n\n", "a"), {Raw: "\n", Comment: true}}, ""},
		{"bom at start", "\uFEFFdata: a\n\n", []ev{data("\uFEFFdata: a\n\n", "a")}, ""},
		{"bom only at start", "data: a\n\n\uFEFFdata: b\n\n", []ev{data("data: a\n\n", "a"), {Raw: "\uFEFFdata: b\n\n"}}, ""},
		{"incomplete event kept", "data: a\n\ndata: b\n", []ev{data("data: a\n\n", "a")}, "data: b\n"},
		{"incomplete line kept", "data: a\n\ndata: b", []ev{data("data: a\n\n", "a")}, "data: b"},
		{"utf-8 kept", "data: héllo ✓\n\n", []ev{data("data: héllo ✓\n\n", "héllo ✓")}, ""},
		{"empty input", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest := scanChunks(t, [][]byte{[]byte(tt.in)}, false)
			if !reflect.DeepEqual(got, tt.want) || rest != tt.rest {
				t.Fatalf("got %v rest %q\nwant %v rest %q", got, rest, tt.want, tt.rest)
			}
			ref, refRest := reference(tt.in, false)
			if !reflect.DeepEqual(got, ref) || rest != refRest {
				t.Fatalf("reference disagrees: %v rest %q", ref, refRest)
			}
			checkSplits(t, []byte(tt.in), got, rest)
		})
	}
}

func TestFinish(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []ev
		rest string
	}{
		{"trailing cr ends event", "data: a\r\r", []ev{{Raw: "data: a\r\r", Data: "a", HasData: true}}, ""},
		{"unterminated event is not dispatched", "data: a\n\ndata: b\n", []ev{{Raw: "data: a\n\n", Data: "a", HasData: true}}, "data: b\n"},
		{"partial line stays", "data: a", nil, "data: a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunks := range [][][]byte{{[]byte(tt.in)}, splitEvery([]byte(tt.in), 1)} {
				got, rest := scanChunks(t, chunks, true)
				if !reflect.DeepEqual(got, tt.want) || rest != tt.rest {
					t.Fatalf("got %v rest %q\nwant %v rest %q", got, rest, tt.want, tt.rest)
				}
			}
		})
	}
}

// TestEventsSurviveUntilNextCall checks the documented aliasing contract:
// an event's slices stay intact until the next Feed, even across compaction
// of the buffer by that Feed for later events.
func TestEventsSurviveUntilNextCall(t *testing.T) {
	var s Scanner
	s.Feed([]byte("data: first\n\ndata: sec"))
	e, ok := s.Next()
	if !ok || string(e.Data) != "first" {
		t.Fatalf("got %q, %v", e.Data, ok)
	}
	if _, ok := s.Next(); ok {
		t.Fatal("incomplete event returned")
	}
	if string(e.Data) != "first" || string(e.Raw) != "data: first\n\n" {
		t.Fatalf("event changed by a failed Next: %q", e.Raw)
	}
	s.Feed(bytes.Repeat([]byte("x"), 3*minBuf)) // forces compaction and growth
	s.Feed([]byte("ond\n\n"))
	e, ok = s.Next()
	if !ok || string(e.Data) != "sec"+strings.Repeat("x", 3*minBuf)+"ond" {
		t.Fatalf("event across compaction: len %d ok %v", len(e.Data), ok)
	}
}

func TestReset(t *testing.T) {
	s := Scanner{MaxEventSize: 100}
	s.Feed([]byte("data: a\n\ndata: b\r"))
	drain(t, &s)
	s.Reset()
	if len(s.Rest()) != 0 || s.MaxEventSize != 100 {
		t.Fatalf("after Reset: rest %q limit %d", s.Rest(), s.MaxEventSize)
	}
	s.Feed([]byte("\uFEFFdata: c\n\n"))
	got := drain(t, &s)
	if len(got) != 1 || got[0].Data != "c" { // BOM is stripped again for the new stream
		t.Fatalf("after Reset got %v", got)
	}
}

func TestMaxEventSize(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		limit      int
		wantEvents int
	}{
		{"within limit", "data: 12\n\ndata: 34\n\n", 10, 2},
		{"exactly at limit", "data: 123\n\n", 11, 1},
		{"complete event too large", "data: a\n\ndata: 123456789\n\n", 10, 1},
		{"incomplete event too large", "data: a\n\ndata: 123456789", 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunks := range [][][]byte{{[]byte(tt.in)}, splitEvery([]byte(tt.in), 1), splitEvery([]byte(tt.in), 4)} {
				s := Scanner{MaxEventSize: tt.limit}
				var n int
				for _, c := range chunks {
					s.Feed(c)
					n += len(drain(t, &s))
				}
				wantErr := strings.Contains(tt.name, "too large")
				if n != tt.wantEvents || errors.Is(s.Err(), ErrEventTooLarge) != wantErr {
					t.Fatalf("chunks %d: %d events, err %v", len(chunks), n, s.Err())
				}
				if wantErr {
					before := len(s.Rest())
					s.Feed([]byte("data: more\n\n"))
					if _, ok := s.Next(); ok || len(s.Rest()) != before {
						t.Fatal("scanner kept working after error")
					}
				}
			}
		})
	}
}

func splitEvery(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n:n])
		b = b[n:]
	}
	if len(b) > 0 {
		out = append(out, b)
	}
	return out
}

// checkSplits asserts that every way of cutting in into two pieces, a
// selection of three-piece cuts, and byte-by-byte feeding give want.
func checkSplits(t *testing.T, in []byte, want []ev, wantRest string) {
	t.Helper()
	var s Scanner // reused, as a per-stream scanner would be
	check := func(cuts ...int) {
		t.Helper()
		s.Reset()
		k, prev := 0, 0
		for _, c := range append(cuts, len(in)) {
			s.Feed(in[prev:c:c])
			prev = c
			for {
				e, ok := s.Next()
				if !ok {
					break
				}
				if k >= len(want) || !sameEvent(e, want[k]) {
					t.Fatalf("cuts %v: event %d is %v", cuts, k, copyEvent(e))
				}
				k++
			}
		}
		if k != len(want) || string(s.Rest()) != wantRest || s.Err() != nil {
			t.Fatalf("cuts %v: %d events, rest %q, err %v; want %d, rest %q", cuts, k, s.Rest(), s.Err(), len(want), wantRest)
		}
	}
	n := len(in)
	every := make([]int, 0, n)
	for i := 1; i < n; i++ {
		every = append(every, i)
	}
	check(every...) // byte by byte
	for i := 0; i <= n; i++ {
		check(i)
		for _, j := range []int{i + 1, i + 2, i + 3, (i + n) / 2, n - 1} {
			if j > i && j < n {
				check(i, j)
			}
		}
	}
}

// sameEvent compares without copying, so checkSplits stays fast.
func sameEvent(e Event, w ev) bool {
	return string(e.Raw) == w.Raw && string(e.Name) == w.Name && string(e.Data) == w.Data && string(e.ID) == w.ID &&
		(e.Name != nil) == w.HasName && (e.Data != nil) == w.HasData && (e.ID != nil) == w.HasID && e.IsComment() == w.Comment
}

func firstDiff(got, want []ev) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("event %d: got %v want %v", i, got[i], want[i])
		}
	}
	return ""
}

func rawConcat(evs []ev) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Raw)
	}
	return b.String()
}

func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("../../test/testdata/fixtures/*/*.sse")
	if err != nil || len(files) < 7 {
		t.Fatalf("fixtures: %v, %d files", err, len(files))
	}
	for _, file := range files {
		orig, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(filepath.Dir(file)) + "/" + filepath.Base(file)
		variants := map[string][]byte{
			"lf":   orig,
			"crlf": bytes.ReplaceAll(orig, []byte("\n"), []byte("\r\n")),
			"cr":   bytes.ReplaceAll(orig, []byte("\n"), []byte("\r")),
		}
		var lfEvents []ev
		for _, v := range []string{"lf", "crlf", "cr"} {
			in := variants[v]
			t.Run(name+"/"+v, func(t *testing.T) {
				want, wantRest := scanChunks(t, [][]byte{in}, true)
				ref, refRest := reference(string(in), true)
				if !reflect.DeepEqual(want, ref) || wantRest != refRest {
					t.Fatalf("reference disagrees: %s", firstDiff(want, ref))
				}
				if wantRest != "" || rawConcat(want) != string(in) {
					t.Fatalf("fixture not consumed exactly: rest %q", wantRest)
				}
				if v == "lf" {
					lfEvents = want
					checkFixtureShape(t, name, want)
				} else {
					// Only the line endings differ: same fields, same order.
					if len(want) != len(lfEvents) {
						t.Fatalf("%d events, lf variant has %d", len(want), len(lfEvents))
					}
					for i := range want {
						a, b := want[i], lfEvents[i]
						a.Raw, b.Raw = "", ""
						if a != b {
							t.Fatalf("event %d: %v vs lf %v", i, a, b)
						}
					}
				}
				if v != "cr" { // a CR-only stream keeps its last "\r" pending without Finish
					checkSplits(t, in, want, "")
				} else {
					got, rest := scanChunks(t, splitEvery(in, 1), true)
					if !reflect.DeepEqual(got, want) || rest != "" {
						t.Fatalf("byte by byte with Finish: %s", firstDiff(got, want))
					}
				}
			})
		}
	}
}

// checkFixtureShape asserts what the fixtures README promises about each
// provider's framing, so a scanner that returns plausible but wrong events
// fails here.
func checkFixtureShape(t *testing.T, name string, evs []ev) {
	t.Helper()
	if len(evs) < 3 {
		t.Fatalf("only %d events", len(evs))
	}
	for i, e := range evs {
		if !e.HasData || e.Comment {
			t.Fatalf("event %d has no data: %v", i, e)
		}
		if strings.HasPrefix(name, "anthropic/") || strings.HasPrefix(name, "openai/responses_") {
			// The JSON "type" always equals the event name (Anthropic
			// Messages and OpenAI Responses streams).
			if !e.HasName || !strings.Contains(e.Data, `"type":"`+e.Name+`"`) && !strings.Contains(e.Data, `"type": "`+e.Name+`"`) {
				t.Fatalf("event %d: name %q does not match data %q", i, e.Name, e.Data)
			}
			continue
		}
		if e.HasName {
			t.Fatalf("event %d: OpenAI-format stream with event name %q", i, e.Name)
		}
		last := i == len(evs)-1
		// A stream cut by an error event ends with it, not with [DONE].
		errorStream := strings.Contains(name, "_error")
		if last && errorStream {
			if !strings.HasPrefix(e.Data, `{"error"`) {
				t.Fatalf("error stream ends with %q", e.Data)
			}
			continue
		}
		if last != (e.Data == "[DONE]") {
			t.Fatalf("event %d of %d: data %q", i, len(evs), e.Data)
		}
		if !last && (!strings.HasPrefix(e.Data, "{") || !strings.HasSuffix(e.Data, "}")) {
			t.Fatalf("event %d: data is not one JSON object: %q", i, e.Data)
		}
	}
}

// TestLinearTime feeds long inputs one byte at a time and whole. A scanner
// that rescans the buffered line or event on every chunk, or searches to the
// far end of the buffer again for every line, does ~n²/2 work here (up to
// 10¹⁰ byte visits) and the test takes tens of seconds.
func TestLinearTime(t *testing.T) {
	const n = 1 << 18
	inputs := map[string][]byte{
		"one long line":           append(append([]byte("data: "), bytes.Repeat([]byte("x"), n)...), "\n\n"...),
		"cr lines, no lf":         append(bytes.Repeat([]byte("a\r"), n/2), "\rx"...),
		"lf lines, no cr":         append(bytes.Repeat([]byte("a\n"), n/2), "\nx"...),
		"lf lines, cr at the end": append(bytes.Repeat([]byte("a\n"), n/2), "b\r\rx"...),
		"long comment":            append(append([]byte(":"), bytes.Repeat([]byte("y"), n)...), "\r\n\r\n"...),
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			whole, _ := scanChunks(t, [][]byte{in}, false)
			var s Scanner
			var evs []ev
			for i := range in {
				s.Feed(in[i : i+1])
				evs = append(evs, drain(t, &s)...)
			}
			if len(evs) != 1 || !reflect.DeepEqual(evs, whole) || !strings.HasPrefix(string(in), evs[0].Raw) {
				t.Fatalf("got %d events, %d fed whole", len(evs), len(whole))
			}
		})
	}
}

// openAIStream is a realistic Chat Completions stream: the fixture's
// content chunks repeated, ending with the usage chunk and [DONE].
func openAIStream(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("../../test/testdata/fixtures/openai/chat_stream.sse")
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Repeat(b, 16)
}

func TestSteadyStateAllocs(t *testing.T) {
	stream := openAIStream(t)
	stream = append(stream, "data: a\ndata: b\n\n"...) // exercise the multi-line scratch too
	for _, size := range []int{7, 1024} {
		chunks := splitEvery(stream, size)
		var s Scanner
		run := func() {
			s.Reset()
			for _, c := range chunks {
				s.Feed(c)
				for {
					if _, ok := s.Next(); !ok {
						break
					}
				}
			}
		}
		run() // warm the buffers
		if a := testing.AllocsPerRun(20, run); a != 0 {
			t.Errorf("chunk size %d: %v allocs per stream, want 0", size, a)
		}
	}
}

func BenchmarkScanner(b *testing.B) {
	stream := openAIStream(b)
	for _, size := range []int{1024, 7} {
		chunks := splitEvery(stream, size)
		b.Run(fmt.Sprintf("chunk=%d", size), func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			var s Scanner
			var events int
			for b.Loop() {
				s.Reset()
				for _, c := range chunks {
					s.Feed(c)
					for {
						if _, ok := s.Next(); !ok {
							break
						}
						events++
					}
				}
			}
			if events == 0 {
				b.Fatal("no events")
			}
		})
	}
}

func FuzzScanner(f *testing.F) {
	f.Add([]byte("data: a\n\ndata: b\r\n\r\nevent: e\rdata: c\r\r: k\n\n"), []byte{1, 2, 3}, false)
	f.Add([]byte("data: a\r"), []byte{7}, true)
	f.Add([]byte("\uFEFFdata:x\ndata\nid: 1\x00\n\n\n"), []byte{0, 5}, false)
	f.Add([]byte("data: [DONE]\n\n"), []byte{}, true)
	if b, err := os.ReadFile("../../test/testdata/fixtures/anthropic/messages_stream.sse"); err == nil {
		f.Add(b, []byte{13, 200, 1}, true)
	}
	f.Fuzz(func(t *testing.T, in []byte, cuts []byte, finish bool) {
		// cuts gives the chunk lengths, cycling; a zero feeds an empty chunk.
		var chunks [][]byte
		rest := in
		for i := 0; len(rest) > 0 && len(cuts) > 0 && i < 2*len(in)+8; i++ {
			n := min(int(cuts[i%len(cuts)]), len(rest))
			chunks = append(chunks, rest[:n:n])
			rest = rest[n:]
		}
		chunks = append(chunks, rest)
		whole, wholeRest := scanChunks(t, [][]byte{in}, finish)
		split, splitRest := scanChunks(t, chunks, finish)
		if !reflect.DeepEqual(whole, split) || wholeRest != splitRest {
			t.Fatalf("split feeding differs: %s rest %q vs %q", firstDiff(split, whole), splitRest, wholeRest)
		}
		if rawConcat(split)+splitRest != string(in) {
			t.Fatal("Raw + Rest != input")
		}
		ref, refRest := reference(string(in), finish)
		if !reflect.DeepEqual(whole, ref) || wholeRest != refRest {
			t.Fatalf("reference disagrees: %s rest %q vs %q", firstDiff(whole, ref), wholeRest, refRest)
		}
	})
}

// TestFinderResumes pins the finder's resumption rule that keeps whole-buffer
// searches linear: bytes before upto were already searched and are never
// searched again, and a cached hit is reused while it is still ahead.
func TestFinderResumes(t *testing.T) {
	buf := []byte("a\nab\n")
	f := finder{at: 3, upto: 3} // [0,3) already searched, nothing found
	if got := f.next(buf, 0, '\n'); got != 4 {
		t.Fatalf("search restarted before upto: got %d, want 4", got)
	}
	if got := f.next(buf, 2, '\n'); got != 4 || f.upto != 5 {
		t.Fatalf("cached hit not reused: got %d upto %d", got, f.upto)
	}
	if got := f.next(buf, 5, '\n'); got != -1 || f.upto != 5 {
		t.Fatalf("past the end: got %d upto %d", got, f.upto)
	}
	buf = append(buf, "x\n"...)
	if got := f.next(buf, 5, '\n'); got != 6 {
		t.Fatalf("after append: got %d, want 6", got)
	}
}
