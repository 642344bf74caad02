package detect

import (
	"slices"
	"strings"
	"testing"
)

// The digit finders before they skipped to digits with nextDigit, kept
// verbatim as the oracle for FuzzFindSameAsOld.

func findCardsOld(dst []Span, s string) []Span {
	var groups []group // a sliding window over the current run's groups
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		start := i
		// A run glued to a word, a '+' or a decimal point may not start (end)
		// a card; its later (earlier) groups still may.
		startOK := !wordBefore(s, start) && !(start > 0 && s[start-1] == '+') && !decimalBefore(s, start)
		var sep byte
		more := true
		next := func() { // reads the group at i, and the separator after it
			g := group{start: i}
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			g.end = i
			groups = append(groups, g)
			if i+1 < len(s) && (s[i] == ' ' || s[i] == '-') && (sep == 0 || sep == s[i]) && isDigit(s[i+1]) {
				sep = s[i]
				i++
			} else {
				more = false
			}
		}
		groups = groups[:0]
		next()
		for gi := 0; gi < len(groups) || more; {
			for more && len(groups)-gi <= cardLookahead {
				next()
			}
			if gi >= len(groups) {
				break
			}
			limit := len(groups)
			if !more && (wordAfter(s, i) || decimalAfter(s, i)) {
				limit-- // the run's last group may not end a card
			}
			best, digits := -1, 0
			if gi > 0 || startOK || groups[0].start != start {
				for gj := gi; gj < limit; gj++ {
					digits += groups[gj].end - groups[gj].start
					if digits > maxCardDigits {
						break
					}
					if digits >= minCardDigits && cardNumber(s[groups[gi].start:groups[gj].end]) {
						best = gj
					}
				}
			}
			if best >= 0 {
				dst = append(dst, Span{Start: groups[gi].start, End: groups[best].end, Kind: Card})
				gi = best + 1
			} else {
				gi++
			}
			if gi > 4*cardLookahead { // keep the window small on long runs
				groups = groups[:copy(groups, groups[gi:])]
				gi = 0
			}
		}
	}
	return dst
}

func findIBANsOld(dst []Span, s string) []Span {
	var buf [maxIBAN]byte
	for i := 0; i+4 <= len(s); i++ {
		if !isUpper(s[i]) || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) || wordBefore(s, i) {
			continue
		}
		want := ibanLength(s[i], s[i+1])
		if want == 0 {
			continue
		}
		n, j := 0, i
		for n < want && j < len(s) {
			c := s[j]
			if c == ' ' && n%4 == 0 && j+1 < len(s) && s[j+1] != ' ' {
				j++
				continue
			}
			if !isUpper(c) && !isDigit(c) {
				break
			}
			buf[n] = c
			n++
			j++
		}
		if n != want || wordAfter(s, j) || !mod97(buf[:n]) {
			continue
		}
		dst = append(dst, Span{Start: i, End: j, Kind: IBAN})
		i = j - 1
	}
	return dst
}

func findSSNsOld(dst []Span, s string) []Span {
	for i := 0; i+11 <= len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		sep := s[i+3]
		if (sep != '-' && sep != ' ') || s[i+6] != sep || !allDigits(s[i:i+3]) || !allDigits(s[i+4:i+6]) || !allDigits(s[i+7:i+11]) {
			continue
		}
		if wordBefore(s, i) || (i >= 2 && (s[i-1] == '-' || s[i-1] == '.') && isDigit(s[i-2])) {
			continue
		}
		end := i + 11
		if wordAfter(s, end) || (end+1 < len(s) && (s[end] == '-' || s[end] == '.') && isDigit(s[end+1])) {
			continue
		}
		if !validSSN(s[i:i+3], s[i+4:i+6], s[i+7:i+11]) {
			continue
		}
		dst = append(dst, Span{Start: i, End: end, Kind: SSN})
		i = end - 1
	}
	return dst
}

func findIPv4Old(dst []Span, s string) []Span {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		if !wordBefore(s, i) && !(i >= 2 && s[i-1] == '.' && isDigit(s[i-2])) {
			if end, ok := parseIPv4(s, i); ok && !wordAfter(s, end) && !(end+1 < len(s) && s[end] == '.' && isDigit(s[end+1])) {
				dst = append(dst, Span{Start: i, End: end, Kind: IPv4})
				i = end - 1
				continue
			}
		}
		for i+1 < len(s) && isDigit(s[i+1]) {
			i++
		}
	}
	return dst
}

// findOld is Find with the old digit finders.
func findOld(dst []Span, s string, kinds Kinds) []Span {
	for _, f := range []struct {
		k    Kind
		find func([]Span, string) []Span
	}{{Email, findEmails}, {Phone, findPhones}, {Card, findCardsOld}, {IBAN, findIBANsOld}, {SSN, findSSNsOld}, {IPv4, findIPv4Old}, {IPv6, findIPv6}} {
		if kinds.Has(f.k) {
			dst = f.find(dst, s)
		}
	}
	if kinds&Secrets != 0 {
		dst = findSecrets(dst, s, kinds)
	}
	return dst
}

func TestNextDigit(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			b := []byte(strings.Repeat("x", 17))
			b[pos] = byte(c)
			s := string(b)
			want := strings.IndexAny(s, "0123456789")
			if want < 0 {
				want = len(s)
			}
			for from := range want + 1 {
				if got := nextDigit(s, from); got != want {
					t.Fatalf("nextDigit(%q, %d) = %d, want %d", s, from, got, want)
				}
			}
		}
	}
}

// FuzzFindSameAsOld: Find returns exactly the spans of the old finders, in
// the same order.
func FuzzFindSameAsOld(f *testing.F) {
	fuzzSeeds(f)
	for _, s := range []string{"IBAN DE89 3704 0044 0532 0130 00.", "ssn 078-05-1120, 123 45 6789", "1.2.3.4.5 10.20.30.40",
		"\xff1234567890123456\xfe", "GB82WEST12345698765432", "4111-1111-1111-1111 5500 0000 0000 0004"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		all := PII | Secrets
		if got, want := Find(nil, s, all), findOld(nil, s, all); !slices.Equal(got, want) {
			t.Fatalf("Find(%q)\n got %+v\nwant %+v", s, got, want)
		}
	})
}
