package pricing

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-ai/tollgate/internal/yamldoc"
)

// maxNodes bounds the decoding work of one document, aliases expanded.
const maxNodes = 1 << 16

// Parse reads a price table in the pricing.yaml shape (YAML, or JSON):
//
//	models:
//	  gpt-4o:
//	    provider: openai
//	    input: 2.50
//	    cached_input: 1.25
//	    output: 10.00
//
// Prices are parsed from the scalar text, never through float64. Decoding is
// strict (unknown and repeated fields are errors) and the result is
// validated; the error is a [yamldoc.Problems] with file, line and path. name only
// labels the problems.
func Parse(name string, data []byte) (Table, error) {
	d := &tableDecoder{file: name, lines: map[string]int{}, bad: map[string]bool{}, budget: yamldoc.NewBudget(maxNodes)}
	root, err := yamldoc.Parse(data)
	if err != nil {
		return Table{}, yamldoc.Problems{yamldoc.ParseProblem(name, err)}
	}
	return d.finish(root)
}

// ParseNode decodes a price table from a node of a larger YAML document (the
// gateway config's pricing section), so problems carry the document's own
// line numbers. Paths are relative to the node.
func ParseNode(name string, n *yaml.Node) (Table, error) {
	d := &tableDecoder{file: name, lines: map[string]int{}, bad: map[string]bool{}, budget: yamldoc.NewBudget(maxNodes)}
	return d.finish(n)
}

func (d *tableDecoder) finish(root *yaml.Node) (Table, error) {
	name := d.file
	var t Table
	if root != nil {
		d.decodeTable(root, &t)
	}
	for _, p := range t.Validate() {
		if d.suppressed(p.Path) {
			continue
		}
		p.File, p.Line = name, d.line(p.Path)
		d.problems = append(d.problems, p)
	}
	if len(d.problems) > 0 {
		sort.SliceStable(d.problems, func(i, j int) bool { return d.problems[i].Line < d.problems[j].Line })
		return Table{}, d.problems
	}
	return t, nil
}

type tableDecoder struct {
	file     string
	lines    map[string]int  // path → line of its key
	bad      map[string]bool // paths whose value had the wrong type
	problems yamldoc.Problems
	budget   *yamldoc.Budget
}

