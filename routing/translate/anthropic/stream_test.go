package anthropic

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

const fixtures = "../../../test/testdata/fixtures/"

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(fixtures + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// testSchema has a fixed clock, so outputs are reproducible.
var testSchema = &Schema{Now: func() time.Time { return time.Unix(1795300400, 0) }}

// result is everything a stream translation produced.
type result struct {
	out      []byte
	complete bool
	usage    usage.Usage
	usageOK  bool
	partial  usage.Usage
}

// translateStream feeds in through an sse.Scanner in the given pieces, as the
// processor does with Envoy's body chunks, and translates every event.
func translateStream(tb testing.TB, in [][]byte, includeUsage bool) result {
	tb.Helper()
	st := testSchema.NewStream("fallback-model", includeUsage)
	var sc sse.Scanner
	var out []byte
	drain := func() {
		for {
			ev, ok := sc.Next()
			if !ok {
				return
			}
			if ev.Data != nil {
				out = st.Event(out, ev.Name, ev.Data)
			}
		}
	}
	for _, p := range in {
		sc.Feed(p)
		drain()
	}
	sc.Finish()
	drain()
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	var r result
	r.out, r.complete = st.End(out)
	r.usage, r.usageOK = st.Usage()
	r.partial, _ = st.Partial()
	return r
}

const chunkPrefix = `data: {"id":"msg_01Pz8GmYcR4vK2tWq7nXbE3L","object":"chat.completion.chunk","created":1795300400,"model":"claude-sonnet-4-5-20250929","choices":[`

// TestStreamGolden pins the exact bytes for the text stream fixture, with
// and without include_usage.
func TestStreamGolden(t *testing.T) {
	content := func(delta, usageNull string) string {
		return chunkPrefix + `{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":null}]` + usageNull + "}\n\n"
	}
	texts := []string{"An API gateway", " is the single entry point that", " authenticates, rate-limits and routes", " client requests to the right backend."}
	for _, includeUsage := range []bool{false, true} {
		un := ""
		if includeUsage {
			un = `,"usage":null`
		}
		want := content(`{"role":"assistant","content":""}`, un)
		for _, s := range texts {
			want += content(`{"content":"`+s+`"}`, un)
		}
		want += chunkPrefix + `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]` + un + "}\n\n"
		if includeUsage {
			want += chunkPrefix + `],"usage":{"prompt_tokens":24,"completion_tokens":27,"total_tokens":51,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}` + "\n\n"
		}
		want += "data: [DONE]\n\n"

		r := translateStream(t, [][]byte{readFixture(t, "anthropic/messages_stream.sse")}, includeUsage)
		if string(r.out) != want {
			t.Errorf("includeUsage=%v:\n got: %s\nwant: %s", includeUsage, r.out, want)
		}
		wantU := usage.Usage{PromptTokens: 24, CompletionTokens: 27, TotalTokens: 51}
		if !r.complete || !r.usageOK || r.usage != wantU {
			t.Errorf("complete %v, usage %+v %v; want true, %+v", r.complete, r.usage, r.usageOK, wantU)
		}
	}
}

// TestStreamToolUseGolden checks the tool-call deltas: the tool_use block is
// Anthropic's block 1 but OpenAI's tool call 0, the first delta names the
// call, later ones carry argument fragments (the empty first fragment is
// dropped).
func TestStreamToolUseGolden(t *testing.T) {
	r := translateStream(t, [][]byte{readFixture(t, "anthropic/messages_stream_tool_use.sse")}, false)
	var deltas []string
	var finish []string
	for _, d := range dataLines(t, r.out) {
		if d == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta        json.RawMessage `json:"delta"`
				FinishReason *string         `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatal(err)
		}
		deltas = append(deltas, string(c.Choices[0].Delta))
		if fr := c.Choices[0].FinishReason; fr != nil {
			finish = append(finish, *fr)
		}
	}
	want := []string{
		`{"role":"assistant","content":""}`,
		`{"content":"I'll look up"}`,
		`{"content":" the current weather in Lisbon."}`,
		`{"tool_calls":[{"index":0,"id":"toolu_01Gq5sWz8YcN3vKp6TbXm2Hd","type":"function","function":{"name":"get_current_weather","arguments":""}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Lis"}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":"bon\", \"u"}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":"nit\": \"celsi"}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":"us\"}"}}]}`,
		`{}`,
	}
	if strings.Join(deltas, "\n") != strings.Join(want, "\n") {
		t.Errorf("deltas:\n%s\nwant:\n%s", strings.Join(deltas, "\n"), strings.Join(want, "\n"))
	}
	if len(finish) != 1 || finish[0] != "tool_calls" {
		t.Errorf("finish reasons %q, want [tool_calls]", finish)
	}
	if !r.complete || r.usage != (usage.Usage{PromptTokens: 412, CompletionTokens: 71, TotalTokens: 483}) {
		t.Errorf("complete %v usage %+v", r.complete, r.usage)
	}
}

func TestStreamErrorFixture(t *testing.T) {
	r := translateStream(t, [][]byte{readFixture(t, "anthropic/messages_stream_error.sse")}, true)
	lines := dataLines(t, r.out)
	last := lines[len(lines)-1]
	want := `{"error":{"message":"Overloaded","type":"server_error","param":null,"code":null}}`
	if last != want {
		t.Errorf("last event %s, want %s", last, want)
	}
	if bytes.Contains(r.out, []byte("[DONE]")) || bytes.Contains(r.out, []byte(`"finish_reason":"`)) {
		t.Errorf("failed stream looks complete:\n%s", r.out)
	}
	if r.complete {
		t.Error("complete = true after an error event")
	}
	// message_start's output_tokens is a placeholder: not final usage,
	// only partial usage for the estimate.
	if r.usageOK {
		t.Errorf("usage reported as final after an error: %+v", r.usage)
	}
	if r.partial != (usage.Usage{PromptTokens: 24, CompletionTokens: 4, TotalTokens: 28}) {
		t.Errorf("partial usage %+v", r.partial)
	}
}

