package openai

import (
	"encoding/binary"
	"math/bits"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
)

// chunk is what the gateway reads from one chat completion chunk: the
// completion text it carries (for the mid-stream budget and a cut stream's
// estimate), whether it is an error event, whether it has a first choice,
// and where its usage is (to read it, or to cut it out).
//
// Every field is defined as gjson reads it (gjsonChunk): the first member of
// a name wins for a key that ends a path, and a path that does not resolve
// under one member goes on to the next member of the same name. readChunk
// finds all of it in one pass over the chunk's members, descending only into
// the first choice's delta, where the paths took four to six scans of the
// chunk. A chunk outside what that pass reads with certainty (escaped keys,
// a repeated key on a path, non-standard shapes, invalid JSON) is read by
// the gjson paths instead, so the two never differ (FuzzReadChunk).
type chunk struct {
	text    int    // bytes of completion text in choices[0].delta: content, refusal, the first tool call's arguments
	errored bool   // a top-level "error" member
	choice  bool   // choices[0] exists
	usage   []byte // the top-level "usage" member's value; nil when absent
	usageAt int    // usage's offset in the chunk
}

// ChunkText counts the bytes of completion text in an OpenAI chat
// completion chunk: the first choice's content, refusal and first tool
// call's arguments, unescaped.
func ChunkText(data []byte) int { return readChunk(data).text }

func readChunk(data []byte) chunk {
	if len(data) == 0 || data[0] != '{' {
		return chunk{}
	}
	if c, ok := scanChunk(data); ok {
		return c
	}
	return gjsonChunk(data)
}

// gjsonChunk reads a chunk with a gjson path per field: the definition
// scanChunk is held to.
func gjsonChunk(data []byte) chunk {
	js := byteview.String(data)
	var c chunk
	if d := gjson.Get(js, "choices.0.delta"); d.Exists() {
		c.text = len(d.Get("content").Str) + len(d.Get("refusal").Str) + len(d.Get("tool_calls.0.function.arguments").Str)
	}
	c.errored = gjson.Get(js, "error").Exists()
	c.choice = gjson.Get(js, "choices.0").Exists()
	if u := gjson.Get(js, "usage"); len(u.Raw) > 0 {
		if u.Index > 0 && u.Index+len(u.Raw) <= len(data) && byteview.String(data[u.Index:u.Index+len(u.Raw)]) == u.Raw {
			c.usage, c.usageAt = data[u.Index:u.Index+len(u.Raw)], u.Index
		} else {
			c.usage = []byte(u.Raw) // no offset: cutMember declines, sjson deletes
		}
	}
	return c
}

// scanChunk is readChunk's one pass; ok is false where it leaves the chunk
// to gjsonChunk.
func scanChunk(b []byte) (c chunk, ok bool) {
	o := object{b: b, i: 0}
	var seenChoices bool
	for {
		key, v, more := o.next()
		if !more {
			break
		}
		end := -1
		switch string(key) {
		case "choices":
			if seenChoices {
				return chunk{}, false // a repeated path key: gjson may go on to the second
			}
			seenChoices = true
			if end, ok = c.readChoices(b, v); !ok {
				return chunk{}, false
			}
		case "error":
			c.errored = true
		case "usage":
			if c.usage == nil {
				if end, ok = skipValue(b, v); !ok {
					return chunk{}, false
				}
				c.usage, c.usageAt = b[v:end], v
			}
		}
		if end < 0 {
			if end, ok = skipValue(b, v); !ok {
				return chunk{}, false
			}
		}
		o.i = end
	}
	return c, o.ok
}

