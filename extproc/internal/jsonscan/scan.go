package jsonscan

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// manyKeys is the number of keys from which an object's keys are also kept
// in a map: below it a linear comparison is cheaper and allocates nothing.
const manyKeys = 16

// frame is one open array or object.
type frame struct {
	array  bool
	keyEsc bool // next to array: the two share a word
	index  int  // array: the current element
	// object: the current key, as written (keyEsc: it has escapes)
	keyStart, keyEnd int
	keysBase         int // this object's keys are s.key(keysBase) on
	decBase          int // and their decoded forms s.dec[decBase:]
	seen             map[string]struct{}
}

// keyRef is a key seen in an open object: doc[start:end] when written
// without escapes, else its decoded form s.dec[start:end].
type keyRef struct {
	start, end int
	decoded    bool
}

// The open frames and keys live in arrays inside the scanner, reached by
// index, with the rest in slices: a slice of the scanner's own array stored
// in the scanner would make it escape to the heap (its address in its own
// content), and a scanner is 2 KiB a request body.
type scanner struct {
	doc      []byte
	depth    int       // open arrays and objects
	stack    [16]frame // the first of them: most documents need no more
	deep     []frame   // the rest
	nkeys    int       // keys of the open objects
	keyBuf   [32]keyRef
	moreKeys []keyRef // keys beyond keyBuf
	dec      []byte
	collect  bool // record the members of the top-level object
	members  []Member
}

// frameAt is the i-th open frame, the outermost first.
func (s *scanner) frameAt(i int) *frame {
	if i < len(s.stack) {
		return &s.stack[i]
	}
	return &s.deep[i-len(s.stack)]
}

func (s *scanner) top() *frame { return s.frameAt(s.depth - 1) }

func (s *scanner) push(f frame) {
	if s.depth < len(s.stack) {
		s.stack[s.depth] = f
	} else {
		s.deep = append(s.deep[:s.depth-len(s.stack)], f)
	}
	s.depth++
}

// key is the i-th key of the open objects.
func (s *scanner) key(i int) keyRef {
	if i < len(s.keyBuf) {
		return s.keyBuf[i]
	}
	return s.moreKeys[i-len(s.keyBuf)]
}

func (s *scanner) addKey(k keyRef) {
	if s.nkeys < len(s.keyBuf) {
		s.keyBuf[s.nkeys] = k
	} else {
		s.moreKeys = append(s.moreKeys[:s.nkeys-len(s.keyBuf)], k)
	}
	s.nkeys++
}

// shortEscape marks the bytes that end a two-byte escape: \" \\ \/ \b \f \n \r \t.
var shortEscape = [256]bool{'"': true, '\\': true, '/': true, 'b': true, 'f': true, 'n': true, 'r': true, 't': true}

