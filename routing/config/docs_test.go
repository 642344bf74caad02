package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// docBlock is one ```yaml block of a document.
type docBlock struct {
	file string
	line int    // the line of the opening fence
	mark string // the check marker on the line before the fence, "" when none
	text string
}

var markRE = regexp.MustCompile(`^<!-- check: (.*) -->$`)

// yamlBlocks returns every ```yaml block of a Markdown file.
func yamlBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []docBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```yaml" {
			continue
		}
		b := docBlock{file: path, line: i + 1}
		if i > 0 {
			if m := markRE.FindStringSubmatch(strings.TrimSpace(lines[i-1])); m != nil {
				b.mark = m[1]
			}
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		b.text = strings.Join(body, "\n") + "\n"
		out = append(out, b)
	}
	return out
}

// TestDocsYAML checks every ```yaml block in docs/ as gateway configuration, so the
// documentation's examples load. A block that is not a whole configuration file says how it
// is checked in a comment on the line before its fence:
//
//	<!-- check: skip REASON -->                  not gateway configuration (a Kubernetes manifest…)
//	<!-- check: fragment [with F.md#N …] -->      top-level fields without version, loaded together
//	                                              with the providers of the N-th yaml blocks (from 1)
//	                                              of the named docs
//	<!-- check: guardrail-rules [with …] -->      a list of guardrail rules, checked as a policy's input
//	<!-- check: guardrail-policy [with …] -->     fields of one guardrail policy
//	<!-- check: pricing [with …] -->              the contents of the pricing section
func TestDocsYAML(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	blocks := map[string][]docBlock{}
	for _, f := range files {
		blocks[filepath.Base(f)] = yamlBlocks(t, f)
	}
	for name, bs := range blocks {
		for i, b := range bs {
			t.Run(name+"#"+strconv.Itoa(i+1), func(t *testing.T) {
				kind, rest, _ := strings.Cut(b.mark, " ")
				if kind == "skip" {
					t.Skipf("%s:%d: %s", name, b.line, rest)
				}
				files := map[string]string{}
				if ctx, ok := strings.CutPrefix(rest, "with "); ok {
					for j, ref := range strings.Fields(ctx) {
						other, n, _ := strings.Cut(ref, "#")
						k, err := strconv.Atoi(n)
						if err != nil || k < 1 || k > len(blocks[other]) {
							t.Fatalf("%s:%d: bad reference %q", name, b.line, ref)
						}
						files["context"+strconv.Itoa(j)+".yaml"] = providersOf(t, blocks[other][k-1].text)
					}
				} else if rest != "" && kind != "" {
					t.Fatalf("%s:%d: bad marker %q", name, b.line, b.mark)
				}
				switch kind {
				case "":
					files["block.yaml"] = b.text
				case "fragment":
					files["block.yaml"] = withVersion(b.text)
				case "guardrail-rules":
					files["block.yaml"] = "version: 1\nguardrails:\n  policies:\n    - name: doc\n      input:\n" + indent(b.text, "        ")
				case "guardrail-policy":
					files["block.yaml"] = "version: 1\nguardrails:\n  policies:\n    - name: doc\n" + indent(b.text, "      ")
				case "pricing":
					files["block.yaml"] = "version: 1\npricing:\n" + indent(b.text, "  ")
				default:
					t.Fatalf("%s:%d: unknown marker %q", name, b.line, b.mark)
				}
				dir := t.TempDir()
				writeFiles(t, dir, files)
				if _, err := Load(dir); err != nil {
					t.Errorf("%s:%d: the example does not load (a fragment needs a check marker):\n%v", name, b.line, err)
				}
			})
		}
	}
}

// providersOf returns a configuration file with only the providers of a block.
func providersOf(t *testing.T, s string) string {
	t.Helper()
	var doc struct {
		Providers []map[string]any `yaml:"providers"`
	}
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil || len(doc.Providers) == 0 {
		t.Fatalf("context block without providers: %v\n%s", err, s)
	}
	out, err := yaml.Marshal(map[string]any{"version": 1, "providers": doc.Providers})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func withVersion(s string) string {
	if strings.HasPrefix(s, "version:") || strings.Contains(s, "\nversion:") {
		return s
	}
	return "version: 1\n" + s
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
