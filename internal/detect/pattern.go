package detect

import (
	"fmt"
	"regexp"
	"regexp/syntax"
)

// MaxPatternLen bounds a custom pattern, in bytes.
const MaxPatternLen = 4096

// CompilePattern compiles a custom pattern. RE2 (Go's regexp) runs in time
// linear in the input; a pattern that can match the empty string is refused,
// as it would match everywhere. It also returns a literal every match
// contains ("" when there is none), so that texts without it can skip the
// regexp.
func CompilePattern(p string) (*regexp.Regexp, string, error) {
	if len(p) > MaxPatternLen {
		return nil, "", fmt.Errorf("pattern longer than %d bytes", MaxPatternLen)
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, "", fmt.Errorf("invalid pattern: %v", err)
	}
	parsed, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil, "", fmt.Errorf("invalid pattern: %v", err)
	}
	parsed = parsed.Simplify()
	if minLen(parsed) == 0 {
		return nil, "", fmt.Errorf("pattern %q can match the empty string", p)
	}
	return re, requiredLiteral(parsed), nil
}

// requiredLiteral returns the longest case-sensitive literal that every
// match of re contains, or "".
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return ""
		}
		return string(re.Rune)
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min > 0 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l := requiredLiteral(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

// minLen returns the least number of runes a regexp can match.
func minLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture:
		return minLen(re.Sub[0])
	case syntax.OpPlus:
		return minLen(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min * minLen(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n += minLen(s)
		}
		return n
	case syntax.OpAlternate:
		n := -1
		for _, s := range re.Sub {
			if m := minLen(s); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	default: // empty match, anchors, word boundaries, star, quest, no match
		return 0
	}
}