// plain marks the bytes a string may hold without a closer look: printable
// ASCII other than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func skipSpace(doc []byte, i int) int {
	if i < len(doc) && doc[i] > ' ' {
		return i // compact JSON: no space between tokens
	}
	for i < len(doc) {
		switch doc[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func (s *scanner) fail(k Kind, at int, reason string) error {
	return &Error{Kind: k, Path: s.path(), Offset: at, Reason: reason}
}

func (s *scanner) run(doc []byte) error {
	s.doc = doc
	i := skipSpace(doc, 0)
	if s.collect && (i >= len(doc) || doc[i] != '{') {
		if i >= len(doc) {
			return s.fail(Syntax, i, "the document is empty")
		}
		s.collect = false
		if err := s.value(i); err != nil {
			return err
		}
		return s.fail(Syntax, i, "the document is not an object")
	}
	return s.value(i)
}

// value scans the value at doc[i] and everything after it.
func (s *scanner) value(i int) error {
	doc := s.doc
	var err error
	for {
		// A value starts at i.
		i = skipSpace(doc, i)
		if i >= len(doc) {
			return s.fail(Syntax, i, "unexpected end of the document")
		}
		switch c := doc[i]; {
		case c == '{' || c == '[':
			if s.depth >= MaxDepth {
				return s.fail(Syntax, i, "nested deeper than "+strconv.Itoa(MaxDepth)+" levels")
			}
			s.push(frame{array: c == '[', keysBase: s.nkeys, decBase: len(s.dec)})
			i = skipSpace(doc, i+1)
			if i < len(doc) && doc[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				s.pop()
				i++
				break
			}
			if c == '{' {
				if i, err = s.member(i); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			if i, _, err = s.str(i); err != nil {
				return err
			}
		case c == 't':
			if i, err = s.literal(i, "true"); err != nil {
				return err
			}
		case c == 'f':
			if i, err = s.literal(i, "false"); err != nil {
				return err
			}
		case c == 'n':
			if i, err = s.literal(i, "null"); err != nil {
				return err
			}
		default:
			if i, err = s.number(i); err != nil {
				return err
			}
		}
		// A value ended at i: close containers until one continues.
		for {
			if s.depth == 0 {
				if j := skipSpace(doc, i); j != len(doc) {
					return s.fail(Syntax, j, "data after the JSON value")
				}
				return nil
			}
			if s.collect && s.depth == 1 {
				s.members[len(s.members)-1].ValueEnd = i
			}
			f := s.top()
			i = skipSpace(doc, i)
			if i >= len(doc) {
				return s.fail(Syntax, i, "unexpected end of the document")
			}
			switch c := doc[i]; {
			case c == ',' && f.array:
				f.index++
				i++
			case c == ',':
				if i, err = s.member(skipSpace(doc, i+1)); err != nil {
					return err
				}
			case f.array && c == ']', !f.array && c == '}':
				s.pop()
				i++
				continue
			default:
				return s.fail(Syntax, i, "unexpected "+strconv.QuoteRune(rune(c)))
			}
			break
		}
	}
}

func (s *scanner) pop() {
	f := s.top()
	s.nkeys, s.dec = f.keysBase, s.dec[:f.decBase]
	s.depth--
}

// member scans an object member's key at doc[i] and its colon, checks the
// key is new in its object, and returns where the value starts.
func (s *scanner) member(i int) (int, error) {
	doc := s.doc
	if i >= len(doc) || doc[i] != '"' {
		return i, s.fail(Syntax, i, "expected a string key")
	}
	f := s.top()
	f.keyEnd = 0 // a failing key is not part of the path
	end, esc, err := s.str(i)
	if err != nil {
		return i, err
	}
	f.keyStart, f.keyEnd, f.keyEsc = i+1, end-1, esc
	k := keyRef{start: i + 1, end: end - 1}
	if esc {
		start := len(s.dec)
		s.dec = appendUnescaped(s.dec, doc[i+1:end-1])
		k = keyRef{start: start, end: len(s.dec), decoded: true}
	}
	name := s.keyBytes(k)
	if dup := s.seen(f, name); dup {
		return i, s.fail(Duplicate, i, "duplicate key")
	}
	s.addKey(k)
	if f.seen != nil {
		f.seen[string(name)] = struct{}{}
	}
	j := skipSpace(doc, end)
	if j >= len(doc) || doc[j] != ':' {
		return j, s.fail(Syntax, j, "expected ':' after a key")
	}
	j = skipSpace(doc, j+1)
	if s.collect && s.depth == 1 {
		s.members = append(s.members, Member{Key: doc[i+1 : end-1], KeyStart: i, ValueStart: j, escaped: esc})
	}
	return j, nil
}

func (s *scanner) keyBytes(k keyRef) []byte {
	if k.decoded {
		return s.dec[k.start:k.end]
	}
	return s.doc[k.start:k.end]
}

// seen reports whether name is already a key of the object f.
func (s *scanner) seen(f *frame, name []byte) bool {
	if f.seen != nil {
		_, ok := f.seen[string(name)]
		return ok
	}
	for i := f.keysBase; i < s.nkeys; i++ {
		// Lengths first: most keys of an object differ in length.
		if k := s.key(i); k.end-k.start == len(name) && string(s.keyBytes(k)) == string(name) {
			return true
		}
	}
	if s.nkeys-f.keysBase+1 >= manyKeys {
		f.seen = make(map[string]struct{}, 2*manyKeys)
		for i := f.keysBase; i < s.nkeys; i++ {
			f.seen[string(s.keyBytes(s.key(i)))] = struct{}{}
		}
	}
	return false
}

func (s *scanner) literal(i int, lit string) (int, error) {
	if len(s.doc)-i < len(lit) || string(s.doc[i:i+len(lit)]) != lit {
		return i, s.fail(Syntax, i, "invalid literal")
	}
	return i + len(lit), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number(start int) (int, error) {
	doc, i := s.doc, start
	if i < len(doc) && doc[i] == '-' {
		i++
	}
	switch {
	case i < len(doc) && doc[i] == '0':
		i++
	case i < len(doc) && isDigit(doc[i]):
		for i < len(doc) && isDigit(doc[i]) {
			i++
		}
	default:
		if i == start {
			return i, s.fail(Syntax, i, "invalid character")
		}
		return i, s.fail(Syntax, i, "invalid number")
	}
	if i < len(doc) && doc[i] == '.' {
		i++
		if i >= len(doc) || !isDigit(doc[i]) {
			return i, s.fail(Syntax, i, "invalid number")
		}
		for i < len(doc) && isDigit(doc[i]) {
			i++
		}
	}
	if i < len(doc) && (doc[i] == 'e' || doc[i] == 'E') {
		i++
		if i < len(doc) && (doc[i] == '+' || doc[i] == '-') {
			i++
		}
		if i >= len(doc) || !isDigit(doc[i]) {
			return i, s.fail(Syntax, i, "invalid number")
		}
		for i < len(doc) && isDigit(doc[i]) {
			i++
		}
	}
	return i, nil
}

// str scans the string whose opening quote is doc[i] and returns the offset
// after its closing quote and whether it has escapes.
func (s *scanner) str(i int) (end int, esc bool, err error) {
	doc := s.doc
	i++
	for {
		i = skipPlain(doc, i)
		if i >= len(doc) {
			return i, esc, s.fail(Syntax, i, "unterminated string")
		}
		switch c := doc[i]; {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(doc) {
				return i, esc, s.fail(Syntax, i, "unterminated string")
			}
			switch e := doc[i+1]; {
			case shortEscape[e]:
				i += 2
			case e == 'u':
				r, ok := hex4(doc, i+2)
				if !ok {
					return i, esc, s.fail(Syntax, i, "invalid \\u escape")
				}
				switch {
				case r >= 0xDC00 && r <= 0xDFFF:
					return i, esc, s.fail(Encoding, i, "lone surrogate escape in a string")
				case r >= 0xD800 && r <= 0xDBFF:
					lo, ok := rune(0), false
					if i+7 < len(doc) && doc[i+6] == '\\' && doc[i+7] == 'u' {
						lo, ok = hex4(doc, i+8)
					}
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return i, esc, s.fail(Encoding, i, "lone surrogate escape in a string")
					}
					i += 12
				default:
					i += 6
				}
			default:
				return i, esc, s.fail(Syntax, i, "invalid escape in a string")
			}
		case c < 0x20:
			return i, esc, s.fail(Syntax, i, "control character in a string")
		default:
			// Non-ASCII: check the whole run of it here rather than
			// going back to the word loop after each character.
			for {
				n := 2 // the two-byte form, most of Latin, Greek, Cyrillic, is checked here
				if c := doc[i]; c < 0xC2 || c >= 0xE0 || i+1 >= len(doc) || doc[i+1]&0xC0 != 0x80 {
					n = utf8Len(doc, i)
				}
				if n == 0 {
					return i, esc, s.fail(Encoding, i, "invalid UTF-8 in a string")
				}
				i += n
				if i >= len(doc) || doc[i] < utf8.RuneSelf {
					break
				}
			}
		}
	}
}

// skipPlain returns the offset of the first byte from doc[i] on that is not
// plain, or len(doc). It reads eight bytes at a time, two words an
// iteration: the lowest flagged byte of a word is the first one not plain.
func skipPlain(doc []byte, i int) int {
	b := doc[i:]
	for len(b) >= 16 {
		if m := notPlain(binary.LittleEndian.Uint64(b)); m != 0 {
			return len(doc) - len(b) + bits.TrailingZeros64(m)>>3
		}
		if m := notPlain(binary.LittleEndian.Uint64(b[8:])); m != 0 {
			return len(doc) - len(b) + 8 + bits.TrailingZeros64(m)>>3
		}
		b = b[16:]
	}
	if len(b) >= 8 {
		if m := notPlain(binary.LittleEndian.Uint64(b)); m != 0 {
			return len(doc) - len(b) + bits.TrailingZeros64(m)>>3
		}
		b = b[8:]
	}
	for len(b) > 0 && plain[b[0]] {
		b = b[1:]
	}
	return len(doc) - len(b)
}

// utf8Len returns the length of the valid UTF-8 encoding starting with the
// non-ASCII byte doc[i], or 0 when it is not one (what utf8.DecodeRune
// reports as RuneError of width 1: a stray continuation byte, an overlong
// form, a surrogate, beyond U+10FFFF, or cut short). Inlined, it spares a
// call per character of non-ASCII text.
func utf8Len(doc []byte, i int) int {
	c := doc[i]
	switch {
	case c < 0xC2: // a continuation byte, or the lead of an overlong form
		return 0
	case c < 0xE0:
		if i+1 < len(doc) && doc[i+1]&0xC0 == 0x80 {
			return 2
		}
	case c < 0xF0:
		lo, hi := byte(0x80), byte(0xBF)
		switch c {
		case 0xE0:
			lo = 0xA0 // below is overlong
		case 0xED:
			hi = 0x9F // above are the surrogates
		}
		if i+2 < len(doc) && lo <= doc[i+1] && doc[i+1] <= hi && doc[i+2]&0xC0 == 0x80 {
			return 3
		}
	case c < 0xF5:
		lo, hi := byte(0x80), byte(0xBF)
		switch c {
		case 0xF0:
			lo = 0x90 // below is overlong
		case 0xF4:
			hi = 0x8F // above is beyond U+10FFFF
		}
		if i+3 < len(doc) && lo <= doc[i+1] && doc[i+1] <= hi && doc[i+2]&0xC0 == 0x80 && doc[i+3]&0xC0 == 0x80 {
			return 4
		}
	}
	return 0
}

const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// notPlain flags (sets the high bit of) the bytes of w, read little-endian,
// that are not plain: non-ASCII, below 0x20, a quote or a backslash. Bytes
// above the first flagged one may be flagged wrongly, never bytes below it,
// so its lowest set bit is exact. For an ASCII byte x, x-n borrows into the
// byte's high bit exactly when x is below n, and a borrow only carries
// upwards from a byte that is itself flagged (the usual "has less" and
// "has zero" word tricks); non-ASCII bytes are flagged by their own high
// bit and never borrow (x | y&^x is x | y: w's own high bits need no mask).
func notPlain(w uint64) uint64 {
	return (w | (w - ones*0x20) | (w ^ ones*'"' - ones) | (w ^ ones*'\\' - ones)) & high
}

func hex4(doc []byte, i int) (rune, bool) {
	if len(doc)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range doc[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// appendUnescaped appends the decoded form of a validated string's contents
// (between the quotes).
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			if r >= 0xD800 && r <= 0xDBFF {
				lo, _ := hex4(raw, i+8)
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default: // " \ /
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// path renders where the scanner is, e.g. messages[0].content.
func (s *scanner) path() string {
	var b []byte
	for i := range s.depth {
		f := s.frameAt(i)
		if f.array {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(f.index), 10)
			b = append(b, ']')
			continue
		}
		if f.keyEnd == 0 {
			break // no key yet (or the failing one)
		}
		name := s.doc[f.keyStart:f.keyEnd]
		if f.keyEsc {
			name = appendUnescaped(nil, name)
		}
		if identifier(name) {
			if len(b) > 0 {
				b = append(b, '.')
			}
			b = append(b, name...)
		} else {
			b = append(b, '[')
			b = strconv.AppendQuote(b, string(name))
			b = append(b, ']')
		}
	}
	return string(b)
}

func identifier(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for i, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && isDigit(c)) {
			return false
		}
	}
	return true
}
