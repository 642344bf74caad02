// Package allow matches model names against allowlists of glob patterns.
//
// A pattern's '*' matches any run of characters (including '/', so
// "openai/*" covers every OpenAI model) and '?' matches one character;
// everything else matches itself. Matching is linear-time and allocation-free.
package allow

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
	// Iterative matching with a single backtrack point: the last '*' seen.
	// It never revisits more than len(name) positions per star, so the cost
	// is O(len(pattern)·len(name)) in the worst case and no recursion.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
