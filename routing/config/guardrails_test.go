package config

import (
	"encoding/json"
	"strings"
	"testing"
)

// decodeGuardrailPolicy decodes JSON strictly.
func decodeGuardrailPolicy(t testing.TB, js string) GuardrailPolicy {
	t.Helper()
	var pc GuardrailPolicy
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pc); err != nil {
		t.Fatalf("decoding %s: %v", js, err)
	}
	return pc
}

func TestGuardrailPolicyValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		js   string
		want []string // each must appear in the error, path first
	}{
		{"ok", `{"name":"p","input":[{"name":"a","type":"pii","action":"redact","entities":["email"],"restore_redacted":true}],
			"output":[{"name":"a","type":"secrets","action":"block"}],"grounding":{"threshold":0.5,"action":"flag"}}`, nil},
		{"missing name", `{}`, []string{"name: is required"}},
		{"bad name", `{"name":"Bad Name"}`, []string{`name: "Bad Name" must match`}},
		{"window", `{"name":"p","output_window_bytes":64}`, []string{"output_window_bytes: must be between 128"}},
		{"type", `{"name":"p","input":[{"name":"a","type":"nope","action":"flag"},{"name":"b","action":"flag"}]}`,
			[]string{`input[0].type: unknown type "nope"`, "input[1].type: is required"}},
		{"action", `{"name":"p","input":[{"name":"a","type":"pii","action":"drop"},{"name":"b","type":"pii"}]}`,
			[]string{`input[0].action: unknown action "drop"`, "input[1].action: is required"}},
		{"cannot redact", `{"name":"p","input":[{"name":"a","type":"prompt_injection","action":"redact"}]}`,
			[]string{"input[0].action: prompt_injection cannot redact"}},
		{"input only", `{"name":"p","output":[{"name":"a","type":"max_tokens","action":"block","max_completion_tokens":5}]}`,
			[]string{"output[0].type: max_tokens is an input guardrail"}},
		{"duplicate names", `{"name":"p","input":[{"name":"a","type":"pii","action":"flag"},{"name":"a","type":"secrets","action":"flag"}]}`,
			[]string{`input[1].name: duplicate input guardrail name "a" (also input[0])`}},
		{"entities", `{"name":"p","input":[{"name":"a","type":"pii","action":"flag","entities":["email","aws_access_key","email"]}]}`,
			[]string{`input[0].entities[1]: unknown pii entity "aws_access_key"`, `input[0].entities[2]: duplicate entity "email"`}},
		{"wrong option", `{"name":"p","input":[{"name":"a","type":"pii","action":"flag","terms":["x"],"threshold":2}]}`,
			[]string{"input[0].terms: does not apply to type pii", "input[0].threshold: does not apply to type pii"}},
		{"bad regex", `{"name":"p","input":[{"name":"a","type":"regex","action":"flag","patterns":["(","a*","\\bx?\\b","ok+"]}]}`,
			[]string{"input[0].patterns[0]: invalid pattern", "input[0].patterns[1]: pattern \"a*\" can match the empty string", "input[0].patterns[2]:"}},
		{"no patterns", `{"name":"p","input":[{"name":"a","type":"regex","action":"flag"}]}`, []string{"input[0].patterns: at least one pattern"}},
		{"terms", `{"name":"p","input":[{"name":"a","type":"deny_list","action":"flag","terms":["ok"," "]}]}`, []string{"input[0].terms: term 1: empty"}},
		{"label", `{"name":"p","input":[{"name":"a","type":"regex","action":"redact","patterns":["x"],"label":"lower"}]}`, []string{`input[0].label: "lower" must match`}},
		{"roles", `{"name":"p","input":[{"name":"a","type":"pii","action":"flag","roles":["user","robot"]}],"output":[{"name":"b","type":"pii","action":"flag","roles":["user"]}]}`,
			[]string{`input[0].roles[1]: unknown role "robot"`, "output[0].roles: applies to input guardrails only"}},
		{"restore", `{"name":"p","input":[{"name":"a","type":"pii","action":"flag","restore_redacted":true}]}`, []string{"input[0].restore_redacted: applies to input guardrails with action redact"}},
		{"size", `{"name":"p","input":[{"name":"a","type":"prompt_size","action":"block"},{"name":"b","type":"prompt_size","action":"block","max_chars":-1,"max_tokens":3}]}`,
			[]string{"input[0]: set max_chars, max_tokens or both", "input[1]: max_chars and max_tokens must not be negative"}},
		{"max tokens", `{"name":"p","input":[{"name":"a","type":"max_tokens","action":"block"}]}`, []string{"input[0].max_completion_tokens: must be positive"}},
		{"grounding", `{"name":"p","output":[{"name":"grounding","type":"pii","action":"flag"}],"grounding":{"threshold":1.5,"sentence_threshold":-1,"action":"redact"}}`,
			[]string{`grounding.name: "grounding" is also the name of output[0]`, "grounding.threshold: must be in (0, 1]", "grounding.sentence_threshold: must be in (0, 1]", `grounding.action: must be block or flag, not "redact"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pc := decodeGuardrailPolicy(t, c.js)
			var gps guardrailProblems
			pc.validate(&gps, "")
			var err error
			if len(gps.list) > 0 {
				err = gps.list
			}
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestGuardrailsValidate(t *testing.T) {
	cfg := Guardrails{Policies: []GuardrailPolicy{{Name: "a"}, {Name: "b", Input: []Guardrail{{Name: "x", Type: GuardrailPII}}}, {Name: "a"}}}
	var gps guardrailProblems
	cfg.validate(&gps)
	err := gps.list
	for _, w := range []string{"policies[1].input[0].action: is required", `policies[2].name: duplicate policy name "a" (also policies[0])`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
}

// The JSON field names are the documented schema.
func TestGuardrailSchemaFieldNames(t *testing.T) {
	pc := GuardrailPolicy{Name: "p", OutputWindowBytes: 256, Grounding: &Grounding{Threshold: 0.5, Action: GuardrailFlag},
		Input: []Guardrail{{Name: "g", Type: GuardrailPII, Action: GuardrailRedact, Roles: []string{"user"}, Entities: []string{"email"},
			Patterns: []string{"x"}, Terms: []string{"t"}, Label: "L", RestoreRedacted: true, Threshold: 1, MaxChars: 1, MaxTokens: 1, MaxCompletionTokens: 1}}}
	js, _ := json.Marshal(pc)
	for _, f := range []string{`"name"`, `"input"`, `"output_window_bytes"`, `"grounding"`, `"threshold"`, `"action"`, `"type"`, `"roles"`,
		`"entities"`, `"patterns"`, `"terms"`, `"label"`, `"restore_redacted"`, `"max_chars"`, `"max_tokens"`, `"max_completion_tokens"`} {
		if !strings.Contains(string(js), f) {
			t.Errorf("%s missing from %s", f, js)
		}
	}
}
