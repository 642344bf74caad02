package guardrails

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/tollgate-ai/tollgate/internal/detect"
	"github.com/tollgate-ai/tollgate/policy/guardrails/internal/grounding"
)

// Set is every compiled policy of a configuration, by name. It is immutable:
// a configuration reload builds a new Set, and requests in flight keep the
// Policy they started with.
type Set struct {
	policies map[string]*Policy
}

// NewSet compiles a configuration that package config has validated. It
// refuses only what it cannot compile (an unknown type, a pattern or term
// list the detectors refuse, a policy name given twice); config reports
// every other mistake, with file and line.
func NewSet(cfg Config) (*Set, error) {
	s := &Set{policies: make(map[string]*Policy, len(cfg.Policies))}
	inj := detect.NewInjection() // shared: it is immutable
	for _, pc := range cfg.Policies {
		if _, dup := s.policies[pc.Name]; dup {
			return nil, fmt.Errorf("guardrail policy %q is defined more than once", pc.Name)
		}
		p, err := compile(pc, inj)
		if err != nil {
			return nil, err
		}
		s.policies[pc.Name] = p
	}
	return s, nil
}

// Policy returns the policy with the given name.
func (s *Set) Policy(name string) (*Policy, bool) {
	if s == nil {
		return nil, false
	}
	p, ok := s.policies[name]
	return p, ok
}

// Names returns the policy names, sorted.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	names := make([]string, 0, len(s.policies))
	for n := range s.policies {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Policy is a compiled policy: every detector, pattern and automaton is built
// here, once per configuration load, and a Policy is immutable and safe for
// concurrent use. Per-request state lives in a Request.
type Policy struct {
	name      string
	input     []*guardrail
	output    []*guardrail
	grounding *groundingRule
	window    int // output window, bytes
	hold      int // bytes of lookahead kept behind the commit point: window/2
	restore   bool
}

type groundingRule struct {
	name              string
	threshold         float64
	sentenceThreshold float64
	action            Action
}

// Name returns the policy's name.
func (p *Policy) Name() string { return p.name }

// RequiresGroundingContext reports whether requests must carry
// tollgate_grounding_context.
func (p *Policy) RequiresGroundingContext() bool { return p.grounding != nil }

// compile builds a validated policy.
func compile(pc PolicyConfig, inj *detect.Injection) (*Policy, error) {
	p := &Policy{name: pc.Name, window: cmp.Or(pc.OutputWindowBytes, DefaultOutputWindow)}
	p.hold = p.window / 2
	for _, gc := range pc.Input {
		g, err := compileGuardrail(gc, inj)
		if err != nil {
			return nil, fmt.Errorf("guardrail policy %q: input %q: %w", pc.Name, gc.Name, err)
		}
		p.input = append(p.input, g)
		p.restore = p.restore || g.restore
	}
	for _, gc := range pc.Output {
		g, err := compileGuardrail(gc, inj)
		if err != nil {
			return nil, fmt.Errorf("guardrail policy %q: output %q: %w", pc.Name, gc.Name, err)
		}
		p.output = append(p.output, g)
	}
	if gc := pc.Grounding; gc != nil {
		p.grounding = &groundingRule{
			name:              cmp.Or(gc.Name, DefaultGroundingName),
			threshold:         gc.Threshold,
			sentenceThreshold: cmp.Or(gc.SentenceThreshold, DefaultSentenceThreshold),
			action:            gc.Action,
		}
	}
	return p, nil
}

// guardrail is a compiled GuardrailConfig.
type guardrail struct {
	name      string
	typ       string
	action    Action
	roles     roleSet
	kinds     detect.Kinds // pii, secrets
	res       []*regexp.Regexp
	lits      []string // per regexp: a literal every match contains, or ""
	terms     *detect.Terms
	label     string // regex, deny_list
	restore   bool
	injection *detect.Injection
	threshold float64
	maxChars  int
	maxTokens int
	maxOut    int // max_tokens
}

func compileGuardrail(gc GuardrailConfig, inj *detect.Injection) (*guardrail, error) {
	g := &guardrail{
		name: gc.Name, typ: gc.Type, action: gc.Action, roles: newRoleSet(gc.Roles),
		restore: gc.RestoreRedacted, threshold: gc.Threshold,
		maxChars: gc.MaxChars, maxTokens: gc.MaxTokens, maxOut: gc.MaxCompletionTokens,
	}
	switch gc.Type {
	case TypePII, TypeSecrets:
		g.kinds = detect.PII
		if gc.Type == TypeSecrets {
			g.kinds = detect.Secrets
		}
		if len(gc.Entities) > 0 {
			g.kinds = 0
			for _, e := range gc.Entities {
				k, _ := detect.KindNamed(e)
				g.kinds = g.kinds.With(k)
			}
		}
	case TypeRegex:
		if len(gc.Patterns) == 0 {
			return nil, errors.New("no patterns")
		}
		for _, pat := range gc.Patterns {
			re, lit, err := detect.CompilePattern(pat)
			if err != nil {
				return nil, err
			}
			g.res = append(g.res, re)
			g.lits = append(g.lits, lit)
		}
		g.label = cmp.Or(gc.Label, defaultLabel(gc.Name))
	case TypeDenyList:
		var err error
		if g.terms, err = detect.NewTerms(gc.Terms); err != nil {
			return nil, err
		}
		g.label = cmp.Or(gc.Label, defaultLabel(gc.Name))
	case TypePromptInjection:
		g.injection = inj
		if g.threshold == 0 {
			g.threshold = DefaultInjectionThreshold
		}
	case TypePromptSize, TypeMaxTokens:
	default:
		return nil, fmt.Errorf("unknown type %q", gc.Type)
	}
	return g, nil
}

// defaultLabel derives a placeholder label from a guardrail name:
// "employee-ids" → "EMPLOYEE_IDS".
func defaultLabel(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if !isUpperASCII(c) && !isDigitASCII(c) {
			b[i] = '_'
		}
	}
	l := string(b)
	if !isUpperASCII(l[0]) {
		l = "X_" + l
	}
	if len(l) > MaxLabelLen {
		l = l[:MaxLabelLen]
	}
	return l
}

