// Package grounding scores how well a completion is supported by context
// passages, with per-sentence lexical support:
//
//  1. Text is split into words: runs of letters and digits (a '.' or ','
//     between digits stays inside a number: "5.2", "1,000"). Words are
//     lower-cased; a trailing "'s" is dropped and a plural "s" is stripped
//     from words longer than three letters (not after "s", "u" or "i"), so
//     "prices" and "price" agree. Stop words ("the", "is", "which" …), single
//     letters and redaction placeholders such as "[EMAIL_1]" are not content
//     words.
//  2. The completion is split into sentences at '.', '!' or '?' followed by
//     white space or the end, and at line breaks.
//  3. A sentence's support is the fraction of its content words that occur
//     anywhere in the context. A sentence is supported when its support
//     reaches the sentence threshold.
//  4. The score is supported sentences / sentences, counting only sentences
//     with at least one content word; a completion without any scores 1.
//
// The method is cheap (linear in context and completion), deterministic and
// explainable, and catches answers that bring in facts, names or numbers
// absent from the context. It does not understand paraphrase or negation: it
// is a first line of defence, not a judge.
package grounding

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Index is the set of content words of a request's context passages. It is
// immutable once built.
type Index struct {
	words map[string]struct{}
}

// NewIndex indexes the context passages.
func NewIndex(context []string) *Index {
	ix := &Index{words: map[string]struct{}{}}
	for _, c := range context {
		eachWord(c, func(w []byte, _ bool) {
			if _, ok := ix.words[string(w)]; !ok {
				ix.words[string(w)] = struct{}{}
			}
		})
	}
	return ix
}

// Result is a groundedness score with its parts.
type Result struct {
	Score     float64 // Supported / Sentences, or 1 when Sentences is 0
	Sentences int     // sentences with at least one content word
	Supported int     // sentences whose support reaches the sentence threshold
}

// Unsupported returns the number of sentences not supported.
func (r Result) Unsupported() int { return r.Sentences - r.Supported }

// Score scores text against the index.
func (ix *Index) Score(text string, sentenceThreshold float64) Result {
	var r Result
	total, found := 0, 0
	end := func() {
		if total > 0 {
			r.Sentences++
			if float64(found) >= sentenceThreshold*float64(total) {
				r.Supported++
			}
		}
		total, found = 0, 0
	}
	eachWord(text, func(w []byte, sentenceEnd bool) {
		if w != nil {
			total++
			if _, ok := ix.words[string(w)]; ok {
				found++
			}
		}
		if sentenceEnd {
			end()
		}
	})
	end()
	r.Score = 1
	if r.Sentences > 0 {
		r.Score = float64(r.Supported) / float64(r.Sentences)
	}
	return r
}

// eachWord calls fn with each normalized content word of s (the slice is
// reused between calls), and with w == nil, sentenceEnd == true at each
// sentence boundary.
func eachWord(s string, fn func(w []byte, sentenceEnd bool)) {
	var buf []byte
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '[':
			if e := placeholderEnd(s, i); e > 0 {
				i = e
				continue
			}
		case r == '\n' || r == '\r':
			fn(nil, true)
		case r == '.' || r == '!' || r == '?' || r == '。' || r == '！' || r == '？':
			if next, _ := utf8.DecodeRuneInString(s[i+n:]); i+n >= len(s) || unicode.IsSpace(next) || r > utf8.RuneSelf {
				fn(nil, true)
			}
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			buf = buf[:0]
			j := i
			for j < len(s) {
				r, n := utf8.DecodeRuneInString(s[j:])
				if unicode.IsLetter(r) || unicode.IsDigit(r) {
					buf = utf8.AppendRune(buf, unicode.ToLower(r))
					j += n
					continue
				}
				// A '.' or ',' between digits belongs to the number; the comma is dropped.
				if (r == '.' || r == ',') && j > i && isDigit(s[j-1]) && j+1 < len(s) && isDigit(s[j+1]) {
					if r == '.' {
						buf = append(buf, '.')
					}
					j++
					continue
				}
				break
			}
			// A possessive "'s" is dropped with its apostrophe.
			if j+2 <= len(s) && (s[j] == '\'') && (s[j+1] == 's' || s[j+1] == 'S') && (j+2 == len(s) || !isWordByte(s[j+2])) {
				j += 2
			}
			i = j
			if w := stem(buf); content(w) {
				fn(w, false)
			}
			continue
		}
		i += n
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isWordByte(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c == '_'
}

// stem strips a plural "s" from words longer than three bytes, unless it
// follows "s", "u" or "i" ("class", "status", "analysis").
func stem(w []byte) []byte {
	if n := len(w); n > 3 && w[n-1] == 's' && !strings.ContainsRune("sui", rune(w[n-2])) {
		return w[:n-1]
	}
	return w
}

func content(w []byte) bool {
	if len(w) == 0 {
		return false
	}
	if len(w) == 1 && !isDigit(w[0]) {
		return false
	}
	_, stop := stopWords[string(w)]
	return !stop
}

// placeholderEnd returns the end of a redaction placeholder "[LABEL_N]" at
// s[i], or -1.
func placeholderEnd(s string, i int) int {
	j := i + 1
	for j < len(s) && j-i < 48 && (('A' <= s[j] && s[j] <= 'Z') || isDigit(s[j]) || s[j] == '_') {
		j++
	}
	if j < len(s) && s[j] == ']' && j-i >= 4 && isDigit(s[j-1]) && 'A' <= s[i+1] && s[i+1] <= 'Z' {
		return j + 1
	}
	return -1
}

// stopWords are function words that carry no facts, after stemming.
var stopWords = func() map[string]struct{} {
	const list = `a about above after again against all also am an and any are aren as at be because been before
being below between both but by can cannot could couldn did didn do does doesn doing don down during each
few for from further had hadn has hasn have haven having he her here hers herself him himself his how i if
in into is isn it its itself just let me more most much must mustn my myself no nor not now of off on once
only or other ought our ours ourselves out over own same shall shan she should shouldn so some such than
that the their theirs them themselves then there these they this those through to too under until up upon
us very was wasn we were weren what when where which while who whom whose why will with won would wouldn
yes yet you your yours yourself yourselves ll re ve also however therefore thus hence may might please
according based using used use via per one get got make made like well`
	m := map[string]struct{}{}
	for _, w := range strings.Fields(list) {
		m[string(stem([]byte(w)))] = struct{}{}
	}
	return m
}()
