package messages

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// translateStream feeds an upstream chat SSE stream, cut into the given
// chunks, through the scanner and a Stream, as the processor does.
func translateStream(chunks ...[]byte) (out []byte, complete bool, s *Stream) {
	s = NewStream("fallback-model")
	var sc sse.Scanner
	drain := func() {
		for {
			ev, ok := sc.Next()
			if !ok {
				return
			}
			if ev.Data != nil {
				out = s.Event(out, ev.Data)
			}
		}
	}
	for _, c := range chunks {
		sc.Feed(c)
		drain()
	}
	sc.Finish()
	drain()
	out, complete = s.End(out)
	return out, complete, s
}

type event struct {
	name string
	data gjson.Result
}

// events parses translated output, checking that every event is a named
// event whose data is JSON with a type equal to the name.
func events(t *testing.T, out []byte) []event {
	t.Helper()
	var sc sse.Scanner
	sc.Feed(out)
	sc.Finish()
	var evs []event
	for {
		ev, ok := sc.Next()
		if !ok {
			break
		}
		if !json.Valid(ev.Data) {
			t.Fatalf("event data is not JSON: %q", ev.Raw)
		}
		d := gjson.ParseBytes(bytes.Clone(ev.Data))
		if d.Get("type").Str != string(ev.Name) {
			t.Fatalf("event %q carries type %q", ev.Name, d.Get("type").Str)
		}
		evs = append(evs, event{string(ev.Name), d})
	}
	if len(sc.Rest()) != 0 {
		t.Fatalf("unterminated output: %q", sc.Rest())
	}
	return evs
}

func names(evs []event) string {
	var b []string
	for _, e := range evs {
		n := e.name
		if e.name == "content_block_delta" {
			n = e.data.Get("delta.type").Str
		}
		b = append(b, n)
	}
	return strings.Join(b, " ")
}

func TestStreamFixtures(t *testing.T) {
	tests := []struct {
		file     string
		names    string
		complete bool
		stop     string
		usage    string // message_delta usage
	}{
		{"openai/chat_stream.sse", "message_start ping content_block_start" + strings.Repeat(" text_delta", 7) +
			" content_block_stop message_delta message_stop", true, "end_turn",
			`{"input_tokens":31,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":22}`},
		{"openai/chat_stream_no_usage.sse", "", true, "end_turn",
			`{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}`},
		{"openai/chat_stream_tool_calls.sse", "", true, "tool_use", ""},
		{"openai/chat_stream_reasoning.sse", "", true, "end_turn", ""},
		{"openai/chat_stream_reasoning_content.sse", "message_start ping content_block_start thinking_delta thinking_delta content_block_stop " +
			"content_block_start text_delta content_block_stop content_block_start input_json_delta input_json_delta content_block_stop message_delta message_stop",
			true, "tool_use", `{"input_tokens":54,"cache_creation_input_tokens":0,"cache_read_input_tokens":256,"output_tokens":58}`},
		{"azure_openai/chat_stream.sse", "message_start ping content_block_start" + strings.Repeat(" text_delta", 5) +
			" content_block_stop message_delta message_stop", true, "end_turn",
			`{"input_tokens":31,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":17}`},
		{"azure_openai/chat_stream_tool_calls.sse", "message_start ping content_block_start" + strings.Repeat(" input_json_delta", 9) +
			" content_block_stop message_delta message_stop", true, "tool_use",
			`{"input_tokens":84,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":19}`},
		{"openai/chat_stream_error.sse", "message_start ping content_block_start text_delta error", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			out, complete, _ := translateStream(readFixture(t, tt.file))
			evs := events(t, out)
			if complete != tt.complete {
				t.Fatalf("complete = %v, want %v", complete, tt.complete)
			}
			if tt.names != "" && names(evs) != tt.names {
				t.Fatalf("events\n got %s\nwant %s", names(evs), tt.names)
			}
			last := evs[len(evs)-1]
			if !tt.complete {
				if last.name != "error" {
					t.Fatalf("incomplete stream ends with %s", last.name)
				}
				return
			}
			if last.name != "message_stop" {
				t.Fatalf("complete stream ends with %s", last.name)
			}
			md := evs[len(evs)-2]
			if md.name != "message_delta" || md.data.Get("delta.stop_reason").Str != tt.stop {
				t.Fatalf("message_delta %s, want stop_reason %s", md.data.Raw, tt.stop)
			}
			if tt.usage != "" {
				jsonEqual(t, []byte(md.data.Get("usage").Raw), tt.usage)
			}
		})
	}
}

