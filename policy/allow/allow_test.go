package allow

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"smart-default", "smart-default", true},
		{"smart-default", "smart-default2", false},
		{"smart-*", "smart-default", true},
		{"smart-*", "smart-", true},
		{"smart-*", "dumb-default", false},
		{"openai/*", "openai/gpt-4o", true},
		{"openai/*", "openai/ft:gpt-4o:org/x", true},
		{"openai/*", "anthropic/claude", false},
		{"*", "anything/at/all", true},
		{"gpt-4?", "gpt-4o", true},
		{"gpt-4?", "gpt-4", false},
		{"*-mini", "openai/gpt-4o-mini", true},
		{"*mini*", "o4-mini-high", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"", "", true},
		{"", "x", false},
		// A '*' in the name is an ordinary character: the pattern's '*' is
		// still a wildcard over it (fuzz crasher: "*" did not match "*0").
		{"*", "*0", true},
		{"*", "*", true},
		{"a*", "a*b", true},
		{"*b", "**b", true},
		{"*?", "*", true},
		{"?", "*", true},
		{"a?c", "a*c", true},
		{"a*c", "a*", false},
		{"*x*", "**", false},
		// '?' is one character, not one byte.
		{"?", "é", true},
		{"??", "é", false},
		{"*??", "€", false},
		{"gpt-?o", "gpt-éo", true},
		{"é*", "éa", true},
		{"*é", "aé", true},
		// An invalid UTF-8 byte is one character of its own.
		{"?", "\xff", true},
		{"??", "\xc3\xa9", false},
		{"\xc3*", "\xc3\xa9", false},
		{"*\xa9", "\xc3\xa9", false},
		{"*\xa9", "x\xa9", true},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v", tt.pattern, tt.name, got)
		}
	}
}

func TestList(t *testing.T) {
	if !(List{}).Allows("x") {
		t.Fatal("empty list must allow")
	}
	l := List{"smart-*", "openai/gpt-4o-mini"}
	if !l.Allows("fast", "openai/gpt-4o-mini") || l.Allows("fast", "openai/gpt-4o") || !l.Allows("smart-x") {
		t.Fatal("list matching")
	}
	if l.Allows("") {
		t.Fatal("empty name matched")
	}
}

// FuzzMatch checks properties that hold for any input, valid UTF-8 or not.
// Its corpus (testdata/fuzz/FuzzMatch) keeps the crasher "*" vs "*0".
func FuzzMatch(f *testing.F) {
	f.Add("a*b?c", "aXbYc")
	f.Add("***", "")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := Match(pattern, name)
		if pattern == name && !got {
			t.Fatalf("literal %q does not match itself", pattern)
		}
		if pattern == "*" && !got {
			t.Fatal("* must match everything")
		}
	})
}

// reference is the plain oracle for FuzzMatchRegexp: the pattern translated
// to an anchored regular expression, '*' to (?s:.*), '?' to (?s:.), every
// other character quoted. Only valid UTF-8 translates (regexp rejects the rest).
func reference(t *testing.T, pattern string) *regexp.Regexp {
	t.Helper()
	var b strings.Builder
	b.WriteString(`^`)
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(`(?s:.*)`)
		case '?':
			b.WriteString(`(?s:.)`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		t.Fatalf("reference for %q: %v", pattern, err)
	}
	return re
}

// FuzzMatchRegexp compares Match with the regexp oracle on valid UTF-8.
func FuzzMatchRegexp(f *testing.F) {
	for _, s := range [][2]string{
		{"*", "*0"}, {"a*b?c", "aXbYc"}, {"***", ""}, {"*?*", "*"}, {"*??", "€"},
		{"openai/*", "openai/gpt-4o"}, {"*-mini", "openai/gpt-4o-mini"}, {"a*b*c", "aXXbYY"},
		{"?é*", "xéé"}, {"*\n", "a\n"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if !utf8.ValidString(pattern) || !utf8.ValidString(name) || len(pattern) > 64 || len(name) > 256 {
			t.Skip()
		}
		want := reference(t, pattern).MatchString(name)
		if got := Match(pattern, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, name, got, want)
		}
	})
}
