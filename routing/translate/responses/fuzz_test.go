package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
)

// FuzzTranslateRequest feeds arbitrary request bodies. The translator must
// never panic; it either refuses with a 400 in OpenAI's format or produces
// a chat request that is one JSON object with a messages array, whose
// response and stream translations are well-formed too.
func FuzzTranslateRequest(f *testing.F) {
	for _, name := range []string{"responses_request_basic.json", "responses_request_tools.json"} {
		f.Add(readFixture(f, "openai/"+name))
	}
	f.Add([]byte(`{"input":[{"role":"assistant","content":[{"type":"output_text","text":"a\u0000\ud800"}]},{"type":"function_call","call_id":"c","name":"n","arguments":""}],"text":{"format":{"type":"json_schema","name":"x","schema":{}}}}`))
	f.Add([]byte(`{"input":"x","tools":[{"type":"function","name":"f","parameters":{ "a" : [ 1 ,
	2 ] }}],"metadata":{ "k" : "v" }}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := TranslateRequest(body)
		if err != nil {
			var e *oaierror.Error
			if !errors.As(err, &e) || e.Status != 400 || !json.Valid(e.Body()) {
				t.Fatalf("bad refusal %#v", err)
			}
			return
		}
		if !json.Valid(r.Chat) || !gjson.GetBytes(r.Chat, "messages").IsArray() {
			t.Fatalf("bad chat body %s", r.Chat)
		}
		out, _, _, err := r.Response([]byte(`{"id":"chatcmpl-f","choices":[{"index":0,"finish_reason":"stop","message":{"content":"x"}}]}`), Options{})
		if err != nil || !json.Valid(out) {
			t.Fatalf("response %v %s", err, out)
		}
		s := r.NewStream(Options{})
		so := s.Feed(nil, []byte("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"))
		so, complete := s.End(so)
		if !complete {
			t.Fatal("stream not complete")
		}
		splitEvents(t, so)
	})
}

// FuzzStream feeds arbitrary bytes as a chat chunk stream, split at an
// arbitrary offset. The translator must never panic, must produce the same
// bytes however the input is split, and must always give the client a
// well-formed Responses stream: framed events with consecutive sequence
// numbers and exactly one terminal event, last, which is response.completed
// or response.incomplete exactly when End reports completion.
func FuzzStream(f *testing.F) {
	for _, name := range []string{"openai/chat_stream.sse", "openai/chat_stream_tool_calls.sse", "azure_openai/chat_stream.sse"} {
		f.Add(readFixture(f, name), uint16(100))
	}
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"r\",\"content\":\"\\ud800\"}}]}\n\ndata: {\"error\":{\"message\":\"\\u0000\"}}\n\n"), uint16(5))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"a\xff\"}}]},\"finish_reason\":\"length\"}]}\r\n\r\ndata: [DONE]\r\n\r\n"), uint16(9))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		at := int(split) % (len(in) + 1)
		req := &Request{}
		opts := Options{ID: "resp_fuzz", CreatedAt: 1}
		translate := func(parts ...[]byte) ([]byte, bool) {
			s := req.NewStream(opts)
			var out []byte
			for _, p := range parts {
				out = s.Feed(out, p)
			}
			return s.End(out)
		}
		whole, complete := translate(in)
		parts, pc := translate(in[:at], in[at:])
		if !bytes.Equal(whole, parts) || complete != pc {
			t.Fatalf("split at %d changed the output:\n%s\nvs\n%s", at, whole, parts)
		}
		evs := splitEvents(t, whole)
		if len(evs) == 0 {
			t.Fatal("no events")
		}
		terminal := 0
		for _, e := range evs {
			switch e.name {
			case EventCompleted, EventIncomplete, EventFailed:
				terminal++
			}
		}
		last := evs[len(evs)-1].name
		if terminal != 1 || (last != EventCompleted && last != EventIncomplete && last != EventFailed) {
			t.Fatalf("%d terminal events, last %s", terminal, last)
		}
		if complete != (last != EventFailed) {
			t.Fatalf("complete %v, last %s", complete, last)
		}
		if evs[0].name != "response.created" {
			t.Fatalf("first event %s", evs[0].name)
		}
	})
}

// FuzzInputTexts checks that the located texts of any valid body are where
// they claim to be and that replacing them keeps the body valid JSON.
func FuzzInputTexts(f *testing.F) {
	f.Add(readFixture(f, "openai/responses_request_tools.json"))
	f.Add([]byte(`{"instructions":"i","input":[{"role":"user","content":"a\"b\u00e9"},{"type":"function_call_output","output":[{"type":"input_text","text":"t"}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ts, err := InputTexts(body)
		if err != nil {
			return
		}
		edits := make([]Edit, len(ts))
		for i, x := range ts {
			if lit := gjson.Parse(string(body[x.Start:x.End])); lit.Type != gjson.String || lit.Str != x.Text {
				t.Fatalf("%s: %q is not %q", x.Path, body[x.Start:x.End], x.Text)
			}
			edits[i] = Edit{Index: i, Text: "[x]"}
		}
		out, err := ApplyEdits(body, ts, edits)
		if err != nil || !json.Valid(out) {
			t.Fatalf("%v %s", err, out)
		}
	})
}
