package guardrails

import (
	"testing"
	"unicode/utf8"
)

// asciiBytesOld is how promptSize counted ASCII bytes before runesAndASCII:
// with utf8.RuneCountInString, the oracle for FuzzRunesAndASCIISameAsOld.
func asciiBytesOld(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < utf8.RuneSelf {
			n++
		}
	}
	return n
}

func FuzzRunesAndASCIISameAsOld(f *testing.F) {
	for _, s := range []string{"", "a", "1234567", "12345678", "123456789", "Zürich, São Paulo and 東京", "\xff\x80\x7f\x00", "é", "abcdefg\xe6\x9d\xb1abcdefgh\xe6\x9dabcdefgh"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		runes, ascii := runesAndASCII(s)
		if want, wantASCII := utf8.RuneCountInString(s), asciiBytesOld(s); runes != want || ascii != wantASCII {
			t.Fatalf("runesAndASCII(%q) = %d, %d; want %d, %d", s, runes, ascii, want, wantASCII)
		}
	})
}
