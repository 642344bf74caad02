package anthropic

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// FuzzStream feeds arbitrary bytes as an upstream SSE stream, split at an
// arbitrary offset. The translator must never panic, must produce the same
// bytes however the input is split, and must always give the client a
// well-formed stream: single-line JSON data events with one id, created and
// model, ending in [DONE] exactly when the stream completed and in an error
// event otherwise.
func FuzzStream(f *testing.F) {
	for _, name := range []string{"messages_stream.sse", "messages_stream_tool_use.sse", "messages_stream_error.sse"} {
		f.Add(readFixture(f, "anthropic/"+name), uint16(100), true)
	}
	f.Add([]byte("data: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"\\u0000\",\"name\":\"\\ud800\",\"input\":{\"a\":1}}}\n\ndata: {\"type\":\"content_block_stop\",\"index\":3}\n\ndata: {\"type\":\"message_stop\"}\n\n"), uint16(7), false)
	f.Add([]byte("event: message_stop\ndata: {}\r\n\r\n"), uint16(3), true)
	f.Add([]byte("data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"a\"}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"s\"}}\n\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"tollgate_json_object\",\"input\":{}}}\n\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\ndata: {\"type\":\"message_stop\"}\n\n"), uint16(50), true)
	f.Add([]byte("data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"a\xffb\"}}\n\n"), uint16(0), false)
	f.Fuzz(func(t *testing.T, in []byte, split uint16, includeUsage bool) {
		at := int(split) % (len(in) + 1)
		whole := translateStream(t, [][]byte{in}, includeUsage)
		parts := translateStream(t, [][]byte{in[:at], in[at:]}, includeUsage)
		// Ids generated for streams without message_start differ per run.
		whole.out = generatedID.ReplaceAll(whole.out, []byte("chatcmpl-GENERATED"))
		parts.out = generatedID.ReplaceAll(parts.out, []byte("chatcmpl-GENERATED"))
		if !bytes.Equal(whole.out, parts.out) || whole.complete != parts.complete {
			t.Fatalf("split at %d changed the output:\n%s\nvs\n%s", at, whole.out, parts.out)
		}
		lines := dataLines(t, whole.out) // checks framing and JSON
		if len(lines) == 0 {
			t.Fatal("empty output: the stream must end with [DONE] or an error")
		}
		last := lines[len(lines)-1]
		if whole.complete != (last == "[DONE]") {
			t.Fatalf("complete %v but last event %s", whole.complete, last)
		}
		if !whole.complete && !strings.HasPrefix(last, `{"error":{`) {
			t.Fatalf("incomplete stream ends with %s", last)
		}
		var first *chunkHead
		for _, l := range lines {
			if l == "[DONE]" || strings.HasPrefix(l, `{"error":`) {
				continue
			}
			var h chunkHead
			if err := json.Unmarshal([]byte(l), &h); err != nil {
				t.Fatal(err)
			}
			if h.Object != "chat.completion.chunk" || h.ID == "" {
				t.Fatalf("bad chunk %s", l)
			}
			if first == nil {
				first = &h
			} else if h != *first {
				t.Fatalf("chunk head %+v differs from first %+v", h, *first)
			}
		}
	})
}

var generatedID = regexp.MustCompile(`chatcmpl-[A-Z2-7]{26}`)

type chunkHead struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
}

// BenchmarkStreamTextDelta measures the per-event cost of the hot path: one
// content_block_delta carrying a few words of text.
func BenchmarkStreamTextDelta(b *testing.B) {
	st := testSchema.NewStream("m", true)
	out := st.Event(nil, []byte("message_start"), []byte(`{"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01Pz8GmYcR4vK2tWq7nXbE3L","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":24,"output_tokens":4}}}`))
	name := []byte("content_block_delta")
	data := []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" authenticates, rate-limits and routes"}      }`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		out = st.Event(out[:0], name, data)
	}
}

// BenchmarkStreamToolDelta is the same for a tool argument fragment.
func BenchmarkStreamToolDelta(b *testing.B) {
	st := testSchema.NewStream("m", false)
	out := st.Event(nil, nil, []byte(`{"type":"message_start","message":{"id":"msg_1","model":"c"}}`))
	out = st.Event(out, nil, []byte(`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_current_weather","input":{}}}`))
	data := []byte(`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"bon\", \"u"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		out = st.Event(out[:0], nil, data)
	}
}

// BenchmarkStreamFixture translates the whole text fixture through the SSE
// scanner, as the processor will; reported per upstream event.
func BenchmarkStreamFixture(b *testing.B) {
	in := readFixture(b, "anthropic/messages_stream.sse")
	events := bytes.Count(in, []byte("\n\n"))
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		translateStream(b, [][]byte{in}, true)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}
