package detect

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Terms is a compiled deny-list, matched with an Aho–Corasick automaton over
// case-folded runes: one pass over the text whatever the number of terms.
//
// Matching is case-insensitive (Unicode simple case folding, as (?i) in
// regexp); any run of white space in the text matches any run of white space
// in a term ("project  falcon" matches "project\nfalcon"); and a term that
// starts (ends) with a letter, digit or '_' only matches where the text has a
// word boundary before (after) it, so "cat" does not match in "concatenate"
// while "c++" matches in "c++17".
//
// A Terms is immutable and safe for concurrent use.
type Terms struct {
	nodes []acNode
	// ascii[n][c] is the full transition from node n on ASCII symbol c (a
	// DFA row), for automata of at most maxDFANodes nodes; otherwise only
	// the root's row is kept and other nodes follow fail links.
	ascii   [][utf8.RuneSelf]int32
	terms   []acTerm
	maxSyms int
	// emit[n] is n if a term ends at node n, else n's dict link: the first
	// node whose term to report on reaching n (-1 if none).
	emit []int32
	// class and sym classify bytes for scan's fast paths: class[c] has
	// classRoot if the root stays put on c, classWord if c is an ASCII word
	// byte; sym[c] is ASCII c's symbol (' ' for all white space).
	class [256]uint8
	sym   [utf8.RuneSelf]uint8
	// rootWide is the sorted non-ASCII runes that leave the root: those
	// folding to the symbol of one of its edges.
	rootWide []rune
}

const (
	classRoot = 1 << iota
	classWord
)

type acNode struct {
	edges []acEdge // sorted by sym
	fail  int32
	out   int32 // term ending here, -1 if none
	dict  int32 // nearest node on the fail chain with out >= 0, -1 if none
}

type acEdge struct {
	sym  rune
	next int32
}

type acTerm struct {
	syms               int
	wordStart, wordEnd bool
}

// Limits on a deny-list, so that a configuration cannot make the automaton
// unreasonably large.
const (
	MaxTerms     = 10000
	MaxTermBytes = 256
)

// NewTerms compiles a deny-list. It fails on an empty list, an empty or
// over-long term, or more than MaxTerms terms; the error names the term's index.
func NewTerms(terms []string) (*Terms, error) {
	if len(terms) == 0 {
		return nil, errors.New("no terms")
	}
	if len(terms) > MaxTerms {
		return nil, fmt.Errorf("%d terms (at most %d)", len(terms), MaxTerms)
	}
	for i, t := range terms {
		if len(t) > MaxTermBytes {
			return nil, fmt.Errorf("term %d: longer than %d bytes", i, MaxTermBytes)
		}
		if len(normalize(nil, t)) == 0 {
			return nil, fmt.Errorf("term %d: empty", i)
		}
	}
	t, _ := newTerms(terms, false)
	return t, nil
}

