package detect

import (
	"slices"
	"strings"
	"testing"
)

func termMatches(t *testing.T, terms []string, s string) []string {
	t.Helper()
	ts, err := NewTerms(terms)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	spans := ts.Find(nil, s)
	for _, sp := range spans {
		out = append(out, s[sp.Start:sp.End])
	}
	sparse := *ts
	sparse.ascii = sparse.ascii[:1]
	if other := sparse.Find(nil, s); !slices.Equal(other, spans) {
		t.Errorf("dense table %v, fail links %v", spans, other)
	}
	return out
}

func TestTerms(t *testing.T) {
	for _, c := range []struct {
		name  string
		terms []string
		in    string
		want  []string
	}{
		{"case-insensitive", []string{"Project Falcon"}, "about PROJECT falcon.", []string{"PROJECT falcon"}},
		{"white space runs", []string{"project  falcon"}, "project\n\t falcon", []string{"project\n\t falcon"}},
		{"word boundary", []string{"cat"}, "concatenate cat cats bobcat (cat)", []string{"cat", "cat"}},
		{"punctuation edge needs no boundary", []string{"c++"}, "c++17 and C++", []string{"c++", "C++"}},
		{"leftmost longest", []string{"new york", "new york city", "york"}, "in New York City today", []string{"New York City"}},
		{"overlapping terms", []string{"ab", "bc"}, "ab bc abc", []string{"ab", "bc"}},
		{"unicode folding", []string{"straße", "ÉCOLE"}, "STRASSE Straße école", []string{"Straße", "école"}},
		{"kelvin sign folds to k", []string{"kilo"}, "\u212Ailo", []string{"\u212Ailo"}},
		{"unicode boundary", []string{"été"}, "étés été", []string{"été"}},
		{"suffix via fail links", []string{"she", "he", "hers"}, "ushers he she", []string{"he", "she"}},
		{"digits", []string{"4711"}, "14711 4711", []string{"4711"}},
		{"term with inner punctuation", []string{"top-secret"}, "TOP-SECRET file; top secret", []string{"TOP-SECRET"}},
		{"empty text", []string{"x"}, "", nil},
		{"invalid utf-8", []string{"ab"}, "\xffab\xfe", []string{"ab"}},
		{"a star is a character", []string{"0*"}, "0 0* 00*", []string{"0*"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := termMatches(t, c.terms, c.in); !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestTermsErrors(t *testing.T) {
	for _, terms := range [][]string{nil, {"ok", "  "}, {strings.Repeat("x", MaxTermBytes+1)}, make([]string, MaxTerms+1)} {
		if _, err := NewTerms(terms); err == nil {
			t.Errorf("NewTerms(%d terms) succeeded", len(terms))
		}
	}
}

// Many terms and long texts stay linear: one automaton pass.
func TestTermsManyTerms(t *testing.T) {
	var terms []string
	for i := range 2000 {
		terms = append(terms, "term"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+strings.Repeat("x", i/676)+"-"+strings.Repeat("y", i%5))
	}
	terms = append(terms, "termabx")
	ts, err := NewTerms(terms)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.ascii) != 1 {
		t.Fatalf("%d nodes should be too many for the dense table", len(ts.nodes))
	}
	text := strings.Repeat("some text termba_ and termabx, ", 200)
	got := ts.Find(nil, text)
	if len(got) != 200 { // "termabx" (i=26+676) matches; "termba_" does not (glued to '_')
		t.Fatalf("got %d matches", len(got))
	}
}
