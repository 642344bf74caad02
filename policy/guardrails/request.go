package guardrails

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tollgate-ai/tollgate/internal/detect"
	"github.com/tollgate-ai/tollgate/policy/guardrails/internal/grounding"
)

// Stage says whether a decision was taken on the prompt or on the completion.
type Stage string

// Stages.
const (
	StageInput  Stage = "input"
	StageOutput Stage = "output"
)

// Decision is what one guardrail did in one request. It never holds matched
// content, so it can be logged and counted as is.
type Decision struct {
	Guardrail string  // configured name
	Stage     Stage   // input or output
	Action    Action  // the guardrail's action: block, redact or flag
	Count     int     // matches (redactions made, for redact); patterns matched for prompt_injection; unsupported sentences for grounding; 1 for limits
	Score     float64 // prompt_injection and grounding scores (lowest over choices for grounding); 0 otherwise
}

// Refusal details shared by input and output blocks, for OpenAI-format errors.
const (
	BlockedStatus = 400
	BlockedType   = "invalid_request_error"
	BlockedCode   = "guardrail_blocked"
)

// Blocked is the error returned when a blocking guardrail matched. It names
// the guardrail and never holds matched content.
type Blocked struct {
	Guardrail string
	Stage     Stage
	// Param is the request field at fault, for the error's "param":
	// "max_tokens" or "tollgate_grounding_context"; empty (null) otherwise.
	Param  string
	reason string // fixed text about the guardrail, never content
}

func (b *Blocked) Error() string {
	return fmt.Sprintf("guardrails: %s blocked by guardrail %q", b.Stage, b.Guardrail)
}

// Message is the client-facing message: it names the guardrail and, for
// limits, the configured bound; it never echoes the prompt or completion.
func (b *Blocked) Message() string {
	what := "Request"
	if b.Stage == StageOutput {
		what = "Response"
	}
	msg := fmt.Sprintf("%s blocked by guardrail %q", what, b.Guardrail)
	if b.reason != "" {
		msg += ": " + b.reason
	}
	return msg + "."
}

// Piece is one piece of prompt text: a message's content (or one text part
// of it), or the arguments of a tool call in the conversation so far.
type Piece struct {
	Role string // the message's role; guardrails limited to roles skip other roles
	Text string
}

// Input is what CheckInput needs from a chat completion request.
type Input struct {
	Pieces []Piece
	// MaxTokens is the request's max_completion_tokens or max_tokens (the
	// larger when both are set); 0 when neither is.
	MaxTokens int
	// GroundingContext is tollgate_grounding_context; nil when absent.
	GroundingContext []string
}

// Edit replaces the text of Input.Pieces[Index].
type Edit struct {
	Index int
	Text  string
}

// Request is the guardrail state of one request: its placeholder vault, its
// grounding context and its decisions. It is used by the request's own
// goroutine only.
type Request struct {
	p         *Policy
	vault     Vault
	decisions []Decision
	ground    *grounding.Index
	matches   []match
	spans     []detect.Span
}

// NewRequest starts the guardrail state of one request.
func (p *Policy) NewRequest() *Request { return &Request{p: p} }

// Policy returns the policy the request runs under.
func (r *Request) Policy() *Policy { return r.p }

// Vault returns the request's placeholder vault.
func (r *Request) Vault() *Vault { return &r.vault }

// Decisions returns the decisions taken so far, in the order they were
// first taken; counts of output guardrails grow while streams run.
func (r *Request) Decisions() []Decision { return r.decisions }

// record adds n to the decision of (stage, guardrail), creating it.
func (r *Request) record(stage Stage, name string, action Action, n int) {
	r.recordScore(stage, name, action, n, -1)
}

// recordScore is record for scored guardrails (score >= 0); the decision
// keeps the lowest score, as grounding scores each choice.
func (r *Request) recordScore(stage Stage, name string, action Action, n int, score float64) {
	for i := range r.decisions {
		if d := &r.decisions[i]; d.Stage == stage && d.Guardrail == name {
			d.Count += n
			if score >= 0 {
				d.Score = min(d.Score, score)
			}
			return
		}
	}
	r.decisions = append(r.decisions, Decision{Guardrail: name, Stage: stage, Action: action, Count: n, Score: max(score, 0)})
}

