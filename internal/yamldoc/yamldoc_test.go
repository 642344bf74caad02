package yamldoc

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		wantNil  bool
		wantErr  string
	}{
		{"empty", "", true, ""},
		{"comment only", "# nothing\n", true, ""},
		{"mapping", "a: 1\n", false, ""},
		{"two documents", "a: 1\n---\nb: 2\n", true, "line 2: only one YAML document per file is supported"},
		{"syntax error", "a: [1\n", true, "yaml:"},
	}
	for _, tt := range tests {
		n, err := Parse([]byte(tt.in))
		if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.wantErr)
		}
		if (n == nil) != tt.wantNil {
			t.Errorf("%s: node %v", tt.name, n)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("a: [1, {b: c}]\n"))
	f.Add([]byte("&x [*x]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse(data) // never panics
	})
}
