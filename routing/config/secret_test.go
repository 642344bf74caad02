package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"plain": "s3cr3t", "lf": "s3cr3t\n", "crlf": "s3cr3t\r\n", "two-lf": "s3cr3t\n\n", "cr-only": "s3cr3t\r",
		"empty": "", "only-lf": "\n", "inner-lf": "s3cr3t\nmore", "tab": "s3\tcr3t",
	}
	writeFiles(t, dir, files)
	env := map[string]string{"KEY": "s3cr3t", "EMPTY": "", "MULTI": "s3cr3t\nx", "NUL": "s3cr3t\x00"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	file := func(name string) SecretRef { return SecretRef{File: filepath.Join(dir, name)} }

	tests := []struct {
		name    string
		ref     SecretRef
		want    string
		wantErr string // substring of the error
	}{
		{"env", SecretRef{Env: "KEY"}, "s3cr3t", ""},
		{"env unset", SecretRef{Env: "NOPE"}, "", "secret env NOPE: not set"},
		{"env empty", SecretRef{Env: "EMPTY"}, "", "secret env EMPTY: empty"},
		{"env with line break", SecretRef{Env: "MULTI"}, "", "secret env MULTI: contains a control character or line break"},
		{"env with NUL", SecretRef{Env: "NUL"}, "", "secret env NUL: contains a control character"},
		{"file", file("plain"), "s3cr3t", ""},
		{"file trailing LF trimmed", file("lf"), "s3cr3t", ""},
		{"file trailing CRLF trimmed", file("crlf"), "s3cr3t", ""},
		{"file only one LF trimmed", file("two-lf"), "", "contains a control character or line break"},
		{"file lone CR kept and rejected", file("cr-only"), "", "contains a control character or line break"},
		{"file with tab", file("tab"), "s3\tcr3t", ""},
		{"file empty", file("empty"), "", "secret file " + filepath.Join(dir, "empty") + ": empty"},
		{"file only newline", file("only-lf"), "", ": empty"},
		{"file inner line break", file("inner-lf"), "", "contains a control character or line break"},
		{"file missing", file("missing"), "", "secret file: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"file is a directory", SecretRef{File: dir}, "", "secret file: read " + dir},
		{"neither", SecretRef{}, "", "exactly one of env or file is required"},
		{"both", SecretRef{Env: "KEY", File: file("plain").File}, "", "exactly one of env or file is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ref.Resolve(lookup)
			if tt.wantErr == "" {
				if err != nil || string(got) != tt.want {
					t.Fatalf("Resolve = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve = %q, want error containing %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "s3\tcr3t") {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}

func TestResolveDefaultsToProcessEnv(t *testing.T) {
	t.Setenv("TOLLGATE_TEST_SECRET", "from-env")
	got, err := SecretRef{Env: "TOLLGATE_TEST_SECRET"}.Resolve(nil)
	if err != nil || string(got) != "from-env" {
		t.Errorf("Resolve(nil) = %q, %v", got, err)
	}
}

func TestSecretRefString(t *testing.T) {
	for ref, want := range map[SecretRef]string{
		{Env: "K"}:             "env K",
		{File: "/s/k"}:         "file /s/k",
		{}:                     "invalid secret reference",
		{Env: "K", File: "/f"}: "invalid secret reference",
	} {
		if got := ref.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", ref, got, want)
		}
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": `version: 1
providers:
  - {name: a, schema: openai, cluster: c, credential: {header: x-api-key, source: {file: /run/secrets/b}}}
  - {name: b, schema: openai, cluster: c, credential: {header: x-api-key, source: {env: K}}}
  - {name: c, schema: openai, cluster: c}
  - {name: d, schema: openai, cluster: c, credential: {header: x-api-key, source: {file: keys/a}}}
  - {name: e, schema: openai, cluster: c, credential: {header: api-key, source: {file: /run/secrets/b}}}
`})
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/run/secrets/b", filepath.Join(dir, "keys/a")}
	if got := cfg.SecretFiles(); !reflect.DeepEqual(got, want) {
		t.Errorf("SecretFiles() = %q, want %q", got, want)
	}
	if got := (&Config{}).SecretFiles(); got != nil {
		t.Errorf("empty config SecretFiles() = %q", got)
	}
}
