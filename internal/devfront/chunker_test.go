package devfront

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"
)

func cutAll(c Chunker, reads [][]byte) [][]byte {
	ct := cutter{c: c}
	var out [][]byte
	for _, r := range reads {
		out = append(out, ct.cut(r)...)
	}
	return out
}

func boundaries(chunks [][]byte) map[int]bool {
	m := map[int]bool{}
	off := 0
	for _, c := range chunks {
		off += len(c)
		m[off] = true
	}
	return m
}

func TestChunkers(t *testing.T) {
	body := []byte("data: {\"x\":\"é\"}\r\n\r\ndata: [DONE]\r\n\r\n")
	if got := cutAll(Fixed(4), [][]byte{body}); len(got) != (len(body)+3)/4 || len(got[0]) != 4 {
		t.Fatalf("Fixed(4): %q", got)
	}
	// Cuts are by stream offset: a read boundary adds a cut but does not shift the others.
	got := cutAll(Fixed(4), [][]byte{body[:6], body[6:]})
	if want := []int{4, 6, 8, 12}; !slices.Equal(slices.Sorted(maps.Keys(boundaries(got)))[:4], want) {
		t.Fatalf("Fixed(4) over reads of 6+rest: boundaries %v", slices.Sorted(maps.Keys(boundaries(got))))
	}
	a := cutAll(Random(7, 5), [][]byte{body})
	b := cutAll(Random(7, 5), [][]byte{body})
	if !slices.EqualFunc(a, b, bytes.Equal) {
		t.Fatal("Random is not deterministic for a seed")
	}
	if c := cutAll(Random(8, 5), [][]byte{body}); slices.EqualFunc(a, c, bytes.Equal) {
		t.Fatal("different seeds cut the same way")
	}
	for _, ch := range a {
		if len(ch) < 1 || len(ch) > 5 {
			t.Fatalf("Random(·, 5) chunk of %d bytes", len(ch))
		}
	}
	if got := cutAll(nil, [][]byte{body}); len(got) != 1 {
		t.Fatalf("nil chunker: %d chunks", len(got))
	}
	if !EmptyEnd(Fixed(3)).EmptyEnd() || Fixed(3).EmptyEnd() || EmptyEnd(nil).ChunkLen(0) != 0 {
		t.Fatal("EmptyEnd")
	}
}

// FuzzCutter: any chunker over any read pattern preserves the bytes, respects the chunk
// size, and cuts exactly at the union of read boundaries and its own offsets.
func FuzzCutter(f *testing.F) {
	f.Add([]byte("data: hello\r\n\r\n"), int64(1), uint8(3), []byte{2, 5})
	f.Add([]byte("é€😀"), int64(9), uint8(1), []byte{1})
	f.Add([]byte{}, int64(0), uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, body []byte, seed int64, maxLen uint8, splits []byte) {
		c := Random(seed, int(maxLen))
		whole := cutAll(c, [][]byte{body})
		var reads [][]byte
		rest := body
		for _, s := range splits {
			n := int(s) % (len(rest) + 1)
			reads = append(reads, rest[:n])
			rest = rest[n:]
		}
		reads = append(reads, rest)
		got := cutAll(c, reads)
		if !bytes.Equal(bytes.Join(got, nil), body) {
			t.Fatal("bytes changed")
		}
		want := boundaries(whole)
		off := 0
		for _, r := range reads {
			off += len(r)
			if len(r) > 0 {
				want[off] = true
			}
		}
		if gb := boundaries(got); !maps.Equal(gb, want) {
			t.Fatalf("boundaries %v, want %v", slices.Sorted(maps.Keys(gb)), slices.Sorted(maps.Keys(want)))
		}
		for _, ch := range got {
			if len(ch) == 0 || len(ch) > max(int(maxLen), 1) {
				t.Fatalf("chunk of %d bytes", len(ch))
			}
		}
	})
}

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1//chat/./completions":  "/v1/chat/completions",
		"/a/b/../c?x=/../y":        "/a/c?x=/../y",
		"/../../x":                 "/x",
		"/a/.":                     "/a/",
		"/":                        "/",
		"/v1/models":               "/v1/models",
		"//x//y/":                  "/x/y/",
		"/a/b/..":                  "/a/",
		"/a/%2e%2e/b":              "/a/%2e%2e/b", // percent-decoding is not emulated
		"/chat/completions?a//b=1": "/chat/completions?a//b=1",
	} {
		if got, ok := normalizePath(in, true, true); !ok || got != want {
			t.Errorf("normalizePath(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := normalizePath("*", true, true); ok {
		t.Error("a non-absolute path must be rejected")
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/v1//chat/./completions", "/a/../../b?c", "/", "//", "/%2F..", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := normalizePath(in, true, true)
		if !ok {
			return
		}
		p, _, _ := strings.Cut(got, "?")
		if p == "" || p[0] != '/' || bytes.Contains([]byte(p), []byte("//")) {
			t.Fatalf("normalizePath(%q) = %q", in, got)
		}
		for _, seg := range bytes.Split([]byte(p), []byte("/")) {
			if string(seg) == "." || string(seg) == ".." {
				t.Fatalf("normalizePath(%q) = %q keeps a dot segment", in, got)
			}
		}
		if again, _ := normalizePath(got, true, true); again != got {
			t.Fatalf("not idempotent: %q → %q → %q", in, got, again)
		}
	})
}
