package jsonscan

// Code below is scan.go as it was before the SWAR rewrite of the string, space and
// number paths, kept as the oracle of FuzzDifferential. Do not optimise it.

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// oldManyKeys is the number of keys from which an object's keys are also kept
// in a map: below it a linear comparison is cheaper and allocates nothing.
const oldManyKeys = 16

// oldFrame is one open array or object.
type oldFrame struct {
	array  bool
	keyEsc bool // next to array: the two share a word
	index  int  // array: the current element
	// object: the current key, as written (keyEsc: it has escapes)
	keyStart, keyEnd int
	keysBase         int // this object's keys are s.key(keysBase) on
	decBase          int // and their decoded forms s.dec[decBase:]
	seen             map[string]struct{}
}

// oldKeyRef is a key seen in an open object: doc[start:end] when written
// without escapes, else its decoded form s.dec[start:end].
type oldKeyRef struct {
	start, end int
	decoded    bool
}

// The open frames and keys live in arrays inside the oldScanner, reached by
// index, with the rest in slices: a slice of the oldScanner's own array stored
// in the oldScanner would make it escape to the heap (its address in its own
// content), and a oldScanner is 2 KiB a request body.
type oldScanner struct {
	doc      []byte
	depth    int          // open arrays and objects
	stack    [16]oldFrame // the first of them: most documents need no more
	deep     []oldFrame   // the rest
	nkeys    int          // keys of the open objects
	keyBuf   [32]oldKeyRef
	moreKeys []oldKeyRef // keys beyond keyBuf
	dec      []byte
	collect  bool // record the members of the top-level object
	members  []Member
}

// frameAt is the i-th open oldFrame, the outermost first.
func (s *oldScanner) frameAt(i int) *oldFrame {
	if i < len(s.stack) {
		return &s.stack[i]
	}
	return &s.deep[i-len(s.stack)]
}

func (s *oldScanner) top() *oldFrame { return s.frameAt(s.depth - 1) }

func (s *oldScanner) push(f oldFrame) {
	if s.depth < len(s.stack) {
		s.stack[s.depth] = f
	} else {
		s.deep = append(s.deep[:s.depth-len(s.stack)], f)
	}
	s.depth++
}

// key is the i-th key of the open objects.
func (s *oldScanner) key(i int) oldKeyRef {
	if i < len(s.keyBuf) {
		return s.keyBuf[i]
	}
	return s.moreKeys[i-len(s.keyBuf)]
}

func (s *oldScanner) addKey(k oldKeyRef) {
	if s.nkeys < len(s.keyBuf) {
		s.keyBuf[s.nkeys] = k
	} else {
		s.moreKeys = append(s.moreKeys[:s.nkeys-len(s.keyBuf)], k)
	}
	s.nkeys++
}

