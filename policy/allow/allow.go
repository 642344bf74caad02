// Package allow matches model names against allowlists of glob patterns.
//
// The pattern language: '*' matches any run of characters, including the
// empty run and '/' (so "openai/*" covers every OpenAI model); '?' matches
// exactly one character; every other character matches itself. There is no
// escape: a pattern cannot require a literal '*' or '?'. Names are arbitrary
// strings and may themselves contain '*' or '?'; those are ordinary characters
// of the name, matched by a pattern's wildcards or by the same character in
// the pattern. A character is a UTF-8 code point; each byte of an invalid
// UTF-8 sequence counts as one character. Matching is case-sensitive,
// allocation-free and O(len(pattern)·len(name)) at worst.
package allow

import "unicode/utf8"

// List is an allowlist. The empty list allows everything: confinement is
// opted into by listing patterns.
type List []string

// Allows reports whether any of names matches a pattern of l.
func (l List) Allows(names ...string) bool {
	if len(l) == 0 {
		return true
	}
	for _, p := range l {
		for _, n := range names {
			if n != "" && Match(p, n) {
				return true
			}
		}
	}
	return false
}

// Match reports whether name matches the glob pattern.
func Match(pattern, name string) bool {
	// Iterative matching with a single backtrack point, the last '*' seen:
	// the first stars only need to match the shortest prefix that lets the
	// rest match, so earlier stars never need revisiting. A pattern '*' is a
	// wildcard even where the name holds a '*' at the same place (checking
	// it as a literal first made "*" fail to match "*0").
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		if p < len(pattern) && pattern[p] == '*' {
			star, mark = p, n
			p++
			continue
		}
		if p < len(pattern) {
			pw := charLen(pattern[p:])
			nw := charLen(name[n:])
			if pattern[p] == '?' || pattern[p:p+pw] == name[n:n+nw] {
				p += pw
				n += nw
				continue
			}
		}
		if star < 0 {
			return false
		}
		// Let the last star swallow one more character of the name.
		mark += charLen(name[mark:])
		p, n = star+1, mark
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// charLen is the byte length of the character s starts with: a whole UTF-8
// sequence, or 1 for an ASCII byte or an invalid byte.
func charLen(s string) int {
	if s[0] < utf8.RuneSelf {
		return 1
	}
	_, w := utf8.DecodeRuneInString(s)
	return w
}