// readChoices reads choices[0].delta from the choices array at b[i] and
// returns the array's end.
func (c *chunk) readChoices(b []byte, i int) (int, bool) {
	if b[i] != '[' {
		return 0, false // an object's "0" member, or no choices: gjson's business
	}
	j := ws(b, i+1)
	if j >= len(b) {
		return 0, false
	}
	if b[j] == ']' {
		return j + 1, true
	}
	if b[j] != '{' {
		return 0, false
	}
	c.choice = true
	o := object{b: b, i: j}
	delta, _, ok := o.member("delta") // a leaf of its path: the first wins
	if !ok {
		return 0, false
	}
	if delta >= 0 {
		if b[delta] != '{' {
			return 0, false
		}
		n, ok := deltaText(b, delta)
		if !ok {
			return 0, false
		}
		c.text = n
	}
	return restOfArray(b, o.i)
}

// restOfArray returns the end of an array whose first element ends at
// b[i], walking its other elements strictly: gjson walks the array of a
// path rather than skipping it, and the two agree on well-formed arrays.
func restOfArray(b []byte, i int) (int, bool) {
	for range len(b) { // each turn consumes at least one byte
		i = ws(b, i)
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ']':
			return i + 1, true
		case ',':
			j := ws(b, i+1)
			if j >= len(b) {
				return 0, false
			}
			end, ok := skipValue(b, j)
			if !ok {
				return 0, false
			}
			i = end
		default:
			return 0, false
		}
	}
	return 0, false
}

// deltaText counts the completion text of the delta object at b[i].
func deltaText(b []byte, i int) (int, bool) {
	o := object{b: b, i: i}
	var content, refusal, calls = -1, -1, -1
	for {
		key, v, more := o.next()
		if !more {
			break
		}
		switch string(key) {
		case "content":
			if content < 0 {
				content = v
			}
		case "refusal":
			if refusal < 0 {
				refusal = v
			}
		case "tool_calls":
			if calls >= 0 {
				return 0, false
			}
			calls = v
		}
		end, ok := skipValue(b, v)
		if !ok {
			return 0, false
		}
		o.i = end
	}
	if !o.ok {
		return 0, false
	}
	n := stringLen(b, content) + stringLen(b, refusal)
	if calls >= 0 {
		m, ok := argumentsLen(b, calls)
		if !ok {
			return 0, false
		}
		n += m
	}
	return n, true
}

// argumentsLen is the length of tool_calls[0].function.arguments, the
// tool_calls array being at b[i].
func argumentsLen(b []byte, i int) (int, bool) {
	if b[i] != '[' {
		return 0, false
	}
	j := ws(b, i+1)
	if j >= len(b) || b[j] != '{' {
		return 0, j < len(b) && b[j] == ']'
	}
	o := object{b: b, i: j}
	fn, repeated, ok := o.member("function")
	if !ok || repeated { // on a path: gjson may go on to the second
		return 0, false
	}
	if fn < 0 {
		return 0, true
	}
	if b[fn] != '{' {
		return 0, false
	}
	o = object{b: b, i: fn}
	args, _, ok := o.member("arguments")
	return stringLen(b, args), ok
}

// member walks the object's members to its end and returns the offset of
// the first value named name (-1 if none) and whether the name repeats; ok
// is false for a malformed object.
func (o *object) member(name string) (v int, repeated, ok bool) {
	v = -1
	for {
		key, at, more := o.next()
		if !more {
			return v, repeated, o.ok
		}
		if string(key) == name {
			repeated = v >= 0
			if v < 0 {
				v = at
			}
		}
		end, ok := skipValue(o.b, at)
		if !ok {
			return 0, false, false
		}
		o.i = end
	}
}

// stringLen is the unescaped length of the string value at b[i], 0 for any
// other value or none (i < 0), as gjson's Str has it.
func stringLen(b []byte, i int) int {
	if i < 0 || b[i] != '"' {
		return 0
	}
	end, esc, _ := scanString(b, i) // the value was already skipped: it is whole
	if esc {
		return len(gjson.Parse(byteview.String(b[i:end])).Str)
	}
	return end - i - 2
}

