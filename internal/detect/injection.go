package detect

import (
	"encoding/base64"
	"encoding/hex"
	"math"
	"math/bits"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Injection scores text for prompt-injection attempts with a fixed set of
// weighted patterns in four families: instruction override ("ignore all
// previous instructions"), role-play jailbreaks ("you are DAN", "act as an
// unfiltered AI"), system-prompt extraction ("reveal your system prompt") and
// encoded payloads (a base64 or hex blob that decodes to any of the others).
//
// Each pattern is an RE2 expression run only when one of its keywords occurs
// in the text (one Aho–Corasick pass finds them all), so ordinary text costs
// one linear scan. The score of a text is the sum of the weights of the
// distinct patterns it matches; strong signals weigh 1, weaker ones less, so
// with the default threshold of 1 one strong signal or a few weak ones trigger.
//
// An Injection is immutable and safe for concurrent use.
type Injection struct {
	patterns []injPattern
	gate     *Terms
	gateBits []uint64 // per gate term id: the patterns it unlocks
	encoded  int      // index of the encoded-payload pseudo-pattern
}

type injPattern struct {
	name   string
	weight int // tenths, so that scores add up exactly
	re     *regexp.Regexp
}

// InjectionHits is the set of patterns a text matched (bit i = pattern i).
type InjectionHits uint64

// Count returns the number of distinct patterns matched.
func (h InjectionHits) Count() int { return bits.OnesCount64(uint64(h)) }

type injSpec struct {
	name   string
	weight float64
	expr   string
	gates  []string
}

// The override nouns and scope words are shared by several patterns.
const (
	injNouns = `(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|constraints|commands|orders|programming|polic(?:y|ies)|context|messages?)`
	injScope = `(?:previous|prior|above|earlier|preceding|foregoing|initial|original|existing|system|developer|safety)`
	injFill  = `(?:all|any|every|each|the|your|my|these|those|of|previous|prior|above|earlier|preceding|foregoing|initial|original|existing|current|system|developer|safety|other)`
)

// Gate keywords are whole words, except those ending in '*', which are
// prefixes; a pattern runs only where one of its keywords occurs.
var overrideVerbs = []string{"ignore", "disregard", "forget", "override", "bypass", "overrule", "skip"}

var injSpecs = []injSpec{
	{"override_previous", 1, `(?i)\b(?:ignore|disregard|forget|override|bypass|overrule|skip)\s+(?:` + injFill + `\s+){0,5}` + injScope + `\s+(?:\w+\s+){0,2}` + injNouns + `\b`, overrideVerbs},
	{"forget_everything", 0.8, `(?i)\b(?:ignore|disregard|forget)\s+(?:everything|all|anything|whatever)\s+(?:that\s+)?(?:you\s+(?:were|have\s+been)\s+told|(?:i|we)\s+(?:said|told\s+you)|above|before|previously|so\s+far|prior)\b`, overrideVerbs[:3]},
	{"new_instructions", 0.5, `(?i)\b(?:new|updated|real|actual|true|revised)\s+(?:system\s+)?instructions?\s*:`, []string{"instruction*"}},
	{"from_now_on", 0.4, `(?i)\bfrom\s+now\s+on\s*,?\s+you\s+(?:are|will|must|shall|should|have\s+to)\b`, []string{"from now on"}},
	{"dan_persona", 1, `(?:\b(?i:you\s+are|you're|act\s+as|pretend\s+to\s+be|you\s+will\s+be|become)\s+(?i:now\s+)?(?i:a\s+|an\s+|the\s+)?(?:DAN|STAN|DUDE|AIM)\b)`, []string{"dan", "stan", "dude", "aim"}},
	{"do_anything_now", 0.8, `(?i)\bdo\s+anything\s+now\b`, []string{"do anything now"}},
	{"unrestricted_persona", 1, `(?i)\b(?:you\s+are|you're|act\s+as|acting\s+as|pretend\s+(?:to\s+be|you\s+are)|role-?play\s+as|behave\s+(?:like|as)|become)\s+(?:now\s+)?(?:(?:a|an|the)\s+)?(?:\w+\s+){0,2}(?:unfiltered|uncensored|unrestricted|jailbroken|unshackled|amoral|unaligned|unbound)\b`,
		[]string{"unfiltered", "uncensored", "unrestricted", "jailbroken", "unshackled", "amoral", "unaligned", "unbound"}},
	{"no_restrictions", 0.4, `(?i)\b(?:no|without|free\s+(?:of|from))\s+(?:any\s+)?(?:(?:ethical|moral|content|safety)\s+)?(?:restrictions|filters|filtering|limitations|censorship|guidelines|boundaries|ethics|morals)\b`,
		[]string{"restrictions", "filters", "filtering", "limitations", "censorship", "guidelines", "boundaries", "ethics", "morals"}},
	{"mode_switch", 0.6, `(?i)\b(?:developer|dev|god|jailbreak|dan|admin|sudo|unrestricted|debug)\s+mode\s+(?:is\s+)?(?:enabled|activated|on|engaged|unlocked)\b|\b(?:enable|activate|enter|switch\s+to)\s+(?:developer|god|jailbreak|dan|unrestricted)\s+mode\b`, []string{"mode"}},
	{"jailbreak_word", 0.4, `(?i)\bjailbr(?:eak|eaks|eaking|oken)\b`, []string{"jailbr*"}},
	{"system_prompt_extraction", 1, `(?i)\b(?:reveal|show|print|display|output|repeat|dump|leak|disclose|expose|recite|tell\s+me|give\s+me|share|send\s+me|write\s+out|spell\s+out|what\s+(?:is|are|was|were))\s+(?:me\s+|us\s+)?(?:(?:your|the|my|its|all|of|full|entire|complete|exact|whole|verbatim|above|previous)\s+)*(?:system|hidden|initial|original|developer|internal|secret|pre-?)\s*(?:prompts?|messages?|instructions?)\b`,
		promptNouns("system", "hidden", "initial", "original", "developer", "internal", "secret", "pre", "pre-")},
	{"prompt_echo", 0.6, `(?i)\b(?:repeat|print|output|copy|recite|echo)\s+(?:back\s+)?(?:all\s+|everything\s+|verbatim\s+)?(?:(?:the\s+)?(?:text|words|content|lines?)\s+)?(?:above|before\s+this|preceding)\b|\beverything\s+above\s+this\s+line\b`,
		[]string{"repeat", "print", "output", "copy", "recite", "echo", "everything above"}},
	{"role_markers", 0.6, `(?i)<\|im_start\|>\s*system|<\|system\|>|\[/?INST\]|<</?SYS>>|</?system>`, []string{"<|im_start|>", "<|system|>", "[inst]", "[/inst]", "<<sys>>", "<</sys>>", "<system>", "</system>"}},
}

// promptNouns returns gate prefixes "<adj>prompt", "<adj> prompt", … for
// each adjective.
func promptNouns(adjs ...string) []string {
	var out []string
	for _, a := range adjs {
		for _, n := range []string{"prompt*", "message*", "instruction*"} {
			out = append(out, a+n)
			if !strings.HasSuffix(a, "-") {
				out = append(out, a+" "+n)
			}
		}
	}
	return out
}

// injReach is how far around a keyword a pattern's match may extend: each
// pattern runs only over the text within injReach bytes of its keywords
// (overlapping stretches merged), so hostile text full of keywords still
// costs a bounded number of passes per byte.
const injReach = 256

// Encoded payloads: blobs at least this long are decoded and scanned.
const (
	minBase64Blob = 24
	minHexBlob    = 32
	maxBlob       = 64 << 10
)

// NewInjection compiles the built-in patterns.
func NewInjection() *Injection {
	in := &Injection{}
	var gates []string
	var unlocks []uint64
	for i, sp := range injSpecs {
		in.patterns = append(in.patterns, injPattern{name: sp.name, weight: int(math.Round(sp.weight * 10)), re: regexp.MustCompile(sp.expr)})
		for _, g := range sp.gates {
			gates = append(gates, g)
			unlocks = append(unlocks, 1<<i)
		}
	}
	in.encoded = len(in.patterns)
	in.patterns = append(in.patterns, injPattern{name: "encoded_payload", weight: 10})
	var ids []int
	in.gate, ids = newTerms(gates, true)
	in.gateBits = make([]uint64, len(gates))
	for i, id := range ids {
		in.gateBits[id] |= unlocks[i]
	}
	return in
}

// PatternNames returns the names of the patterns, indexed like InjectionHits bits.
func (in *Injection) PatternNames() []string {
	names := make([]string, len(in.patterns))
	for i, p := range in.patterns {
		names[i] = p.name
	}
	return names
}

// Scan returns the patterns s matches, including encoded_payload when a
// base64 or hex blob in s decodes to text matching any other pattern.
func (in *Injection) Scan(s string) InjectionHits {
	h := in.scanPlain(s)
	if in.encodedPayload(s) {
		h |= 1 << in.encoded
	}
	return h
}

func (in *Injection) scanPlain(s string) InjectionHits {
	type gateHit struct {
		patterns   uint64
		start, end int
	}
	var hits []gateHit
	var unlocked uint64
	in.gate.scan(s, func(term, start, end int) {
		unlocked |= in.gateBits[term]
		hits = append(hits, gateHit{in.gateBits[term], start, end})
	})
	var h InjectionHits
	for unlocked != 0 {
		i := bits.TrailingZeros64(unlocked)
		unlocked &^= 1 << i
		re := in.patterns[i].re
		from, to := -1, -1 // the current stretch of text to match
		matched := false
		for _, gh := range hits {
			if gh.patterns&(1<<i) == 0 {
				continue
			}
			a, b := runeBefore(s, gh.start-injReach), runeAfter(s, gh.end+injReach)
			if from >= 0 && a <= to {
				from, to = min(from, a), max(to, b)
				continue
			}
			if from >= 0 && re.MatchString(s[from:to]) {
				matched = true
				break
			}
			from, to = a, b
		}
		if matched || (from >= 0 && re.MatchString(s[from:to])) {
			h |= 1 << i
		}
	}
	return h
}

// runeBefore clamps i to [0, len(s)] and moves it back to a rune start.
func runeBefore(s string, i int) int {
	if i <= 0 {
		return 0
	}
	i = min(i, len(s))
	for k := 0; k < utf8.UTFMax-1 && i > 0 && i < len(s) && !utf8.RuneStart(s[i]); k++ {
		i--
	}
	return i
}

// runeAfter clamps i to [0, len(s)] and moves it forward to a rune start.
func runeAfter(s string, i int) int {
	if i >= len(s) {
		return len(s)
	}
	i = max(i, 0)
	for k := 0; k < utf8.UTFMax-1 && i < len(s) && !utf8.RuneStart(s[i]); k++ {
		i++
	}
	return i
}

// Score returns the summed weight of the patterns in h.
func (in *Injection) Score(h InjectionHits) float64 {
	tenths := 0
	for i, p := range in.patterns {
		if h&(1<<i) != 0 {
			tenths += p.weight
		}
	}
	return float64(tenths) / 10
}

// isBase64Byte reports whether c is alphanumeric or one of "+/-_": a bit
// test in base64Lo (bytes 0-63) or base64Hi (64-127), as it runs on every byte.
func isBase64Byte(c byte) bool {
	m := uint64(base64Lo)
	if c >= 64 {
		m = base64Hi
	}
	return c < utf8.RuneSelf && m>>(c&63)&1 != 0
}

const (
	base64Lo = 1<<'+' | 1<<'-' | 1<<'/' | (1<<10-1)<<'0'
	base64Hi = (1<<26-1)<<('A'-64) | 1<<('_'-64) | (1<<26-1)<<('a'-64)
)

// encodedPayload looks for base64 or hex blobs whose decoded text matches an
// injection pattern. Each byte of s belongs to at most one blob, and each blob
// is decoded once, so this stays linear.
func (in *Injection) encodedPayload(s string) bool {
	var buf []byte
	// No run of base64 bytes crosses i from the left. A run of at least
	// minBase64Blob bytes starting at or after i covers s[i+minBase64Blob-1],
	// so that byte is tested first: prose, whose words are shorter, is
	// passed over a stride at a time.
	for i := 0; i+minBase64Blob <= len(s); {
		k := i + minBase64Blob - 1
		if !isBase64Byte(s[k]) {
			i = k + 1
			continue
		}
		for k > i && isBase64Byte(s[k-1]) {
			k--
		}
		j := i + minBase64Blob // s[k:j] is base64 bytes
		for j < len(s) && isBase64Byte(s[j]) {
			j++
		}
		blob := s[k:j]
		for j < len(s) && s[j] == '=' && j-k < maxBlob {
			j++
		}
		i = j
		if len(blob) < minBase64Blob || len(blob) > maxBlob {
			continue
		}
		buf = decodeBlob(buf[:0], blob)
		if len(buf) > 0 && printableText(buf) && in.scanPlain(string(buf)) != 0 {
			return true
		}
	}
	return false
}

// decodeBlob decodes blob as hex when it is all hex digits, else as base64 in
// the standard or URL alphabet; it returns nil when neither works.
func decodeBlob(dst []byte, blob string) []byte {
	if len(blob) >= minHexBlob && len(blob)%2 == 0 && allHex(blob) {
		if b, err := hex.AppendDecode(dst, []byte(blob)); err == nil {
			return b
		}
		return nil
	}
	enc := base64.RawStdEncoding
	for k := 0; k < len(blob); k++ {
		if blob[k] == '-' || blob[k] == '_' {
			enc = base64.RawURLEncoding
			break
		}
	}
	if len(blob)%4 == 1 {
		blob = blob[:len(blob)-1] // one stray character can never be base64
	}
	b, err := enc.AppendDecode(dst, []byte(blob))
	if err != nil {
		return nil
	}
	return b
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// printableText reports whether b is UTF-8 text, mostly printable.
func printableText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	bad, n := 0, 0
	for _, r := range string(b) {
		n++
		if !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			bad++
		}
	}
	return bad*10 <= n
}
