package jsonscan

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// firstNotPlain is notPlain's specification: the index of the first byte of
// b (8 bytes) that is not plain, or 8.
func firstNotPlain(b []byte) int {
	for i, c := range b {
		if !plain[c] {
			return i
		}
	}
	return 8
}

func checkWord(t *testing.T, b []byte) {
	t.Helper()
	got := bits.TrailingZeros64(notPlain(binary.LittleEndian.Uint64(b))) >> 3
	if want := firstNotPlain(b); got != want {
		t.Fatalf("notPlain(% x): first at %d, want %d", b, got, want)
	}
}

func TestNotPlain(t *testing.T) {
	// Every byte value at every position, after plain bytes and before
	// each kind of byte (borrows carry upwards only).
	for _, fill := range []byte{'a', ' ', '~', 0x7f, '"', '\\', 0x00, 0x1f, 0x80, 0xff} {
		for pos := range 8 {
			for c := range 256 {
				b := []byte("abcdefgh")
				b[pos] = byte(c)
				for j := pos + 1; j < 8; j++ {
					b[j] = fill
				}
				checkWord(t, b)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	picks := []byte{'"', '\\', 0x00, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff, 'x'}
	b := make([]byte, 8)
	for range 200000 {
		for j := range b {
			if r.IntN(2) == 0 {
				b[j] = picks[r.IntN(len(picks))]
			} else {
				b[j] = byte(r.Uint32())
			}
		}
		checkWord(t, b)
	}
}

// TestUTF8Len compares utf8Len with utf8.DecodeRune for every lead byte
// and second byte, boundary values of the later bytes, and every length.
func TestUTF8Len(t *testing.T) {
	later := []byte{0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff}
	for c := 0x80; c < 0x100; c++ {
		for b1 := range 256 {
			for _, b2 := range later {
				for _, b3 := range later {
					full := []byte{byte(c), byte(b1), b2, b3}
					for n := 1; n <= 4; n++ {
						doc := full[:n]
						r, w := utf8.DecodeRune(doc)
						want := w
						if r == utf8.RuneError && w == 1 {
							want = 0
						}
						if got := utf8Len(doc, 0); got != want {
							t.Fatalf("utf8Len(% x) = %d, want %d", doc, got, want)
						}
					}
				}
			}
		}
	}
}

// sameAsOld fails when the scanner and the implementation it replaced
// (oldscan_test.go) disagree on doc: the error, kind, offset, path and
// reason, and the members.
func sameAsOld(t *testing.T, doc []byte) {
	t.Helper()
	if got, want := Validate(doc), oldValidate(doc); !reflect.DeepEqual(got, want) {
		t.Fatalf("Validate(%q) = %v, old %v", doc, got, want)
	}
	gm, gerr := Object(doc, nil)
	wm, werr := oldObject(doc, nil)
	if !reflect.DeepEqual(gerr, werr) || !reflect.DeepEqual(gm, wm) {
		t.Fatalf("Object(%q) = %v, %v; old %v, %v", doc, gm, gerr, wm, werr)
	}
}

// diffSeeds put special bytes at every offset within and across the
// scanner's 8-byte words.
func diffSeeds() []string {
	seeds := []string{
		`{"model":"m","messages":[{"role":"user","content":"hi","content":"x"}]}`,
		`{"c\u006fntent":1,"content":2}`, `{"a":"\ud800"}`, `{"a":"\udc00\ud800"}`, `{"a":"\ud83d\ude00"}`,
		"{\"a\":\"\xff\"}", "[\"\xed\xa0\x80\"]", `[1e999, -0.0, 123456789012345678901234567890]`,
		"[\"caf\u00e9 \u4e16\u754c \U0001F600\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xe0\x80\xaf\"]", "[\"\xc0\xaf\"]",
		"[\"\xef\xbf\xbd\"]", "[\"\xe4\xb8\"]", "[\"\xe4\xb8", "[\"abc\xe4\xb8\x96\xe4\xb8\x96\xe4\"]",
		" {\n\t\"a\" :\r\n [ 1 , 2.5e+3 , -0.1E-2 , true , false , null ] \n} ", `[01]`, `[1.]`, `[-]`, `[1e]`,
		strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40), manyKeysDoc(30, "k29"),
		deepKeysDoc(20, ""), deepKeysDoc(20, `"z":1,"z":2`), manyKeysDoc(40, "k39"),
	}
	for _, special := range []string{`"`, `\"`, `\n`, `\u00e9`, `\ud83d\ude00`, "\xc3\xa9", "\xe2\x80\x94", "\xf0\x9f\x98\x80", "\x01", "\xff", `\`, `\x`} {
		for pad := range 18 {
			seeds = append(seeds, `{"k":"`+strings.Repeat("a", pad)+special+strings.Repeat("b", 17-pad)+`"}`)
			seeds = append(seeds, `["`+strings.Repeat("a", pad)+special)
		}
	}
	return seeds
}

func TestSameAsOld(t *testing.T) {
	for _, s := range diffSeeds() {
		sameAsOld(t, []byte(s))
	}
	sameAsOld(t, benchDoc())
}

// FuzzDifferential checks the scanner against the implementation it
// replaced, kept in oldscan_test.go.
func FuzzDifferential(f *testing.F) {
	for _, s := range diffSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		sameAsOld(t, doc)
	})
}
