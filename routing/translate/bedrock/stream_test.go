package bedrock

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

const fixtures = "../../../test/testdata/fixtures/bedrock/"

// event is one fixture message as the processor hands it to a Stream.
type event struct{ name, data string }

// readEvents reads a .jsonl stream fixture into the (name, data) pairs the
// processor's event-stream reader passes (translate.FramingEventStream).
func readEvents(t testing.TB, name string) []event {
	t.Helper()
	b, err := os.ReadFile(fixtures + name)
	if err != nil {
		t.Fatal(err)
	}
	var out []event
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m struct {
			Headers map[string]string `json:"headers"`
			Payload json.RawMessage   `json:"payload"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		n := m.Headers[":event-type"]
		if m.Headers[":message-type"] == "exception" {
			n = translate.ExceptionPrefix + m.Headers[":exception-type"]
		}
		out = append(out, event{n, string(m.Payload)})
	}
	return out
}

func run(st translate.Stream, evs []event) (string, bool) {
	var out []byte
	for _, e := range evs {
		out = st.Event(out, []byte(e.name), []byte(e.data))
	}
	out, ok := st.End(out)
	return string(out), ok
}

var idRE = regexp.MustCompile(`"id":"chatcmpl-[A-Z0-9]+"`)

// chunks parses a client stream into its data payloads, ids normalised.
func chunks(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n") {
		d, ok := strings.CutPrefix(ev, "data: ")
		if !ok {
			t.Fatalf("not a data event: %q", ev)
		}
		if d != "[DONE]" && !gjson.Valid(d) {
			t.Fatalf("invalid JSON %s", d)
		}
		out = append(out, idRE.ReplaceAllString(d, `"id":"X"`))
	}
	return out
}

func TestStreamText(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		st := schema().NewStream("claude-on-bedrock", includeUsage)
		got, ok := run(st, readEvents(t, "converse_stream.jsonl"))
		if !ok {
			t.Fatalf("not complete: %s", got)
		}
		tail := `,"logprobs":null,"finish_reason":null}]}`
		fin := `"}]}`
		if includeUsage {
			tail = `,"logprobs":null,"finish_reason":null}],"usage":null}`
			fin = `"}],"usage":null}`
		}
		pre := `{"id":"X","object":"chat.completion.chunk","created":1764000000,"model":"claude-on-bedrock","choices":[`
		want := []string{
			pre + `{"index":0,"delta":{"role":"assistant","content":""}` + tail,
			pre + `{"index":0,"delta":{"content":"Hello"}` + tail,
			pre + `{"index":0,"delta":{"content":"! How can I"}` + tail,
			pre + `{"index":0,"delta":{"content":" help you today?"}` + tail,
			pre + `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop` + fin,
		}
		if includeUsage {
			want = append(want, pre+`],"usage":{"prompt_tokens":1512,"completion_tokens":11,"total_tokens":1523,"prompt_tokens_details":{"cached_tokens":1500},"completion_tokens_details":{"reasoning_tokens":0}}}`)
		}
		want = append(want, "[DONE]")
		if g := chunks(t, got); strings.Join(g, "\n") != strings.Join(want, "\n") {
			t.Fatalf("include_usage=%v\ngot\n%s\nwant\n%s", includeUsage, strings.Join(g, "\n"), strings.Join(want, "\n"))
		}
		u, ok := st.Usage()
		if !ok || u != (usage.Usage{PromptTokens: 1512, CompletionTokens: 11, TotalTokens: 1523, CachedTokens: 1500}) {
			t.Fatalf("usage %+v %v", u, ok)
		}
	}
}

func TestStreamToolUse(t *testing.T) {
	got, ok := run(schema().NewStream("m", false), readEvents(t, "converse_stream_tool_use.jsonl"))
	if !ok {
		t.Fatal(got)
	}
	var text, args strings.Builder
	var id, name, finish string
	for _, c := range chunks(t, got) {
		if c == "[DONE]" {
			continue
		}
		d := gjson.Get(c, "choices.0.delta")
		text.WriteString(d.Get("content").Str)
		if tc := d.Get("tool_calls.0"); tc.Exists() {
			if tc.Get("index").Int() != 0 {
				t.Fatalf("tool index %s", c)
			}
			id += tc.Get("id").Str
			name += tc.Get("function.name").Str
			args.WriteString(tc.Get("function.arguments").Str)
		}
		if f := gjson.Get(c, "choices.0.finish_reason").Str; f != "" {
			finish = f
		}
	}
	if text.String() != "I'll check the weather in Paris." || id != "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q" || name != "get_weather" ||
		args.String() != `{"city": "Paris", "unit": "celsius"}` || finish != "tool_calls" {
		t.Fatalf("text %q id %q name %q args %q finish %q", text.String(), id, name, args.String(), finish)
	}
}

