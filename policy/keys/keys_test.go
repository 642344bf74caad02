package keys

import (
	"strings"
	"testing"
)

func TestStore(t *testing.T) {
	const secret = "tg_demo_0123456789abcdefghijklmnopqrstuvwxyzAB"
	s, err := NewStore([]Entry{{ID: "demo", SHA256: Hash(secret)}, {ID: "other", SHA256: Hash("tg_other")}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		presented string
		wantID    string
	}{
		{secret, "demo"},
		{"tg_other", "other"},
		{"", ""},
		{secret + " ", ""},
		{strings.ToUpper(secret), ""},
		{Hash(secret), ""}, // the hash itself is not a key
	}
	for _, tt := range tests {
		k, ok := s.Authenticate(tt.presented)
		if ok != (tt.wantID != "") || (ok && k.ID != tt.wantID) {
			t.Errorf("Authenticate(%q) = %v, %v; want id %q", tt.presented, k, ok, tt.wantID)
		}
	}
}

func TestNewStoreRejects(t *testing.T) {
	tests := map[string][]Entry{
		"short hash":     {{ID: "a", SHA256: "abcd"}},
		"non-hex":        {{ID: "a", SHA256: strings.Repeat("z", 64)}},
		"duplicate hash": {{ID: "a", SHA256: Hash("x")}, {ID: "b", SHA256: Hash("x")}},
	}
	for name, entries := range tests {
		if _, err := NewStore(entries); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

func TestNilStoreRefuses(t *testing.T) {
	var s *Store
	if _, ok := s.Authenticate("anything"); ok {
		t.Fatal("nil store authenticated a key")
	}
}