func (d *tableDecoder) addf(line int, path, format string, args ...any) {
	d.problems = append(d.problems, yamldoc.Problem{File: d.file, Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// typeError reports a value of the wrong type at path.
func (d *tableDecoder) typeError(line int, path, format string, args ...any) {
	d.addf(line, path, format, args...)
	d.bad[path] = true
}

// line returns the line of path or of its nearest recorded ancestor.
func (d *tableDecoder) line(path string) int {
	for ; path != ""; path = parent(path) {
		if l, ok := d.lines[path]; ok {
			return l
		}
	}
	return d.lines[""]
}

// suppressed reports whether path or an ancestor had a value of the wrong
// type, already reported: validation stays quiet about it.
func (d *tableDecoder) suppressed(path string) bool {
	for ; path != ""; path = parent(path) {
		if d.bad[path] {
			return true
		}
	}
	return false
}

// parent strips the last ".field" or "[name]" from path (entry names may
// contain dots, so a bracket suffix is stripped whole).
func parent(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndex(path, "["); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndex(path, "."); i >= 0 {
		return path[:i]
	}
	return ""
}

// resolve follows aliases and charges the node budget; nil means stop.
func (d *tableDecoder) resolve(n *yaml.Node, path string) *yaml.Node {
	if n = yamldoc.Follow(n); n == nil {
		d.addf(0, path, yamldoc.ErrAlias)
		return nil
	}
	ok, why := d.budget.Spend()
	if why != "" {
		d.addf(n.Line, path, "%s", why)
	}
	if !ok {
		return nil
	}
	return n
}

// fields walks the mapping n, reporting non-scalar, merge and repeated keys,
// and calls f for every other key and its value.
func (d *tableDecoder) fields(n *yaml.Node, path string, f func(key string, line int, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.typeError(n.Line, path, "expected a mapping, got %s", yamldoc.DescribeValue(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			d.addf(k.Line, path, "mapping keys must be plain names")
		case k.ShortTag() == "!!merge":
			d.addf(k.Line, path, "YAML merge keys (<<) are not supported")
		case seen[k.Value]:
			d.addf(k.Line, path, "key %q given more than once", k.Value)
		default:
			seen[k.Value] = true
			f(k.Value, k.Line, v)
		}
	}
}

func (d *tableDecoder) decodeTable(root *yaml.Node, t *Table) {
	if root = d.resolve(root, ""); root == nil || yamldoc.IsNull(root) {
		return
	}
	d.lines[""] = root.Line
	d.fields(root, "", func(key string, line int, v *yaml.Node) {
		if key != "models" {
			d.addf(line, "", "unknown field %q", key)
			return
		}
		d.lines["models"] = line
		if v = d.resolve(v, "models"); v == nil || yamldoc.IsNull(v) {
			return
		}
		t.Models = map[string]Entry{}
		d.fields(v, "models", func(name string, line int, v *yaml.Node) {
			p := entryPath(name)
			d.lines[p] = line
			if v = d.resolve(v, p); v == nil {
				return
			}
			t.Models[name] = d.decodeEntry(v, p)
		})
	})
}

func (d *tableDecoder) decodeEntry(n *yaml.Node, path string) Entry {
	var e Entry
	if yamldoc.IsNull(n) {
		return e // validation reports the missing fields
	}
	rates := map[string]**Rate{
		"input": &e.Input, "cached_input": &e.CachedInput, "output": &e.Output,
		"cache_write_5m": &e.CacheWrite5m, "cache_write_1h": &e.CacheWrite1h, "audio_input": &e.AudioInput,
	}
	d.fields(n, path, func(key string, line int, v *yaml.Node) {
		p := path + "." + key
		d.lines[p] = line
		if v = d.resolve(v, p); v == nil || yamldoc.IsNull(v) {
			return
		}
		if dst, ok := rates[key]; ok {
			if v.Kind != yaml.ScalarNode || !(v.ShortTag() == "!!int" || v.ShortTag() == "!!float" || v.ShortTag() == "!!str") {
				d.typeError(v.Line, p, "expected a price in USD per million tokens, got %s", yamldoc.DescribeValue(v))
				return
			}
			r, err := ParseRate(v.Value)
			if err != nil {
				d.typeError(v.Line, p, "%v", err)
				return
			}
			*dst = &r
			return
		}
		switch key {
		case "per_minute":
			if v.Kind != yaml.ScalarNode || !(v.ShortTag() == "!!int" || v.ShortTag() == "!!float" || v.ShortTag() == "!!str") {
				d.typeError(v.Line, p, "expected a price in USD per minute of audio, got %s", yamldoc.DescribeValue(v))
				return
			}
			a, err := ParseUSD(v.Value)
			if err != nil {
				d.typeError(v.Line, p, "%v", err)
				return
			}
			e.PerMinute = &a
		case "provider", "model":
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
				d.typeError(v.Line, p, "expected a string, got %s", yamldoc.DescribeValue(v))
				return
			}
			if key == "provider" {
				e.Provider = v.Value
			} else {
				e.Model = v.Value
			}
		case "effective_from":
			// Unquoted dates are YAML timestamps; the text is what counts.
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" && v.ShortTag() != "!!timestamp" {
				d.typeError(v.Line, p, "expected an RFC 3339 date, got %s", yamldoc.DescribeValue(v))
				return
			}
			e.EffectiveFrom = v.Value
		case "min_prompt_tokens":
			i, err := strconv.ParseInt(v.Value, 10, 64)
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || err != nil {
				d.typeError(v.Line, p, "expected a whole number of tokens, got %s", yamldoc.DescribeValue(v))
				return
			}
			e.MinPromptTokens = i
		default:
			d.addf(line, path, "unknown field %q", key)
		}
	})
	return e
}
