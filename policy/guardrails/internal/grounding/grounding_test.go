package grounding

import (
	"slices"
	"testing"
)

func words(s string) []string {
	var out []string
	eachWord(s, func(w []byte, end bool) {
		if w != nil {
			out = append(out, string(w))
		} else {
			out = append(out, "|")
		}
	})
	return out
}

func TestWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"The prices rose by 5.2% in 2023.", []string{"price", "rose", "5.2", "2023", "|"}},
		{"Revenue was $1,000,000! Really?", []string{"revenue", "1000000", "|", "really", "|"}},
		{"Alice's class status: OK\nnext", []string{"alice", "class", "status", "ok", "|", "next"}},
		{"Mail [EMAIL_1] about it.", []string{"mail", "|"}},
		{"Zürich und 東京。 Ende", []string{"zürich", "und", "東京", "|", "ende"}},
		{"version 1.2.3 is out", []string{"version", "1.2.3"}},
		{"e.g. this", []string{"|"}}, // "e.g" does not end a sentence; single letters are not words
	} {
		if got := words(c.in); !slices.Equal(got, c.want) {
			t.Errorf("words(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestScore(t *testing.T) {
	ctx := []string{
		"Acme Corp was founded in 1998 by Jane Smith in Boston.",
		"The company sells industrial robots and reported revenue of $52 million in 2023.",
	}
	for _, c := range []struct {
		name       string
		text       string
		score      float64
		sentences  int
		supported  int
		thresholdS float64
	}{
		{"grounded", "Acme Corp was founded by Jane Smith in 1998. It sells industrial robots.", 1, 2, 2, 0.5},
		{"paraphrased but lexical", "Jane Smith founded Acme in Boston!", 1, 1, 1, 0.5},
		{"invented facts", "Acme was founded in Paris in 2005 by Pierre Dubois. It sells robots.", 0.5, 2, 1, 0.5},
		{"all invented", "The moon is made of green cheese.", 0, 1, 0, 0.5},
		{"stop words only", "It is what it is. Yes!", 1, 0, 0, 0.5},
		{"empty", "", 1, 0, 0, 0.5},
		{"strict sentence threshold", "Acme sells industrial robots in Paris.", 0, 1, 0, 0.9},
		{"numbers count", "Revenue was $52 million in 2023. Revenue was $99 million in 2024.", 0.5, 2, 1, 0.75},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Score(ctx, c.text, c.thresholdS)
			if r.Score != c.score || r.Sentences != c.sentences || r.Supported != c.supported || r.Unsupported() != c.sentences-c.supported {
				t.Errorf("Score = %+v, want score %v, %d/%d supported", r, c.score, c.supported, c.sentences)
			}
		})
	}
}

// The example in docs/guardrails.md.
func TestDocExample(t *testing.T) {
	r := Score([]string{"Acme was founded in 1998 by Jane Smith in Boston."}, "Acme was founded in Paris in 2005 by Pierre Dubois. Jane Smith founded it.", 0.5)
	if r.Score != 0.5 || r.Unsupported() != 1 {
		t.Errorf("Score = %+v", r)
	}
}

func FuzzScore(f *testing.F) {
	f.Add("Acme was founded in 1998.", "Acme was founded in 2005. The end!")
	f.Add("", "\xff\xfe[A_1]...")
	f.Fuzz(func(t *testing.T, ctx, text string) {
		r := Score([]string{ctx}, text, 0.5)
		if r.Score < 0 || r.Score > 1 || r.Supported < 0 || r.Supported > r.Sentences {
			t.Fatalf("Score = %+v", r)
		}
		// A text scored against itself is fully supported.
		if self := Score([]string{text}, text, 1); self.Score != 1 {
			t.Fatalf("self score %+v for %q", self, text)
		}
	})
}

// Score is NewIndex(context).Score(text, sentenceThreshold).
func Score(context []string, text string, sentenceThreshold float64) Result {
	return NewIndex(context).Score(text, sentenceThreshold)
}