// newTerms builds the automaton. With prefixes (used for the
// prompt-injection keyword gate), a term ending in '*' is a prefix: it needs
// no word boundary after it. ids[i] is the term number scan reports for
// terms[i] (equal terms share one), -1 for an empty term.
func newTerms(terms []string, prefixes bool) (t *Terms, ids []int) {
	t = &Terms{nodes: []acNode{{out: -1, dict: -1}}}
	ids = make([]int, len(terms))
	var syms []rune
	for i, term := range terms {
		ids[i] = -1
		prefix := prefixes && strings.HasSuffix(term, "*")
		if prefix {
			term = term[:len(term)-1]
		}
		syms = normalize(syms[:0], term)
		if len(syms) == 0 {
			continue
		}
		n := int32(0)
		for _, sym := range syms {
			next := t.child(n, sym)
			if next < 0 {
				next = int32(len(t.nodes))
				t.nodes = append(t.nodes, acNode{out: -1, dict: -1})
				e := &t.nodes[n].edges
				i, _ := slices.BinarySearchFunc(*e, sym, cmpEdge)
				*e = slices.Insert(*e, i, acEdge{sym: sym, next: next})
			}
			n = next
		}
		if t.nodes[n].out < 0 {
			t.nodes[n].out = int32(len(t.terms))
			t.terms = append(t.terms, acTerm{syms: len(syms), wordStart: isWordRune(syms[0]), wordEnd: !prefix && isWordRune(syms[len(syms)-1])})
			t.maxSyms = max(t.maxSyms, len(syms))
		}
		ids[i] = int(t.nodes[n].out)
	}
	// Breadth-first: a fail link points at the node of the longest proper
	// suffix that is also in the trie.
	queue := make([]int32, 0, len(t.nodes))
	for _, e := range t.nodes[0].edges {
		queue = append(queue, e.next)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, e := range t.nodes[n].edges {
			f := t.nodes[n].fail
			for f != 0 && t.child(f, e.sym) < 0 {
				f = t.nodes[f].fail
			}
			if g := t.child(f, e.sym); g >= 0 && g != e.next {
				f = g
			} else {
				f = 0
			}
			t.nodes[e.next].fail = f
			if t.nodes[f].out >= 0 {
				t.nodes[e.next].dict = f
			} else {
				t.nodes[e.next].dict = t.nodes[f].dict
			}
			queue = append(queue, e.next)
		}
	}
	rows := 1
	if len(t.nodes) <= maxDFANodes {
		rows = len(t.nodes)
	}
	t.ascii = make([][utf8.RuneSelf]int32, rows)
	for _, e := range t.nodes[0].edges {
		if e.sym < utf8.RuneSelf {
			t.ascii[0][e.sym] = e.next
		}
	}
	if rows > 1 {
		// In breadth-first order a node's fail target has its row already.
		order := []int32{0}
		for q := 0; q < len(order); q++ {
			for _, e := range t.nodes[order[q]].edges {
				order = append(order, e.next)
			}
		}
		for _, n := range order[1:] {
			t.ascii[n] = t.ascii[t.nodes[n].fail]
			for _, e := range t.nodes[n].edges {
				if e.sym < utf8.RuneSelf {
					t.ascii[n][e.sym] = e.next
				}
			}
		}
	}
	t.emit = make([]int32, len(t.nodes))
	for n, nd := range t.nodes {
		t.emit[n] = nd.dict
		if nd.out >= 0 {
			t.emit[n] = int32(n)
		}
	}
	for c := range utf8.RuneSelf {
		sym := byte(c)
		switch {
		case c == ' ' || ('\t' <= c && c <= '\r'):
			sym = ' '
		case 'a' <= c && c <= 'z':
			sym = byte(c - 'a' + 'A')
		}
		t.sym[c] = sym
		if t.ascii[0][sym] == 0 {
			t.class[c] |= classRoot
		}
		if isWordByte(byte(c)) {
			t.class[c] |= classWord
		}
	}
	for _, e := range t.nodes[0].edges {
		for r := unicode.SimpleFold(e.sym); ; r = unicode.SimpleFold(r) {
			if r >= utf8.RuneSelf {
				t.rootWide = append(t.rootWide, r)
			}
			if r == e.sym {
				break
			}
		}
	}
	slices.Sort(t.rootWide)
	return t, ids
}

// maxDFANodes bounds the dense ASCII transition table at 2 MiB.
const maxDFANodes = 4096

func cmpEdge(a acEdge, s rune) int {
	switch {
	case a.sym < s:
		return -1
	case a.sym > s:
		return 1
	}
	return 0
}

// child returns n's child on sym, or -1.
func (t *Terms) child(n int32, sym rune) int32 {
	e := t.nodes[n].edges
	if len(e) <= 8 {
		for _, x := range e {
			if x.sym == sym {
				return x.next
			}
		}
		return -1
	}
	if i, ok := slices.BinarySearchFunc(e, sym, cmpEdge); ok {
		return e[i].next
	}
	return -1
}

// step is the automaton's transition function.
func (t *Terms) step(n int32, sym rune) int32 {
	for {
		if sym < utf8.RuneSelf && int(n) < len(t.ascii) {
			return t.ascii[n][sym] // 0 (the root) when nothing continues
		}
		if n == 0 {
			return max(t.child(0, sym), 0)
		}
		if c := t.child(n, sym); c >= 0 {
			return c
		}
		n = t.nodes[n].fail
	}
}

// fold maps a rune to the smallest rune of its simple case-folding orbit, so
// that runes equal under (?i) fold to the same symbol.
func fold(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}

