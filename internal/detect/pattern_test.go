package detect

import "testing"

func TestRequiredLiteral(t *testing.T) {
	for p, want := range map[string]string{
		`\bEMP-[0-9]{6}\b`: "EMP-", `(?i)secret`: "", `ab|cd`: "", `x(abc)+y`: "abc", `[0-9]+-ACME-[0-9]+`: "-ACME-", `(?:foo){2}`: "foo",
	} {
		_, lit, err := CompilePattern(p)
		if err != nil || lit != want {
			t.Errorf("CompilePattern(%q) literal = %q, %v; want %q", p, lit, err, want)
		}
	}
}
