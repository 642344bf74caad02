package allow

import "testing"

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
