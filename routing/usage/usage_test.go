package usage

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

const fixtures = "../../test/testdata/fixtures/"

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(fixtures + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sseData returns the data of each event of an LF-framed fixture stream whose
// events are single "data: " lines, as the OpenAI-format fixtures are.
func sseData(tb testing.TB, stream []byte) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, ev := range bytes.Split(bytes.TrimSuffix(stream, []byte("\n\n")), []byte("\n\n")) {
		d, ok := bytes.CutPrefix(ev, []byte("data: "))
		if !ok || bytes.Contains(d, []byte("\n")) {
			tb.Fatalf("unexpected event framing: %q", ev)
		}
		out = append(out, d)
	}
	return out
}

func TestFromOpenAIFixtures(t *testing.T) {
	tests := []struct {
		file string
		want Usage
	}{
		{"openai/chat_response.json", Usage{PromptTokens: 1342, CompletionTokens: 286, TotalTokens: 1628, CachedTokens: 1152, ReasoningTokens: 192}},
		{"openai/embeddings_response.json", Usage{PromptTokens: 12, TotalTokens: 12}},
		{"azure_openai/chat_response.json", Usage{PromptTokens: 31, CompletionTokens: 24, TotalTokens: 55}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, ok := FromOpenAI(readFixture(t, tt.file))
			if !ok || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, ok, tt.want)
			}
		})
	}
}

// TestFromOpenAIStreams checks that exactly the usage chunk of each stream
// yields usage: the other chunks carry "usage":null (or no key at all), and
// the [DONE] sentinel is not JSON.
func TestFromOpenAIStreams(t *testing.T) {
	tests := []struct {
		file string
		want *Usage // nil: no chunk has usage
	}{
		{"openai/chat_stream.sse", &Usage{PromptTokens: 31, CompletionTokens: 22, TotalTokens: 53}},
		{"openai/chat_stream_tool_calls.sse", &Usage{PromptTokens: 88, CompletionTokens: 46, TotalTokens: 134}},
		{"openai/chat_stream_no_usage.sse", nil},
		{"azure_openai/chat_stream.sse", &Usage{PromptTokens: 31, CompletionTokens: 17, TotalTokens: 48}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := sseData(t, readFixture(t, tt.file))
			var found []Usage
			var foundAt int
			for i, d := range data {
				if u, ok := FromOpenAI(d); ok {
					found, foundAt = append(found, u), i
				}
			}
			if tt.want == nil {
				if len(found) != 0 {
					t.Fatalf("usage found in a stream without usage: %+v", found)
				}
				return
			}
			if len(found) != 1 || found[0] != *tt.want {
				t.Fatalf("got %+v, want exactly %+v", found, *tt.want)
			}
			// OpenAI puts usage on an extra chunk with "choices":[], second to
			// last before [DONE].
			if foundAt != len(data)-2 || !bytes.Contains(data[foundAt], []byte(`"choices":[]`)) {
				t.Fatalf("usage on chunk %d of %d", foundAt, len(data))
			}
		})
	}
}

// TestGeminiUsageOnContentChunks follows the Gemini OpenAI-compatible quirk
// (gemini_openai_compat/README.md): usage rides on content chunks, possibly
// several times as running totals, and total_tokens may exceed the sum. Each
// chunk parses on its own; the caller keeps the last.
func TestGeminiUsageOnContentChunks(t *testing.T) {
	chunks := []string{
		`{"choices":[{"delta":{"content":"An API gateway","role":"assistant"},"index":0}],"created":1795300777,"id":"qL9zaYv3Fc2hXp8Rk4MwTg0","model":"gemini-2.5-flash","object":"chat.completion.chunk","usage":{"completion_tokens":4,"prompt_tokens":14,"total_tokens":40}}`,
		`{"choices":[{"delta":{"content":" is the single entry point for client requests.","role":"assistant"},"finish_reason":"stop","index":0}],"created":1795300777,"id":"qL9zaYv3Fc2hXp8Rk4MwTg0","model":"gemini-2.5-flash","object":"chat.completion.chunk","usage":{"completion_tokens":12,"prompt_tokens":14,"total_tokens":61}}`,
		`[DONE]`,
	}
	var last Usage
	var n int
	for _, c := range chunks {
		if u, ok := FromOpenAI([]byte(c)); ok {
			last, n = u, n+1
		}
	}
	want := Usage{PromptTokens: 14, CompletionTokens: 12, TotalTokens: 61}
	if n != 2 || last != want {
		t.Fatalf("got %d usages, last %+v; want 2, last %+v", n, last, want)
	}
}

