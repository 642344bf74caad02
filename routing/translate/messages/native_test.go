package messages

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

func TestReadUsage(t *testing.T) {
	u, ok := ReadUsage(readFixture(t, "anthropic/messages_response.json"))
	want := usage.Usage{PromptTokens: 46 + 2048, CompletionTokens: 29, TotalTokens: 46 + 2048 + 29, CachedTokens: 2048}
	if !ok || u != want {
		t.Fatalf("got %+v, %v; want %+v", u, ok, want)
	}
	for _, in := range []string{``, `{}`, `{"usage":null}`, `{"usage":{"input_tokens":-1}}`} {
		if _, ok := ReadUsage([]byte(in)); ok {
			t.Errorf("ReadUsage(%q) reported usage", in)
		}
	}
}

// TestUsageReader folds each native stream fixture's events: the final
// message_delta's cumulative counts replace message_start's.
func TestUsageReader(t *testing.T) {
	tests := []struct {
		file  string
		want  usage.Usage
		final bool
	}{
		{"anthropic/messages_stream.sse", usage.Usage{PromptTokens: 24, CompletionTokens: 27, TotalTokens: 51}, true},
		{"anthropic/messages_stream_tool_use.sse", usage.Usage{PromptTokens: 412, CompletionTokens: 71, TotalTokens: 483}, true},
		{"anthropic/messages_stream_error.sse", usage.Usage{PromptTokens: 24, CompletionTokens: 4, TotalTokens: 28}, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var r UsageReader
			var sc sse.Scanner
			sc.Feed(readFixture(t, tt.file))
			sc.Finish()
			for ev, ok := sc.Next(); ok; ev, ok = sc.Next() {
				r.Event(ev.Data)
			}
			u, final, ok := r.Usage()
			if !ok || final != tt.final || u != tt.want {
				t.Fatalf("got %+v final %v ok %v; want %+v final %v", u, final, ok, tt.want, tt.final)
			}
		})
	}
}

