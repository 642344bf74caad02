package guardrails

import (
	"testing"
	"unicode/utf8"
)

// asciiBytesOld is asciiBytes before it counted eight bytes at a time: the
// oracle for FuzzASCIIBytesSameAsOld.
func asciiBytesOld(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < utf8.RuneSelf {
			n++
		}
	}
	return n
}

func FuzzASCIIBytesSameAsOld(f *testing.F) {
	for _, s := range []string{"", "a", "1234567", "12345678", "123456789", "Zürich, São Paulo and 東京", "\xff\x80\x7f\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := asciiBytes(s), asciiBytesOld(s); got != want {
			t.Fatalf("asciiBytes(%q) = %d, want %d", s, got, want)
		}
	})
}