// TestStreamSplitAtEveryByte checks that the translation does not depend on
// where Envoy cuts the upstream body into chunks.
func TestStreamSplitAtEveryByte(t *testing.T) {
	for _, file := range []string{"openai/chat_stream.sse", "openai/chat_stream_tool_calls.sse",
		"openai/chat_stream_reasoning_content.sse", "openai/chat_stream_error.sse", "azure_openai/chat_stream.sse",
		"azure_openai/chat_stream_tool_calls.sse"} {
		t.Run(file, func(t *testing.T) {
			in := readFixture(t, file)
			want, wantComplete, _ := translateStream(in)
			for i := range len(in) + 1 {
				got, complete, _ := translateStream(in[:i], in[i:])
				if !bytes.Equal(got, want) || complete != wantComplete {
					t.Fatalf("split at %d: output differs\n got %s\nwant %s", i, got, want)
				}
			}
		})
	}
}

// TestStreamExactBytes pins the wire bytes of a small stream.
func TestStreamExactBytes(t *testing.T) {
	in := "data: {\"id\":\"chatcmpl-a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
		"data: {\"id\":\"chatcmpl-a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \\\"you\\\"\"}}]}\n\n" +
		"data: {\"id\":\"chatcmpl-a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n" +
		"data: {\"id\":\"chatcmpl-a\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n" +
		"data: [DONE]\n\n"
	want := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_a\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n" +
		"event: ping\ndata: {\"type\":\"ping\"}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \\\"you\\\"\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":2}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	got, complete, s := translateStream([]byte(in))
	if string(got) != want || !complete {
		t.Fatalf("got (complete %v)\n%s\nwant\n%s", complete, got, want)
	}
	if u, ok := s.Usage(); !ok || u != (usage.Usage{PromptTokens: 5, CompletionTokens: 2, TotalTokens: 7}) {
		t.Fatalf("Usage() = %+v, %v", u, ok)
	}
}

func TestStreamEnds(t *testing.T) {
	const start = "data: {\"id\":\"chatcmpl-a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n"
	const finish = "data: {\"id\":\"chatcmpl-a\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
	tests := []struct {
		name, in string
		complete bool
		last     string
	}{
		{"cut before finish", start, false, "error"},
		{"cut mid event", start + "data: {\"id\":\"chatcm", false, "error"},
		{"done without finish", start + "data: [DONE]\n\n", false, "error"},
		{"finish without done", start + finish, true, "message_stop"},
		{"nothing at all", "", false, "error"},
		{"error before anything", "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n", false, "error"},
		{"events after done are ignored", start + finish + "data: [DONE]\n\n" + start, true, "message_stop"},
		{"comments and junk ignored", ": keep-alive\n\ndata: not json\n\ndata: [1]\n\n" + start + finish + "data: [DONE]\n\n", true, "message_stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, complete, _ := translateStream([]byte(tt.in))
			evs := events(t, out)
			if complete != tt.complete || evs[len(evs)-1].name != tt.last {
				t.Fatalf("complete %v, last %s; want %v, %s\n%s", complete, evs[len(evs)-1].name, tt.complete, tt.last, out)
			}
			if n := strings.Count(string(out), "event: message_stop"); !complete && n != 0 {
				t.Fatalf("incomplete stream sent message_stop")
			}
		})
	}
}

func TestStreamErrorTypes(t *testing.T) {
	tests := []struct{ in, typ, msg string }{
		{`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`, TypeRateLimit, ""},
		{`{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}`, TypeBilling, ""},
		{`{"error":{"message":"bad","type":"invalid_request_error"}}`, TypeInvalidRequest, ""},
		{`{"error":{"message":"boom","type":"server_error"}}`, TypeAPI, ""},
		{`{"error":"plain text"}`, TypeAPI, ""},
		// Azure OpenAI's own shape names the status in its code.
		{`{"error":{"code":"429","message":"Rate limit exceeded."}}`, TypeRateLimit, "Rate limit exceeded."},
		{`{"error":{"code":"400","message":"Bad Request"}}`, TypeInvalidRequest, "Bad Request"},
		{`{"error":{"code":"500","message":"Internal error"}}`, TypeAPI, "Internal error"},
	}
	for _, tt := range tests {
		out, _, _ := translateStream([]byte("data: " + tt.in + "\n\n"))
		evs := events(t, out)
		e := evs[len(evs)-1].data
		if e.Get("error.type").Str != tt.typ || e.Get("error.message").Str == "" || tt.msg != "" && e.Get("error.message").Str != tt.msg {
			t.Errorf("%s → %s, want type %s", tt.in, e.Raw, tt.typ)
		}
	}
}

