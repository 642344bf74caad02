package config

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate-ai/tollgate/internal/yamldoc"
)

// maxNodes bounds the work of decoding one file; YAML aliases could otherwise expand a small file into a huge
// configuration.
const maxNodes = 1 << 20

// document is one decoded file before validation and merging.
type document struct {
	file       string
	cfg        Config
	lines      map[string]int  // field path → line of its key (or list element)
	badType    map[string]bool // paths whose value had the wrong type; validation stays quiet about them
	problems   Problems
	hasContent bool // any top-level field besides version
	hasVersion bool
}

// line returns the line of path or, when path is absent, of its nearest present ancestor.
func (d *document) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

func (d *document) addf(path, format string, args ...any) {
	for p := path; ; p = parentPath(p) {
		if d.badType[p] {
			return // already reported as a type error
		}
		if p == "" {
			break
		}
	}
	d.problems = append(d.problems, Problem{File: d.file, Line: d.line(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

func parentPath(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// decodeDocument parses data (YAML, or JSON, which YAML reads too) and decodes it strictly into a Config,
// recording every problem with its field path and line.
func decodeDocument(file string, data []byte, budget int) *document {
	doc := &document{file: file, lines: map[string]int{}, badType: map[string]bool{}}
	root, err := yamldoc.Parse(data)
	if err != nil {
		doc.problems = append(doc.problems, yamldoc.ParseProblem(file, err))
		return doc
	}
	if root == nil {
		return doc // empty or comments only: contributes nothing
	}
	dec := &decoder{doc: doc, budget: yamldoc.NewBudget(budget - 1)}
	n := dec.resolve(root, "")
	if n == nil || yamldoc.IsNull(n) {
		return doc
	}
	doc.lines[""] = n.Line
	if n.Kind != yaml.MappingNode {
		doc.addf("", "expected a mapping at the top level, got %s", yamldoc.Describe(n))
		return doc
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case "version":
			doc.hasVersion = true
		default:
			doc.hasContent = true
		}
	}
	dec.decode(n, reflect.ValueOf(&doc.cfg).Elem(), "")
	return doc
}

type decoder struct {
	doc    *document
	budget *yamldoc.Budget
}

// resolve follows aliases and charges the node budget; it returns nil once the budget is exhausted.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	if n = yamldoc.Follow(n); n == nil {
		d.doc.addf(path, yamldoc.ErrAlias)
		return nil
	}
	ok, why := d.budget.Spend()
	if why != "" {
		d.doc.addf(path, "%s", why)
	}
	if !ok {
		return nil
	}
	return n
}

// typeError reports that the value at path has the wrong type.
func (d *decoder) typeError(path, format string, args ...any) {
	d.doc.addf(path, format, args...)
	d.doc.badType[path] = true
}

// decode stores n into v (a settable value of a Config type), walking struct fields by their json tags.
// A null leaves v at its zero value; later validation reports required fields.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = d.resolve(n, path)
	if n == nil || yamldoc.IsNull(n) {
		return
	}
	switch {
	case v.Type() == reflect.TypeFor[*yaml.Node]():
		// A subtree another package decodes (the pricing table); keep the node
		// itself so its problems carry this file's line numbers.
		v.Set(reflect.ValueOf(n))
		return
	case v.Type() == reflect.TypeFor[Decimal]():
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float" && n.ShortTag() != "!!str") {
			d.typeError(path, "expected a decimal number, got %s", yamldoc.Describe(n))
			return
		}
		v.SetString(n.Value)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.typeError(path, "expected a list, got %s", yamldoc.Describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.doc.lines[p] = item.Line
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			hint := ""
			if n.Kind == yaml.ScalarNode {
				hint = " (quote it)"
			}
			d.typeError(path, "expected a string, got %s%s", yamldoc.Describe(n), hint)
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.typeError(path, "expected true or false, got %s", yamldoc.Describe(n))
			return
		}
		var b bool
		if n.Decode(&b) != nil {
			d.typeError(path, "expected true or false, got %s", yamldoc.Describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Map: // map[string]string only (labels)
		if n.Kind != yaml.MappingNode {
			d.typeError(path, "expected a mapping, got %s", yamldoc.Describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
				d.typeError(path, "mapping keys must be strings")
				return
			}
			p := path + "." + k.Value
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.doc.problems = append(d.doc.problems, Problem{File: d.doc.file, Line: k.Line, Path: p, Message: "field given more than once"})
				continue
			}
			d.doc.lines[p] = k.Line
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, p)
			m.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
		v.Set(m)
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") || n.Decode(&f) != nil {
			d.typeError(path, "expected a number, got %s", yamldoc.Describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || i != int64(int(i)) {
			d.typeError(path, "expected an integer, got %s", yamldoc.Describe(n))
			return
		}
		v.SetInt(i)
	default:
		panic("config: unsupported field kind " + v.Kind().String()) // a programming error in the schema
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.typeError(path, "expected a mapping, got %s", yamldoc.Describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := k.Value
		if k.Kind != yaml.ScalarNode {
			d.doc.problems = append(d.doc.problems, Problem{File: d.doc.file, Line: k.Line, Path: path, Message: "mapping keys must be plain field names"})
			continue
		}
		fieldPath := name
		if path != "" {
			fieldPath = path + "." + name
		}
		if k.ShortTag() == "!!merge" {
			d.doc.problems = append(d.doc.problems, Problem{File: d.doc.file, Line: k.Line, Path: path, Message: "YAML merge keys (<<) are not supported"})
			continue
		}
		idx, ok := fieldIndex(v.Type(), name)
		if !ok {
			msg := fmt.Sprintf("unknown field %q", name)
			if v.Type() == reflect.TypeFor[SecretRef]() {
				msg += " (secret values cannot be written in the configuration; use env or file)"
			}
			d.doc.problems = append(d.doc.problems, Problem{File: d.doc.file, Line: k.Line, Path: path, Message: msg})
			continue
		}
		if seen[name] {
			d.doc.problems = append(d.doc.problems, Problem{File: d.doc.file, Line: k.Line, Path: fieldPath, Message: "field given more than once"})
			continue
		}
		seen[name] = true
		d.doc.lines[fieldPath] = k.Line
		d.decode(val, v.Field(idx), fieldPath)
	}
}

// fieldIndex finds the struct field whose json tag name is exactly name.
func fieldIndex(t reflect.Type, name string) (int, bool) {
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if tag != "" && tag != "-" && tag == name {
			return i, true
		}
	}
	return 0, false
}
