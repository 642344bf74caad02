package guardrails

import (
	"cmp"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/tollgate-ai/tollgate/policy/guardrails/detect"
)

// Action is what a guardrail does when it matches.
type Action string

// Actions.
const (
	Block  Action = "block"  // refuse the request, or end the response stream with an error
	Redact Action = "redact" // replace each match with a placeholder such as [EMAIL_1]
	Flag   Action = "flag"   // let the text through; the decision is logged and counted
)

// Guardrail types.
const (
	TypePII             = "pii"              // built-in personal-data detectors (Entities: detect kinds of the PII family)
	TypeSecrets         = "secrets"          // built-in credential detectors (Entities: detect kinds of the secrets family)
	TypeRegex           = "regex"            // custom RE2 patterns
	TypeDenyList        = "deny_list"        // terms, case-insensitive, on word boundaries
	TypePromptInjection = "prompt_injection" // scored injection patterns; input only
	TypePromptSize      = "prompt_size"      // prompt length in characters and estimated tokens; input only
	TypeMaxTokens       = "max_tokens"       // the request's max_tokens / max_completion_tokens; input only
)

// Defaults and bounds.
const (
	DefaultOutputWindow       = 256 // bytes
	MinOutputWindow           = 128 // a private-key END line (62 bytes) must fit in half a window
	MaxOutputWindow           = 64 << 10
	DefaultInjectionThreshold = 1.0
	DefaultSentenceThreshold  = 0.5
	DefaultGroundingName      = "grounding"
	maxPatternLen             = 4096
	maxLabelLen               = 32
	maxNameLen                = 63
)

// Config is the guardrails section of the gateway configuration: named
// policies that apps refer to.
type Config struct {
	Policies []PolicyConfig `json:"policies"`
}

// PolicyConfig is one named policy.
type PolicyConfig struct {
	Name      string            `json:"name"`                // [a-z0-9][a-z0-9_.-]*, unique
	Input     []GuardrailConfig `json:"input,omitempty"`     // applied to the prompt, in order
	Output    []GuardrailConfig `json:"output,omitempty"`    // applied to the completion as it streams
	Grounding *GroundingConfig  `json:"grounding,omitempty"` // requires tollgate_grounding_context and scores the completion against it
	// OutputWindowBytes is the most completion text held back while streaming
	// (DefaultOutputWindow when 0). A match of up to half the window is caught
	// wherever the stream's chunks split it.
	OutputWindowBytes int `json:"output_window_bytes,omitempty"`
}

// GuardrailConfig is one input or output guardrail. Which options apply
// depends on Type; setting an option another type uses is an error.
type GuardrailConfig struct {
	Name   string `json:"name"`   // [a-z0-9][a-z0-9_.-]*, unique within the stage; shown in refusals and logs
	Type   string `json:"type"`   // one of the Type constants
	Action Action `json:"action"` // block, redact or flag (redact only for pii, secrets, regex and deny_list)

	// Roles limits an input guardrail to messages with these roles (system,
	// developer, user, assistant, tool, function); empty means all.
	Roles []string `json:"roles,omitempty"`

	// Entities (pii, secrets) selects detectors by name; empty means all of the family.
	Entities []string `json:"entities,omitempty"`
	// Patterns (regex) are RE2 expressions; none may match the empty string.
	Patterns []string `json:"patterns,omitempty"`
	// Terms (deny_list) are matched case-insensitively on word boundaries.
	Terms []string `json:"terms,omitempty"`
	// Label (regex, deny_list) names redaction placeholders, [LABEL_1];
	// [A-Z][A-Z0-9_]*, default derived from Name.
	Label string `json:"label,omitempty"`
	// RestoreRedacted (input redact guardrails) puts the original values back
	// where the completion repeats their placeholders.
	RestoreRedacted bool `json:"restore_redacted,omitempty"`

	// Threshold (prompt_injection) is the score at which the guardrail
	// triggers; DefaultInjectionThreshold when 0.
	Threshold float64 `json:"threshold,omitempty"`
	// MaxChars and MaxTokens (prompt_size) bound the prompt's characters
	// (Unicode code points) and estimated tokens; 0 means no bound, one is required.
	MaxChars  int `json:"max_chars,omitempty"`
	MaxTokens int `json:"max_tokens,omitempty"`
	// MaxCompletionTokens (max_tokens) bounds the max_tokens or
	// max_completion_tokens a request may ask for.
	MaxCompletionTokens int `json:"max_completion_tokens,omitempty"`
}

// GroundingConfig requires answers grounded in the request's
// tollgate_grounding_context (see package grounding for the method).
type GroundingConfig struct {
	Name              string  `json:"name,omitempty"`               // DefaultGroundingName when empty
	Threshold         float64 `json:"threshold"`                    // minimum groundedness score, in (0, 1]
	SentenceThreshold float64 `json:"sentence_threshold,omitempty"` // per-sentence support needed, in (0, 1]; DefaultSentenceThreshold when 0
	Action            Action  `json:"action"`                       // block or flag
}

