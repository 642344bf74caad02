package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// demoHash is the SHA-256 of the example's demo key tg_demo_0123456789abcdefghijklmnopqrstuvwxyzAB.
const demoHash = "403bd8ca477b892f586999779c1e63c6d86cfaab8d734c14f818c319864f427f"

const otherHash = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae" // sha256("foo")

// good is a valid single-file configuration; many cases below are small edits of it.
const good = `version: 1
providers:
  - name: openai
    schema: openai
    cluster: openai
    credential:
      header: Authorization
      prefix: "Bearer "
      source: {env: OPENAI_API_KEY}
    models: [gpt-4o, gpt-4o-mini]
models:
  - {name: smart, provider: openai, model: gpt-4o}
keys:
  - {id: demo, sha256: ` + demoHash + `}
`

// provider renders a one-provider file whose provider has the given extra lines (indented 4 spaces).
func provider(extra string) string {
	return "version: 1\nproviders:\n  - name: p\n    schema: openai\n    cluster: c\n" + extra
}

// writeFiles creates files (name → content) under dir; a name may contain "/".
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// load runs Load on paths relative to dir (dir itself when none) and returns the problems as strings with
// dir removed, so expectations read like "a.yaml:3: providers[0].name: ...", and dir itself shown as DIR.
func load(t *testing.T, dir string, paths ...string) (*Config, []string) {
	t.Helper()
	full := []string{dir}
	if len(paths) > 0 {
		full = nil
		for _, p := range paths {
			full = append(full, filepath.Join(dir, p))
		}
	}
	cfg, err := Load(full...)
	if err == nil {
		if cfg == nil {
			t.Fatal("Load returned neither a Config nor an error")
		}
		return cfg, nil
	}
	var probs Problems
	if !errors.As(err, &probs) || len(probs) == 0 {
		t.Fatalf("Load error is %T %v, want non-empty Problems", err, err)
	}
	if cfg != nil {
		t.Fatal("Load returned both a Config and an error")
	}
	out := make([]string, len(probs))
	for i, p := range probs {
		out[i] = strings.ReplaceAll(strings.ReplaceAll(p.String(), dir+string(filepath.Separator), ""), dir, "DIR")
	}
	return nil, out
}

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		paths []string // relative to the test directory; none means the directory
		want  []string
	}{
		// Files and syntax.
		{"missing path", nil, []string{"nope.yaml"}, []string{"nope.yaml: no such file or directory"}},
		{"empty directory", map[string]string{"README.md": "x"}, nil, []string{"DIR: no .yaml, .yml or .json files found"}},
		{"only empty files", map[string]string{"a.yaml": "", "b.yaml": "# just a comment\n"}, nil,
			[]string{"a.yaml, b.yaml: configuration is empty (set version: 1)"}},
		{"syntax error", map[string]string{"a.yaml": "version: 1\nproviders:\n  - name: [\n"}, nil,
			[]string{"a.yaml:3: did not find expected node content"}},
		{"two documents", map[string]string{"a.yaml": "version: 1\n---\nversion: 1\n"}, nil,
			[]string{"a.yaml:2: only one YAML document per file is supported"}},
		{"top level list", map[string]string{"a.yaml": "- version: 1\n"}, nil,
			[]string{"a.yaml:1: expected a mapping at the top level, got a list"}},
		{"json syntax error", map[string]string{"a.json": "{\"version\": 1,,}"}, nil,
			[]string{"a.json: did not find expected node content"}},

		// Version.
		{"version missing", map[string]string{"a.yaml": "providers: []\n"}, nil,
			[]string{"a.yaml:1: version: version is required (set version: 1)"}},
		{"version 2", map[string]string{"a.yaml": "version: 2\n"}, nil,
			[]string{"a.yaml:1: version: unsupported version 2 (this gateway reads version 1)"}},
		{"version as string", map[string]string{"a.yaml": "version: \"1\"\n"}, nil,
			[]string{"a.yaml:1: version: expected an integer, got a string"}},
		{"version missing in second file", map[string]string{"a.yaml": "version: 1\n", "b.yaml": "keys: []\n"}, nil,
			[]string{"b.yaml:1: version: version is required (set version: 1)"}},

		// Strict decoding.
		{"unknown top-level field", map[string]string{"a.yaml": "version: 1\nroutes: []\n"}, nil,
			[]string{`a.yaml:2: unknown field "routes"`}},
		{"unknown nested field", map[string]string{"a.yaml": provider("    credential:\n      header: x-api-key\n      source: {env: K}\n      scheme: bearer\n")}, nil,
			[]string{`a.yaml:9: providers[0].credential: unknown field "scheme"`}},
		{"inline secret value", map[string]string{"a.yaml": provider("    credential:\n      header: x-api-key\n      source:\n        value: sk-123\n")}, nil,
			[]string{
				`a.yaml:8: providers[0].credential.source: exactly one of env or file is required`,
				`a.yaml:9: providers[0].credential.source: unknown field "value" (secret values cannot be written in the configuration; use env or file)`,
			}},
		{"field names are case-sensitive", map[string]string{"a.yaml": "Version: 1\n"}, nil,
			[]string{`a.yaml:1: unknown field "Version"`, "a.yaml:1: version: version is required (set version: 1)"}},
		{"duplicate field", map[string]string{"a.yaml": provider("    cluster: d\n")}, nil,
			[]string{`a.yaml:6: providers[0].cluster: field given more than once`}},
		{"unknown field holding an anchor", map[string]string{"a.yaml": "version: 1\nx: &x {cluster: c}\n"}, nil,
			[]string{`a.yaml:2: unknown field "x"`}},
		{"yaml merge key in provider", map[string]string{"a.yaml": provider("    <<: {models: [a]}\n")}, nil,
			[]string{`a.yaml:6: providers[0]: YAML merge keys (<<) are not supported`}},
		{"list where mapping expected", map[string]string{"a.yaml": "version: 1\nproviders: {name: p}\n"}, nil,
			[]string{`a.yaml:2: providers: expected a list, got a mapping`}},
		{"string where mapping expected", map[string]string{"a.yaml": provider("    credential: sk-123\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential: expected a mapping, got a string`}},
		{"number where string expected", map[string]string{"a.yaml": provider("    models: [gpt-4o, 3]\n")}, nil,
			[]string{`a.yaml:6: providers[0].models[1]: expected a string, got a number (quote it)`}},
		{"boolean where string expected", map[string]string{"a.yaml": provider("    direct_models: true\n")}, nil,
			[]string{`a.yaml:6: providers[0].direct_models: expected a string, got a boolean (quote it)`}},
		{"custom tag", map[string]string{"a.yaml": provider("    base_path: !path /v1\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: expected a string, got a value tagged !path (quote it)`}},

		// Providers.
		{"provider name missing and schema, cluster missing", map[string]string{"a.yaml": "version: 1\nproviders:\n  - models: [a]\n"}, nil,
			[]string{
				"a.yaml:3: providers[0].name: name is required",
				"a.yaml:3: providers[0].schema: schema is required (supported: openai, anthropic, azure-openai, bedrock, vertex-ai, mock)",
				"a.yaml:3: providers[0].url: url is required (e.g. https://api.openai.com), or cluster to name an externally managed Envoy cluster",
			}},
		{"mock provider takes no upstream settings", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: m, schema: mock, cluster: c, base_path: /v1, api_version: v, credential: {header: authorization, source: {env: K}}}\n"}, nil,
			[]string{
				"a.yaml:3: providers[0].cluster: schema mock is answered by the gateway itself: remove cluster",
				"a.yaml:3: providers[0].credential: schema mock takes no credential: remove credential",
				"a.yaml:3: providers[0].base_path: schema mock has no upstream path: remove base_path",
				"a.yaml:3: providers[0].api_version: api_version applies to schema azure-openai only",
			}},
		{"mock provider in a fallback chain", map[string]string{"a.yaml": "version: 1\nproviders: [{name: p, schema: openai, cluster: c}, {name: m, schema: mock}]\nmodels:\n  - {name: a, fallback: {cluster: ch, targets: [{provider: p, model: x}, {provider: m, model: y}]}}\n"}, nil,
			[]string{`a.yaml:4: models[0].fallback.targets[1].provider: provider "m" has schema mock, which the gateway answers itself: it cannot be a fallback member (use it as a plain alias or pool target)`}},
		{"provider name upper case", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: OpenAI, schema: openai, cluster: c}\n"}, nil,
			[]string{`a.yaml:3: providers[0].name: name "OpenAI" is invalid: use 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a-z or 0-9`}},
		{"provider name leading dash", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: -p, schema: openai, cluster: c}\n"}, nil,
			[]string{`a.yaml:3: providers[0].name: name "-p" is invalid: use 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a-z or 0-9`}},
		{"provider name with slash", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: a/b, schema: openai, cluster: c}\n"}, nil,
			[]string{`a.yaml:3: providers[0].name: name "a/b" is invalid: use 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a-z or 0-9`}},
		{"provider name too long", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: " + strings.Repeat("a", 64) + ", schema: openai, cluster: c}\n"}, nil,
			[]string{`a.yaml:3: providers[0].name: name "` + strings.Repeat("a", 64) + `" is invalid: use 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a-z or 0-9`}},
		{"duplicate provider in one file", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: p, schema: openai, cluster: c}\n  - {name: p, schema: openai, cluster: d}\n"}, nil,
			[]string{`a.yaml:4: providers[1].name: duplicate provider name "p" (first defined at a.yaml:3)`}},
		{"unsupported schema", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: p, schema: gemini, cluster: c}\n"}, nil,
			[]string{`a.yaml:3: providers[0].schema: unsupported schema "gemini" (supported: openai, anthropic, azure-openai, bedrock, vertex-ai, mock)`}},
		{"schema options", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: az, schema: azure-openai, cluster: c}\n  - {name: an, schema: anthropic, cluster: c, api_version: x, default_max_tokens: -1}\n  - {name: az2, schema: azure-openai, cluster: c, api_version: '1&x=2'}\n"}, nil,
			[]string{
				`a.yaml:3: providers[0].api_version: api_version is required for schema azure-openai (e.g. "2024-10-21")`,
				`a.yaml:4: providers[1].api_version: api_version applies to schema azure-openai only`,
				`a.yaml:4: providers[1].default_max_tokens: default_max_tokens must not be negative`,
				`a.yaml:5: providers[2].api_version: api_version "1&x=2" is not a version string`,
			}},
		{"cluster with space", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: p, schema: openai, cluster: a b}\n"}, nil,
			[]string{`a.yaml:3: providers[0].cluster: cluster "a b" is invalid: use 1 to 255 characters of letters, digits, '_', '.', ':' and '-', starting with a letter or digit`}},
		{"cluster with slash", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: p, schema: openai, cluster: a/b}\n"}, nil,
			[]string{`a.yaml:3: providers[0].cluster: cluster "a/b" is invalid: use 1 to 255 characters of letters, digits, '_', '.', ':' and '-', starting with a letter or digit`}},
		{"base_path relative", map[string]string{"a.yaml": provider("    base_path: v1\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: base_path "v1" must start with "/"`}},
		{"base_path trailing slash", map[string]string{"a.yaml": provider("    base_path: /v1/\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: base_path "/v1/" must not end with "/"`}},
		{"base_path root", map[string]string{"a.yaml": provider("    base_path: /\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: base_path "/" must not end with "/"`}},
		{"base_path query", map[string]string{"a.yaml": provider("    base_path: /v1?api-version=1\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: base_path "/v1?api-version=1" must not contain a query or fragment`}},
		{"base_path fragment", map[string]string{"a.yaml": provider("    base_path: /v1#x\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: base_path "/v1#x" must not contain a query or fragment`}},
		{"base_path double slash", map[string]string{"a.yaml": provider("    base_path: /a//v1\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: base_path "/a//v1" must not contain "//"`}},
		{"base_path dot dot", map[string]string{"a.yaml": provider("    base_path: /a/../v1\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: base_path "/a/../v1" must not contain "." or ".." segments`}},
		{"base_path space", map[string]string{"a.yaml": provider("    base_path: /a b\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: base_path "/a b" contains ' ', which is not allowed in a URL path (percent-encode it)`}},
		{"base_path bad percent", map[string]string{"a.yaml": provider("    base_path: /a%zz\n")}, nil,
			[]string{`a.yaml:6: providers[0].base_path: base_path "/a%zz" has a malformed percent-encoding`}},
		{"unpriced unknown", map[string]string{"a.yaml": provider("    unpriced: free\n")}, nil,
			[]string{`a.yaml:6: providers[0].unpriced: unpriced "free" must be refuse or allow`}},
		{"price_as values", map[string]string{"a.yaml": provider("    price_as:\n      gpt-4o-prod: gpt-4o\n      ok: openai/gpt-4o\n      \"bad id\": openai/gpt-4o\n      x: Open AI/gpt-4o\n")}, nil,
			[]string{
				`a.yaml:7: providers[0].price_as.gpt-4o-prod: price_as "gpt-4o" must name a price entry as <provider>/<model>, e.g. openai/gpt-4o`,
				`a.yaml:9: providers[0].price_as.bad id: model id "bad id" must not contain spaces or control characters`,
				`a.yaml:10: providers[0].price_as.x: price_as "Open AI/gpt-4o" must name a price entry as <provider>/<model>, e.g. openai/gpt-4o`,
			}},
		{"direct_models unknown", map[string]string{"a.yaml": provider("    direct_models: all\n")}, nil,
			[]string{`a.yaml:6: providers[0].direct_models: direct_models "all" must be one of none, listed, any`}},
		{"provider models empty, duplicate, spaced", map[string]string{"a.yaml": provider("    models:\n      - gpt-4o\n      - \"\"\n      - gpt-4o\n      - gpt 4o\n")}, nil,
			[]string{
				`a.yaml:8: providers[0].models[1]: model id is required`,
				`a.yaml:9: providers[0].models[2]: duplicate model "gpt-4o"`,
				`a.yaml:10: providers[0].models[3]: model id "gpt 4o" must not contain spaces or control characters`,
			}},

		// Credentials.
		{"credential header missing", map[string]string{"a.yaml": provider("    credential: {source: {env: K}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.header: header is required`}},
		{"credential pseudo-header", map[string]string{"a.yaml": provider("    credential: {header: \":authority\", source: {env: K}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.header: header ":authority": pseudo-headers cannot carry a credential`}},
		{"credential header with space", map[string]string{"a.yaml": provider("    credential: {header: api key, source: {env: K}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.header: header "api key" is not a valid HTTP header name`}},
		{"credential header host", map[string]string{"a.yaml": provider("    credential: {header: Host, source: {env: K}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.header: header "host" is reserved and cannot carry a credential`}},
		{"credential header content-length", map[string]string{"a.yaml": provider("    credential: {header: content-length, source: {env: K}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.header: header "content-length" is reserved and cannot carry a credential`}},
		{"credential header x-envoy", map[string]string{"a.yaml": provider("    credential: {header: X-Envoy-Original-Path, source: {env: K}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.header: header "x-envoy-original-path" is reserved and cannot carry a credential`}},
		{"credential header x-tollgate", map[string]string{"a.yaml": provider("    credential: {header: x-tollgate-cluster, source: {env: K}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.header: header "x-tollgate-cluster" is reserved and cannot carry a credential`}},
		{"prefix without trailing space", map[string]string{"a.yaml": provider("    credential:\n      header: authorization\n      prefix: Bearer \n      source: {env: K}\n")}, nil,
			[]string{`a.yaml:8: providers[0].credential.prefix: prefix "Bearer" must end with a space; quote it: prefix: "Bearer "`}},
		{"prefix with line break", map[string]string{"a.yaml": provider("    credential: {header: authorization, prefix: \"Bearer\\n \", source: {env: K}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.prefix: prefix may contain only printable ASCII characters and spaces`}},
		{"source neither", map[string]string{"a.yaml": provider("    credential: {header: authorization, source: {}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.source: exactly one of env or file is required`}},
		{"source missing", map[string]string{"a.yaml": provider("    credential: {header: authorization}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.source: exactly one of env or file is required`}},
		{"source both", map[string]string{"a.yaml": provider("    credential: {header: authorization, source: {env: K, file: /k}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.source: exactly one of env or file is required`}},
		{"source env invalid", map[string]string{"a.yaml": provider("    credential: {header: authorization, source: {env: 1KEY}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.source.env: env "1KEY" is not a valid environment variable name`}},
		{"source file NUL", map[string]string{"a.yaml": provider("    credential: {header: authorization, source: {file: \"/a\\0b\"}}\n")}, nil,
			[]string{`a.yaml:6: providers[0].credential.source.file: file must not contain NUL`}},

		// Aliases.
		{"alias fields missing", map[string]string{"a.yaml": "version: 1\nmodels:\n  - {}\n"}, nil,
			[]string{
				"a.yaml:3: models[0].name: name is required",
				"a.yaml:3: models[0].provider: provider is required",
				"a.yaml:3: models[0].model: model is required",
			}},
		{"alias with slash and unknown provider", map[string]string{"a.yaml": "version: 1\nmodels:\n  - name: openai/gpt-4o\n    provider: openai\n    model: gpt 4o\n"}, nil,
			[]string{
				`a.yaml:3: models[0].name: alias name "openai/gpt-4o" must not contain "/" (that form means <provider>/<model>)`,
				`a.yaml:4: models[0].provider: unknown provider "openai"`,
				`a.yaml:5: models[0].model: model "gpt 4o" must not contain spaces or control characters`,
			}},
		{"duplicate alias in one file", map[string]string{"a.yaml": "version: 1\nproviders: [{name: p, schema: openai, cluster: c}]\nmodels:\n  - {name: m, provider: p, model: a}\n  - {name: m, provider: p, model: b}\n"}, nil,
			[]string{`a.yaml:5: models[1].name: duplicate model alias "m" (first defined at a.yaml:4)`}},

		// Keys.
		{"key fields missing", map[string]string{"a.yaml": "version: 1\nkeys:\n  - {}\n"}, nil,
			[]string{"a.yaml:3: keys[0].id: id is required", "a.yaml:3: keys[0].sha256: sha256 is required"}},
		{"key id invalid", map[string]string{"a.yaml": "version: 1\nkeys:\n  - {id: my key, sha256: " + demoHash + "}\n"}, nil,
			[]string{`a.yaml:3: keys[0].id: id "my key" is invalid: use 1 to 128 characters of letters, digits, '.', '_', ':', '@' and '-', starting with a letter or digit`}},
		{"key hash upper case", map[string]string{"a.yaml": "version: 1\nkeys:\n  - {id: k, sha256: " + strings.ToUpper(demoHash) + "}\n"}, nil,
			[]string{`a.yaml:3: keys[0].sha256: must be the SHA-256 of the key as 64 lower-case hex characters (printf %s "$KEY" | sha256sum), not the key itself`}},
		{"key hash short", map[string]string{"a.yaml": "version: 1\nkeys:\n  - {id: k, sha256: " + demoHash[:63] + "}\n"}, nil,
			[]string{`a.yaml:3: keys[0].sha256: must be the SHA-256 of the key as 64 lower-case hex characters (printf %s "$KEY" | sha256sum), not the key itself`}},
		{"raw key instead of hash is not echoed", map[string]string{"a.yaml": "version: 1\nkeys:\n  - {id: k, sha256: tg_demo_0123456789abcdefghijklmnopqrstuvwxyzAB}\n"}, nil,
			[]string{`a.yaml:3: keys[0].sha256: must be the SHA-256 of the key as 64 lower-case hex characters (printf %s "$KEY" | sha256sum), not the key itself`}},
		{"duplicate key id and hash", map[string]string{"a.yaml": "version: 1\nkeys:\n  - {id: k, sha256: " + demoHash + "}\n  - {id: k, sha256: " + demoHash + "}\n"}, nil,
			[]string{
				`a.yaml:4: keys[1].id: duplicate key id "k" (first defined at a.yaml:3)`,
				`a.yaml:4: keys[1].sha256: same sha256 as the key at a.yaml:3`,
			}},

		// Tenants, apps and key policy.
		{"key policy references", map[string]string{"a.yaml": "version: 1\nproviders: [{name: p, schema: openai, cluster: c}]\ntenants:\n  - name: acme\n    apps: [{name: bot}]\nkeys:\n  - {id: a, sha256: " + demoHash + ", tenant: nope}\n  - {id: b, sha256: " + otherHash + ", tenant: acme, app: other}\n"}, nil,
			[]string{
				`a.yaml:7: keys[0].tenant: unknown tenant "nope"`,
				`a.yaml:8: keys[1].app: tenant "acme" has no app "other"`,
			}},
		{"key policy fields", map[string]string{"a.yaml": "version: 1\nkeys:\n  - id: a\n    sha256: " + demoHash + "\n    expires: tomorrow\n    disabled: maybe\n    tier: 'gold tier'\n    models: ['']\n    labels: {team: [x]}\n    app: bot\n"}, nil,
			[]string{
				`a.yaml:5: keys[0].expires: expires "tomorrow" is not an RFC 3339 time such as 2027-01-31T00:00:00Z`,
				`a.yaml:6: keys[0].disabled: expected true or false, got a string`,
				`a.yaml:7: keys[0].tier: "gold tier" is invalid: use 1 to 63 characters of letters, digits, '_', '.' and '-', starting with a letter or digit`,
				`a.yaml:8: keys[0].models[0]: pattern is required`,
				`a.yaml:9: keys[0].labels.team: expected a string, got a list`,
				`a.yaml:10: keys[0].app: tenant "default" has no app "bot"`,
			}},
		{"tenant and app rules", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: p, schema: openai, cluster: c}\n  - {name: q, schema: openai, cluster: c, credential: {header: x-key, source: {env: Q}}}\ntenants:\n  - name: acme\n    apps:\n      - {name: bot, required_metadata: [Workspace], agent_ids: [not-a-uuid, 1b4e28ba-2fa1-11d2-883f-0016d3cca427]}\n      - {name: bot}\n    provider_credentials:\n      - {provider: p, source: {env: P}}\n      - {provider: q, source: {env: Q1}}\n      - {provider: q, source: {file: q.key}}\n      - {provider: zz, source: {}}\n  - name: acme\n"}, nil,
			[]string{
				`a.yaml:8: tenants[0].apps[0].required_metadata[0]: metadata key "Workspace" must be 1 to 64 characters of a-z, 0-9 and '_'`,
				`a.yaml:8: tenants[0].apps[0].agent_ids[0]: agent id "not-a-uuid" is not a UUID v4`,
				`a.yaml:8: tenants[0].apps[0].agent_ids[1]: agent id "1b4e28ba-2fa1-11d2-883f-0016d3cca427" is not a UUID v4`,
				`a.yaml:9: tenants[0].apps[1].name: duplicate app "bot" in tenant "acme"`,
				`a.yaml:11: tenants[0].provider_credentials[0].provider: provider "p" takes no credential, so there is nothing to bring`,
				`a.yaml:13: tenants[0].provider_credentials[2].provider: a second credential for provider "q"`,
				`a.yaml:14: tenants[0].provider_credentials[3].provider: unknown provider "zz"`,
				`a.yaml:14: tenants[0].provider_credentials[3].source: exactly one of env or file is required`,
				`a.yaml:15: tenants[1].name: duplicate tenant "acme" (first defined at a.yaml:6)`,
			}},
		{"metadata limits", map[string]string{"a.yaml": "version: 1\nrequest_metadata: {max_keys: -1, max_value_length: 100000}\n", "b.yaml": "version: 1\nrequest_metadata: {max_keys: 3}\n"}, nil,
			[]string{
				`a.yaml:2: request_metadata.max_keys: max_keys must be between 0 and 256`,
				`a.yaml:2: request_metadata.max_value_length: max_value_length must be between 0 and 65536`,
				`b.yaml:2: request_metadata: request_metadata is already set at a.yaml:2`,
			}},

		// Pricing, limits and budgets.
		{"pricing problems carry this file's lines", map[string]string{"a.yaml": "version: 1\npricing:\n  models:\n    gpt-x:\n      provider: openai\n      input: 1.5.0\n"}, nil,
			[]string{`a.yaml:6: pricing.models[gpt-x].input: price "1.5.0": not a plain decimal number (digits, optionally one '.' and more digits)`}},
		{"limits rules", map[string]string{"a.yaml": "version: 1\nlimits:\n  backend: redis\n  on_backend_failure: {tokens: maybe}\n  default_max_tokens: -1\n  rate_limits:\n    - {scope: tier}\n    - {scope: app, match: bot, requests_per_minute: 5}\n    - {scope: global, match: x, requests_per_minute: 5}\n    - {scope: planet, requests_per_minute: 1}\n  budgets:\n    - {scope: model, daily_usd: 5}\n    - {scope: key, daily_usd: lots}\n    - {scope: tenant}\n"}, nil,
			[]string{
				`a.yaml:2: limits.redis: backend redis needs redis.url`,
				`a.yaml:4: limits.on_backend_failure.tokens: "maybe" must be open or closed`,
				`a.yaml:5: limits.default_max_tokens: default_max_tokens must not be negative`,
				`a.yaml:7: limits.rate_limits[0]: set requests_per_minute, tokens_per_minute or both`,
				`a.yaml:8: limits.rate_limits[1].match: an app is matched as tenant/app, e.g. acme/bot`,
				`a.yaml:9: limits.rate_limits[2].match: a global limit matches everything; remove match`,
				`a.yaml:10: limits.rate_limits[3].scope: unknown scope "planet" (key, app, tenant, tier, model or global)`,
				`a.yaml:12: limits.budgets[0].scope: budgets apply to key, app or tenant, not "model"`,
				`a.yaml:13: limits.budgets[1].daily_usd: "lots" is not a USD amount such as 25 or 0.50`,
				`a.yaml:14: limits.budgets[2]: set daily_usd, monthly_usd, max_cost_per_request_usd or several`,
			}},

		{"max_tokens_field", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: p, schema: openai, cluster: c, max_tokens_field: maxTokens}\n  - {name: q, schema: anthropic, cluster: c, max_tokens_field: max_tokens}\n  - {name: r, schema: openai, cluster: c, max_tokens_field: max_tokens}\n"}, nil,
			[]string{
				`a.yaml:3: providers[0].max_tokens_field: max_tokens_field "maxTokens" must be max_completion_tokens or max_tokens`,
				`a.yaml:4: providers[1].max_tokens_field: max_tokens_field applies to schemas openai and azure-openai; anthropic always sends max_tokens`,
			}},
		{"redis waits", map[string]string{"a.yaml": "version: 1\nlimits:\n  backend: redis\n  redis:\n    url: {env: R}\n    dial_timeout: 10\n    read_timeout: fast\n    write_timeout: 0s\n    admission_timeout: 10s\n    reconcile_timeout: 2m\n    pool_size: -1\n    max_retries: 11\n    reconcile_queue: 2000000\n"}, nil,
			[]string{
				`a.yaml:6: limits.redis.dial_timeout: expected a string, got a number (quote it)`,
				`a.yaml:7: limits.redis.read_timeout: "fast" is not a duration such as 250ms or 2s`,
				`a.yaml:8: limits.redis.write_timeout: write_timeout must be above 0 and at most 1m0s`,
				`a.yaml:9: limits.redis.admission_timeout: admission_timeout must be above 0 and at most 5s: admission must end well before Envoy's message_timeout (10s in the shipped bootstraps)`,
				`a.yaml:10: limits.redis.reconcile_timeout: reconcile_timeout must be above 0 and at most 1m0s`,
				`a.yaml:11: limits.redis.pool_size: pool_size must be between 0 (10 per CPU) and 10000`,
				`a.yaml:12: limits.redis.max_retries: max_retries must be between 0 and 10`,
				`a.yaml:13: limits.redis.reconcile_queue: reconcile_queue must be between 0 (the default, 10000) and 1000000`,
			}},

		{"guardrails", map[string]string{"a.yaml": "version: 1\nguardrails:\n  policies:\n    - name: strict\n      input:\n        - {name: pii, type: pii, action: explode}\ntenants:\n  - name: t\n    apps: [{name: a, guardrail_policy: lax}]\n"}, nil,
			[]string{
				`a.yaml:6: guardrails.policies[0].input[0].action: unknown action "explode" (want block, redact or flag)`,
				`a.yaml:9: tenants[0].apps[0].guardrail_policy: unknown guardrail policy "lax"`,
			}},

		{"fallback chains", map[string]string{"a.yaml": "version: 1\nproviders: [{name: p, schema: openai, cluster: c}]\nmodels:\n  - name: a\n    fallback:\n      targets: [{provider: p, model: m}, {provider: p, model: n}]\n  - {name: b, provider: p, model: m, fallback: {cluster: 'x y', targets: [{provider: p, model: m}]}}\n"}, nil,
			[]string{
				`a.yaml:5: models[0].fallback.cluster: cluster is required: a member's provider has no url, so the chain's Envoy cluster is managed outside Tollgate`,
				`a.yaml:6: models[0].fallback.targets[1].provider: provider "p" is already in the chain: attempts are told apart by provider`,
				`a.yaml:7: models[1]: set one of provider and model, targets, or fallback`,
				`a.yaml:7: models[1].fallback.cluster: cluster "x y" is not a valid cluster name`,
				`a.yaml:7: models[1].fallback.targets: a fallback chain needs at least two targets`,
			}},
		{"provider urls and options", map[string]string{"a.yaml": "version: 1\nproviders:\n" +
			"  - {name: a, schema: openai, url: https://api.openai.com, cluster: c}\n" +
			"  - {name: b, schema: openai, url: 'ftp://x'}\n" +
			"  - {name: c, schema: openai, url: 'https://x/v1'}\n" +
			"  - {name: d, schema: openai, cluster: d, connect_timeout: 1s}\n" +
			"  - {name: e, schema: openai, url: 'http://127.0.0.1:8081', tls: {sni: x}, http_version: '3', connect_timeout: soon, circuit_breakers: {retry_budget_percent: 101}}\n" +
			"  - {name: tollgate_xds, schema: openai, url: 'http://h'}\n" +
			"  - {name: m, schema: mock, url: 'http://h'}\n"}, nil,
			[]string{
				`a.yaml:3: providers[0].cluster: set url (Tollgate generates the Envoy cluster) or cluster (an externally managed one), not both`,
				`a.yaml:4: providers[1].url: url "ftp://x": scheme must be http or https`,
				`a.yaml:5: providers[2].url: url "https://x/v1": no path, query or fragment: the upstream path prefix is base_path`,
				`a.yaml:6: providers[3]: connect_timeout, idle_timeout, http_version, circuit_breakers and tls configure the generated cluster: they need url`,
				`a.yaml:7: providers[4].connect_timeout: "soon" is not a positive duration such as 5s or 1m`,
				`a.yaml:7: providers[4].http_version: http_version "3" must be "2" or "1.1"`,
				`a.yaml:7: providers[4].circuit_breakers.retry_budget_percent: retry_budget_percent must be between 1 and 100 (0 or unset: the default)`,
				`a.yaml:7: providers[4].tls: tls applies to https URLs only`,
				`a.yaml:8: providers[5].name: cluster name "tollgate_xds" is the gateway's own`,
				`a.yaml:9: providers[6].url: schema mock is answered by the gateway itself: remove url and its options`,
			}},
		{"generated chains", map[string]string{"a.yaml": "version: 1\nproviders:\n" +
			"  - {name: p, schema: openai, url: 'https://p.example'}\n" +
			"  - {name: q, schema: openai, url: 'https://q.example'}\n" +
			"  - {name: chain_s, schema: openai, url: 'https://r.example'}\n" +
			"  - {name: x, schema: openai, cluster: x}\n" +
			"models:\n" +
			"  - {name: s, fallback: {targets: [{provider: p, model: m}, {provider: q, model: m}]}}\n" +
			"  - {name: t, fallback: {first_byte_timeout: 1s, cluster: ext, targets: [{provider: p, model: m}, {provider: x, model: m}]}}\n" +
			"  - {name: u, fallback: {first_byte_timeout: -1s, targets: [{provider: p, model: m}, {provider: q, model: m}]}}\n"}, nil,
			[]string{
				`a.yaml:8: models[0].fallback.cluster: cluster "chain_s" is already generated for a.yaml:5`,
				`a.yaml:9: models[1].fallback.first_byte_timeout: first_byte_timeout configures a generated chain: every member's provider needs a url`,
				`a.yaml:10: models[2].fallback.first_byte_timeout: "-1s" is not a positive duration such as 5s or 1m`,
			}},
		{"pools", map[string]string{"a.yaml": "version: 1\nproviders: [{name: p, schema: openai, cluster: c}]\nmodels:\n  - {name: a, provider: p, model: m, targets: [{provider: p, model: m}]}\n  - name: b\n    targets:\n      - {provider: q, model: m, weight: 5}\n      - {provider: p, model: '', weight: 1001}\n"}, nil,
			[]string{
				`a.yaml:4: models[0]: set either provider and model, or targets, not both`,
				`a.yaml:7: models[1].targets[0].provider: unknown provider "q"`,
				`a.yaml:8: models[1].targets[1].model: model is required`,
				`a.yaml:8: models[1].targets[1].weight: weight must be between 1 and 1000`,
			}},

		// Several files.
		{"duplicates across files", map[string]string{
			"a.yaml": good,
			"b.yaml": "version: 1\nproviders:\n  - {name: openai, schema: openai, cluster: x}\nmodels:\n  - {name: smart, provider: openai, model: gpt-4o}\nkeys:\n  - {id: demo, sha256: " + otherHash + "}\n  - {id: other, sha256: " + demoHash + "}\n",
		}, nil, []string{
			`b.yaml:3: providers[0].name: duplicate provider name "openai" (first defined at a.yaml:3)`,
			`b.yaml:5: models[0].name: duplicate model alias "smart" (first defined at a.yaml:12)`,
			`b.yaml:7: keys[0].id: duplicate key id "demo" (first defined at a.yaml:14)`,
			`b.yaml:8: keys[1].sha256: same sha256 as the key at a.yaml:14`,
		}},
		{"problems in several files at once", map[string]string{
			"a.yaml": "version: 1\nproviders:\n  - {name: p, schema: openai, cluster: c, base_path: v1}\n",
			"b.yaml": "version: 1\nmodels:\n  - {name: m, provider: q, model: x}\nextra: 1\n",
			"c.json": "{\"version\": 1, \"keys\": [{\"id\": \"k\", \"sha256\": \"nope\"}]}",
		}, nil, []string{
			`a.yaml:3: providers[0].base_path: base_path "v1" must start with "/"`,
			`b.yaml:3: models[0].provider: unknown provider "q"`,
			`b.yaml:4: unknown field "extra"`,
			`c.json:1: keys[0].sha256: must be the SHA-256 of the key as 64 lower-case hex characters (printf %s "$KEY" | sha256sum), not the key itself`,
		}},
		{"alias may reference a provider in another file, but not a missing one", map[string]string{
			"a.yaml": "version: 1\nmodels:\n  - {name: m, provider: p, model: x}\n  - {name: n, provider: gone, model: x}\n",
			"b.yaml": "version: 1\nproviders:\n  - {name: p, schema: openai, cluster: c}\n",
		}, nil, []string{`a.yaml:4: models[1].provider: unknown provider "gone"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			_, got := load(t, dir, tt.paths...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

// A visible file whose target is gone (e.g. removed mid-update of a volume) is reported; the rest is read.
func TestLoadDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": "version: 1\nproviders: [{name: p, schema: openai, cluster: c}]\n"})
	if err := os.Symlink("..data/b.yaml", filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	_, got := load(t, dir)
	if want := []string{"b.yaml: no such file or directory"}; !reflect.DeepEqual(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
}

// goodConfig is what Load returns for good: defaults filled in, the header lower-cased.
func goodConfig() *Config {
	return &Config{
		Version: 1,
		Providers: []Provider{{
			Name: "openai", Schema: SchemaOpenAI, Cluster: "openai", BasePath: "/v1",
			Credential:   &Credential{Header: "authorization", Prefix: "Bearer ", Source: SecretRef{Env: "OPENAI_API_KEY"}},
			Models:       []string{"gpt-4o", "gpt-4o-mini"},
			DirectModels: DirectNone,
		}},
		Models: []Model{{Name: "smart", Provider: "openai", Model: "gpt-4o"}},
		Keys:   []Key{{ID: "demo", SHA256: demoHash}},
	}
}

const goodJSON = `{
	"version": 1,
	"providers": [{
		"name": "openai", "schema": "openai", "cluster": "openai",
		"credential": {"header": "Authorization", "prefix": "Bearer ", "source": {"env": "OPENAI_API_KEY"}},
		"models": ["gpt-4o", "gpt-4o-mini"]
	}],
	"models": [{"name": "smart", "provider": "openai", "model": "gpt-4o"}],
	"keys": [{"id": "demo", "sha256": "` + demoHash + `"}]
}
`

func TestLoadConfigs(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		paths []string
		want  func(dir string) *Config
	}{
		{"defaults and normalisation", map[string]string{"a.yaml": good}, nil, func(string) *Config { return goodConfig() }},
		{"JSON indented with tabs", map[string]string{"a.json": goodJSON}, nil, func(string) *Config { return goodConfig() }},
		{"explicit file with any extension", map[string]string{"tollgate.conf": good}, []string{"tollgate.conf"},
			func(string) *Config { return goodConfig() }},
		{"a file named twice is read once", map[string]string{"a.yaml": good}, []string{".", "a.yaml", "./a.yaml"},
			func(string) *Config { return goodConfig() }},
		{"only a version", map[string]string{"a.yaml": "version: 1\n"}, nil, func(string) *Config { return &Config{Version: 1} }},
		{"directory merge in name order, ignoring other entries", map[string]string{
			"b.yml":  "version: 1\nmodels:\n  - {name: smart, provider: openai, model: gpt-4o}\n",
			"a.yaml": "version: 1\nproviders:\n  - {name: openai, schema: openai, cluster: openai}\n  - {name: local, schema: openai, cluster: ollama, base_path: /api/v1, direct_models: any}\n",
			"c.json": `{"version": 1, "keys": [{"id": "demo", "sha256": "` + demoHash + `"}]}`,
			"d.yaml": "# nothing yet\n",
			// None of these is read: their content would be an error.
			".hidden.yaml":     "bad: true\n",
			"notes.txt":        "bad: true\n",
			"sub/x.yaml":       "bad: true\n",
			"..data/x.yaml":    "bad: true\n",
			"..2026_x/x.yaml":  "bad: true\n",
			"dir.yaml/x.yaml":  "bad: true\n",
			"..data_tmp.yaml":  "bad: true\n",
			"e.yaml.orig":      "bad: true\n",
			"f.yaml~":          "bad: true\n",
			"g.json.dpkg-dist": "bad: true\n",
		}, nil, func(string) *Config {
			return &Config{
				Version: 1,
				Providers: []Provider{
					{Name: "openai", Schema: "openai", Cluster: "openai", BasePath: "/v1", DirectModels: DirectNone},
					{Name: "local", Schema: "openai", Cluster: "ollama", BasePath: "/api/v1", DirectModels: DirectAny},
				},
				Models: []Model{{Name: "smart", Provider: "openai", Model: "gpt-4o"}},
				Keys:   []Key{{ID: "demo", SHA256: demoHash}},
			}
		}},
		{"files and directories combine in argument order", map[string]string{
			"conf/b.yaml": "version: 1\nproviders: [{name: b, schema: openai, cluster: c}]\n",
			"a.yaml":      "version: 1\nproviders: [{name: a, schema: openai, cluster: c}]\n",
		}, []string{"conf", "a.yaml"}, func(string) *Config {
			return &Config{Version: 1, Providers: []Provider{
				{Name: "b", Schema: "openai", Cluster: "c", BasePath: "/v1", DirectModels: DirectNone},
				{Name: "a", Schema: "openai", Cluster: "c", BasePath: "/v1", DirectModels: DirectNone},
			}}
		}},
		{"relative secret files resolve against the naming file", map[string]string{
			"conf/a.yaml": "version: 1\nproviders:\n" +
				"  - {name: a, schema: openai, cluster: c, credential: {header: x-api-key, source: {file: secrets/a}}}\n" +
				"  - {name: b, schema: openai, cluster: c, credential: {header: x-api-key, source: {file: /run/secrets/b}}}\n",
		}, []string{"conf"}, func(dir string) *Config {
			return &Config{Version: 1, Providers: []Provider{
				{Name: "a", Schema: "openai", Cluster: "c", BasePath: "/v1", DirectModels: DirectNone,
					Credential: &Credential{Header: "x-api-key", Source: SecretRef{File: filepath.Join(dir, "conf/secrets/a")}}},
				{Name: "b", Schema: "openai", Cluster: "c", BasePath: "/v1", DirectModels: DirectNone,
					Credential: &Credential{Header: "x-api-key", Source: SecretRef{File: "/run/secrets/b"}}},
			}}
		}},
		{"anchors, aliases, nulls and explicit string tags", map[string]string{"a.yaml": `version: 1
providers:
  - name: a
    schema: openai
    cluster: c
    credential: null
    models: &shared [m1, !!str 2024]
    direct_models: listed
  - name: b
    schema: openai
    cluster: c
    models: *shared
models:
keys: ~
`}, nil, func(string) *Config {
			return &Config{Version: 1, Providers: []Provider{
				{Name: "a", Schema: "openai", Cluster: "c", BasePath: "/v1", Models: []string{"m1", "2024"}, DirectModels: DirectListed},
				{Name: "b", Schema: "openai", Cluster: "c", BasePath: "/v1", Models: []string{"m1", "2024"}, DirectModels: DirectNone},
			}}
		}},
		{"model ids may contain slashes and colons", map[string]string{"a.yaml": "version: 1\nproviders:\n  - {name: t, schema: openai, cluster: c, models: [meta-llama/Llama-3-70b, 'llama3:8b']}\nmodels:\n  - {name: llama, provider: t, model: meta-llama/Llama-3-70b}\n"}, nil,
			func(string) *Config {
				return &Config{Version: 1,
					Providers: []Provider{{Name: "t", Schema: "openai", Cluster: "c", BasePath: "/v1", Models: []string{"meta-llama/Llama-3-70b", "llama3:8b"}, DirectModels: DirectNone}},
					Models:    []Model{{Name: "llama", Provider: "t", Model: "meta-llama/Llama-3-70b"}},
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			got, probs := load(t, dir, tt.paths...)
			if probs != nil {
				t.Fatalf("unexpected problems:\n%s", strings.Join(probs, "\n"))
			}
			if want := tt.want(dir); !reflect.DeepEqual(got, want) {
				t.Errorf("config:\n got  %+v\n want %+v", got, want)
			}
		})
	}
}

// The visible files of a Kubernetes ConfigMap volume are symlinks through "..data" to a timestamped
// directory; Load reads them and ignores the hidden entries (including an old, stale directory).
func TestLoadKubernetesVolume(t *testing.T) {
	dir := t.TempDir()
	vol := newVolume(t, dir)
	vol.update(map[string]string{"routing.yaml": good})
	writeFiles(t, dir, map[string]string{"..2020_01_01_00_00_00.000000001/routing.yaml": "stale: true\n"})
	got, probs := load(t, dir)
	if probs != nil {
		t.Fatalf("unexpected problems: %q", probs)
	}
	if !reflect.DeepEqual(got, goodConfig()) {
		t.Errorf("config %+v, want %+v", got, goodConfig())
	}
}

func TestLoadNoPaths(t *testing.T) {
	cfg, err := Load()
	var probs Problems
	if cfg != nil || !errors.As(err, &probs) || probs.Error() != "no configuration paths given" {
		t.Errorf("Load() = %v, %v", cfg, err)
	}
}

func TestExample(t *testing.T) {
	cfg, err := Parse("example/tollgate.yaml", Example())
	if err != nil {
		t.Fatalf("example does not load:\n%v", err)
	}
	want := &Config{
		Version: 1,
		Providers: []Provider{{
			Name: "openai", Schema: "openai", URL: "https://api.openai.com", Cluster: "openai", BasePath: "/v1",
			Credential:   &Credential{Header: "authorization", Prefix: "Bearer ", Source: SecretRef{Env: "OPENAI_API_KEY"}},
			Models:       []string{"gpt-4o", "gpt-4o-mini", "o4-mini", "text-embedding-3-small"},
			DirectModels: DirectListed,
		}, {
			Name: "mock", Schema: "mock",
			Models: []string{"tollgate-mock", "tollgate-mock-embed"}, DirectModels: DirectListed,
		}},
		Models: []Model{
			{Name: "smart-default", Provider: "openai", Model: "gpt-4o", IfNoCredential: &Target{Provider: "mock", Model: "tollgate-mock"}},
			{Name: "fast-default", Provider: "openai", Model: "gpt-4o-mini", IfNoCredential: &Target{Provider: "mock", Model: "tollgate-mock"}},
			{Name: "embed-default", Provider: "openai", Model: "text-embedding-3-small", IfNoCredential: &Target{Provider: "mock", Model: "tollgate-mock-embed"}},
		},
		Tenants: []Tenant{{Name: "demo", Apps: []App{{Name: "playground", Models: []string{"*-default"}}}}},
		Keys:    []Key{{ID: "demo", Tenant: "demo", SHA256: fmt.Sprintf("%x", sha256.Sum256([]byte("tg_demo_0123456789abcdefghijklmnopqrstuvwxyzAB")))}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("example config:\n got  %+v\n want %+v", cfg, want)
	}
	// Example returns a copy: callers cannot corrupt the embedded file.
	Example()[0] = 'X'
	if Example()[0] == 'X' {
		t.Error("Example shares its backing array")
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "routing.yaml", Line: 12, Path: "providers[0].name", Message: "name is required"}, "routing.yaml:12: providers[0].name: name is required"},
		{Problem{File: "routing.yaml", Path: "providers[1].credential.source", Message: "exactly one of env or file is required"}, "routing.yaml: providers[1].credential.source: exactly one of env or file is required"},
		{Problem{File: "routing.yaml", Line: 3, Message: "bad"}, "routing.yaml:3: bad"},
		{Problem{Message: "no configuration paths given"}, "no configuration paths given"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	ps := Problems{tests[0].p, tests[2].p}
	if got, want := ps.Error(), tests[0].want+"\n"+tests[2].want; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// Aliases cannot expand a small file into unbounded work: decoding stops at the node budget.
func TestDecodeBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nproviders:\n  - &p {name: p, schema: openai, cluster: c, models: [a, b, c, d]}\n")
	for range 20 {
		b.WriteString("  - *p\n")
	}
	doc := decodeDocument("a.yaml", []byte(b.String()), 50)
	want := Problem{File: "a.yaml", Line: 8, Path: "providers[5]", Message: "document too large (too many values after expanding aliases)"}
	if len(doc.problems) != 1 || doc.problems[0] != want {
		t.Errorf("problems = %v, want [%v]", doc.problems, want)
	}
	if got := decodeDocument("a.yaml", []byte(b.String()), 1000); len(got.problems) != 0 || len(got.cfg.Providers) != 21 {
		t.Errorf("with a sufficient budget: %d providers, problems %v", len(got.cfg.Providers), got.problems)
	}
}

// The number of problems returned is bounded; a last line says how many were left out.
func TestLoadProblemLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nkeys:\n")
	for range maxProblems + 7 {
		b.WriteString("  - {id: k}\n")
	}
	_, err := Parse("a.yaml", []byte(b.String()))
	probs, _ := err.(Problems)
	// Each key lacks sha256 (one problem each); all but the first have a duplicate id (one more each).
	total := (maxProblems + 7) + (maxProblems + 6)
	if len(probs) != maxProblems+1 || probs[maxProblems].String() != fmt.Sprintf("and %d more problems", total-maxProblems) {
		t.Errorf("got %d problems, last %v", len(probs), probs[len(probs)-1])
	}
}

// TestRedisSettings: unset waits take the documented defaults; set ones are
// used as written, and max_retries 0 means none.
func TestRedisSettings(t *testing.T) {
	zero := 0
	tests := []struct {
		name string
		in   RedisBackend
		want RedisSettings
	}{
		{"defaults", RedisBackend{}, RedisSettings{DialTimeout: 250 * time.Millisecond, ReadTimeout: 250 * time.Millisecond, WriteTimeout: 250 * time.Millisecond,
			MaxRetries: 1, AdmissionTimeout: 500 * time.Millisecond, ReconcileTimeout: 2 * time.Second, ReconcileQueue: 10_000}},
		{"set", RedisBackend{DialTimeout: "1s", ReadTimeout: "20ms", WriteTimeout: "30ms", PoolSize: 7, MaxRetries: &zero,
			AdmissionTimeout: "100ms", ReconcileTimeout: "3s", ReconcileQueue: 5},
			RedisSettings{DialTimeout: time.Second, ReadTimeout: 20 * time.Millisecond, WriteTimeout: 30 * time.Millisecond, PoolSize: 7,
				AdmissionTimeout: 100 * time.Millisecond, ReconcileTimeout: 3 * time.Second, ReconcileQueue: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.Settings(); got != tt.want {
				t.Fatalf("Settings() = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestIfNoCredentialValidation(t *testing.T) {
	for _, tc := range []struct {
		name, models string
		want         []string
	}{
		{"valid", "  - {name: a, provider: p, model: m, if_no_credential: {provider: p, model: n}}\n", nil},
		{"unknown provider", "  - {name: a, provider: p, model: m, if_no_credential: {provider: q, model: n}}\n",
			[]string{`a.yaml:7: models[0].if_no_credential.provider: unknown provider "q"`}},
		{"with targets", "  - {name: a, targets: [{provider: p, model: m}], if_no_credential: {provider: p, model: n}}\n",
			[]string{`a.yaml:7: models[0].if_no_credential: if_no_credential applies to a single provider and model, not to targets or fallback`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"a.yaml": "version: 1\nproviders:\n  - name: p\n    schema: openai\n    cluster: c\nmodels:\n" + tc.models})
			_, err := Load(filepath.Join(dir, "a.yaml"))
			var got []string
			var ps Problems
			if errors.As(err, &ps) {
				for _, p := range ps {
					got = append(got, strings.TrimPrefix(p.String(), dir+string(filepath.Separator)))
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