// object walks the members of the object at b[i] ('{'), strictly: after the
// walk, ok reports a well-formed object whose keys have no escapes. The
// caller moves i past each member's value before asking for the next.
type object struct {
	b     []byte
	i     int
	after bool // i is past a member's value
	ok    bool
}

// next returns the next member's key (without quotes) and the offset of its
// value; more is false at the object's end or at anything unexpected, which
// leaves ok false.
func (o *object) next() (key []byte, v int, more bool) {
	b := o.b
	i := ws(b, o.i+boolInt(!o.after)) // past '{' on the first call
	if i >= len(b) {
		return nil, 0, false
	}
	if b[i] == '}' {
		o.i, o.ok = i+1, true
		return nil, 0, false
	}
	if o.after {
		if b[i] != ',' {
			return nil, 0, false
		}
		i = ws(b, i+1)
		if i >= len(b) {
			return nil, 0, false
		}
	}
	if b[i] != '"' {
		return nil, 0, false
	}
	end, esc, ok := scanString(b, i)
	if !ok || esc {
		return nil, 0, false
	}
	key = b[i+1 : end-1]
	i = ws(b, end)
	if i >= len(b) || b[i] != ':' {
		return nil, 0, false
	}
	i = ws(b, i+1)
	if i >= len(b) {
		return nil, 0, false
	}
	o.after = true
	return key, i, true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ws returns the offset of the first byte at or after i that is not JSON
// whitespace.
func ws(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanString returns the end (past the closing quote) of the string at
// b[i], and whether it holds escapes. It looks at eight bytes at a time for
// a quote or a backslash, which keys and most values reach within one or
// two words.
func scanString(b []byte, i int) (end int, esc, ok bool) {
	i++
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if m := hasByte(w, '"') | hasByte(w, '\\'); m != 0 {
			i += bits.TrailingZeros64(m) / 8 // the lowest flag is exact
			if b[i] == '"' {
				return i + 1, false, true
			}
			return scanEscaped(b, i)
		}
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, false, true
		case '\\':
			return scanEscaped(b, i)
		}
	}
	return 0, false, false
}

// hasByte flags, in the high bit of each byte, the bytes of w equal to c;
// flags above the lowest may be false positives.
func hasByte(w uint64, c byte) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	x := w ^ (ones * uint64(c))
	return (x - ones) &^ x & highs
}

// scanEscaped is scanString from the escape at b[i] on.
func scanEscaped(b []byte, i int) (end int, esc, ok bool) {
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, true, true
		case '\\':
			i++
		}
	}
	return 0, false, false
}

// skipValue returns the end of the value at b[i]. Numbers and literals must
// be followed by a delimiter, as gjson ends them there.
func skipValue(b []byte, i int) (int, bool) {
	switch c := b[i]; {
	case c == '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case c == '{' || c == '[':
		return skipNested(b, i+1, 1)
	case c == '-' || c >= '0' && c <= '9':
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		return j, delimited(b, j)
	default:
		var lit string
		switch c {
		case 'n':
			lit = "null"
		case 't':
			lit = "true"
		case 'f':
			lit = "false"
		default:
			return 0, false
		}
		end := i + len(lit)
		if end > len(b) || string(b[i:end]) != lit {
			return 0, false
		}
		return end, delimited(b, end)
	}
}

// delimited reports whether a number or literal ending at b[j] ends where
// gjson ends it too.
func delimited(b []byte, j int) bool {
	return j < len(b) && (b[j] <= ' ' || b[j] == ',' || b[j] == '}' || b[j] == ']')
}

// skipNested returns the end of the object or array whose inside starts at
// b[i], depth levels deep. Like gjson's, it matches brackets of either kind
// and skips strings; parentheses, which gjson counts as brackets too, make it
// give up.
func skipNested(b []byte, i, depth int) (int, bool) {
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			end, _, ok := scanString(b, i)
			if !ok {
				return 0, false
			}
			i = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1, true
			}
		case '(', ')':
			return 0, false
		}
	}
	return 0, false
}