// spanType reports whether the guardrail finds spans in text (as opposed to
// scoring or measuring the prompt).
func (g *guardrail) spanType() bool {
	return g.typ == TypePII || g.typ == TypeSecrets || g.typ == TypeRegex || g.typ == TypeDenyList
}

// match is one span found by a guardrail (g >= 0) or a placeholder to restore (g == restoreMatch).
type match struct {
	start, end int
	g          int
	label      string
	open       bool // private-key block without its END line in the text
}

const restoreMatch = -1

// find appends the spans guardrail gi finds in s.
func (g *guardrail) find(dst []match, scratch []detect.Span, gi int, s string) ([]match, []detect.Span) {
	switch g.typ {
	case TypePII, TypeSecrets:
		scratch = detect.Find(scratch[:0], s, g.kinds)
		for _, sp := range scratch {
			dst = append(dst, match{start: sp.Start, end: sp.End, g: gi, label: sp.Kind.Label(), open: sp.Open})
		}
	case TypeRegex:
		for i, re := range g.res {
			if g.lits[i] != "" && !strings.Contains(s, g.lits[i]) {
				continue
			}
			for _, loc := range re.FindAllStringIndex(s, -1) {
				if loc[1] > loc[0] {
					dst = append(dst, match{start: loc[0], end: loc[1], g: gi, label: g.label})
				}
			}
		}
	case TypeDenyList:
		scratch = g.terms.Find(scratch[:0], s)
		for _, sp := range scratch {
			dst = append(dst, match{start: sp.Start, end: sp.End, g: gi, label: g.label})
		}
	}
	return dst, scratch
}

// resolve sorts edits by start and keeps a non-overlapping subset: the
// earliest start wins, then the longest, then redactions over restores, then
// the guardrail listed first.
func resolve(edits []match) []match {
	sortEdits(edits)
	out, end := 0, -1
	for _, m := range edits {
		if m.start >= end {
			edits[out] = m
			out++
			end = m.end
		}
	}
	return edits[:out]
}

// sortEdits orders edits by start, then longest first, then redactions before
// restores, then by guardrail.
func sortEdits(edits []match) {
	slices.SortFunc(edits, func(a, b match) int {
		if a.start != b.start {
			return a.start - b.start
		}
		if a.end != b.end {
			return b.end - a.end
		}
		if (a.g == restoreMatch) != (b.g == restoreMatch) {
			if a.g == restoreMatch {
				return 1
			}
			return -1
		}
		return a.g - b.g
	})
}

// roleSet is a set of message roles; the zero value means every role.
type roleSet uint8

func newRoleSet(roles []string) roleSet {
	var rs roleSet
	for _, r := range roles {
		rs |= roleBit(r)
	}
	return rs
}

func roleBit(role string) roleSet {
	if i := slices.Index(knownRoles, role); i >= 0 {
		return 1 << i
	}
	return 1 << 7 // unknown roles: only guardrails without a role list see them
}

func (rs roleSet) has(role string) bool { return rs == 0 || rs&roleBit(role) != 0 }

// groundingIndex builds the request's grounding index (nil without grounding).
func (p *Policy) groundingIndex(context []string) *grounding.Index {
	if p.grounding == nil || len(context) == 0 {
		return nil
	}
	return grounding.NewIndex(context)
}
