package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		kind Kind   // 0: accepted
		path string // of the refusal
	}{
		{name: "object", doc: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{name: "scalars", doc: ` [1, -0.5e+10, 0, true, false, null, "x", {}, []] `},
		{name: "escapes accepted", doc: `{"a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`},
		{name: "utf-8 accepted", doc: "{\"a\":\"héllo 😀 中\"}"},
		{name: "big number", doc: `{"n":123456789012345678901234567890e999}`},
		{name: "same key in sibling objects", doc: `{"m":[{"content":"a"},{"content":"b"}],"x":{"content":1}}`},
		{name: "same key at different depths", doc: `{"a":{"a":{"a":1}}}`},
		{name: "keys differing by escape of another char", doc: `{"a\u0062":1,"ab\u0063":2}`},

		{name: "top-level duplicate", doc: `{"model":"a","model":"b"}`, kind: Duplicate, path: "model"},
		{name: "nested duplicate", doc: `{"messages":[{"role":"user","content":"hi","content":"bad"}]}`, kind: Duplicate, path: "messages[0].content"},
		{name: "escaped duplicate", doc: `{"messages":[{"content":"hi","c\u006fntent":"bad"}]}`, kind: Duplicate, path: "messages[0].content"},
		{name: "both escaped", doc: `{"\u0061":1,"\u0061":2}`, kind: Duplicate, path: "a"},
		{name: "surrogate pair key", doc: `{"\ud83d\ude00":1,"😀":2}`, kind: Duplicate, path: `["😀"]`},
		{name: "stream_options duplicate", doc: `{"stream_options":{"include_usage":false,"include_usage":true}}`, kind: Duplicate, path: "stream_options.include_usage"},
		{name: "tool arguments duplicate", doc: `{"tools":[{"function":{"arguments":"{}","arguments":"{\"x\":1}"}}]}`, kind: Duplicate, path: "tools[0].function.arguments"},
		{name: "duplicate in second element", doc: `{"m":[{"a":1},{"b":1,"b":2}]}`, kind: Duplicate, path: "m[1].b"},
		{name: "duplicate among many keys", doc: manyKeysDoc(40, "k7"), kind: Duplicate, path: "k7"},
		{name: "odd key in path", doc: `{"a b":{"x":1,"x":2}}`, kind: Duplicate, path: `["a b"].x`},

		{name: "invalid utf-8", doc: "{\"messages\":[{\"content\":\"a\xffb\"}]}", kind: Encoding, path: "messages[0].content"},
		{name: "truncated utf-8", doc: "{\"a\":\"\xe2\x82\"}", kind: Encoding, path: "a"},
		{name: "utf-8 surrogate", doc: "{\"a\":\"\xed\xa0\x80\"}", kind: Encoding, path: "a"},
		{name: "overlong utf-8", doc: "{\"a\":\"\xc0\xaf\"}", kind: Encoding, path: "a"},
		{name: "invalid utf-8 in key", doc: "{\"o\":{\"\xff\":1}}", kind: Encoding, path: "o"},
		{name: "lone high surrogate", doc: `{"a":"\ud800"}`, kind: Encoding, path: "a"},
		{name: "high surrogate then text", doc: `{"a":"\ud800abcdef"}`, kind: Encoding, path: "a"},
		{name: "high surrogate then high", doc: `{"a":"\ud800\ud800"}`, kind: Encoding, path: "a"},
		{name: "lone low surrogate", doc: `{"a":["\udc00"]}`, kind: Encoding, path: "a[0]"},

		{name: "empty", doc: ``, kind: Syntax},
		{name: "trailing comma", doc: `{"a":1,}`, kind: Syntax},
		{name: "trailing data", doc: `{} {}`, kind: Syntax},
		{name: "single quotes", doc: `{'a':1}`, kind: Syntax},
		{name: "leading zero", doc: `[01]`, kind: Syntax},
		{name: "bare minus", doc: `[-]`, kind: Syntax},
		{name: "dot without digits", doc: `[1.]`, kind: Syntax},
		{name: "exponent without digits", doc: `[1e+]`, kind: Syntax},
		{name: "control char", doc: "[\"a\tb\"]", kind: Syntax},
		{name: "bad escape", doc: `["\x"]`, kind: Syntax},
		{name: "short unicode escape", doc: `["\u12"]`, kind: Syntax},
		{name: "unterminated", doc: `{"a":"b`, kind: Syntax},
		{name: "missing colon", doc: `{"a" 1}`, kind: Syntax},
		{name: "non-string key", doc: `{1:1}`, kind: Syntax},
		{name: "bad literal", doc: `[tru]`, kind: Syntax},
		{name: "mismatched close", doc: `[1}`, kind: Syntax},
		{name: "bom", doc: "\ufeff{}", kind: Syntax},
		{name: "too deep", doc: strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), kind: Syntax},
		{name: "deep enough", doc: strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate([]byte(tt.doc))
			if tt.kind == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("accepted, want kind %d", tt.kind)
			}
			if e.Kind != tt.kind || (tt.path != "" && e.Path != tt.path) {
				t.Fatalf("got kind %d path %q (%v), want kind %d path %q", e.Kind, e.Path, e, tt.kind, tt.path)
			}
			if e.Offset < 0 || e.Offset > len(tt.doc) {
				t.Fatalf("offset %d outside the %d-byte document", e.Offset, len(tt.doc))
			}
		})
	}
}