// TestStreamSplitEverywhere feeds every fixture in two pieces split at every
// byte offset, and in one-byte pieces: the output must equal the whole-feed
// output.
func TestStreamSplitEverywhere(t *testing.T) {
	for _, name := range []string{"messages_stream.sse", "messages_stream_tool_use.sse", "messages_stream_error.sse", "messages_stream_cache_write.sse"} {
		in := readFixture(t, "anthropic/"+name)
		for _, includeUsage := range []bool{false, true} {
			whole := translateStream(t, [][]byte{in}, includeUsage)
			check := func(how string, r result) {
				t.Helper()
				if !bytes.Equal(r.out, whole.out) || r.complete != whole.complete || r.usage != whole.usage || r.usageOK != whole.usageOK || r.partial != whole.partial {
					t.Fatalf("%s %s: output differs:\n got: %s\nwant: %s", name, how, r.out, whole.out)
				}
			}
			for i := 0; i <= len(in); i++ {
				check("split at "+strconv.Itoa(i), translateStream(t, [][]byte{in[:i], in[i:]}, includeUsage))
			}
			var bytewise [][]byte
			for i := range in {
				bytewise = append(bytewise, in[i:i+1])
			}
			check("byte by byte", translateStream(t, bytewise, includeUsage))
		}
	}
}

// TestStreamCut cuts the text stream after every complete event before
// message_stop: the client must always end with an error event.
func TestStreamCut(t *testing.T) {
	in := readFixture(t, "anthropic/messages_stream.sse")
	events := bytes.SplitAfter(in, []byte("\n\n"))
	for n := 0; n < len(events)-2; n++ { // the last element is empty, the one before is message_stop
		cut := bytes.Join(events[:n], nil)
		r := translateStream(t, [][]byte{cut}, true)
		lines := dataLines(t, r.out)
		if r.complete || len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], `{"error":{`) {
			t.Fatalf("cut after %d events: complete %v, output:\n%s", n, r.complete, r.out)
		}
		if bytes.Contains(r.out, []byte("[DONE]")) {
			t.Fatalf("cut after %d events: [DONE] sent", n)
		}
		// Only message_delta makes the usage final.
		if final := bytes.Contains(cut, []byte("message_delta")); r.usageOK != final {
			t.Fatalf("cut after %d events: usage final = %v", n, r.usageOK)
		}
	}
}

