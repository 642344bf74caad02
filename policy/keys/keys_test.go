package keys

import (
	"strings"
	"testing"
	"time"
)

func TestStore(t *testing.T) {
	const secret = "tg_demo_0123456789abcdefghijklmnopqrstuvwxyzAB"
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s, err := NewStore([]Entry{
		{Key: Key{ID: "demo", Tenant: "t"}, SHA256: Hash(secret)},
		{Key: Key{ID: "other"}, SHA256: Hash("tg_other")},
		{Key: Key{ID: "off"}, SHA256: Hash("tg_off"), Disabled: true},
		{Key: Key{ID: "old", Expires: now}, SHA256: Hash("tg_old")},
		{Key: Key{ID: "later", Expires: now.Add(time.Second)}, SHA256: Hash("tg_later")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		presented string
		wantID    string
	}{
		{secret, "demo"},
		{"tg_other", "other"},
		{"tg_later", "later"},
		{"tg_off", ""}, // disabled
		{"tg_old", ""}, // expired exactly now
		{"", ""},
		{secret + " ", ""},
		{strings.ToUpper(secret), ""},
		{Hash(secret), ""}, // the hash itself is not a key
	}
	for _, tt := range tests {
		k, ok := s.Authenticate(tt.presented, now)
		if ok != (tt.wantID != "") || (ok && k.ID != tt.wantID) {
			t.Errorf("Authenticate(%q) = %v, %v; want id %q", tt.presented, k, ok, tt.wantID)
		}
	}
	if k, _ := s.Authenticate(secret, now); k.Tenant != "t" {
		t.Fatalf("key fields lost: %+v", k)
	}
}

func TestNewStoreRejects(t *testing.T) {
	tests := map[string][]Entry{
		"short hash":     {{Key: Key{ID: "a"}, SHA256: "abcd"}},
		"non-hex":        {{Key: Key{ID: "a"}, SHA256: strings.Repeat("z", 64)}},
		"duplicate hash": {{Key: Key{ID: "a"}, SHA256: Hash("x")}, {Key: Key{ID: "b"}, SHA256: Hash("x"), Disabled: true}},
	}
	for name, entries := range tests {
		if _, err := NewStore(entries); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

func TestNilStoreRefuses(t *testing.T) {
	var s *Store
	if _, ok := s.Authenticate("anything", time.Now()); ok {
		t.Fatal("nil store authenticated a key")
	}
}

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		k, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k, Prefix) || len(k) != len(Prefix)+43 {
			t.Fatalf("key %q: want tg_ and 43 base62 characters", k)
		}
		for _, c := range k[len(Prefix):] {
			if !strings.ContainsRune(base62, c) {
				t.Fatalf("key %q: %q is not base62", k, c)
			}
		}
		if seen[k] {
			t.Fatal("duplicate key")
		}
		seen[k] = true
	}
}
