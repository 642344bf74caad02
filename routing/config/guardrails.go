package config

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/tollgate-ai/tollgate/internal/detect"
)

// The guardrails section. Package guardrails compiles it (from its own input
// type, which the gateway builds from these); the rules that decide whether
// a section is valid live here, with the schema, so that every problem is
// reported with its file and line.

// GuardrailAction is what a guardrail does when it matches.
type GuardrailAction string

// Guardrail actions.
const (
	GuardrailBlock  GuardrailAction = "block"  // refuse the request, or end the response stream with an error
	GuardrailRedact GuardrailAction = "redact" // replace each match with a placeholder such as [EMAIL_1]
	GuardrailFlag   GuardrailAction = "flag"   // let the text through; the decision is logged and counted
)

// Guardrail types.
const (
	GuardrailPII             = "pii"              // built-in personal-data detectors (Entities: detect kinds of the PII family)
	GuardrailSecrets         = "secrets"          // built-in credential detectors (Entities: detect kinds of the secrets family)
	GuardrailRegex           = "regex"            // custom RE2 patterns
	GuardrailDenyList        = "deny_list"        // terms, case-insensitive, on word boundaries
	GuardrailPromptInjection = "prompt_injection" // scored injection patterns; input only
	GuardrailPromptSize      = "prompt_size"      // prompt length in characters and estimated tokens; input only
	GuardrailMaxTokens       = "max_tokens"       // the request's max_tokens / max_completion_tokens; input only
)

// Guardrail defaults and bounds. Package guardrails applies the defaults; a
// gateway test checks that it applies these.
const (
	DefaultOutputWindow       = 256 // bytes
	MinOutputWindow           = 128 // a private-key END line (62 bytes) must fit in half a window
	MaxOutputWindow           = 64 << 10
	DefaultInjectionThreshold = 1.0
	DefaultSentenceThreshold  = 0.5
	DefaultGroundingName      = "grounding"
	maxGuardrailLabelLen      = 32
	maxGuardrailNameLen       = 63
)

// Guardrails is the guardrails section: named policies that apps refer to.
type Guardrails struct {
	Policies []GuardrailPolicy `json:"policies"`
}

// GuardrailPolicy is one named guardrail policy.
type GuardrailPolicy struct {
	Name      string      `json:"name"`                // [a-z0-9][a-z0-9_.-]*, unique
	Input     []Guardrail `json:"input,omitempty"`     // applied to the prompt, in order
	Output    []Guardrail `json:"output,omitempty"`    // applied to the completion as it streams
	Grounding *Grounding  `json:"grounding,omitempty"` // requires tollgate_grounding_context and scores the completion against it
	// OutputWindowBytes is the most completion text held back while streaming
	// (DefaultOutputWindow when 0). A match of up to half the window is caught
	// wherever the stream's chunks split it.
	OutputWindowBytes int `json:"output_window_bytes,omitempty"`
}