// deepKeysDoc nests n objects, each with two keys before the next, and
// inner at the bottom.
func deepKeysDoc(n int, inner string) string {
	return strings.Repeat(`{"a":1,"b":`, n) + "{" + inner + "}" + strings.Repeat(`}`, n)
}

// TestDeepAndManyKeys: documents beyond the scanner's in-place room (16
// open frames, 32 open keys) are checked as those within it.
func TestDeepAndManyKeys(t *testing.T) {
	for _, tc := range []struct {
		doc string
		dup bool
	}{
		{deepKeysDoc(20, ""), false},
		{deepKeysDoc(20, `"z":1,"z":2`), true},
		{deepKeysDoc(20, `"a":1,"b":2`), false}, // an outer object's keys are not this one's
		{strings.Repeat(`{"k":1,"x":[`, 12) + `{"k":1,"k":2}` + strings.Repeat(`]}`, 12), true},
		{manyKeysDoc(40, ""), false},
		{manyKeysDoc(40, "k39"), true},
	} {
		err := Validate([]byte(tc.doc))
		var e *Error
		if got := errors.As(err, &e) && e.Kind == Duplicate; got != tc.dup || (err != nil && !tc.dup) {
			t.Errorf("Validate(%.60q) = %v, want duplicate %v", tc.doc, err, tc.dup)
		}
	}
}

// TestObjectAllocatesNothing: the scanner stays on the stack; only growing
// dst allocates.
func TestObjectAllocatesNothing(t *testing.T) {
	doc := []byte(`{"model":"m","messages":[{"role":"user","content":"hi \u00e9"}],"stream":false,"stream_options":{"include_usage":true}}`)
	dst := make([]Member, 0, 8)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := Object(doc, dst[:0]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Object allocates %v times", n)
	}
}

func manyKeysDoc(n int, dup string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + string(rune('0'+i/10)) + string(rune('0'+i%10)) + `":1`)
	}
	if dup != "" {
		b.WriteString(`,"` + dup + `":2`)
	}
	return strings.Replace(b.String(), `"k07"`, `"k7"`, 1) + "}"
}

func TestManyKeysNoDuplicate(t *testing.T) {
	if err := Validate([]byte(manyKeysDoc(60, ""))); err != nil {
		t.Fatal(err)
	}
	// The map of a closed object must not leak into a later sibling.
	doc := `[` + manyKeysDoc(40, "") + `,` + manyKeysDoc(40, "") + `]`
	if err := Validate([]byte(doc)); err != nil {
		t.Fatal(err)
	}
}