// normalize appends the symbols of s: folded runes, with each run of white
// space as one ' ', leading and trailing white space dropped.
func normalize(dst []rune, s string) []rune {
	start := len(dst)
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && len(dst) > start {
			dst = append(dst, ' ')
		}
		space = false
		dst = append(dst, fold(r))
	}
	return dst
}

// scan calls hit for every occurrence of every term in s (overlapping ones
// included), in order of end offset.
func (t *Terms) scan(s string, hit func(term, start, end int)) {
	if t.maxSyms == 0 {
		return
	}
	// starts[k & mask] is the byte offset of the k-th symbol fed. Only
	// symbols that leave the automaton off the root can start a match, so
	// only those are recorded; symbols passed over at the root are not
	// counted, which is harmless since no match runs through the root.
	size := 1
	for size < t.maxSyms {
		size <<= 1
	}
	mask := size - 1
	var small [64]int
	starts := small[:]
	if size > len(small) {
		starts = make([]int, size)
	}
	rows := len(t.ascii)
	state, k, prevSpace := int32(0), 0, false
	for i := 0; i < len(s); {
		if state == 0 {
			// At the root nothing is pending, so a byte that cannot leave
			// the root, or a word byte right after another one (a term
			// starting with a word rune needs a boundary before it), can be
			// passed over unfed: feeding it would leave the automaton at
			// the root, or only on matches that start there and fail the
			// boundary test. White space at the root is among the former,
			// so prevSpace needs no update here (at the root a fed or a
			// skipped ' ' both stay at the root).
			var prevWord uint8 // classWord if s[i-1] is a word byte
			if i > 0 {
				prevWord = t.class[s[i-1]] & classWord
			}
			for i < len(s) {
				c := t.class[s[i]]
				if c&(classRoot|prevWord) == 0 {
					break
				}
				prevWord = c & classWord
				i++
			}
			if i == len(s) {
				break
			}
		}
		n := 1
		if c := s[i]; c < utf8.RuneSelf {
			sym := t.sym[c] // ' ' for all white space
			if sym == ' ' {
				if prevSpace {
					i++
					continue
				}
				prevSpace = true
			} else {
				prevSpace = false
			}
			if int(state) < rows {
				state = t.ascii[state][sym]
			} else {
				state = t.step(state, rune(sym))
			}
		} else {
			var r rune
			var sym rune
			r, n = utf8.DecodeRuneInString(s[i:])
			if state == 0 {
				if _, ok := slices.BinarySearch(t.rootWide, r); !ok {
					// It folds to no root edge's symbol; a space would
					// be ' ', which starts no term.
					i += n
					continue
				}
			}
			if unicode.IsSpace(r) {
				if prevSpace {
					i += n
					continue
				}
				sym, prevSpace = ' ', true
			} else {
				sym, prevSpace = fold(r), false
			}
			state = t.step(state, sym)
		}
		if state != 0 {
			starts[k&mask] = i
			for o := t.emit[state]; o > 0; o = t.nodes[o].dict {
				ti := int(t.nodes[o].out)
				term := t.terms[ti]
				start, end := starts[(k-term.syms+1)&mask], i+n
				if (term.wordStart && wordBefore(s, start)) || (term.wordEnd && wordAfter(s, end)) {
					continue
				}
				hit(ti, start, end)
			}
		}
		k++
		i += n
	}
}

// Find appends to dst the leftmost-longest, non-overlapping occurrences of the
// terms in s, in text order, and returns the extended slice. The spans' Kind is
// meaningless.
func (t *Terms) Find(dst []Span, s string) []Span {
	first := len(dst)
	t.scan(s, func(_, start, end int) {
		dst = append(dst, Span{Start: start, End: end})
	})
	return selectSpans(dst, first)
}

// selectSpans sorts dst[first:] by start (longest first) and keeps a
// leftmost-longest, non-overlapping subset.
func selectSpans(dst []Span, first int) []Span {
	found := dst[first:]
	slices.SortFunc(found, func(a, b Span) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	out, end := first, -1
	for _, sp := range found {
		if sp.Start >= end {
			dst[out] = sp
			out++
			end = sp.End
		}
	}
	return dst[:out]
}