// TestStreamToolCalls covers parallel calls, calls with no index (Gemini's
// OpenAI compatibility), interleaved fragments, and text after a call.
func TestStreamToolCalls(t *testing.T) {
	chunk := func(delta string) string {
		return `data: {"id":"chatcmpl-a","choices":[{"index":0,"delta":` + delta + `}]}` + "\n\n"
	}
	finish := `data: {"id":"chatcmpl-a","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\ndata: [DONE]\n\n"
	type block struct{ Type, ID, Name, Input, Text string }
	tests := []struct {
		name, in string
		want     []block
		complete bool
	}{
		{"interleaved parallel calls", chunk(`{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{\"x\""}},{"index":1,"id":"b","function":{"name":"g","arguments":""}}]}`) +
			chunk(`{"tool_calls":[{"index":1,"function":{"arguments":"{}"}},{"index":0,"function":{"arguments":":1}"}}]}`) + finish,
			[]block{{Type: "tool_use", ID: "a", Name: "f", Input: `{"x":1}`}, {Type: "tool_use", ID: "b", Name: "g", Input: `{}`}}, true},
		{"no index", chunk(`{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\":1}"}}]}`) +
			chunk(`{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{\"y\":"}}]}`) +
			chunk(`{"tool_calls":[{"function":{"arguments":"2}"}}]}`) + finish,
			[]block{{Type: "tool_use", ID: "a", Name: "f", Input: `{"x":1}`}, {Type: "tool_use", ID: "b", Name: "g", Input: `{"y":2}`}}, true},
		{"text then call", chunk(`{"content":"ok"}`) + chunk(`{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}`) + finish,
			[]block{{Type: "text", Text: "ok"}, {Type: "tool_use", ID: "a", Name: "f", Input: `{}`}}, true},
		{"call continued after text", chunk(`{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]}`) +
			chunk(`{"content":"hm"}`) + chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}`) + finish, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, complete, _ := translateStream([]byte(tt.in))
			if complete != tt.complete {
				t.Fatalf("complete = %v\n%s", complete, out)
			}
			if !complete {
				return
			}
			// Accumulate blocks by index, as the SDKs do.
			var got []block
			for _, e := range events(t, out) {
				i := int(e.data.Get("index").Int())
				switch e.name {
				case "content_block_start":
					cb := e.data.Get("content_block")
					got = append(got, block{Type: cb.Get("type").Str, ID: cb.Get("id").Str, Name: cb.Get("name").Str})
				case "content_block_delta":
					got[i].Input += e.data.Get("delta.partial_json").Str
					got[i].Text += e.data.Get("delta.text").Str
				}
			}
			for i := range got {
				if got[i].Type == "tool_use" && got[i].Input == "" {
					got[i].Input = "{}"
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("blocks %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestStreamAzureAsyncFilter: Azure OpenAI's asynchronous content filter
// sends annotation chunks (no id, no delta, content_filter_offsets) between
// and after the model's chunks; they add nothing to the answer, and a
// content_filter verdict after the model's finish makes the stop a refusal.
func TestStreamAzureAsyncFilter(t *testing.T) {
	const annotation = `data: {"choices":[{"content_filter_offsets":{"check_offset":0,"end_offset":40,"start_offset":0},` +
		`"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"finish_reason":%s,"index":0}],"created":0,"id":"","model":"","object":""}` + "\n\n"
	chunk := func(delta, finish string) string {
		return `data: {"choices":[{"content_filter_results":{},"delta":` + delta + `,"finish_reason":` + finish +
			`,"index":0}],"created":1795300601,"id":"chatcmpl-a","model":"gpt-4.1-mini","object":"chat.completion.chunk"}` + "\n\n"
	}
	note := func(finish string) string { return strings.Replace(annotation, "%s", finish, 1) }
	body := chunk(`{"role":"assistant","content":""}`, "null") + chunk(`{"content":"Hello"}`, "null") + note("null") +
		chunk(`{"content":" there"}`, "null") + chunk(`{}`, `"stop"`)
	for _, tt := range []struct {
		name, in, stop string
	}{
		{"passes", body + note("null") + "data: [DONE]\n\n", "end_turn"},
		{"filtered after the finish", body + note(`"content_filter"`) + "data: [DONE]\n\n", "refusal"},
		{"filtered, no [DONE]", body + note(`"content_filter"`), "refusal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, complete, _ := translateStream([]byte(tt.in))
			evs := events(t, out)
			if !complete || names(evs) != "message_start ping content_block_start text_delta text_delta content_block_stop message_delta message_stop" {
				t.Fatalf("complete %v, events %s", complete, names(evs))
			}
			if evs[0].data.Get("message.id").Str != "msg_a" || evs[0].data.Get("message.model").Str != "gpt-4.1-mini" {
				t.Fatalf("message_start %s", evs[0].data.Raw)
			}
			if got := evs[len(evs)-2].data.Get("delta.stop_reason").Str; got != tt.stop {
				t.Fatalf("stop_reason %q, want %q", got, tt.stop)
			}
		})
	}
}