func TestPromptTextsAndRedact(t *testing.T) {
	body := readFixture(t, "anthropic/messages_request_agent.json")
	texts, err := PromptTexts(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []Piece{
		{"system", "You are an interactive CLI coding agent."},
		{"system", "Working directory: /home/dev/shop"},
		{"user", "Why does the checkout page look broken? Screenshot attached."},
		{"assistant", "Let me read the stylesheet."},
		{"tool", "1\t.cart { display: grid; }"},
		{"tool", "2\t.cart > li { width: 120%; }"},
		{"user", "Also check the layout at mobile width."},
	}
	if !reflect.DeepEqual(texts.Pieces, want) {
		t.Fatalf("pieces\n got %q\nwant %q", texts.Pieces, want)
	}
	out, err := texts.Redact(body, []Edit{{Index: 1, Text: "Working directory: [PATH]"}, {Index: 5, Text: "[REDACTED]"}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := PromptTexts(out)
	if err != nil {
		t.Fatal(err)
	}
	want[1].Text, want[5].Text = "Working directory: [PATH]", "[REDACTED]"
	if !reflect.DeepEqual(again.Pieces, want) {
		t.Fatalf("after redaction %q", again.Pieces)
	}
	if _, err := texts.Redact(body, []Edit{{Index: 7}}); err == nil {
		t.Fatal("out-of-range edit accepted")
	}
}

func TestPromptTextsStrings(t *testing.T) {
	body := []byte(`{"system":"s","messages":[{"role":"user","content":"u"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":"r"}]}]}`)
	texts, err := PromptTexts(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []Piece{{"system", "s"}, {"user", "u"}, {"tool", "r"}}
	if !reflect.DeepEqual(texts.Pieces, want) {
		t.Fatalf("got %q", texts.Pieces)
	}
	out, err := texts.Redact(body, []Edit{{Index: 0, Text: "S"}, {Index: 1, Text: "U"}, {Index: 2, Text: "R"}})
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, out, `{"system":"S","messages":[{"role":"user","content":"U"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":"R"}]}]}`)
	if _, err := PromptTexts([]byte(`[]`)); err == nil {
		t.Fatal("array accepted")
	}
}

func TestResponseTexts(t *testing.T) {
	body := readFixture(t, "anthropic/messages_response.json")
	texts, err := ResponseTexts(body)
	if err != nil || len(texts.Pieces) != 1 || texts.Pieces[0].Role != "assistant" {
		t.Fatalf("got %+v, %v", texts, err)
	}
	out, err := texts.Redact(body, []Edit{{Index: 0, Text: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := ResponseTexts(out); again.Pieces[0].Text != "x" {
		t.Fatalf("not redacted: %s", out)
	}
}

// TestDeltas reads and rewrites the deltas of a native stream, as output
// guardrails do, and releases held-back text before a block stops.
func TestDeltas(t *testing.T) {
	var sc sse.Scanner
	sc.Feed(readFixture(t, "anthropic/messages_stream_tool_use.sse"))
	sc.Finish()
	var text, input string
	var stops []int64
	var out []byte
	for ev, ok := sc.Next(); ok; ev, ok = sc.Next() {
		data := bytes.Clone(ev.Data)
		if i, ok := BlockStop(data); ok {
			stops = append(stops, i)
			out = AppendDelta(out, i, DeltaText, "!")
		}
		i, kind, s, ok := Delta(data)
		if !ok {
			continue
		}
		switch kind {
		case DeltaText:
			text += s
			if i != 0 {
				t.Fatalf("text in block %d", i)
			}
			data, _ = SetDelta(data, kind, "[x]")
			if _, _, s, _ := Delta(data); s != "[x]" {
				t.Fatalf("SetDelta: %s", data)
			}
		case DeltaToolInput:
			input += s
		}
	}
	if text != "I'll look up the current weather in Lisbon." || input != `{"city": "Lisbon", "unit": "celsius"}` {
		t.Fatalf("text %q input %q", text, input)
	}
	if !reflect.DeepEqual(stops, []int64{0, 1}) {
		t.Fatalf("stops %v", stops)
	}
	evs := events(t, out)
	if len(evs) != 2 || evs[1].data.Get("index").Int() != 1 || evs[1].data.Get("delta.text").Str != "!" {
		t.Fatalf("AppendDelta wrote %s", out)
	}
	for _, k := range []DeltaKind{DeltaToolInput, DeltaThinking} {
		ev := AppendDelta(nil, 3, k, `a"b`)
		data := bytes.TrimSuffix(bytes.TrimPrefix(ev, []byte("event: content_block_delta\ndata: ")), []byte("\n\n"))
		if i, got, s, ok := Delta(data); !ok || i != 3 || got != k || s != `a"b` {
			t.Fatalf("AppendDelta(%d) = %s", k, ev)
		}
	}
	if _, err := SetDelta([]byte(`{}`), 0, "x"); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

func TestEstimate(t *testing.T) {
	body := readFixture(t, "anthropic/count_tokens_request.json")
	n, out, err := Estimate(body)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64((len(body) + 3) / 4); n != want {
		t.Fatalf("n = %d, want %d", n, want)
	}
	var got struct {
		InputTokens int64 `json:"input_tokens"`
	}
	if err := json.Unmarshal(out, &got); err != nil || got.InputTokens != n {
		t.Fatalf("body %s", out)
	}
	for _, in := range []string{``, `[]`, `{"model":"m"}`} {
		if _, _, err := Estimate([]byte(in)); err == nil {
			t.Errorf("Estimate(%q) accepted", in)
		}
	}
}

func TestForVertex(t *testing.T) {
	tests := []struct {
		name, body string
		want       string // the body Vertex gets; "" for an error
	}{
		{name: "model to the path, version to the body",
			body: `{"model":"claude-sonnet-4-5@20250929","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			want: `{"max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}],"anthropic_version":"vertex-2023-10-16"}`},
		{name: "a client's own version is replaced",
			body: `{"anthropic_version":"2023-06-01","max_tokens":5,"messages":[]}`,
			want: `{"anthropic_version":"vertex-2023-10-16","max_tokens":5,"messages":[]}`},
		{name: "not an object", body: `[1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ForVertex([]byte(tt.body), "vertex-2023-10-16")
			if tt.want == "" {
				if err == nil {
					t.Fatalf("want an error, got %s", got)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v\nwant %s", got, err, tt.want)
			}
		})
	}
}
