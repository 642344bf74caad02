package detect

import "strings"

// Secrets are found by their fixed prefixes (one strings.Index pass per
// prefix) and checked with code: the body's alphabet and length, word
// boundaries, and, for free-form bodies, that it holds both letters and digits
// as a random key does ("sk-learn-tutorial-for-beginners" is not a key).

func findSecrets(dst []Span, s string, kinds Kinds) []Span {
	if kinds.Has(OpenAIKey) || kinds.Has(AnthropicKey) {
		dst = eachPrefix(dst, s, "sk-", func(i int) (int, Kind, bool) {
			end := tokenEnd(s, i+3)
			if strings.HasPrefix(s[i:], "sk-ant-") {
				return end, AnthropicKey, kinds.Has(AnthropicKey) && randomish(s[i+7:end], 20)
			}
			return end, OpenAIKey, kinds.Has(OpenAIKey) && randomish(s[i+3:end], 20)
		})
	}
	if kinds.Has(AWSKey) {
		for _, p := range [...]string{"AKIA", "ASIA"} {
			dst = eachPrefix(dst, s, p, func(i int) (int, Kind, bool) {
				end := i + 20
				if end > len(s) || wordAfter(s, end) {
					return 0, AWSKey, false
				}
				digit := false
				for j := i + 4; j < end; j++ {
					c := s[j]
					if !isUpper(c) && !isDigit(c) {
						return 0, AWSKey, false
					}
					digit = digit || isDigit(c)
				}
				// "ASIA" starts ordinary words; a temporary key id without a digit is too unlikely to matter.
				return end, AWSKey, digit || p == "AKIA"
			})
		}
	}
	if kinds.Has(GCPKey) {
		dst = eachPrefix(dst, s, "AIza", func(i int) (int, Kind, bool) {
			end := tokenEnd(s, i+4)
			return end, GCPKey, end-i == 39
		})
	}
	if kinds.Has(GitHubToken) {
		dst = eachPrefix(dst, s, "gh", func(i int) (int, Kind, bool) {
			if i+4 > len(s) || strings.IndexByte("pousr", s[i+2]) < 0 || s[i+3] != '_' {
				return 0, GitHubToken, false
			}
			end := i + 4
			for end < len(s) && isAlnum(s[end]) {
				end++
			}
			return end, GitHubToken, end-i-4 >= 36 && end-i-4 <= 255 && !wordAfter(s, end)
		})
		dst = eachPrefix(dst, s, "github_pat_", func(i int) (int, Kind, bool) {
			end := i + 11
			for end < len(s) && isWordByte(s[end]) {
				end++
			}
			return end, GitHubToken, end-i-11 >= 22 && !wordAfter(s, end)
		})
	}
	if kinds.Has(SlackToken) {
		dst = eachPrefix(dst, s, "xox", func(i int) (int, Kind, bool) {
			if i+5 > len(s) || strings.IndexByte("abposr", s[i+3]) < 0 || s[i+4] != '-' {
				return 0, SlackToken, false
			}
			end := slackEnd(s, i+5)
			return end, SlackToken, randomish(s[i+5:end], 10)
		})
		dst = eachPrefix(dst, s, "xapp-", func(i int) (int, Kind, bool) {
			end := slackEnd(s, i+5)
			return end, SlackToken, randomish(s[i+5:end], 10)
		})
	}
	if kinds.Has(TollgateKey) {
		dst = eachPrefix(dst, s, "tg_", func(i int) (int, Kind, bool) {
			end := tokenEnd(s, i+3)
			return end, TollgateKey, tollgateBody(s[i+3 : end])
		})
	}
	if kinds.Has(PrivateKey) {
		dst = findPEM(dst, s)
	}
	return dst
}