func TestObjectMembers(t *testing.T) {
	doc := []byte(` { "model" : "m", "tollgate\u005fapp_id":"a" ,"stream_options":{"include_usage":true},"n":[1,{"x":2}] , "z":null}`)
	ms, err := Object(doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, value string }{
		{"model", `"m"`}, {"tollgate_app_id", `"a"`}, {"stream_options", `{"include_usage":true}`},
		{"n", `[1,{"x":2}]`}, {"z", "null"},
	}
	if len(ms) != len(want) {
		t.Fatalf("%d members: %+v", len(ms), ms)
	}
	for i, w := range want {
		m := ms[i]
		if m.Name() != w.name || !m.Is(w.name) || string(doc[m.ValueStart:m.ValueEnd]) != w.value {
			t.Errorf("member %d: %q = %q", i, m.Name(), doc[m.ValueStart:m.ValueEnd])
		}
		if doc[m.KeyStart] != '"' {
			t.Errorf("member %d: KeyStart %d is not a quote", i, m.KeyStart)
		}
	}
	if !ms[1].HasPrefix("tollgate_") || ms[0].HasPrefix("tollgate_") {
		t.Error("HasPrefix")
	}
	for _, doc := range []string{`[]`, `"s"`, ``, `  `} {
		if _, err := Object([]byte(doc), nil); err == nil {
			t.Errorf("%q: accepted as an object", doc)
		}
	}
}

// oracle is the verdict written plainly: encoding/json's validity, a
// duplicate-key check over a token walk (keys as encoding/json decodes
// them), valid UTF-8 inside strings, no lone surrogate escapes, and the
// depth limit.
func oracle(doc []byte) bool {
	if !json.Valid(doc) || !utf8.Valid(doc) || loneSurrogate(doc) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	type obj struct {
		keys   map[string]bool
		expect bool // next string token is a key
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		var top *obj
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.keys != nil {
					top.expect = true
				}
				if len(stack) >= MaxDepth {
					return false
				}
				o := &obj{}
				if v == '{' {
					o.keys, o.expect = map[string]bool{}, true
				}
				stack = append(stack, o)
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].keys != nil {
					stack[len(stack)-1].expect = true
				}
			}
		case string:
			if top != nil && top.keys != nil && top.expect {
				if top.keys[v] {
					return false
				}
				top.keys[v], top.expect = true, false
				continue
			}
			if top != nil && top.keys != nil {
				top.expect = true
			}
		default:
			if top != nil && top.keys != nil {
				top.expect = true
			}
		}
	}
}

// loneSurrogate reports a \uD800-\uDFFF escape not part of a pair, by
// looking at every escape in every string plainly.
func loneSurrogate(doc []byte) bool {
	inStr := false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		if !inStr {
			inStr = c == '"'
			continue
		}
		switch c {
		case '"':
			inStr = false
		case '\\':
			if i+5 < len(doc) && doc[i+1] == 'u' {
				r := hexVal(doc[i+2 : i+6])
				switch {
				case r >= 0xDC00 && r <= 0xDFFF:
					return true
				case r >= 0xD800 && r <= 0xDBFF:
					if i+11 >= len(doc) || doc[i+6] != '\\' || doc[i+7] != 'u' {
						return true
					}
					if lo := hexVal(doc[i+8 : i+12]); lo < 0xDC00 || lo > 0xDFFF {
						return true
					}
					i += 6
				}
				i += 5
			} else {
				i++
			}
		}
	}
	return false
}