// TestStreamCacheWrites: cache writes keep their TTL split through the
// stream, and the final usage comes from message_delta.
func TestStreamCacheWrites(t *testing.T) {
	r := translateStream(t, [][]byte{readFixture(t, "anthropic/messages_stream_cache_write.sse")}, false)
	want := usage.Usage{PromptTokens: 10021, CompletionTokens: 18, TotalTokens: 10039, CacheWrite5mTokens: 4000, CacheWrite1hTokens: 6000}
	if !r.complete || !r.usageOK || r.usage != want {
		t.Fatalf("complete %v, usage %+v %v; want %+v", r.complete, r.usage, r.usageOK, want)
	}
}

func TestStreamEvents(t *testing.T) {
	start := `{"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":5,"output_tokens":1}}}`
	tests := []struct {
		name   string
		events []string // data only; the type is inside
		want   []string // delta or finish/usage data, as compact JSON fragments that must appear in order
		not    []string // fragments that must not appear
	}{
		{
			name: "ping citations unknown ignored; thinking as reasoning_content and thinking_blocks",
			events: []string{
				start,
				`{"type": "ping"}`,
				`{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}`,
				`{"type":"content_block_stop","index":0}`,
				`{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`,
				`{"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{"type":"char_location"}}}`,
				`{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"hi"}}`,
				`{"type":"content_block_delta","index":1,"delta":{"type":"brand_new_delta","x":1}}`,
				`{"type":"brand_new_event"}`,
				`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}`,
				`{"type":"message_stop"}`,
			},
			want: []string{`"delta":{"role":"assistant","content":""}`, `"delta":{"reasoning_content":"hmm"}`,
				`"delta":{"thinking_blocks":[{"type":"thinking","thinking":"hmm","signature":"sig"}]}`,
				`"delta":{"content":"hi"}`, `"finish_reason":"stop"`, `[DONE]`},
			not: []string{"char_location", "brand_new"},
		},
		{
			name: "two tools, no-argument tool gets {}",
			events: []string{
				start,
				`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t0","name":"now","input":{}}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}`,
				`{"type":"content_block_stop","index":0}`,
				`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"get","input":{}}}`,
				`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}`,
				`{"type":"content_block_stop","index":1}`,
				`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}`,
				`{"type":"message_stop"}`,
			},
			want: []string{
				`{"index":0,"id":"t0","type":"function","function":{"name":"now","arguments":""}}`,
				`{"index":0,"function":{"arguments":"{}"}}`,
				`{"index":1,"id":"t1","type":"function","function":{"name":"get","arguments":""}}`,
				`{"index":1,"function":{"arguments":"{\"a\":1}"}}`,
				`"finish_reason":"tool_calls"`,
			},
		},
		{
			name: "tool input given whole at block start",
			events: []string{
				start,
				`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t0","name":"f","input":{"x":[1, 2]}}}`,
				`{"type":"content_block_stop","index":0}`,
				`{"type":"message_stop"}`,
			},
			want: []string{`{"index":0,"function":{"arguments":"{\"x\":[1, 2]}"}}`},
		},
		{
			name: "server tool input is not a client tool call",
			events: []string{
				start,
				`{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srv","name":"web_search","input":{}}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"q\"}"}}`,
				`{"type":"content_block_stop","index":0}`,
				`{"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","tool_use_id":"srv","content":[]}}`,
				`{"type":"content_block_stop","index":1}`,
				`{"type":"message_delta","delta":{"stop_reason":"end_turn"}}`,
				`{"type":"message_stop"}`,
			},
			want: []string{`"finish_reason":"stop"`, `[DONE]`},
			not:  []string{"srv", "query", "tool_calls"},
		},
		{
			name: "text given at block start is not lost",
			events: []string{
				start,
				`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"pre"}}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"fix"}}`,
				`{"type":"message_stop"}`,
			},
			want: []string{`"delta":{"content":"pre"}`, `"delta":{"content":"fix"}`},
		},
		{
			name:   "max_tokens is length",
			events: []string{start, `{"type":"message_delta","delta":{"stop_reason":"max_tokens"}}`, `{"type":"message_stop"}`},
			want:   []string{`"finish_reason":"length"`},
		},
		{
			name:   "refusal is content_filter",
			events: []string{start, `{"type":"message_delta","delta":{"stop_reason":"refusal"}}`, `{"type":"message_stop"}`},
			want:   []string{`"finish_reason":"content_filter"`},
		},
		{
			name:   "no stop_reason still finishes once",
			events: []string{start, `{"type":"message_delta","delta":{"stop_reason":null}}`, `{"type":"message_stop"}`},
			want:   []string{`"finish_reason":"stop"`, `[DONE]`},
		},
		{
			name: "duplicate message_start and events after message_stop ignored",
			events: []string{
				start,
				`{"type":"message_start","message":{"id":"msg_2","model":"other"}}`,
				`{"type":"message_stop"}`,
				`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}`,
				`{"type":"error","error":{"type":"api_error","message":"late"}}`,
			},
			want: []string{`"id":"msg_1"`, `[DONE]`},
			not:  []string{"msg_2", "late"},
		},
		{
			name: "content before message_start opens with fallback model",
			events: []string{
				`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}`,
				`{"type":"message_stop"}`,
			},
			want: []string{`"id":"chatcmpl-`, `"model":"fallback-model"`, `"delta":{"role":"assistant","content":""}`, `"delta":{"content":"x"}`},
		},
		{
			name: "error before anything",
			events: []string{
				`{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`,
			},
			want: []string{`{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}`},
			not:  []string{"chat.completion.chunk"},
		},
		{
			name:   "not JSON and not an object",
			events: []string{start, `{"type":"content_block_delta"`, `[1,2]`, `"x"`, `{"type":"message_stop"}`},
			want:   []string{`[DONE]`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []byte
			for _, e := range tt.events {
				in = append(in, "data: "+e+"\n\n"...)
			}
			r := translateStream(t, [][]byte{in}, false)
			checkSSE(t, r.out)
			s := string(r.out)
			at := 0
			for _, w := range tt.want {
				i := strings.Index(s[at:], w)
				if i < 0 {
					t.Fatalf("missing (in order) %s in:\n%s", w, s)
				}
				at += i + len(w)
			}
			for _, n := range tt.not {
				if strings.Contains(s, n) {
					t.Fatalf("unexpected %s in:\n%s", n, s)
				}
			}
			if strings.Count(s, `"finish_reason":"`) > 1 {
				t.Fatalf("more than one finish chunk:\n%s", s)
			}
		})
	}
}