func TestStreamToolWithoutInput(t *testing.T) {
	evs := []event{
		{"messageStart", `{"role":"assistant"}`},
		{"contentBlockStart", `{"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"t1","name":"now"}}}`},
		{"contentBlockStop", `{"contentBlockIndex":0}`},
		{"messageStop", `{"stopReason":"tool_use"}`},
		{"metadata", `{"usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}`},
	}
	got, _ := run(schema().NewStream("m", false), evs)
	if !strings.Contains(got, `"function":{"arguments":"{}"}`) {
		t.Fatalf("no {} arguments: %s", got)
	}
}

func TestStreamFailures(t *testing.T) {
	full := readEvents(t, "converse_stream.jsonl")
	tests := []struct {
		name     string
		evs      []event
		wantType string
	}{
		{"throttled mid-stream", readEvents(t, "converse_stream_exception.jsonl"), "rate_limit_error"},
		{"cut before metadata", full[:len(full)-1], "server_error"},
		{"cut at once", nil, "server_error"},
		{"model error", []event{{translate.ExceptionPrefix + "modelStreamErrorException", `{"message":"bad"}`}}, "invalid_request_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := run(schema().NewStream("m", true), tc.evs)
			cs := chunks(t, got)
			last := cs[len(cs)-1]
			if ok || strings.Contains(got, "[DONE]") || gjson.Get(last, "error.type").Str != tc.wantType || gjson.Get(last, "error.message").Str == "" {
				t.Fatalf("ok=%v last %s", ok, last)
			}
			if strings.Count(got, `"error"`) != 1 {
				t.Fatalf("more than one error event: %s", got)
			}
		})
	}
}

func TestStreamIgnoresUnknown(t *testing.T) {
	evs := []event{
		{"messageStart", `{"role":"assistant"}`},
		{"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"citation":{"title":"secret thoughts"}}}`},
		{"contentBlockDelta", `{"contentBlockIndex":1,"delta":{"reasoningContent":"secret thoughts"}}`},
		{"somethingNew", `{"x":1}`},
		{"contentBlockDelta", `not json`},
		{"contentBlockDelta", `{"contentBlockIndex":9,"delta":{"toolUse":{"input":"{}"}}}`},
	}
	got, _ := run(schema().NewStream("m", false), evs)
	if strings.Contains(got, "secret thoughts") || strings.Count(got, "data: ") != 2 { // role chunk, then the cut-short error
		t.Fatalf("%s", got)
	}
}

func FuzzStream(f *testing.F) {
	for _, name := range []string{"converse_stream.jsonl", "converse_stream_tool_use.jsonl", "converse_stream_exception.jsonl",
		"converse_stream_json.jsonl", "converse_stream_reasoning.jsonl"} {
		for _, e := range readEvents(f, name) {
			f.Add(e.name, []byte(e.data))
		}
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		st := schema().NewStream("m", true)
		var out []byte
		out = st.Event(out, []byte("messageStart"), []byte(`{"role":"assistant"}`))
		out = st.Event(out, []byte(name), data)
		out = st.Event(out, []byte(name), data)
		out, _ = st.End(out)
		for _, ev := range strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n") {
			d, ok := strings.CutPrefix(ev, "data: ")
			if !ok || (d != "[DONE]" && !gjson.Valid(d)) {
				t.Fatalf("invalid client event %q", ev)
			}
		}
	})
}

func FuzzResponse(f *testing.F) {
	for _, name := range []string{"converse_response.json", "converse_response_tool_use.json", "converse_response_json.json", "converse_response_reasoning.json"} {
		b, err := os.ReadFile(fixtures + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, _, _, err := schema().Response(body, "m")
		if err == nil && !gjson.ValidBytes(out) {
			t.Fatalf("invalid JSON out: %s", out)
		}
	})
}

func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto"}`))
	f.Add([]byte(`{"messages":[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a","content":"x"}]}`))
	f.Add([]byte(`{"messages":[{"role":"system","content":"S","cache_control":{"type":"ephemeral","ttl":"1h"}},{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]},
		{"role":"assistant","content":"A","thinking_blocks":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"redacted_thinking","data":"d"}]}],
		"tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}}],"reasoning_effort":"high","max_tokens":9000}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"properties":{}}}},"thinking":{"type":"disabled"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := schema().Request(body, claude, translate.RequestOptions{})
		if err == nil && !gjson.ValidBytes(out) {
			t.Fatalf("invalid JSON out: %s", out)
		}
	})
}
