package openai

import (
	"bytes"
	"testing"

	"github.com/tollgate-ai/tollgate/internal/sse"
)

func TestReadChunk(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		text    int
		errored bool
		choice  bool
		usage   string
	}{
		{name: "content", data: `{"id":"c","choices":[{"index":0,"delta":{"content":"token 1 "},"finish_reason":null}],"usage":null}`,
			text: 8, choice: true, usage: "null"},
		{name: "escaped content is counted unescaped", data: `{"choices":[{"delta":{"content":"a\nb\u00e9"}}]}`, text: 5, choice: true},
		{name: "content, refusal and the first tool call's arguments",
			data: `{"choices":[{"delta":{"content":"ab","refusal":"c","tool_calls":[{"index":0,"function":{"arguments":"{\"x\""}},{"function":{"arguments":"zzz"}}]}},{"delta":{"content":"other choice"}}]}`,
			text: 7, choice: true},
		{name: "non-string content counts nothing", data: `{"choices":[{"delta":{"content":null,"refusal":1}}]}`, choice: true},
		{name: "the first of a repeated leaf key wins", data: `{"choices":[{"delta":{"content":"abc","content":"x"}}]}`, text: 3, choice: true},
		{name: "usage chunk", data: `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
			usage: `{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}`},
		{name: "whitespace", data: "{ \"choices\" : [ { \"delta\" : { \"content\" : \"hi\" } } ] , \"usage\" : { } }", text: 2, choice: true, usage: "{ }"},
		{name: "error event", data: `{"error":{"message":"x","type":"server_error"}}`, errored: true},
		{name: "null error still is one", data: `{"error":null}`, errored: true},
		{name: "not an object", data: `[DONE]`},
		{name: "a repeated path key goes to gjson's reading", data: `{"choices":[],"choices":[{"delta":{"content":"abc"}}]}`, text: 3, choice: true},
		{name: "choices as an object goes to gjson's reading", data: `{"choices":{"0":{"delta":{"content":"ab"}}}}`, text: 2, choice: true},
		{name: "invalid JSON is read as gjson reads it", data: `{"choices":[{"delta":{"content":"ab"}}],"usage":{"a":`, text: 2, choice: true, usage: `{"a":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := readChunk([]byte(tt.data))
			if c.text != tt.text || c.errored != tt.errored || c.choice != tt.choice || string(c.usage) != tt.usage {
				t.Fatalf("got text %d errored %v choice %v usage %q", c.text, c.errored, c.choice, c.usage)
			}
			if c.usage != nil && string(c.usage) != tt.data[c.usageAt:c.usageAt+len(c.usage)] {
				t.Fatalf("usage at %d is not %q", c.usageAt, c.usage)
			}
			if g := gjsonChunk([]byte(tt.data)); tt.data[0] == '{' && !sameChunk(c, g) {
				t.Fatalf("differs from the gjson reading %+v", g)
			}
		})
	}
}

// TestScanChunkReadsProviderStreams: every chunk of the providers' recorded
// streams is read by the one pass, not by the gjson fallback.
func TestScanChunkReadsProviderStreams(t *testing.T) {
	for _, name := range []string{
		"openai/chat_stream.sse", "openai/chat_stream_tool_calls.sse", "openai/chat_stream_reasoning.sse",
		"openai/chat_stream_error.sse", "azure_openai/chat_stream.sse", "azure_openai/chat_stream_tool_calls.sse",
	} {
		var sc sse.Scanner
		sc.Feed(readFixture(t, name))
		sc.Finish()
		n := 0
		for range 10_000 {
			ev, more := sc.Next()
			if !more {
				break
			}
			if len(ev.Data) == 0 || ev.Data[0] != '{' {
				continue
			}
			n++
			c, ok := scanChunk(ev.Data)
			if !ok {
				t.Fatalf("%s: %s left to gjson", name, ev.Data)
			}
			if !sameChunk(c, gjsonChunk(ev.Data)) {
				t.Fatalf("%s: %s read differently", name, ev.Data)
			}
		}
		if n == 0 {
			t.Fatalf("%s: no chunks", name)
		}
	}
}

func sameChunk(a, b chunk) bool {
	return a.text == b.text && a.errored == b.errored && a.choice == b.choice &&
		bytes.Equal(a.usage, b.usage) && (a.usage == nil) == (b.usage == nil) && a.usageAt == b.usageAt
}

// FuzzReadChunk holds the one pass to the gjson paths it replaced: whatever
// scanChunk reads, it reads as they do.
func FuzzReadChunk(f *testing.F) {
	for _, s := range []string{
		`{"id":"c","choices":[{"index":0,"delta":{"content":"token 1 "},"finish_reason":null}],"usage":null}`,
		`{"choices":[{"delta":{"content":"ab","refusal":"c","tool_calls":[{"index":0,"function":{"arguments":"{\"x\""}}]}}]}`,
		`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
		`{"error":{"message":"x"}}`,
		`{"choices":[{"delta":{"content":"a"}},{"delta":"x"}],"usage":-1.5e3}`,
		`{"choices":[{"delta":{"content":"a","tool_calls":[]}}],"error":true,"usage":[1,{"a":"}"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0] != '{' {
			return
		}
		c, ok := scanChunk(data)
		if !ok {
			return
		}
		if g := gjsonChunk(data); !sameChunk(c, g) {
			t.Fatalf("%q: one pass %+v, gjson %+v", data, c, g)
		}
	})
}

func BenchmarkReadChunk(b *testing.B) {
	data := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"token 1 "},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"abc"}`)
	for _, bc := range []struct {
		name string
		read func([]byte) chunk
	}{{"one-pass", readChunk}, {"gjson", gjsonChunk}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.read(data)
			}
		})
	}
}

func TestScanString(t *testing.T) {
	tests := []struct {
		in      string
		end     int
		esc, ok bool
	}{
		{`""`, 2, false, true},
		{`"abc",`, 5, false, true},
		{`"abcdefg"`, 9, false, true},
		{`"abcdefgh"`, 10, false, true},
		{`"abcdefghijklmnopq"x`, 19, false, true},
		{`"abcdefghij\"kl"`, 16, true, true},
		{`"\\"`, 4, true, true},
		{`"abcdefgh\\\\"`, 14, true, true},
		{`"abcdefghijk`, 0, false, false},
		{`"abc\`, 0, false, false},
		{`"é✓"`, len(`"é✓"`), false, true},
	}
	for _, tt := range tests {
		end, esc, ok := scanString([]byte(tt.in), 0)
		if end != tt.end || esc != tt.esc || ok != tt.ok {
			t.Errorf("scanString(%q) = %d %v %v, want %d %v %v", tt.in, end, esc, ok, tt.end, tt.esc, tt.ok)
		}
	}
}
