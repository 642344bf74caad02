// Package detect finds sensitive values in text: personal data (emails,
// international phone numbers, payment cards, IBANs, US SSNs, IP addresses),
// credentials (provider API keys, cloud keys, tokens, private-key blocks),
// deny-listed terms, and prompt-injection phrases.
//
// Every detector is linear in the input: candidates are located with plain
// byte scans or RE2 regular expressions, and validated with code (Luhn,
// ISO 7064 mod-97, SSN numbering rules, net/netip) rather than with complex
// patterns. Nothing here allocates per call beyond the returned slices, and
// nothing is compiled per call.
package detect

import (
	"unicode"
	"unicode/utf8"
)

// Kind is a built-in entity type.
type Kind uint8

// Built-in entity types. The PII kinds come first, then the secrets.
const (
	Email Kind = iota
	Phone
	Card
	IBAN
	SSN
	IPv4
	IPv6
	OpenAIKey
	AnthropicKey
	AWSKey
	GCPKey
	GitHubToken
	SlackToken
	TollgateKey
	PrivateKey
	numKinds
)

var kindInfo = [numKinds]struct{ name, label string }{
	Email:        {"email", "EMAIL"},
	Phone:        {"phone", "PHONE"},
	Card:         {"card", "CARD"},
	IBAN:         {"iban", "IBAN"},
	SSN:          {"ssn", "SSN"},
	IPv4:         {"ipv4", "IP"},
	IPv6:         {"ipv6", "IP"},
	OpenAIKey:    {"openai_key", "OPENAI_KEY"},
	AnthropicKey: {"anthropic_key", "ANTHROPIC_KEY"},
	AWSKey:       {"aws_access_key", "AWS_KEY"},
	GCPKey:       {"gcp_api_key", "GCP_KEY"},
	GitHubToken:  {"github_token", "GITHUB_TOKEN"},
	SlackToken:   {"slack_token", "SLACK_TOKEN"},
	TollgateKey:  {"tollgate_key", "TOLLGATE_KEY"},
	PrivateKey:   {"private_key", "PRIVATE_KEY"},
}

// String returns the kind's configuration name, such as "email" or "aws_access_key".
func (k Kind) String() string {
	if k < numKinds {
		return kindInfo[k].name
	}
	return "unknown"
}

// Label returns the placeholder label used when redacting the kind, such as "EMAIL".
func (k Kind) Label() string {
	if k < numKinds {
		return kindInfo[k].label
	}
	return "REDACTED"
}

// Kinds is a set of kinds.
type Kinds uint32

// Has reports whether k is in the set.
func (ks Kinds) Has(k Kind) bool { return ks&(1<<k) != 0 }

// With returns the set with k added.
func (ks Kinds) With(k Kind) Kinds { return ks | 1<<k }

// PII and Secrets are the two families of built-in kinds.
const (
	PII     Kinds = 1<<Email | 1<<Phone | 1<<Card | 1<<IBAN | 1<<SSN | 1<<IPv4 | 1<<IPv6
	Secrets Kinds = 1<<OpenAIKey | 1<<AnthropicKey | 1<<AWSKey | 1<<GCPKey | 1<<GitHubToken |
		1<<SlackToken | 1<<TollgateKey | 1<<PrivateKey
)

// KindNamed returns the kind with the given configuration name.
func KindNamed(name string) (Kind, bool) {
	for k := range numKinds {
		if kindInfo[k].name == name {
			return k, true
		}
	}
	return 0, false
}

// Members returns the kinds in the set, in Kind order.
func (ks Kinds) Members() []Kind {
	var out []Kind
	for k := range numKinds {
		if ks.Has(k) {
			out = append(out, k)
		}
	}
	return out
}

// Span is one match: the byte range [Start, End) of the text searched.
type Span struct {
	Start, End int
	Kind       Kind
	// Open is set on a private-key block whose END line was not found: the
	// span then runs to the end of the text, and a streaming caller must keep
	// suppressing text until it sees the END line (see FindPEMEnd).
	Open bool
}

// Find appends to dst the matches in s of every kind in kinds and returns the
// extended slice. Matches of one kind never overlap each other; matches of
// different kinds may (an IPv4 inside an IPv6 address, say), and come in no
// particular order.
func Find(dst []Span, s string, kinds Kinds) []Span {
	if kinds.Has(Email) {
		dst = findEmails(dst, s)
	}
	if kinds.Has(Phone) {
		dst = findPhones(dst, s)
	}
	if kinds.Has(Card) {
		dst = findCards(dst, s)
	}
	if kinds.Has(IBAN) {
		dst = findIBANs(dst, s)
	}
	if kinds.Has(SSN) {
		dst = findSSNs(dst, s)
	}
	if kinds.Has(IPv4) {
		dst = findIPv4(dst, s)
	}
	if kinds.Has(IPv6) {
		dst = findIPv6(dst, s)
	}
	if kinds&Secrets != 0 {
		dst = findSecrets(dst, s, kinds)
	}
	return dst
}

// nextDigit returns the index of the first ASCII digit in s at or after i, or
// len(s). It tests eight bytes at a time, as the PII finders spend most of
// their time looking for digits: XOR with '0' maps exactly the digits to
// bytes below 10, and (w - 0x0A..0A) &^ w has a high bit set in the lowest
// such byte, if any (a borrow only starts at such a byte).
func nextDigit(s string, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// Digits come in clusters ("1-2-3", dates, IPs): look at a few bytes
	// one by one first.
	for end := min(i+4, len(s)); i < end; i++ {
		if isDigit(s[i]) {
			return i
		}
	}
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		w ^= ones * '0'
		if (w-ones*10)&^w&highs != 0 {
			break
		}
	}
	for i < len(s) && !isDigit(s[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool     { return '0' <= c && c <= '9' }
func isUpper(c byte) bool     { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool     { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool     { return isUpper(c) || isLower(c) }
func isAlnum(c byte) bool     { return isAlpha(c) || isDigit(c) }
func isWordByte(c byte) bool  { return isAlnum(c) || c == '_' }
func isWordRune(r rune) bool  { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
func isTokenByte(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }
func isHex(c byte) bool       { return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F') }

// wordBefore reports whether the rune ending at i is a letter, digit or '_'.
func wordBefore(s string, i int) bool {
	if i <= 0 {
		return false
	}
	if c := s[i-1]; c < utf8.RuneSelf {
		return isWordByte(c)
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return isWordRune(r)
}

// wordAfter reports whether the rune starting at i is a letter, digit or '_'.
func wordAfter(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	if c := s[i]; c < utf8.RuneSelf {
		return isWordByte(c)
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return isWordRune(r)
}