// Guardrail is one input or output guardrail. Which options apply
// depends on Type; setting an option another type uses is an error.
type Guardrail struct {
	Name   string          `json:"name"`   // [a-z0-9][a-z0-9_.-]*, unique within the stage; shown in refusals and logs
	Type   string          `json:"type"`   // one of the Type constants
	Action GuardrailAction `json:"action"` // block, redact or flag (redact only for pii, secrets, regex and deny_list)

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

// Grounding requires answers grounded in the request's
// tollgate_grounding_context (see package grounding for the method).
type Grounding struct {
	Name              string          `json:"name,omitempty"`               // DefaultGroundingName when empty
	Threshold         float64         `json:"threshold"`                    // minimum groundedness score, in (0, 1]
	SentenceThreshold float64         `json:"sentence_threshold,omitempty"` // per-sentence support needed, in (0, 1]; DefaultSentenceThreshold when 0
	Action            GuardrailAction `json:"action"`                       // block or flag
}

var guardrailNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
var guardrailLabelRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// Roles an input guardrail may be limited to.
var guardrailRoles = []string{"system", "developer", "user", "assistant", "tool", "function"}

// validate checks the section; problem paths are relative to it.
func (c *Guardrails) validate(ps *guardrailProblems) {
	seen := map[string]int{}
	for i := range c.Policies {
		path := fmt.Sprintf("policies[%d]", i)
		c.Policies[i].validate(ps, path+".")
		if n := c.Policies[i].Name; n != "" {
			if j, dup := seen[n]; dup {
				ps.addf(path+".name", "duplicate policy name %q (also policies[%d])", n, j)
			} else {
				seen[n] = i
			}
		}
	}
}

func (p *GuardrailPolicy) validate(ps *guardrailProblems, prefix string) {
	checkGuardrailName(ps, prefix+"name", p.Name)
	if p.OutputWindowBytes != 0 && (p.OutputWindowBytes < MinOutputWindow || p.OutputWindowBytes > MaxOutputWindow) {
		ps.addf(prefix+"output_window_bytes", "must be between %d and %d (or 0 for %d)", MinOutputWindow, MaxOutputWindow, DefaultOutputWindow)
	}
	names := map[string]string{}
	for i := range p.Input {
		path := fmt.Sprintf("%sinput[%d]", prefix, i)
		p.Input[i].validate(ps, path, true)
		dupGuardrailName(ps, names, "input", path, p.Input[i].Name)
	}
	names = map[string]string{}
	for i := range p.Output {
		path := fmt.Sprintf("%soutput[%d]", prefix, i)
		p.Output[i].validate(ps, path, false)
		dupGuardrailName(ps, names, "output", path, p.Output[i].Name)
	}
	if g := p.Grounding; g != nil {
		path := prefix + "grounding"
		if g.Name != "" {
			checkGuardrailName(ps, path+".name", g.Name)
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
		if g.Action != GuardrailBlock && g.Action != GuardrailFlag {
			ps.addf(path+".action", "must be block or flag, not %q", g.Action)
		}
	}
}

func dupGuardrailName(ps *guardrailProblems, names map[string]string, stage, path, name string) {
	if name == "" {
		return
	}
	if other, dup := names[name]; dup {
		ps.addf(path+".name", "duplicate %s guardrail name %q (also %s)", stage, name, other)
		return
	}
	names[name] = path
}

func checkGuardrailName(ps *guardrailProblems, path, name string) {
	switch {
	case name == "":
		ps.addf(path, "is required")
	case len(name) > maxGuardrailNameLen || !guardrailNameRE.MatchString(name):
		ps.addf(path, "%q must match [a-z0-9][a-z0-9_.-]* and be at most %d bytes", name, maxGuardrailNameLen)
	}
}

func (g *Guardrail) validate(ps *guardrailProblems, path string, input bool) {
	checkGuardrailName(ps, path+".name", g.Name)
	var inputOnly, canRedact bool
	switch g.Type {
	case GuardrailPII, GuardrailSecrets, GuardrailRegex, GuardrailDenyList:
		canRedact = true
	case GuardrailPromptInjection, GuardrailPromptSize, GuardrailMaxTokens:
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
	case GuardrailBlock, GuardrailFlag:
	case GuardrailRedact:
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
	only("entities", len(g.Entities) > 0, GuardrailPII, GuardrailSecrets)
	only("patterns", len(g.Patterns) > 0, GuardrailRegex)
	only("terms", len(g.Terms) > 0, GuardrailDenyList)
	only("label", g.Label != "", GuardrailRegex, GuardrailDenyList)
	only("threshold", g.Threshold != 0, GuardrailPromptInjection)
	only("max_chars", g.MaxChars != 0, GuardrailPromptSize)
	only("max_tokens", g.MaxTokens != 0, GuardrailPromptSize)
	only("max_completion_tokens", g.MaxCompletionTokens != 0, GuardrailMaxTokens)

	if len(g.Roles) > 0 && !input {
		ps.addf(path+".roles", "applies to input guardrails only")
	}
	for i, r := range g.Roles {
		if !slices.Contains(guardrailRoles, r) {
			ps.addf(fmt.Sprintf("%s.roles[%d]", path, i), "unknown role %q (want one of %s)", r, strings.Join(guardrailRoles, ", "))
		}
	}
	if g.RestoreRedacted && (!input || g.Action != GuardrailRedact) {
		ps.addf(path+".restore_redacted", "applies to input guardrails with action redact only")
	}

	switch g.Type {
	case GuardrailPII, GuardrailSecrets:
		family := detect.PII
		if g.Type == GuardrailSecrets {
			family = detect.Secrets
		}
		seen := map[string]bool{}
		for i, e := range g.Entities {
			k, ok := detect.KindNamed(e)
			switch {
			case !ok || !family.Has(k):
				ps.addf(fmt.Sprintf("%s.entities[%d]", path, i), "unknown %s entity %q (want one of %s)", g.Type, e, guardrailKindNames(family))
			case seen[e]:
				ps.addf(fmt.Sprintf("%s.entities[%d]", path, i), "duplicate entity %q", e)
			}
			seen[e] = true
		}
	case GuardrailRegex:
		if len(g.Patterns) == 0 {
			ps.addf(path+".patterns", "at least one pattern is required")
		}
		for i, p := range g.Patterns {
			if _, _, err := detect.CompilePattern(p); err != nil {
				ps.addf(fmt.Sprintf("%s.patterns[%d]", path, i), "%v", err)
			}
		}
	case GuardrailDenyList:
		if _, err := detect.NewTerms(g.Terms); err != nil {
			ps.addf(path+".terms", "%v", err)
		}
	case GuardrailPromptInjection:
		if g.Threshold < 0 || g.Threshold > 100 {
			ps.addf(path+".threshold", "must be in (0, 100] (or 0 for %v)", DefaultInjectionThreshold)
		}
	case GuardrailPromptSize:
		if g.MaxChars < 0 || g.MaxTokens < 0 {
			ps.addf(path, "max_chars and max_tokens must not be negative")
		}
		if g.MaxChars == 0 && g.MaxTokens == 0 {
			ps.addf(path, "set max_chars, max_tokens or both")
		}
	case GuardrailMaxTokens:
		if g.MaxCompletionTokens <= 0 {
			ps.addf(path+".max_completion_tokens", "must be positive")
		}
	}
	if g.Label != "" && (len(g.Label) > maxGuardrailLabelLen || !guardrailLabelRE.MatchString(g.Label)) {
		ps.addf(path+".label", "%q must match [A-Z][A-Z0-9_]* and be at most %d bytes", g.Label, maxGuardrailLabelLen)
	}
}

func guardrailKindNames(ks detect.Kinds) string {
	var names []string
	for _, k := range ks.Members() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}

type guardrailProblems struct{ list Problems }

func (ps *guardrailProblems) addf(path, format string, args ...any) {
	ps.list = append(ps.list, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}
