package validate

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// byteOffset converts a 1-based line and rune column, as protojson reports them, to a byte offset in js.
func byteOffset(js []byte, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(js[off:], '\n')
		if i < 0 {
			return len(js)
		}
		off += i + 1
	}
	for c := 1; c < col && off < len(js); c++ {
		_, size := utf8.DecodeRune(js[off:])
		off += size
	}
	return off
}

// jsonFrame is one open object or array while scanning JSON.
type jsonFrame struct {
	array     bool
	index     int    // arrays: index of the current element, -1 before the first
	key       string // objects: the current key
	hasKey    bool
	expectKey bool // objects: the next token is a key
}

// jsonPathAt returns the path (e.g. `a.b[2]["@type"]`) of the innermost key or value that starts at or
// before byte offset off in js. Keys are rendered as written, so for protojson input they are the
// proto field names used in YAML.
func jsonPathAt(js []byte, off int) string {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var stack []jsonFrame
	path := ""
	for {
		if tokenStart(js, int(dec.InputOffset())) > off {
			break
		}
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if n := len(stack); n > 0 && !stack[n-1].array {
				stack[n-1].expectKey = true
			}
			continue
		}
		var top *jsonFrame
		if n := len(stack); n > 0 {
			top = &stack[n-1]
		}
		if top != nil && !top.array && top.expectKey {
			key, _ := tok.(string)
			top.key, top.hasKey, top.expectKey = key, true, false
			path = renderPath(stack)
			continue
		}
		if top != nil && top.array {
			top.index++
		}
		path = renderPath(stack)
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, jsonFrame{array: d == '[', index: -1, expectKey: d == '{'})
		} else if top != nil && !top.array {
			top.expectKey = true
		}
	}
	return path
}

// tokenStart skips the whitespace and separators the decoder has not consumed yet.
func tokenStart(js []byte, i int) int {
	for i < len(js) {
		switch js[i] {
		case ' ', '\t', '\r', '\n', ',', ':':
			i++
		default:
			return i
		}
	}
	return i
}

func renderPath(stack []jsonFrame) string {
	var b strings.Builder
	for _, f := range stack {
		switch {
		case f.array && f.index >= 0:
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		case !f.array && f.hasKey:
			writeKey(&b, f.key)
		}
	}
	return b.String()
}

// writeKey appends .key for identifier-like keys and ["key"] for anything else (such as "@type" or
// map keys like "envoy.extensions.upstreams.http.v3.HttpProtocolOptions").
func writeKey(b *strings.Builder, key string) {
	if !isIdent(key) {
		b.WriteString("[" + strconv.Quote(key) + "]")
		return
	}
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.WriteString(key)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// joinPath appends a field name (or an index/key suffix starting with "[") to a path.
func joinPath(path, seg string) string {
	switch {
	case path == "":
		return seg
	case strings.HasPrefix(seg, "["):
		return path + seg
	default:
		return path + "." + seg
	}
}
