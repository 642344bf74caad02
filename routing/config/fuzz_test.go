package config

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad: any input yields either a valid Config or a non-empty Problems, never a panic; and a valid
// Config survives a round trip through JSON unchanged (so the defaults and normalisation are stable).
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		good, goodJSON, string(Example()), updated, "", "version: 1\n", "- a\n", "version: 1\n---\nversion: 1\n",
		"version: 1\nproviders: [{name: p, schema: openai, cluster: c, credential: {header: ':x', prefix: Bearer, source: {value: v}}}]\n",
		"version: 1\nproviders:\n  - &p {name: p, schema: openai, cluster: c, models: &m [a, b]}\n  - *p\nmodels: [{name: m, provider: p, model: *m}]\n",
		"version: 1\nkeys: [{id: k, sha256: " + demoHash + "}, {id: k, sha256: " + demoHash + "}]\n",
		"version: !!int 1\nproviders: !!seq []\n<<: {}\n",
		"a: &a [*a]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			var probs Problems
			if cfg != nil || !errors.As(err, &probs) || len(probs) == 0 {
				t.Fatalf("Parse = %v, %T %v", cfg, err, err)
			}
			for _, p := range probs {
				if !strings.HasPrefix(p.File, "fuzz.yaml") || p.Message == "" || p.Line < 0 {
					t.Fatalf("malformed problem %#v", p)
				}
			}
			return
		}
		if cfg == nil || cfg.Version != Version {
			t.Fatalf("Parse = %+v without error", cfg)
		}
		for _, p := range cfg.Providers {
			if (p.BasePath == "" && p.Schema != SchemaMock) || p.DirectModels == "" || (p.Credential != nil && p.Credential.Header != strings.ToLower(p.Credential.Header)) {
				t.Fatalf("provider not normalised: %+v", p)
			}
		}
		js, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse("fuzz.json", js)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", js, err)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("round trip changed the config:\n %+v\n %+v", cfg, again)
		}
	})
}
