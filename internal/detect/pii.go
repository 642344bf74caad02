package detect

import (
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Emails: an '@' with a local part before it and a dotted domain after it.
// Each byte is examined at most twice: once by the scan left from the next
// '@' and once by the scan right from the previous one, so the detector is
// linear however many '@' the text holds.

func isLocalByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isLetterOrDigit(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func findEmails(dst []Span, s string) []Span {
	from := 0
	for from < len(s) {
		k := strings.IndexByte(s[from:], '@')
		if k < 0 {
			break
		}
		at := from + k
		start := at
		for start > from {
			if c := s[start-1]; c < utf8.RuneSelf {
				if !isLocalByte(c) {
					break
				}
				start--
				continue
			}
			r, n := utf8.DecodeLastRuneInString(s[from:start])
			if !isLetterOrDigit(r) {
				break
			}
			start -= n
		}
		for start < at && s[start] == '.' {
			start++ // sentence punctuation, not part of the address
		}
		end, ok := scanDomain(s, at+1)
		if ok && start < at && at-start <= 64 {
			dst = append(dst, Span{Start: start, End: end, Kind: Email})
			from = end
		} else {
			from = at + 1
		}
	}
	return dst
}

// scanDomain reads a domain starting at i and returns its end. The domain
// needs at least two labels of 1–63 bytes, none starting or ending with '-',
// and an alphabetic top-level label of two or more letters (or an "xn--" one).
func scanDomain(s string, i int) (int, bool) {
	j := i
	for j < len(s) {
		if c := s[j]; c < utf8.RuneSelf {
			if isAlnum(c) || c == '-' || c == '.' {
				j++
				continue
			}
			break
		}
		r, n := utf8.DecodeRuneInString(s[j:])
		if !isLetterOrDigit(r) {
			break
		}
		j += n
	}
	for j > i && (s[j-1] == '.' || s[j-1] == '-') {
		j--
	}
	d := s[i:j]
	if len(d) == 0 || len(d) > 253 {
		return 0, false
	}
	labels := 0
	for rest := d; ; {
		label, tail, more := strings.Cut(rest, ".")
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return 0, false
		}
		labels++
		if !more {
			if labels < 2 || !validTLD(label) {
				return 0, false
			}
			return j, true
		}
		rest = tail
	}
}

func validTLD(l string) bool {
	if strings.HasPrefix(l, "xn--") {
		return len(l) > 4
	}
	n := 0
	for _, r := range l {
		if !unicode.IsLetter(r) {
			return false
		}
		n++
	}
	return n >= 2
}

// Phones: international numbers only, written with a leading '+': E.164
// ("+14155552671") and the usual grouped forms ("+1 (415) 555-2671",
// "+44 20 7946 0958", "+33 1 42 68 53 00"). Requiring the '+' keeps dates,
// versions and ids out: "2024-01-15" or "1.2.3.4" can never match.

const (
	minPhoneDigits = 8  // shortest international numbers in use, with country code
	maxPhoneDigits = 15 // E.164
)

func isPhoneSep(c byte) bool { return c == ' ' || c == '-' || c == '.' }

func findPhones(dst []Span, s string) []Span {
	from := 0
	for from < len(s) {
		k := strings.IndexByte(s[from:], '+')
		if k < 0 {
			break
		}
		p := from + k
		from = p + 1
		if wordBefore(s, p) || (p > 0 && s[p-1] == '+') {
			continue
		}
		if end, ok := scanPhone(s, p+1); ok {
			dst = append(dst, Span{Start: p, End: end, Kind: Phone})
			from = end
		}
	}
	return dst
}

// scanPhone reads digit groups after the '+': groups are separated by one of
// " -." or wrapped in parentheses. It needs 8–15 digits in all, a country code
// not starting with 0, and at most two single-digit groups (so "+1.2.3.4.5.6.7.8"
// is not a phone).
func scanPhone(s string, i int) (int, bool) {
	total, groups, singles, end := 0, 0, 0, -1
	for i < len(s) {
		j := i
		paren := s[j] == '('
		if paren {
			j++
		}
		d := j
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		n := j - d
		if n == 0 {
			break
		}
		if paren {
			if j >= len(s) || s[j] != ')' {
				break
			}
			j++
		}
		if groups == 0 && s[d] == '0' {
			return 0, false
		}
		total += n
		groups++
		if n == 1 {
			singles++
		}
		if total > maxPhoneDigits {
			return 0, false
		}
		end = j
		switch {
		case j < len(s) && isPhoneSep(s[j]):
			i = j + 1
		case j < len(s) && (s[j] == '(' || (paren && isDigit(s[j]))):
			i = j
		default:
			i = len(s)
		}
	}
	if end < 0 || total < minPhoneDigits || singles > 2 || wordAfter(s, end) {
		return 0, false
	}
	return end, true
}

// Cards: 13–19 digits, optionally grouped with single spaces or dashes (one
// kind of separator per number), first digit 2–6 (Mastercard 2/5, Amex, Diners
// and JCB 3, Visa 4, Discover, Maestro and UnionPay 6), Luhn-valid. A run of
// grouped digits longer than a card is split at group boundaries, so a list
// of numbers separated by single spaces is still found.

const (
	minCardDigits = 13
	maxCardDigits = 19
)

type group struct{ start, end int }

// cardLookahead is how many digit groups a card can span (each has a digit).
const cardLookahead = maxCardDigits

func findCards(dst []Span, s string) []Span {
	var groups []group // a sliding window over the current run's groups
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i = nextDigit(s, i)
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

// decimalBefore and decimalAfter spot digits that belong to a decimal number
// ("3.14159…"), which are never card numbers.
func decimalBefore(s string, i int) bool {
	return i >= 2 && (s[i-1] == '.' || s[i-1] == ',') && isDigit(s[i-2])
}

func decimalAfter(s string, i int) bool {
	return i+1 < len(s) && (s[i] == '.' || s[i] == ',') && isDigit(s[i+1])
}

func cardNumber(s string) bool {
	return s[0] >= '2' && s[0] <= '6' && luhn(s)
}

// luhn reports whether the digits of s (other bytes are skipped) pass the
// Luhn check.
func luhn(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// IBANs: a country code with a known IBAN length, two check digits and the
// BBAN, written solid or in groups of four separated by single spaces;
// verified with the ISO 7064 mod-97-10 checksum.

func findIBANs(dst []Span, s string) []Span {
	var buf [maxIBAN]byte
	for i := 0; i+4 <= len(s); i++ {
		if !isDigit(s[i+2]) {
			i = nextDigit(s, i+2) - 3
			continue
		}
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

// mod97 checks an IBAN (upper-case letters and digits): moved the first four
// characters to the end, read as a number with A=10 … Z=35, it is 1 mod 97.
func mod97(iban []byte) bool {
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A'+10)) % 97
		}
	}
	for _, c := range iban[4:] {
		add(c)
	}
	for _, c := range iban[:4] {
		add(c)
	}
	return r == 1
}

const maxIBAN = 34

// ibanLengths is the IBAN length per country in the SWIFT IBAN registry.
var ibanLengths = map[[2]byte]uint8{
	{'A', 'D'}: 24, {'A', 'E'}: 23, {'A', 'L'}: 28, {'A', 'T'}: 20, {'A', 'Z'}: 28,
	{'B', 'A'}: 20, {'B', 'E'}: 16, {'B', 'G'}: 22, {'B', 'H'}: 22, {'B', 'I'}: 27,
	{'B', 'R'}: 29, {'B', 'Y'}: 28, {'C', 'H'}: 21, {'C', 'R'}: 22, {'C', 'Y'}: 28,
	{'C', 'Z'}: 24, {'D', 'E'}: 22, {'D', 'J'}: 27, {'D', 'K'}: 18, {'D', 'O'}: 28,
	{'E', 'E'}: 20, {'E', 'G'}: 29, {'E', 'S'}: 24, {'F', 'I'}: 18, {'F', 'K'}: 18,
	{'F', 'O'}: 18, {'F', 'R'}: 27, {'G', 'B'}: 22, {'G', 'E'}: 22, {'G', 'I'}: 23,
	{'G', 'L'}: 18, {'G', 'R'}: 27, {'G', 'T'}: 28, {'H', 'N'}: 28, {'H', 'R'}: 21,
	{'H', 'U'}: 28, {'I', 'E'}: 22, {'I', 'L'}: 23, {'I', 'Q'}: 23, {'I', 'S'}: 26,
	{'I', 'T'}: 27, {'J', 'O'}: 30, {'K', 'W'}: 30, {'K', 'Z'}: 20, {'L', 'B'}: 28,
	{'L', 'C'}: 32, {'L', 'I'}: 21, {'L', 'T'}: 20, {'L', 'U'}: 20, {'L', 'V'}: 21,
	{'L', 'Y'}: 25, {'M', 'C'}: 27, {'M', 'D'}: 24, {'M', 'E'}: 22, {'M', 'K'}: 19,
	{'M', 'N'}: 20, {'M', 'R'}: 27, {'M', 'T'}: 31, {'M', 'U'}: 30, {'N', 'I'}: 28,
	{'N', 'L'}: 18, {'N', 'O'}: 15, {'O', 'M'}: 23, {'P', 'K'}: 24, {'P', 'L'}: 28,
	{'P', 'S'}: 29, {'P', 'T'}: 25, {'Q', 'A'}: 29, {'R', 'O'}: 24, {'R', 'S'}: 22,
	{'R', 'U'}: 33, {'S', 'A'}: 24, {'S', 'C'}: 31, {'S', 'D'}: 18, {'S', 'E'}: 24,
	{'S', 'I'}: 19, {'S', 'K'}: 24, {'S', 'M'}: 27, {'S', 'O'}: 23, {'S', 'T'}: 25,
	{'S', 'V'}: 28, {'T', 'L'}: 23, {'T', 'N'}: 24, {'T', 'R'}: 26, {'U', 'A'}: 29,
	{'V', 'A'}: 22, {'V', 'G'}: 24, {'X', 'K'}: 20, {'Y', 'E'}: 30,
}

func ibanLength(a, b byte) int { return int(ibanLengths[[2]byte{a, b}]) }

// SSNs: "AAA-GG-SSSS" (or with spaces) where the area is not 000, 666 or
// 900–999, the group is not 00 and the serial is not 0000. Nine undelimited
// digits are not matched: too many other numbers look like that.

func findSSNs(dst []Span, s string) []Span {
	for i := 0; i+11 <= len(s); i++ {
		if !isDigit(s[i]) {
			i = nextDigit(s, i) - 1
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

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func validSSN(area, group, serial string) bool {
	return area != "000" && area != "666" && area[0] != '9' && group != "00" && serial != "0000"
}

// IPv4: dotted quads of decimal octets 0–255 without leading zeros, not part
// of a longer dotted number ("1.2.3.4.5") or word.

func findIPv4(dst []Span, s string) []Span {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			i = nextDigit(s, i) - 1
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

func parseIPv4(s string, i int) (int, bool) {
	for octet := range 4 {
		if octet > 0 {
			if i >= len(s) || s[i] != '.' {
				return 0, false
			}
			i++
		}
		j, v := i, 0
		for j < len(s) && isDigit(s[j]) && j-i < 4 {
			v = v*10 + int(s[j]-'0')
			j++
		}
		n := j - i
		if n == 0 || n > 3 || v > 255 || (n > 1 && s[i] == '0') {
			return 0, false
		}
		i = j
	}
	return i, true
}

// IPv6: runs of hex digits, ':' and '.' holding at least two colons, not
// glued to a word, that net/netip accepts as an IPv6 address ("::" alone,
// the unspecified address, is left alone: it is mostly C++ or Rust syntax).

func isV6Byte(c byte) bool { return isHex(c) || c == ':' || c == '.' }

const maxIPv6Text = 45 // "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"

func findIPv6(dst []Span, s string) []Span {
	from := 0
	for from < len(s) {
		k := strings.IndexByte(s[from:], ':')
		if k < 0 {
			break
		}
		a, b := from+k, from+k+1
		for a > from && isV6Byte(s[a-1]) {
			a--
		}
		for b < len(s) && isV6Byte(s[b]) {
			b++
		}
		from = b
		for b > a && s[b-1] == '.' {
			b--
		}
		for a < b && s[a] == '.' {
			a++
		}
		if b-a > maxIPv6Text || strings.Count(s[a:b], ":") < 2 || wordBefore(s, a) || wordAfter(s, b) {
			continue
		}
		addr, err := netip.ParseAddr(s[a:b])
		if err != nil && b-a > 2 && s[b-1] == ':' && s[b-2] != ':' {
			b-- // "…::1:" ending a clause
			addr, err = netip.ParseAddr(s[a:b])
		}
		if err != nil || !addr.Is6() || addr.IsUnspecified() {
			continue
		}
		dst = append(dst, Span{Start: a, End: b, Kind: IPv6})
	}
	return dst
}
