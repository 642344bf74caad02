package cache

import "testing"

func TestBypass(t *testing.T) {
	cases := []struct {
		name, cc, body string
		any            bool
		want           string
	}{
		{"temperature 0", "", `{"temperature":0}`, false, ""},
		{"seed", "", `{"seed":7,"temperature":1}`, false, ""},
		{"no temperature", "", `{}`, false, BypassNondeterministic},
		{"temperature 0.2", "", `{"temperature":0.2}`, false, BypassNondeterministic},
		{"app caches any temperature", "", `{"temperature":1}`, true, ""},
		{"no-cache", "no-cache", `{"temperature":0}`, false, BypassClient},
		{"no-store among others", "max-age=0, No-Store", `{"temperature":0}`, false, BypassClient},
		{"max-age alone is not an opt-out", "max-age=60", `{"temperature":0}`, false, ""},
		{"gateway field", "", `{"temperature":0,"tollgate_cache":false}`, true, BypassClient},
		{"gateway field true", "", `{"temperature":0,"tollgate_cache":true}`, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Bypass(c.cc, []byte(c.body), c.any); got != c.want {
				t.Errorf("Bypass = %q, want %q", got, c.want)
			}
		})
	}
}