// Problem is one thing wrong with a guardrails configuration.
type Problem struct {
	Path    string // field path such as "policies[0].input[2].patterns[1]"
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Problems is the error Validate returns: every problem found, in field order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

type problems struct{ list Problems }

func (ps *problems) addf(path, format string, args ...any) {
	ps.list = append(ps.list, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	return ps.list
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
var labelRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// Roles an input guardrail may be limited to.
var knownRoles = []string{"system", "developer", "user", "assistant", "tool", "function"}

// Validate checks the whole configuration; the error is Problems.
func (c *Config) Validate() error {
	var ps problems
	seen := map[string]int{}
	for i := range c.Policies {
		path := fmt.Sprintf("policies[%d]", i)
		c.Policies[i].validate(&ps, path+".")
		if n := c.Policies[i].Name; n != "" {
			if j, dup := seen[n]; dup {
				ps.addf(path+".name", "duplicate policy name %q (also policies[%d])", n, j)
			} else {
				seen[n] = i
			}
		}
	}
	return ps.err()
}

// Validate checks one policy; paths in the Problems are relative to it.
func (p *PolicyConfig) Validate() error {
	var ps problems
	p.validate(&ps, "")
	return ps.err()
}

func (p *PolicyConfig) validate(ps *problems, prefix string) {
	checkName(ps, prefix+"name", p.Name)
	if p.OutputWindowBytes != 0 && (p.OutputWindowBytes < MinOutputWindow || p.OutputWindowBytes > MaxOutputWindow) {
		ps.addf(prefix+"output_window_bytes", "must be between %d and %d (or 0 for %d)", MinOutputWindow, MaxOutputWindow, DefaultOutputWindow)
	}
	names := map[string]string{}
	for i := range p.Input {
		path := fmt.Sprintf("%sinput[%d]", prefix, i)
		p.Input[i].validate(ps, path, true)
		dupName(ps, names, "input", path, p.Input[i].Name)
	}
	names = map[string]string{}
	for i := range p.Output {
		path := fmt.Sprintf("%soutput[%d]", prefix, i)
		p.Output[i].validate(ps, path, false)
		dupName(ps, names, "output", path, p.Output[i].Name)
	}
	if g := p.Grounding; g != nil {
		path := prefix + "grounding"
		if g.Name != "" {
			checkName(ps, path+".name", g.Name)
		}
		name := cmp.Or(g.Name, DefaultGroundingName)
		if other, dup := names[name]; dup {
			ps.addf(path+".name", "%q is also the name of %s; grounding decisions are output decisions and need a distinct name", name, other)
		}
		if !(g.Threshold > 0 && g.Threshold <= 1) {
			ps.addf(path+".threshold", "must be in (0, 1]")
		}
		if g.SentenceThreshold != 0 && !(g.SentenceThreshold > 0 && g.SentenceThreshold <= 1) {
			ps.addf(path+".sentence_threshold", "must be in (0, 1] (or 0 for %v)", DefaultSentenceThreshold)
		}
		if g.Action != Block && g.Action != Flag {
			ps.addf(path+".action", "must be block or flag, not %q", g.Action)
		}
	}
}

func dupName(ps *problems, names map[string]string, stage, path, name string) {
	if name == "" {
		return
	}
	if other, dup := names[name]; dup {
		ps.addf(path+".name", "duplicate %s guardrail name %q (also %s)", stage, name, other)
		return
	}
	names[name] = path
}

func checkName(ps *problems, path, name string) {
	switch {
	case name == "":
		ps.addf(path, "is required")
	case len(name) > maxNameLen || !nameRE.MatchString(name):
		ps.addf(path, "%q must match [a-z0-9][a-z0-9_.-]* and be at most %d bytes", name, maxNameLen)
	}
}

func (g *GuardrailConfig) validate(ps *problems, path string, input bool) {
	checkName(ps, path+".name", g.Name)
	var inputOnly, canRedact bool
	switch g.Type {
	case TypePII, TypeSecrets, TypeRegex, TypeDenyList:
		canRedact = true
	case TypePromptInjection, TypePromptSize, TypeMaxTokens:
		inputOnly = true
	case "":
		ps.addf(path+".type", "is required")
	default:
		ps.addf(path+".type", "unknown type %q (want pii, secrets, regex, deny_list, prompt_injection, prompt_size or max_tokens)", g.Type)
	}
	if inputOnly && !input {
		ps.addf(path+".type", "%s is an input guardrail", g.Type)
	}
	switch g.Action {
	case Block, Flag:
	case Redact:
		if !canRedact && g.Type != "" {
			ps.addf(path+".action", "%s cannot redact (use block or flag)", g.Type)
		}
	case "":
		ps.addf(path+".action", "is required (block, redact or flag)")
	default:
		ps.addf(path+".action", "unknown action %q (want block, redact or flag)", g.Action)
	}

	only := func(field string, set bool, types ...string) {
		if set && !slices.Contains(types, g.Type) && g.Type != "" {
			ps.addf(path+"."+field, "does not apply to type %s", g.Type)
		}
	}
	only("entities", len(g.Entities) > 0, TypePII, TypeSecrets)
	only("patterns", len(g.Patterns) > 0, TypeRegex)
	only("terms", len(g.Terms) > 0, TypeDenyList)
	only("label", g.Label != "", TypeRegex, TypeDenyList)
	only("threshold", g.Threshold != 0, TypePromptInjection)
	only("max_chars", g.MaxChars != 0, TypePromptSize)
	only("max_tokens", g.MaxTokens != 0, TypePromptSize)
	only("max_completion_tokens", g.MaxCompletionTokens != 0, TypeMaxTokens)

	if len(g.Roles) > 0 && !input {
		ps.addf(path+".roles", "applies to input guardrails only")
	}
	for i, r := range g.Roles {
		if !slices.Contains(knownRoles, r) {
			ps.addf(fmt.Sprintf("%s.roles[%d]", path, i), "unknown role %q (want one of %s)", r, strings.Join(knownRoles, ", "))
		}
	}
	if g.RestoreRedacted && (!input || g.Action != Redact) {
		ps.addf(path+".restore_redacted", "applies to input guardrails with action redact only")
	}

	switch g.Type {
	case TypePII, TypeSecrets:
		family := detect.PII
		if g.Type == TypeSecrets {
			family = detect.Secrets
		}
		seen := map[string]bool{}
		for i, e := range g.Entities {
			k, ok := detect.KindNamed(e)
			switch {
			case !ok || !family.Has(k):
				ps.addf(fmt.Sprintf("%s.entities[%d]", path, i), "unknown %s entity %q (want one of %s)", g.Type, e, kindNames(family))
			case seen[e]:
				ps.addf(fmt.Sprintf("%s.entities[%d]", path, i), "duplicate entity %q", e)
			}
			seen[e] = true
		}
	case TypeRegex:
		if len(g.Patterns) == 0 {
			ps.addf(path+".patterns", "at least one pattern is required")
		}
		for i, p := range g.Patterns {
			if _, err := compilePattern(p); err != nil {
				ps.addf(fmt.Sprintf("%s.patterns[%d]", path, i), "%v", err)
			}
		}
	case TypeDenyList:
		if _, err := detect.NewTerms(g.Terms); err != nil {
			ps.addf(path+".terms", "%v", err)
		}
	case TypePromptInjection:
		if g.Threshold < 0 || g.Threshold > 100 {
			ps.addf(path+".threshold", "must be in (0, 100] (or 0 for %v)", DefaultInjectionThreshold)
		}
	case TypePromptSize:
		if g.MaxChars < 0 || g.MaxTokens < 0 {
			ps.addf(path, "max_chars and max_tokens must not be negative")
		}
		if g.MaxChars == 0 && g.MaxTokens == 0 {
			ps.addf(path, "set max_chars, max_tokens or both")
		}
	case TypeMaxTokens:
		if g.MaxCompletionTokens <= 0 {
			ps.addf(path+".max_completion_tokens", "must be positive")
		}
	}
	if g.Label != "" && (len(g.Label) > maxLabelLen || !labelRE.MatchString(g.Label)) {
		ps.addf(path+".label", "%q must match [A-Z][A-Z0-9_]* and be at most %d bytes", g.Label, maxLabelLen)
	}
}

// compilePattern compiles a custom pattern. RE2 (Go's regexp) runs in time
// linear in the input; a pattern that can match the empty string is refused,
// as it would match everywhere.
func compilePattern(p string) (*regexp.Regexp, error) {
	re, _, err := compilePatternLit(p)
	return re, err
}

// compilePatternLit also returns a literal every match contains ("" when
// there is none), so that texts without it can skip the regexp.
func compilePatternLit(p string) (*regexp.Regexp, string, error) {
	if len(p) > maxPatternLen {
		return nil, "", fmt.Errorf("pattern longer than %d bytes", maxPatternLen)
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, "", fmt.Errorf("invalid pattern: %v", err)
	}
	parsed, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil, "", fmt.Errorf("invalid pattern: %v", err)
	}
	parsed = parsed.Simplify()
	if minLen(parsed) == 0 {
		return nil, "", fmt.Errorf("pattern %q can match the empty string", p)
	}
	return re, requiredLiteral(parsed), nil
}

// requiredLiteral returns the longest case-sensitive literal that every
// match of re contains, or "".
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return ""
		}
		return string(re.Rune)
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min > 0 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l := requiredLiteral(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

// minLen returns the least number of runes a regexp can match.
func minLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture:
		return minLen(re.Sub[0])
	case syntax.OpPlus:
		return minLen(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min * minLen(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n += minLen(s)
		}
		return n
	case syntax.OpAlternate:
		n := -1
		for _, s := range re.Sub {
			if m := minLen(s); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	default: // empty match, anchors, word boundaries, star, quest, no match
		return 0
	}
}

func kindNames(ks detect.Kinds) string {
	var names []string
	for _, k := range ks.Members() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}