func TestFromOpenAI(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Usage
		ok   bool
	}{
		{"minimal", `{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`, Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}, true},
		{"total computed", `{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}, true},
		{"total kept when it differs", `{"usage":{"prompt_tokens":72,"completion_tokens":21,"total_tokens":171}}`, Usage{PromptTokens: 72, CompletionTokens: 21, TotalTokens: 171}, true},
		{"only total", `{"usage":{"total_tokens":9}}`, Usage{TotalTokens: 9}, true},
		{"null counts are absent", `{"usage":{"prompt_tokens":5,"completion_tokens":null,"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":null}}}`, Usage{PromptTokens: 5, TotalTokens: 5}, true},
		{"details", `{"usage":{"prompt_tokens":10,"completion_tokens":8,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":5}}}`, Usage{PromptTokens: 10, CompletionTokens: 8, TotalTokens: 18, CachedTokens: 6, ReasoningTokens: 5}, true},
		{"details of the wrong shape are absent", `{"usage":{"prompt_tokens":1,"prompt_tokens_details":[1,2],"completion_tokens_details":"x"}}`, Usage{PromptTokens: 1, TotalTokens: 1}, true},
		{"whole-number float forms", `{"usage":{"prompt_tokens":12.0,"completion_tokens":1.2e1,"total_tokens":24E0}}`, Usage{PromptTokens: 12, CompletionTokens: 12, TotalTokens: 24}, true},
		{"negative zero", `{"usage":{"prompt_tokens":-0}}`, Usage{}, true},
		{"whitespace and field order", "{ \"usage\" : {\n \"total_tokens\" : 2 ,\n \"prompt_tokens\" : 2 } , \"id\":\"x\"}", Usage{PromptTokens: 2, TotalTokens: 2}, true},
		{"usage after large data", `{"data":[{"embedding":[0.1,-0.2,{"usage":{"prompt_tokens":99}}]}],"usage":{"prompt_tokens":12,"total_tokens":12}}`, Usage{PromptTokens: 12, TotalTokens: 12}, true},
		{"unknown fields ignored", `{"usage":{"prompt_tokens":1,"input_tokens":50,"extra":{"a":[1]}}}`, Usage{PromptTokens: 1, TotalTokens: 1}, true},
		{"max count", `{"usage":{"prompt_tokens":9007199254740992,"completion_tokens":9007199254740992}}`, Usage{PromptTokens: 1 << 53, CompletionTokens: 1 << 53, TotalTokens: 1 << 54}, true},

		{"usage null", `{"id":"x","usage":null}`, Usage{}, false},
		{"usage absent", `{"id":"x","choices":[]}`, Usage{}, false},
		{"usage nested only", `{"message":{"usage":{"prompt_tokens":1}}}`, Usage{}, false},
		{"usage empty object", `{"usage":{}}`, Usage{}, false},
		{"usage array", `{"usage":[1,2]}`, Usage{}, false},
		{"usage string", `{"usage":"12"}`, Usage{}, false},
		{"anthropic names only", `{"usage":{"input_tokens":10,"output_tokens":5}}`, Usage{}, false},
		{"negative", `{"usage":{"prompt_tokens":-1,"completion_tokens":4}}`, Usage{}, false},
		{"negative detail", `{"usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":-3}}}`, Usage{}, false},
		{"fraction", `{"usage":{"prompt_tokens":1.5}}`, Usage{}, false},
		{"string count", `{"usage":{"prompt_tokens":"12"}}`, Usage{}, false},
		{"bool count", `{"usage":{"prompt_tokens":true}}`, Usage{}, false},
		{"object count", `{"usage":{"prompt_tokens":{}}}`, Usage{}, false},
		{"too large", `{"usage":{"prompt_tokens":9007199254740993}}`, Usage{}, false},
		{"beyond int64", `{"usage":{"prompt_tokens":99999999999999999999}}`, Usage{}, false},
		{"huge exponent", `{"usage":{"prompt_tokens":1e400}}`, Usage{}, false},
		{"truncated usage", `{"usage":{"prompt_tokens":12,"completion_tokens":`, Usage{}, false},
		{"truncated inside usage", `{"usage":{"prompt_tokens":12`, Usage{}, false},
		{"invalid json in usage", `{"usage":{"prompt_tokens":12,,}}`, Usage{}, false},
		{"not json", `[DONE]`, Usage{}, false},
		{"top-level array", `[{"usage":{"prompt_tokens":1}}]`, Usage{}, false},
		{"empty", ``, Usage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromOpenAI([]byte(tt.body))
			if ok != tt.ok || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if u, ok := FromOpenAI(nil); ok || u != (Usage{}) {
		t.Fatalf("nil body: %+v, %v", u, ok)
	}
}

// TestBodyNotRetained checks the zero-copy view: mutating the body after the
// call cannot change a result already returned.
func TestBodyNotRetained(t *testing.T) {
	body := []byte(`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`)
	u, ok := FromOpenAI(body)
	copy(body, strings.Repeat("x", len(body)))
	if !ok || u != (Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}) {
		t.Fatalf("got %+v, %v", u, ok)
	}
}

func TestNoAllocs(t *testing.T) {
	bodies := [][]byte{
		readFixture(t, "openai/chat_response.json"),
		readFixture(t, "openai/embeddings_response.json"),
		sseData(t, readFixture(t, "openai/chat_stream.sse"))[0], // "usage":null
		[]byte(`[DONE]`),
	}
	for _, b := range bodies {
		if a := testing.AllocsPerRun(50, func() { FromOpenAI(b) }); a != 0 {
			t.Errorf("%.40q: %v allocs", b, a)
		}
	}
}

func BenchmarkFromOpenAI(b *testing.B) {
	data := sseData(b, readFixture(b, "openai/chat_stream.sse"))
	bodies := []struct {
		name string
		body []byte
	}{
		{"chat_response", readFixture(b, "openai/chat_response.json")},
		{"usage_chunk", data[len(data)-2]},
		{"content_chunk", data[1]},
		{"embeddings", readFixture(b, "openai/embeddings_response.json")},
	}
	for _, bb := range bodies {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				FromOpenAI(bb.body)
			}
		})
	}
}

