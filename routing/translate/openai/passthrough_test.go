package openai

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/tollgate-ai/tollgate/routing/translate"
)

func TestPassStream(t *testing.T) {
	type ev struct{ raw, data string }
	tests := []struct {
		name          string
		includeUsage  bool
		events        []ev
		want          string
		done, errored bool
		complete      bool
		usage         int64 // total tokens; 0: none
	}{
		{name: "unchanged events pass as they came", includeUsage: true,
			events: []ev{{": ping\r\n\r\n", ""}, {"id: 1\ndata:{\"choices\":[]}\n\n", `{"choices":[]}`}, {"data: [DONE]\n\n", "[DONE]"}},
			want:   ": ping\r\n\r\nid: 1\ndata:{\"choices\":[]}\n\ndata: [DONE]\n\n", done: true, complete: true},
		{name: "usage kept when the client asked for it", includeUsage: true,
			events: []ev{{`data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}` + "\n\n", `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`}},
			want:   `data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}` + "\n\n" + string(IncompleteEvent), usage: 2},
		{name: "usage the gateway asked for is removed",
			events: []ev{{`data: {"choices":[{"delta":{}}],"usage":null}` + "\n\n", `{"choices":[{"delta":{}}],"usage":null}`},
				{`data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}` + "\n\n", `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`},
				{"data: [DONE]\n\n", "[DONE]"}},
			want: `data: {"choices":[{"delta":{}}]}` + "\n\ndata: [DONE]\n\n", done: true, complete: true, usage: 2},
		{name: "an error event ends it without a second one", includeUsage: true,
			events: []ev{{`data: {"error":{"message":"x"}}` + "\n\n", `{"error":{"message":"x"}}`}},
			want:   `data: {"error":{"message":"x"}}` + "\n\n", errored: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Passthrough{}.NewStream("m", tt.includeUsage).(translate.RawStream)
			var out []byte
			for _, e := range tt.events {
				var data []byte
				if e.data != "" {
					data = []byte(e.data)
				}
				out = s.Raw(out, []byte(e.raw), data)
			}
			out, complete := s.End(out)
			done, errored := s.State()
			if string(out) != tt.want || done != tt.done || errored != tt.errored || complete != tt.complete {
				t.Fatalf("got %q done %v errored %v complete %v\nwant %q", out, done, errored, complete, tt.want)
			}
			if u, ok := s.Usage(); ok != (tt.usage > 0) || u.TotalTokens != tt.usage {
				t.Fatalf("usage %+v %v", u, ok)
			}
		})
	}
}

// TestPassStreamAppendsRaw: an unchanged event is appended from its raw
// bytes, not re-encoded, and into the caller's buffer.
func TestPassStreamAppendsRaw(t *testing.T) {
	s := Passthrough{}.NewStream("m", true).(translate.RawStream)
	raw := []byte("data:  {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n")
	buf := make([]byte, 0, 256)
	out := s.Raw(buf, raw, raw[7:len(raw)-2])
	if string(out) != string(raw) || unsafe.SliceData(out) != unsafe.SliceData(buf) {
		t.Fatalf("got %q", out)
	}
}

// TestPassthroughSchema: the schema passes buffered bodies through, and
// says so.
func TestPassthroughSchema(t *testing.T) {
	body := []byte(`{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}`)
	out, u, ok, err := Passthrough{}.Response(body, "m")
	if err != nil || !ok || u.TotalTokens != 3 || string(out) != string(body) || !translate.IsVerbatim(Passthrough{}) || translate.IsVerbatim(Schema{}) {
		t.Fatalf("%q %+v %v %v", out, u, ok, err)
	}
	if st, b := (Passthrough{}).Error(429, []byte("x")); st != 429 || string(b) != "x" {
		t.Fatal("errors pass unchanged")
	}
	var ev strings.Builder
	ev.Write(Passthrough{}.NewStream("m", true).Event(nil, []byte("e"), []byte("a\nb")))
	if ev.String() != "event: e\ndata: a\ndata: b\n\n" {
		t.Fatalf("Event framing %q", ev.String())
	}
}

// TestCutMemberMatchesSjson: the in-place removal of "usage" writes what
// sjson.DeleteBytes writes, wherever the member stands and however it is
// spaced; layouts it does not expect are left to sjson.
func TestCutMemberMatchesSjson(t *testing.T) {
	for i, in := range cutMemberSeeds {
		// All but the escaped key are cut in place.
		if cut := checkCutMember(t, in); cut != (in != `{"usag\u0065":null,"id":1}`) {
			t.Errorf("seed %d %q: cut in place %v", i, in, cut)
		}
	}
}

var cutMemberSeeds = []string{
	`{"choices":[{"delta":{}}],"usage":null}`,
	`{"usage":null,"choices":[]}`,
	`{"usage":{"total_tokens":3}}`,
	`{ "usage" : null , "id":"x"}`,
	`{"id":"x" ,  "usage":{"a":[1,2]},"obfuscation":"abc"}`,
	"{\n  \"id\": \"x\",\n  \"usage\": null\n}",
	`{"a":{"usage":1},"usage":2}`,
	`{"usag\u0065":null,"id":1}`,
	`{"id":"us\"age","usage":null}`,
}

func FuzzCutMember(f *testing.F) {
	for _, s := range cutMemberSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !gjson.Valid(in) {
			return
		}
		checkCutMember(t, in)
	})
}

// checkCutMember reports whether in's "usage" was cut in place.
func checkCutMember(t *testing.T, in string) bool {
	t.Helper()
	u := gjson.Get(in, "usage")
	if !u.Exists() || !strings.HasPrefix(strings.TrimLeft(in, " \t\r\n"), "{") {
		return false
	}
	a, b, ok := cutMember([]byte(in), u.Index, u.Index+len(u.Raw))
	if !ok {
		return false
	}
	want, err := sjson.Delete(in, "usage")
	if err != nil {
		t.Fatalf("%q: sjson: %v", in, err)
	}
	if got := in[:a] + in[b:]; got != want {
		t.Fatalf("%q: got %q, sjson wrote %q", in, got, want)
	}
	return true
}
