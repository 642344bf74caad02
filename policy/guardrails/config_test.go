package guardrails

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/internal/detect"
)

// decodePolicy decodes JSON strictly, as the gateway's config loader does.
func decodePolicy(t testing.TB, js string) PolicyConfig {
	t.Helper()
	var pc PolicyConfig
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pc); err != nil {
		t.Fatalf("decoding %s: %v", js, err)
	}
	return pc
}

func mustCompile(t testing.TB, js string) *Policy {
	t.Helper()
	p, err := compile(decodePolicy(t, js), detect.NewInjection())
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

// NewSet compiles policies by name and refuses what it cannot compile.
func TestNewSet(t *testing.T) {
	for name, cfg := range map[string]Config{
		"duplicate policy": {Policies: []PolicyConfig{{Name: "a"}, {Name: "a"}}},
		"unknown type":     {Policies: []PolicyConfig{{Name: "a", Input: []GuardrailConfig{{Name: "x", Type: "nope", Action: Flag}}}}},
		"bad pattern":      {Policies: []PolicyConfig{{Name: "a", Input: []GuardrailConfig{{Name: "x", Type: TypeRegex, Action: Flag, Patterns: []string{"a*"}}}}}},
		"no patterns":      {Policies: []PolicyConfig{{Name: "a", Output: []GuardrailConfig{{Name: "x", Type: TypeRegex, Action: Flag}}}}},
		"bad terms":        {Policies: []PolicyConfig{{Name: "a", Input: []GuardrailConfig{{Name: "x", Type: TypeDenyList, Action: Flag, Terms: []string{" "}}}}}},
	} {
		if _, err := NewSet(cfg); err == nil {
			t.Errorf("%s: NewSet accepted it", name)
		}
	}
	set, err := NewSet(Config{Policies: []PolicyConfig{{Name: "b"}, {Name: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := set.Policy("a"); !ok || p.Name() != "a" {
		t.Errorf("Policy(a) = %v, %v", p, ok)
	}
	if _, ok := set.Policy("c"); ok {
		t.Error("Policy(c) found")
	}
	if got := strings.Join(set.Names(), ","); got != "a,b" {
		t.Errorf("Names = %s", got)
	}
}

func TestDefaultLabel(t *testing.T) {
	for in, want := range map[string]string{"employee-ids": "EMPLOYEE_IDS", "a.b_c": "A_B_C", "9lives": "X_9LIVES"} {
		if got := defaultLabel(in); got != want {
			t.Errorf("defaultLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// The JSON field names are the documented schema.
func TestSchemaFieldNames(t *testing.T) {
	pc := PolicyConfig{Name: "p", OutputWindowBytes: 256, Grounding: &GroundingConfig{Threshold: 0.5, Action: Flag},
		Input: []GuardrailConfig{{Name: "g", Type: TypePII, Action: Redact, Roles: []string{"user"}, Entities: []string{"email"},
			Patterns: []string{"x"}, Terms: []string{"t"}, Label: "L", RestoreRedacted: true, Threshold: 1, MaxChars: 1, MaxTokens: 1, MaxCompletionTokens: 1}}}
	js, _ := json.Marshal(pc)
	for _, f := range []string{`"name"`, `"input"`, `"output_window_bytes"`, `"grounding"`, `"threshold"`, `"action"`, `"type"`, `"roles"`,
		`"entities"`, `"patterns"`, `"terms"`, `"label"`, `"restore_redacted"`, `"max_chars"`, `"max_tokens"`, `"max_completion_tokens"`} {
		if !strings.Contains(string(js), f) {
			t.Errorf("%s missing from %s", f, js)
		}
	}
}