// CheckInput runs the input guardrails over the prompt. It returns the edits
// redaction made (only pieces that changed), or a *Blocked error naming the
// first blocking guardrail, in configuration order, that matched (edits are
// then meaningless and nil). Every guardrail runs either way, so Decisions
// lists all of them. Call it once per request, before any Stream.
func (r *Request) CheckInput(in Input) ([]Edit, error) {
	var blocked *Blocked
	blockedAt := 0
	block := func(at int, g, param, reason string) {
		if blocked == nil || at < blockedAt {
			blocked, blockedAt = &Blocked{Guardrail: g, Stage: StageInput, Param: param, reason: reason}, at
		}
	}
	for gi, g := range r.p.input {
		if g.spanType() {
			continue
		}
		var n int
		var score float64
		param, reason := "", ""
		switch g.typ {
		case TypePromptSize:
			chars, tokens := promptSize(in.Pieces, g.roles)
			if (g.maxChars > 0 && chars > g.maxChars) || (g.maxTokens > 0 && tokens > g.maxTokens) {
				n, reason = 1, promptSizeReason(g)
			}
		case TypeMaxTokens:
			if in.MaxTokens > g.maxOut {
				n, param, reason = 1, "max_tokens", fmt.Sprintf("max_tokens may be at most %d", g.maxOut)
			}
		case TypePromptInjection:
			var hits detect.InjectionHits
			for _, pc := range in.Pieces {
				if g.roles.has(pc.Role) {
					hits |= g.injection.Scan(pc.Text)
				}
			}
			if score = g.injection.Score(hits); score >= g.threshold {
				n = hits.Count()
			}
		}
		if n > 0 {
			if g.typ == TypePromptInjection {
				r.recordScore(StageInput, g.name, g.action, n, score)
			} else {
				r.record(StageInput, g.name, g.action, n)
			}
			if g.action == Block {
				block(gi, g.name, param, reason)
			}
		}
	}

	var edits []Edit
	var out strings.Builder
	for i, pc := range in.Pieces {
		ms := r.matches[:0]
		for gi, g := range r.p.input {
			if g.spanType() && g.roles.has(pc.Role) {
				ms, r.spans = g.find(ms, r.spans, gi, pc.Text)
			}
		}
		edit := ms[:0]
		for _, m := range ms {
			g := r.p.input[m.g]
			switch g.action {
			case Flag:
				r.record(StageInput, g.name, Flag, 1)
			case Block:
				r.record(StageInput, g.name, Block, 1)
				block(m.g, g.name, "", "")
			case Redact:
				edit = append(edit, m)
			}
		}
		r.matches = ms
		if len(edit) == 0 || blocked != nil {
			continue
		}
		// Resolve overlaps as resolve does; a span several guardrails redact
		// counts for each, and is restored only if all of them restore.
		sortEdits(edit)
		out.Reset()
		pos, end := 0, -1
		for k := 0; k < len(edit); {
			m := edit[k]
			if m.start < end {
				k++
				continue
			}
			restore, n := true, k
			for ; n < len(edit) && edit[n].start == m.start && edit[n].end == m.end; n++ {
				g := r.p.input[edit[n].g]
				restore = restore && g.restore
				r.record(StageInput, g.name, Redact, 1)
			}
			out.WriteString(pc.Text[pos:m.start])
			out.WriteString(r.vault.placeholder(m.label, pc.Text[m.start:m.end], restore, true))
			pos, end, k = m.end, m.end, n
		}
		out.WriteString(pc.Text[pos:])
		edits = append(edits, Edit{Index: i, Text: out.String()})
	}

	if gr := r.p.grounding; gr != nil {
		if len(in.GroundingContext) == 0 {
			r.record(StageInput, gr.name, gr.action, 1)
			if gr.action == Block {
				block(len(r.p.input), gr.name, "tollgate_grounding_context", "tollgate_grounding_context is required")
			}
		} else {
			r.ground = r.p.groundingIndex(in.GroundingContext)
		}
	}
	if blocked != nil {
		return nil, blocked
	}
	return edits, nil
}

// promptSize returns the prompt's length in code points and its estimated
// tokens: a quarter token per ASCII byte (English averages about four
// characters per token) and one token per non-ASCII code point (CJK and other
// scripts take about one or more), rounded up.
func promptSize(pieces []Piece, roles roleSet) (chars, tokens int) {
	ascii := 0
	for _, pc := range pieces {
		if !roles.has(pc.Role) {
			continue
		}
		n, a := runesAndASCII(pc.Text)
		chars += n
		ascii += a
		tokens += n - a
	}
	return chars, tokens + (ascii+3)/4
}

// runesAndASCII returns utf8.RuneCountInString(s) and the number of bytes
// below 0x80, eight bytes at a time where all eight are ASCII.
func runesAndASCII(s string) (runes, ascii int) {
	const high = 0x8080808080808080
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			if w&high == 0 {
				runes, ascii, i = runes+8, ascii+8, i+8
				continue
			}
		}
		if s[i] < utf8.RuneSelf {
			runes, ascii, i = runes+1, ascii+1, i+1
			continue
		}
		// An invalid byte counts as one rune, as in RuneCountInString.
		_, n := utf8.DecodeRuneInString(s[i:])
		runes, i = runes+1, i+n
	}
	return runes, ascii
}

func promptSizeReason(g *guardrail) string {
	switch {
	case g.maxChars > 0 && g.maxTokens > 0:
		return fmt.Sprintf("the prompt may have at most %d characters and about %d tokens", g.maxChars, g.maxTokens)
	case g.maxChars > 0:
		return fmt.Sprintf("the prompt may have at most %d characters", g.maxChars)
	default:
		return fmt.Sprintf("the prompt may have at most about %d tokens", g.maxTokens)
	}
}

// OutputActive reports whether the completion must go through Streams: the
// policy has output guardrails, grounding applies to this request, or input
// redaction left placeholders to restore. When false, NewStream returns
// pass-through streams and the caller may skip them.
func (r *Request) OutputActive() bool {
	return len(r.p.output) > 0 || r.ground != nil || (r.p.restore && r.vault.anyRestorable())
}

// CheckOutput runs the output guardrails over a whole completion text (a
// non-streaming response's message content or tool-call arguments) and
// returns the text to send. It is exactly a Stream fed the text in one Write.
func (r *Request) CheckOutput(kind StreamKind, text string) (string, error) {
	s := r.NewStream(kind)
	a, err := s.Write(text)
	if err != nil {
		return "", err
	}
	b, err := s.Close()
	if err != nil {
		return "", err
	}
	return a + b, nil
}