func hexVal(b []byte) int {
	n := 0
	for _, c := range b {
		n <<= 4
		switch {
		case c >= '0' && c <= '9':
			n |= int(c - '0')
		case c >= 'a' && c <= 'f':
			n |= int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			n |= int(c-'A') + 10
		}
	}
	return n
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi","content":"x"}]}`,
		`{"c\u006fntent":1,"content":2}`, `{"a":"\ud800"}`, `{"a":"\udc00\ud800"}`, `{"a":"\ud83d\ude00"}`,
		"{\"a\":\"\xff\"}", "[\"\xed\xa0\x80\"]", `[1e999, -0.0, 123456789012345678901234567890]`,
		strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40), manyKeysDoc(30, "k29"),
		`{"stream_options":{"include_usage":false,"include_usage":true}}`, `[tru]`, `{"a":1,}`, ` "x" `,
		// Beyond the scanner's arrays: 20 levels (16 in place) holding 40
		// keys (32 in place), with and without a duplicate at the bottom.
		deepKeysDoc(20, ""), deepKeysDoc(20, `"z":1,"z":2`), manyKeysDoc(40, "k39"),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		err := Validate(doc)
		if want := oracle(doc); (err == nil) != want {
			t.Fatalf("Validate(%q) = %v, oracle says valid=%v", doc, err, want)
		}
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Offset < 0 || e.Offset > len(doc)) {
			t.Fatalf("bad error %#v", err)
		}
		ms, err := Object(doc, nil)
		if err != nil {
			return
		}
		// Members are the object's top-level keys and values, as
		// encoding/json reads them.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(doc, &m); err != nil || len(m) != len(ms) {
			t.Fatalf("%q: %d members, encoding/json %d (%v)", doc, len(ms), len(m), err)
		}
		for _, mb := range ms {
			raw, ok := m[mb.Name()]
			if !ok || !bytes.Equal(bytes.TrimSpace(raw), doc[mb.ValueStart:mb.ValueEnd]) {
				t.Fatalf("%q: member %q = %q, encoding/json %q", doc, mb.Name(), doc[mb.ValueStart:mb.ValueEnd], raw)
			}
		}
	})
}

// benchDoc is a chat request of about 400 KB: a long conversation with
// escapes and non-ASCII text, as a large production prompt looks.
func benchDoc() []byte {
	var b bytes.Buffer
	b.WriteString(`{"model":"smart-default","stream":true,"temperature":0.2,"messages":[`)
	for i := 0; b.Len() < 400<<10; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"role":"user","content":"Summarise the following text, keeping \"quotes\" and\nnew lines: Lorem ipsum dolor sit amet, consectetur adipiscing elit — naïve café 😀 ` + strings.Repeat("sed do eiusmod tempor incididunt ut labore ", 8) + `"},`)
		b.WriteString(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\",\"n\":3}"}}]}`)
	}
	b.WriteString(`],"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"},"n":{"type":"integer"}}}}}]}`)
	return b.Bytes()
}

func BenchmarkValidate(b *testing.B) {
	doc := benchDoc()
	b.Run("jsonscan", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			if err := Validate(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jsonscan.Object", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		var ms [16]Member
		for b.Loop() {
			if _, err := Object(doc, ms[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("previous", func(b *testing.B) { benchPrevious(b, doc) })
	b.Run("gjson.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			if !gjson.ValidBytes(doc) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("encoding-json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(doc) {
				b.Fatal("invalid")
			}
		}
	})
}

// BenchmarkValidateOneMessage is a 400 KB request that is one long user
// message, as BenchmarkFloor's chat-400KB sends: escapes and non-ASCII
// every few words of one string.
func BenchmarkValidateOneMessage(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"model":"smart-default","messages":[{"role":"user","content":"`)
	for buf.Len() < 400<<10 {
		buf.WriteString("The quick brown fox jumps over the lazy dog, caf\u00e9 \\\"quoted\\\" text.\\n")
	}
	buf.WriteString(`"}]}`)
	doc := buf.Bytes()
	b.Run("jsonscan", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			if err := Validate(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("previous", func(b *testing.B) { benchPrevious(b, doc) })
}

// benchPrevious runs the scanner this one replaced (oldscan_test.go), to
// compare in the same run.
func benchPrevious(b *testing.B, doc []byte) {
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := oldValidate(doc); err != nil {
			b.Fatal(err)
		}
	}
}