func FuzzFromOpenAI(f *testing.F) {
	for _, name := range []string{"openai/chat_response.json", "openai/embeddings_response.json", "azure_openai/chat_response.json", "openai/error_429.json"} {
		f.Add(readFixture(f, name))
	}
	for _, s := range []string{
		`{"usage":{"prompt_tokens":-1}}`,
		`{"usage":{"prompt_tokens":1e400,"total_tokens":2}}`,
		`{"usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":2.5}}}`,
		`{"usage":{"prompt_tokens":12`,
		`{"usage":null}`,
		`[DONE]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		u, ok := FromOpenAI(body)
		if !bytes.Equal(body, orig) {
			t.Fatal("body modified")
		}
		if !ok {
			if u != (Usage{}) {
				t.Fatalf("not ok but non-zero usage %+v", u)
			}
			return
		}
		if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.TotalTokens < 0 || u.CachedTokens < 0 || u.ReasoningTokens < 0 {
			t.Fatalf("negative count in %+v", u)
		}
		// Deterministic: a second read gives the same answer.
		if u2, ok2 := FromOpenAI(body); u2 != u || !ok2 {
			t.Fatalf("second read differs: %+v vs %+v", u2, u)
		}
	})
}

func TestFromTranscription(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Usage
		ok   bool
	}{
		{"tokens with details", `{"text":"hi","usage":{"type":"tokens","input_tokens":14,"output_tokens":45,"total_tokens":59,"input_token_details":{"audio_tokens":12,"text_tokens":2}}}`,
			Usage{PromptTokens: 14, CompletionTokens: 45, TotalTokens: 59, AudioTokens: 12}, true},
		{"tokens without details: all input is audio", `{"text":"hi","usage":{"type":"tokens","input_tokens":14,"output_tokens":45,"total_tokens":59}}`,
			Usage{PromptTokens: 14, CompletionTokens: 45, TotalTokens: 59, AudioTokens: 14}, true},
		{"audio beyond input is capped", `{"usage":{"type":"tokens","input_tokens":14,"output_tokens":1,"input_token_details":{"audio_tokens":20}}}`,
			Usage{PromptTokens: 14, CompletionTokens: 1, TotalTokens: 15, AudioTokens: 14}, true},
		{"duration, whole seconds", `{"text":"hi","usage":{"type":"duration","seconds":3}}`, Usage{AudioMillis: 3000}, true},
		{"duration, fraction", `{"usage":{"type":"duration","seconds":2.25}}`, Usage{AudioMillis: 2250}, true},
		{"duration below a millisecond rounds up", `{"usage":{"type":"duration","seconds":0.0011}}`, Usage{AudioMillis: 2}, true},
		{"duration, trailing zeros", `{"usage":{"type":"duration","seconds":1.5000}}`, Usage{AudioMillis: 1500}, true},
		{"duration exponent refused", `{"usage":{"type":"duration","seconds":1e3}}`, Usage{}, false},
		{"duration negative", `{"usage":{"type":"duration","seconds":-1}}`, Usage{}, false},
		{"duration as a string", `{"usage":{"type":"duration","seconds":"3"}}`, Usage{}, false},
		{"no usage", `{"text":"hi"}`, Usage{}, false},
		{"unknown type", `{"usage":{"type":"characters","count":3}}`, Usage{}, false},
		{"tokens, negative", `{"usage":{"type":"tokens","input_tokens":-1}}`, Usage{}, false},
		{"tokens, none", `{"usage":{"type":"tokens"}}`, Usage{}, false},
		{"chat usage is not transcription usage", `{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, Usage{}, false},
	}
	for _, tt := range tests {
		got, ok := FromTranscription([]byte(tt.body))
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: got %+v %v, want %+v %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzFromTranscription(f *testing.F) {
	f.Add([]byte(`{"usage":{"type":"tokens","input_tokens":14,"output_tokens":45,"total_tokens":59,"input_token_details":{"audio_tokens":14}}}`))
	f.Add([]byte(`{"usage":{"type":"duration","seconds":3.25}}`))
	f.Add([]byte(`{"usage":{"type":"duration","seconds":99999999999.9999}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, ok := FromTranscription(b)
		if !ok {
			return
		}
		if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.AudioTokens < 0 || u.AudioTokens > u.PromptTokens || u.AudioMillis < 0 || u.AudioMillis >= maxCount {
			t.Fatalf("%s: %+v", b, u)
		}
	})
}

// fromOpenAIGet is FromOpenAI as it was written before the one-pass read: a
// gjson Get per count. FuzzFromOpenAISameAsGet holds the two to the same
// answer on every body.
func fromOpenAIGet(body []byte) (Usage, bool) {
	if len(body) == 0 {
		return Usage{}, false
	}
	obj := gjson.GetBytes(body, "usage")
	if !obj.IsObject() || !gjson.Valid(obj.Raw) {
		return Usage{}, false
	}
	var u Usage
	var prompt, completion, total, ok bool
	if u.PromptTokens, prompt, ok = count(obj, "prompt_tokens"); !ok {
		return Usage{}, false
	}
	if u.CompletionTokens, completion, ok = count(obj, "completion_tokens"); !ok {
		return Usage{}, false
	}
	if u.TotalTokens, total, ok = count(obj, "total_tokens"); !ok {
		return Usage{}, false
	}
	if u.CachedTokens, _, ok = count(obj, "prompt_tokens_details.cached_tokens"); !ok {
		return Usage{}, false
	}
	if u.ReasoningTokens, _, ok = count(obj, "completion_tokens_details.reasoning_tokens"); !ok {
		return Usage{}, false
	}
	if u.AudioTokens, _, ok = count(obj, "prompt_tokens_details.audio_tokens"); !ok {
		return Usage{}, false
	}
	if !prompt && !completion && !total {
		return Usage{}, false
	}
	if !total {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u, true
}

func TestFromOpenAIDuplicates(t *testing.T) {
	for _, s := range []string{
		`{"usage":{"prompt_tokens":1,"prompt_tokens":2,"completion_tokens":3}}`,
		`{"usage":{"prompt_tokens":"x","prompt_tokens":2}}`,
		`{"usage":{"prompt_tokens":1,"prompt_tokens_details":{"audio_tokens":4},"prompt_tokens_details":{"cached_tokens":5,"audio_tokens":6}}}`,
		`{"usage":{"prompt_tokens":1,"prompt_tokens_details":7,"prompt_tokens_details":{"cached_tokens":5}}}`,
		`{"usage":{"prompt_tokens":1,"prompt_tokens_details":[{"cached_tokens":8}],"prompt_tokens_details":{"cached_tokens":5}}}`,
		`{"usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":null},"prompt_tokens_details":{"cached_tokens":5}}}`,
		`{"usage":{"prompt_tokens":1,"completion_tokens_details":{},"completion_tokens_details":{"reasoning_tokens":9}}}`,
		`{"usage":{"prompt_\u0074okens":3,"total_tokens":4}}`,
	} {
		got, gotOK := FromOpenAI([]byte(s))
		want, wantOK := fromOpenAIGet([]byte(s))
		if got != want || gotOK != wantOK {
			t.Errorf("%s: got %+v %v, want (Get per count) %+v %v", s, got, gotOK, want, wantOK)
		}
	}
}

func FuzzFromOpenAISameAsGet(f *testing.F) {
	for _, name := range []string{"openai/chat_response.json", "openai/embeddings_response.json", "azure_openai/chat_response.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"usage":{"prompt_tokens":1,"prompt_tokens_details":{"audio_tokens":4},"prompt_tokens_details":{"cached_tokens":5}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotOK := FromOpenAI(body)
		want, wantOK := fromOpenAIGet(body)
		if got != want || gotOK != wantOK {
			t.Fatalf("got %+v %v, want (Get per count) %+v %v", got, gotOK, want, wantOK)
		}
	})
}