// TestStreamEventNameFallback dispatches on the event name when the data
// has no type.
func TestStreamEventNameFallback(t *testing.T) {
	st := testSchema.NewStream("m", false)
	out := st.Event(nil, []byte("message_stop"), []byte(`{}`))
	if !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
		t.Fatalf("got %s", out)
	}
	if _, complete := st.End(out); !complete {
		t.Fatal("not complete")
	}
}

// TestEndIdempotent: a second End adds nothing.
func TestEndIdempotent(t *testing.T) {
	st := testSchema.NewStream("m", false)
	out, complete := st.End(nil)
	again, complete2 := st.End(nil)
	if complete || complete2 || len(out) == 0 || len(again) != 0 {
		t.Fatalf("End: %q %v, again %q %v", out, complete, again, complete2)
	}
	checkSSE(t, out)
}

// dataLines returns the data of every event of a translated stream, checking
// the framing: each event is exactly one "data: " line and a blank line.
func dataLines(tb testing.TB, out []byte) []string {
	tb.Helper()
	checkSSE(tb, out)
	var lines []string
	for _, ev := range strings.SplitAfter(string(out), "\n\n") {
		if ev != "" {
			lines = append(lines, strings.TrimSuffix(strings.TrimPrefix(ev, "data: "), "\n\n"))
		}
	}
	return lines
}

// checkSSE asserts that out is a sequence of "data: <JSON>\n\n" events, the
// last of which may be [DONE] or an error, and nothing follows either.
func checkSSE(tb testing.TB, out []byte) {
	tb.Helper()
	s := string(out)
	if s == "" {
		return
	}
	if !strings.HasSuffix(s, "\n\n") {
		tb.Fatalf("output does not end an event: %q", s)
	}
	evs := strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n")
	for i, ev := range evs {
		d, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.ContainsAny(d, "\r\n") {
			tb.Fatalf("event %d is not one data line: %q", i, ev)
		}
		last := i == len(evs)-1
		switch {
		case d == "[DONE]":
			if !last {
				tb.Fatalf("[DONE] is not last:\n%s", s)
			}
		case !json.Valid([]byte(d)):
			tb.Fatalf("event %d is not JSON: %q", i, d)
		case strings.HasPrefix(d, `{"error":`) && !last:
			tb.Fatalf("error event is not last:\n%s", s)
		}
	}
}
