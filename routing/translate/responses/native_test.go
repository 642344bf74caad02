package responses

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/usage"
)

func TestEventUsage(t *testing.T) {
	evs := sseEvents(t, readFixture(t, "openai/responses_stream.sse"))
	for i, ev := range evs {
		u, ok := EventUsage(ev)
		if last := i == len(evs)-1; ok != last {
			t.Fatalf("event %d (%s): ok %v", i, EventType(ev), ok)
		}
		if ok && u != (usage.Usage{PromptTokens: 37, CompletionTokens: 8, TotalTokens: 45}) {
			t.Fatalf("usage %+v", u)
		}
	}
	tests := []struct {
		data string
		ok   bool
	}{
		{`{"type":"response.incomplete","response":{"usage":{"input_tokens":5,"output_tokens":2,"total_tokens":7}}}`, true},
		{`{"type":"response.failed","response":{"usage":{"input_tokens":5,"output_tokens":0}}}`, true},
		{`{"type":"response.completed","response":{"usage":null}}`, false},
		{`{"type":"response.completed","response":{"usage":{"input_tokens":-1}}}`, false},
		{`{"type":"response.in_progress","response":{"usage":{"input_tokens":5}}}`, false},
		{`{"type":"response.completed","usage":{"input_tokens":5}}`, false},
		{`{"type":"response.completed","response":"x"}`, false},
		{`not json`, false},
	}
	for _, tt := range tests {
		if _, ok := EventUsage([]byte(tt.data)); ok != tt.ok {
			t.Fatalf("%s: ok %v", tt.data, ok)
		}
	}
	if u, ok := usage.FromResponses(readFixture(t, "openai/responses_response.json")); !ok ||
		u != (usage.Usage{PromptTokens: 1342, CompletionTokens: 286, TotalTokens: 1628, CachedTokens: 1152, ReasoningTokens: 192}) {
		t.Fatalf("body usage %+v", u)
	}
}

func TestInputTexts(t *testing.T) {
	body := []byte(`{"instructions":"Be kind.","input":[
		{"role":"user","content":"my card is 4111"},
		{"type":"message","role":"user","content":[{"type":"input_text","text":"a\"b"},{"type":"input_image","image_url":"https://x"}]},
		{"type":"message","role":"assistant","content":[{"type":"output_text","text":"ok"},{"type":"refusal","refusal":"no"}]},
		{"type":"function_call","call_id":"c","name":"f","arguments":"{\"q\":1}"},
		{"type":"function_call_output","call_id":"c","output":"res"},
		{"type":"function_call_output","call_id":"d","output":[{"type":"input_text","text":"part"}]},
		{"type":"reasoning","summary":[{"type":"summary_text","text":"hidden"}]}]}`)
	ts, err := InputTexts(body)
	if err != nil {
		t.Fatal(err)
	}
	type rt struct{ role, path, text string }
	var got []rt
	for _, x := range ts {
		got = append(got, rt{x.Role, x.Path, x.Text})
		// The offsets locate the string literal, which the path names too.
		if lit := string(body[x.Start:x.End]); lit != gjson.GetBytes(body, x.Path).Raw {
			t.Fatalf("%s: offsets give %s", x.Path, lit)
		}
	}
	want := []rt{
		{"system", "instructions", "Be kind."},
		{"user", "input.0.content", "my card is 4111"},
		{"user", "input.1.content.0.text", `a"b`},
		{"assistant", "input.2.content.0.text", "ok"},
		{"assistant", "input.2.content.1.refusal", "no"},
		{"assistant", "input.3.arguments", `{"q":1}`},
		{"tool", "input.4.output", "res"},
		{"tool", "input.5.output.0.text", "part"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	red, err := ApplyEdits(body, ts, []Edit{{Index: 1, Text: "my card is [CARD]"}, {Index: 0, Text: "Be \"nice\"."}})
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(red) || gjson.GetBytes(red, "input.0.content").Str != "my card is [CARD]" || gjson.GetBytes(red, "instructions").Str != `Be "nice".` ||
		gjson.GetBytes(red, "input.1.content.0.text").Str != `a"b` {
		t.Fatalf("%s", red)
	}
	if _, err := ApplyEdits(body, ts, []Edit{{Index: 9}}); err == nil {
		t.Fatal("out of range edit accepted")
	}
	if _, err := ApplyEdits(body, ts, []Edit{{Index: 1}, {Index: 1}}); err == nil {
		t.Fatal("overlapping edits accepted")
	}
	// A string input is user text.
	ts, err = InputTexts([]byte(`{"input":"hi"}`))
	if err != nil || len(ts) != 1 || ts[0].Role != "user" || ts[0].Text != "hi" {
		t.Fatalf("%+v %v", ts, err)
	}
	if _, err := InputTexts([]byte(`{"input":`)); err == nil {
		t.Fatal("invalid JSON accepted")
	}
}

// TestOutputTexts reads every output text of the native streams: the deltas
// add up to what the done events and the final response repeat.
func TestOutputTexts(t *testing.T) {
	for _, f := range []string{"openai/responses_stream.sse", "openai/responses_stream_tool_call.sse"} {
		var deltas [2]strings.Builder // text, arguments
		fulls := map[string]int{}     // full text → times repeated
		for _, ev := range sseEvents(t, readFixture(t, f)) {
			for _, o := range OutputTexts(ev) {
				if string(ev[o.Start:o.End]) != gjson.GetBytes(ev, o.Path).Raw || o.ItemID == "" {
					t.Fatalf("%s: %+v", ev, o)
				}
				switch o.Kind {
				case OutputDelta:
					deltas[0].WriteString(o.Text)
				case ArgumentsDelta:
					deltas[1].WriteString(o.Text)
				default:
					fulls[o.Text]++
				}
			}
		}
		delete(fulls, "") // content_part.added and output_item.added start empty
		full := deltas[0].String() + deltas[1].String()
		// output_text.done, content_part.done, output_item.done, completed;
		// or function_call_arguments.done, output_item.done, completed.
		if full == "" || len(fulls) != 1 || fulls[full] < 3 {
			t.Fatalf("%s: deltas %q, fulls %v", f, full, fulls)
		}
	}
	// A non-streamed body is read like a response event's response.
	body := readFixture(t, "openai/responses_response.json")
	os := OutputTexts(body)
	if len(os) != 1 || os[0].Path != "output.1.content.0.text" || os[0].OutputIndex != 1 || !strings.HasPrefix(os[0].Text, "An API gateway") {
		t.Fatalf("%+v", os)
	}
	red, err := ApplyEdits(body, TextsOf(os), []Edit{{Index: 0, Text: "[redacted]"}})
	if err != nil || sdkResponse(t, red).OutputText() != "[redacted]" {
		t.Fatalf("%v %s", err, red)
	}
	if OutputTexts([]byte("{")) != nil {
		t.Fatal("invalid JSON")
	}
}
