package guardrails

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

// Defaults, applied when the configuration leaves a value 0 or empty.
const (
	DefaultOutputWindow       = 256 // bytes
	DefaultInjectionThreshold = 1.0
	DefaultSentenceThreshold  = 0.5
	DefaultGroundingName      = "grounding"
	// MaxLabelLen bounds a redaction label, and so the placeholders the
	// stream must recognise.
	MaxLabelLen = 32
)

// Roles an input guardrail may be limited to.
var knownRoles = []string{"system", "developer", "user", "assistant", "tool", "function"}

// Config is what NewSet compiles: named policies that apps refer to. The
// gateway builds it from the configuration's guardrails section, which
// package config has validated; NewSet refuses only what it cannot compile.
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