// oldPlain marks the bytes a string may hold without a closer look: printable
// ASCII other than the quote and the backslash.
var oldPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func oldSkipSpace(doc []byte, i int) int {
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

func (s *oldScanner) fail(k Kind, at int, reason string) error {
	return &Error{Kind: k, Path: s.path(), Offset: at, Reason: reason}
}

func (s *oldScanner) run(doc []byte) error {
	s.doc = doc
	i := oldSkipSpace(doc, 0)
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
func (s *oldScanner) value(i int) error {
	doc := s.doc
	var err error
	for {
		// A value starts at i.
		i = oldSkipSpace(doc, i)
		if i >= len(doc) {
			return s.fail(Syntax, i, "unexpected end of the document")
		}
		switch c := doc[i]; {
		case c == '{' || c == '[':
			if s.depth >= MaxDepth {
				return s.fail(Syntax, i, "nested deeper than "+strconv.Itoa(MaxDepth)+" levels")
			}
			s.push(oldFrame{array: c == '[', keysBase: s.nkeys, decBase: len(s.dec)})
			i = oldSkipSpace(doc, i+1)
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
				if j := oldSkipSpace(doc, i); j != len(doc) {
					return s.fail(Syntax, j, "data after the JSON value")
				}
				return nil
			}
			if s.collect && s.depth == 1 {
				s.members[len(s.members)-1].ValueEnd = i
			}
			f := s.top()
			i = oldSkipSpace(doc, i)
			if i >= len(doc) {
				return s.fail(Syntax, i, "unexpected end of the document")
			}
			switch c := doc[i]; {
			case c == ',' && f.array:
				f.index++
				i++
			case c == ',':
				if i, err = s.member(oldSkipSpace(doc, i+1)); err != nil {
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

func (s *oldScanner) pop() {
	f := s.top()
	s.nkeys, s.dec = f.keysBase, s.dec[:f.decBase]
	s.depth--
}

// member scans an object member's key at doc[i] and its colon, checks the
// key is new in its object, and returns where the value starts.
func (s *oldScanner) member(i int) (int, error) {
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
	k := oldKeyRef{start: i + 1, end: end - 1}
	if esc {
		start := len(s.dec)
		s.dec = oldAppendUnescaped(s.dec, doc[i+1:end-1])
		k = oldKeyRef{start: start, end: len(s.dec), decoded: true}
	}
	name := s.keyBytes(k)
	if dup := s.seen(f, name); dup {
		return i, s.fail(Duplicate, i, "duplicate key")
	}
	s.addKey(k)
	if f.seen != nil {
		f.seen[string(name)] = struct{}{}
	}
	j := oldSkipSpace(doc, end)
	if j >= len(doc) || doc[j] != ':' {
		return j, s.fail(Syntax, j, "expected ':' after a key")
	}
	j = oldSkipSpace(doc, j+1)
	if s.collect && s.depth == 1 {
		s.members = append(s.members, Member{Key: doc[i+1 : end-1], KeyStart: i, ValueStart: j, escaped: esc})
	}
	return j, nil
}

func (s *oldScanner) keyBytes(k oldKeyRef) []byte {
	if k.decoded {
		return s.dec[k.start:k.end]
	}
	return s.doc[k.start:k.end]
}

// seen reports whether name is already a key of the object f.
func (s *oldScanner) seen(f *oldFrame, name []byte) bool {
	if f.seen != nil {
		_, ok := f.seen[string(name)]
		return ok
	}
	for i := f.keysBase; i < s.nkeys; i++ {
		if string(s.keyBytes(s.key(i))) == string(name) {
			return true
		}
	}
	if s.nkeys-f.keysBase+1 >= oldManyKeys {
		f.seen = make(map[string]struct{}, 2*oldManyKeys)
		for i := f.keysBase; i < s.nkeys; i++ {
			f.seen[string(s.keyBytes(s.key(i)))] = struct{}{}
		}
	}
	return false
}

func (s *oldScanner) literal(i int, lit string) (int, error) {
	if len(s.doc)-i < len(lit) || string(s.doc[i:i+len(lit)]) != lit {
		return i, s.fail(Syntax, i, "invalid literal")
	}
	return i + len(lit), nil
}

func oldIsDigit(c byte) bool { return '0' <= c && c <= '9' }

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *oldScanner) number(start int) (int, error) {
	doc, i := s.doc, start
	if i < len(doc) && doc[i] == '-' {
		i++
	}
	switch {
	case i < len(doc) && doc[i] == '0':
		i++
	case i < len(doc) && oldIsDigit(doc[i]):
		for i < len(doc) && oldIsDigit(doc[i]) {
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
		if i >= len(doc) || !oldIsDigit(doc[i]) {
			return i, s.fail(Syntax, i, "invalid number")
		}
		for i < len(doc) && oldIsDigit(doc[i]) {
			i++
		}
	}
	if i < len(doc) && (doc[i] == 'e' || doc[i] == 'E') {
		i++
		if i < len(doc) && (doc[i] == '+' || doc[i] == '-') {
			i++
		}
		if i >= len(doc) || !oldIsDigit(doc[i]) {
			return i, s.fail(Syntax, i, "invalid number")
		}
		for i < len(doc) && oldIsDigit(doc[i]) {
			i++
		}
	}
	return i, nil
}

// str scans the string whose opening quote is doc[i] and returns the offset
// after its closing quote and whether it has escapes.
func (s *oldScanner) str(i int) (end int, esc bool, err error) {
	doc := s.doc
	i++
	for {
		for len(doc)-i >= 8 && oldPlainWord(binary.LittleEndian.Uint64(doc[i:])) {
			i += 8
		}
		for i < len(doc) && oldPlain[doc[i]] {
			i++
		}
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
			switch doc[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := oldHex4(doc, i+2)
				if !ok {
					return i, esc, s.fail(Syntax, i, "invalid \\u escape")
				}
				switch {
				case r >= 0xDC00 && r <= 0xDFFF:
					return i, esc, s.fail(Encoding, i, "lone surrogate escape in a string")
				case r >= 0xD800 && r <= 0xDBFF:
					lo, ok := rune(0), false
					if i+7 < len(doc) && doc[i+6] == '\\' && doc[i+7] == 'u' {
						lo, ok = oldHex4(doc, i+8)
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
			r, n := utf8.DecodeRune(doc[i:])
			if r == utf8.RuneError && n == 1 {
				return i, esc, s.fail(Encoding, i, "invalid UTF-8 in a string")
			}
			i += n
		}
	}
}

const (
	oldOnes = 0x0101010101010101
	oldHigh = 0x8080808080808080
)

// oldPlainWord reports whether all eight bytes of w are oldPlain: ASCII, none
// below 0x20, none a quote or a backslash. For ASCII bytes, x-n borrows
// into a byte's oldHigh bit exactly when some byte is below n (the usual
// "has less" and "has zero" word tricks).
func oldPlainWord(w uint64) bool {
	if w&oldHigh != 0 {
		return false
	}
	q, bs := w^(oldOnes*'"'), w^(oldOnes*'\\')
	return ((w-oldOnes*0x20)|(q-oldOnes)|(bs-oldOnes))&^w&oldHigh == 0
}

func oldHex4(doc []byte, i int) (rune, bool) {
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

// oldAppendUnescaped appends the decoded form of a validated string's contents
// (between the quotes).
func oldAppendUnescaped(dst, raw []byte) []byte {
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
			r, _ := oldHex4(raw, i+2)
			if r >= 0xD800 && r <= 0xDBFF {
				lo, _ := oldHex4(raw, i+8)
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

// path renders where the oldScanner is, e.g. messages[0].content.
func (s *oldScanner) path() string {
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
			name = oldAppendUnescaped(nil, name)
		}
		if oldIdentifier(name) {
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

func oldIdentifier(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for i, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && oldIsDigit(c)) {
			return false
		}
	}
	return true
}

func oldValidate(doc []byte) error {
	var s oldScanner
	return s.run(doc)
}

func oldObject(doc []byte, dst []Member) ([]Member, error) {
	var s oldScanner
	s.collect, s.members = true, dst
	if err := s.run(doc); err != nil {
		return dst, err
	}
	return s.members, nil
}