// eachPrefix calls match at every occurrence of prefix that does not continue
// a word or token, and appends the matches it accepts.
func eachPrefix(dst []Span, s, prefix string, match func(i int) (end int, k Kind, ok bool)) []Span {
	for from := 0; from < len(s); {
		k := strings.Index(s[from:], prefix)
		if k < 0 {
			break
		}
		i := from + k
		from = i + 1
		if wordBefore(s, i) || (i > 0 && s[i-1] == '-' && prefix[0] != '-') {
			continue
		}
		if end, kind, ok := match(i); ok {
			dst = append(dst, Span{Start: i, End: end, Kind: kind})
			from = end
		}
	}
	return dst
}

// tokenEnd returns the end of the run of [A-Za-z0-9_-] starting at i.
func tokenEnd(s string, i int) int {
	for i < len(s) && isTokenByte(s[i]) {
		i++
	}
	return i
}

func slackEnd(s string, i int) int {
	for i < len(s) && (isAlnum(s[i]) || s[i] == '-') {
		i++
	}
	return i
}

// randomish reports whether body is at least min bytes and mixes letters and digits.
func randomish(body string, min int) bool {
	if len(body) < min {
		return false
	}
	letter, digit := false, false
	for i := 0; i < len(body) && !(letter && digit); i++ {
		letter = letter || isAlpha(body[i])
		digit = digit || isDigit(body[i])
	}
	return letter && digit
}

// tollgateBody accepts the part after "tg_" of a gateway key: a random-looking
// token with an alphanumeric stretch of 16 or more, as in "tg_<id>_<secret>".
func tollgateBody(body string) bool {
	if !randomish(body, 20) {
		return false
	}
	run, best := 0, 0
	for i := 0; i < len(body); i++ {
		if isAlnum(body[i]) {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best >= 16
}

const (
	pemBegin    = "-----BEGIN "
	pemEnd      = "-----END "
	pemDashes   = "-----"
	maxPEMLabel = 48
)

// pemLineEnd checks that s[i:] starts with "<label>-----", where the label is
// upper-case words naming a private key ("RSA PRIVATE KEY", "PRIVATE KEY",
// "OPENSSH PRIVATE KEY", "PGP PRIVATE KEY BLOCK"…), and returns the index
// after the dashes, or -1.
func pemLineEnd(s string, i int) int {
	j := i
	for j < len(s) && j-i < maxPEMLabel && (isUpper(s[j]) || isDigit(s[j]) || s[j] == ' ') {
		j++
	}
	label := s[i:j]
	if !strings.HasPrefix(s[j:], pemDashes) || !strings.Contains(label, "PRIVATE KEY") {
		return -1
	}
	return j + len(pemDashes)
}

// findPEM matches private-key blocks from the BEGIN line through the END
// line. A block without an END line runs to the end of the text and is marked
// Open, so that a streaming caller knows the span was cut by its window.
func findPEM(dst []Span, s string) []Span {
	for from := 0; from < len(s); {
		k := strings.Index(s[from:], pemBegin)
		if k < 0 {
			break
		}
		i := from + k
		from = i + 1
		h := pemLineEnd(s, i+len(pemBegin))
		if h < 0 {
			continue
		}
		e := FindPEMEnd(s[h:])
		if e < 0 {
			return append(dst, Span{Start: i, End: len(s), Kind: PrivateKey, Open: true})
		}
		dst = append(dst, Span{Start: i, End: h + e, Kind: PrivateKey})
		from = h + e
	}
	return dst
}

// FindPEMEnd returns the index just after the first private-key END line
// ("-----END … PRIVATE KEY-----") in s, or -1 if s has none. A whole END line
// is at most 62 bytes.
func FindPEMEnd(s string) int {
	for from := 0; from < len(s); {
		k := strings.Index(s[from:], pemEnd)
		if k < 0 {
			return -1
		}
		i := from + k
		if e := pemLineEnd(s, i+len(pemEnd)); e >= 0 {
			return e
		}
		from = i + 1
	}
	return -1
}
