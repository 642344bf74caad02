package responses

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/routing/translate/anthropic"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

var streamOpts = Options{CreatedAt: 1795300000}

// run feeds a chat stream in the given pieces and ends it.
func run(req *Request, pieces ...[]byte) (out []byte, complete bool) {
	t := req.NewStream(streamOpts)
	for _, p := range pieces {
		out = t.Feed(out, p)
	}
	return t.End(out)
}

func types(evs []event) []string {
	var ts []string
	for _, e := range evs {
		ts = append(ts, e.name)
	}
	return ts
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestStreamText(t *testing.T) {
	chat := readFixture(t, "openai/chat_stream.sse")
	out, complete := run(basicRequest(t), chat)
	if !complete {
		t.Fatal("not complete")
	}
	evs := splitEvents(t, out)
	deltas := 0
	for _, e := range evs {
		if e.name == "response.output_text.delta" {
			deltas++
		}
	}
	want := append([]string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"},
		repeat("response.output_text.delta", deltas)...)
	want = append(want, "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed")
	if got := types(evs); deltas == 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v", got)
	}
	// The text is the chat stream's content.
	var content strings.Builder
	for _, ev := range sseEvents(t, chat) {
		content.WriteString(gjson.GetBytes(ev, "choices.0.delta.content").Str)
	}
	got := sdkStream(t, out)
	if got.err != nil || got.terminal != "response.completed" || got.text != content.String() || got.final.OutputText() != content.String() {
		t.Fatalf("SDK read %+v (text %q)", got, got.text)
	}
	wantUsage, _ := usage.FromOpenAI(sseEvents(t, chat)[len(sseEvents(t, chat))-2])
	if u := got.final.Usage; u.InputTokens != wantUsage.PromptTokens || u.OutputTokens != wantUsage.CompletionTokens || u.TotalTokens != wantUsage.TotalTokens {
		t.Fatalf("usage %+v, want %+v", u, wantUsage)
	}
	if got.final.Instructions.OfString != "Answer in one sentence." || got.final.ID == "" || got.final.Status != "completed" {
		t.Fatalf("final %+v", got.final)
	}
	// The in-progress snapshots carry no output and no usage.
	if gjson.Get(evs[0].raw, "response.status").Str != "in_progress" || gjson.Get(evs[0].raw, "response.usage").Type != gjson.Null ||
		len(gjson.Get(evs[0].raw, "response.output").Array()) != 0 {
		t.Fatalf("created: %s", evs[0].raw)
	}
	// Every event names the same item.
	item := gjson.Get(evs[2].raw, "item.id").Str
	for _, e := range evs[3 : len(evs)-1] {
		if id := gjson.Get(e.raw, "item_id").Str + gjson.Get(e.raw, "item.id").Str; id != item {
			t.Fatalf("item id %q in %s", id, e.raw)
		}
	}
}

// sseEvents returns the data of each event of a fixture stream.
func sseEvents(t *testing.T, stream []byte) [][]byte {
	t.Helper()
	var sc sse.Scanner
	sc.Feed(stream)
	sc.Finish()
	var out [][]byte
	for {
		ev, ok := sc.Next()
		if !ok {
			return out
		}
		out = append(out, bytes.Clone(ev.Data))
	}
}

func TestStreamToolCalls(t *testing.T) {
	req, err := TranslateRequest(readFixture(t, "openai/responses_request_tools.json"))
	if err != nil {
		t.Fatal(err)
	}
	chat := readFixture(t, "openai/chat_stream_tool_calls.sse")
	out, complete := run(req, chat)
	evs := splitEvents(t, out)
	got := sdkStream(t, out)
	if !complete || got.err != nil || got.terminal != "response.completed" {
		t.Fatalf("%v %+v", complete, got)
	}
	// The chat stream's two calls, arguments joined per index.
	args := map[int64]string{}
	for _, ev := range sseEvents(t, chat) {
		gjson.GetBytes(ev, "choices.0.delta.tool_calls").ForEach(func(_, tc gjson.Result) bool {
			args[tc.Get("index").Int()] += tc.Get("function.arguments").Str
			return true
		})
	}
	out0 := got.final.Output
	if len(out0) != 2 {
		t.Fatalf("output %+v", out0)
	}
	for i, o := range out0 {
		fc := o.AsFunctionCall()
		if fc.Type != "function_call" || fc.Name != "get_current_weather" || fc.Arguments != args[int64(i)] || got.args[fc.ID] != args[int64(i)] ||
			!strings.HasPrefix(fc.CallID, "call_") || fc.Status != "completed" {
			t.Fatalf("call %d: %+v", i, fc)
		}
	}
	var dones []string
	for _, e := range evs {
		if e.name == "response.function_call_arguments.done" {
			dones = append(dones, gjson.Get(e.raw, "arguments").Str)
			if gjson.Get(e.raw, "name").Str != "get_current_weather" {
				t.Fatalf("done without name: %s", e.raw)
			}
		}
	}
	if !reflect.DeepEqual(dones, []string{args[0], args[1]}) {
		t.Fatalf("done events %v", dones)
	}
	if got.final.Usage.TotalTokens == 0 {
		t.Fatal("no usage")
	}
}

// TestStreamSplitAnywhere proves the translator incremental: the chat
// stream cut at any byte, or fed a byte at a time, translates exactly as
// when fed whole.
func TestStreamSplitAnywhere(t *testing.T) {
	for _, f := range []string{"openai/chat_stream.sse", "openai/chat_stream_tool_calls.sse", "azure_openai/chat_stream.sse"} {
		t.Run(f, func(t *testing.T) {
			chat := readFixture(t, f)
			req := basicRequest(t)
			whole, complete := run(req, chat)
			if !complete {
				t.Fatal("not complete")
			}
			for i := 1; i < len(chat); i++ {
				if got, _ := run(req, chat[:i], chat[i:]); !bytes.Equal(got, whole) {
					t.Fatalf("split at %d differs", i)
				}
			}
			bytewise := make([][]byte, len(chat))
			for i := range chat {
				bytewise[i] = chat[i : i+1]
			}
			if got, _ := run(req, bytewise...); !bytes.Equal(got, whole) {
				t.Fatal("byte-at-a-time differs")
			}
		})
	}
}

// TestStreamCut ends the chat stream after every prefix: only the whole
// stream completes; every shorter one ends in response.failed, exactly once.
func TestStreamCut(t *testing.T) {
	chat := readFixture(t, "openai/chat_stream.sse")
	req := basicRequest(t)
	for n := 0; n < len(chat); n++ {
		out, complete := run(req, chat[:n])
		evs := splitEvents(t, out)
		if complete || len(evs) < 2 {
			t.Fatalf("prefix %d: complete %v, %d events", n, complete, len(evs))
		}
		last := evs[len(evs)-1]
		if last.name != "response.failed" || gjson.Get(last.raw, "response.status").Str != "failed" ||
			gjson.Get(last.raw, "response.error.code").Str != "server_error" {
			t.Fatalf("prefix %d ends with %s", n, last.raw)
		}
		for _, e := range evs[:len(evs)-1] {
			if strings.HasPrefix(e.name, "response.") && slices.Contains([]string{"response.completed", "response.failed", "response.incomplete"}, e.name) {
				t.Fatalf("prefix %d: two terminal events", n)
			}
		}
	}
	// The SDK sees the failure.
	out, _ := run(req, chat[:len(chat)/2])
	got := sdkStream(t, out)
	if got.terminal != "response.failed" || got.final.Status != "failed" || got.final.Error.Message == "" {
		t.Fatalf("%+v", got)
	}
}

func TestStreamEndings(t *testing.T) {
	const head = `data: {"id":"chatcmpl-z","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}` + "\n\n"
	tests := []struct {
		name, tail string
		last       string
		complete   bool
		check      func(t *testing.T, last string)
	}{
		{"provider error event", `data: {"error":{"message":"Overloaded","type":"server_error","code":"overloaded"}}` + "\n\n", "response.failed", false,
			func(t *testing.T, last string) {
				if gjson.Get(last, "response.error.message").Str != "Overloaded" || gjson.Get(last, "response.error.code").Str != "overloaded" ||
					gjson.Get(last, "response.output.0.status").Str != "incomplete" {
					t.Fatal(last)
				}
			}},
		{"done without finish", "data: [DONE]\n\n", "response.failed", false, nil},
		{"finish without done", `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n", "response.failed", false, nil},
		{"length", `data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"length"}]}` + "\n\ndata: [DONE]\n\n", "response.incomplete", true,
			func(t *testing.T, last string) {
				if gjson.Get(last, "response.incomplete_details.reason").Str != "max_output_tokens" || gjson.Get(last, "response.output.0.status").Str != "incomplete" ||
					gjson.Get(last, "response.output.0.content.0.text").Str != "Hello" {
					t.Fatal(last)
				}
			}},
		{"content filter", `data: {"choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]}` + "\n\ndata: [DONE]\n\n", "response.incomplete", true,
			func(t *testing.T, last string) {
				if gjson.Get(last, "response.incomplete_details.reason").Str != "content_filter" {
					t.Fatal(last)
				}
			}},
		{"nothing after the end", `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n" +
			`data: {"choices":[{"index":0,"delta":{"content":"late"}}]}` + "\n\ndata: [DONE]\n\n", "response.completed", true,
			func(t *testing.T, last string) {
				if gjson.Get(last, "response.output.0.content.0.text").Str != "Hel" || gjson.Get(last, "response.usage").Type != gjson.Null {
					t.Fatal(last)
				}
			}},
		{"refusal", `data: {"choices":[{"index":0,"delta":{"refusal":"No."}}]}` + "\n\n" + `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n",
			"response.completed", true, func(t *testing.T, last string) {
				c := gjson.Get(last, "response.output.0.content")
				if c.Get("0.type").Str != "output_text" || c.Get("1.type").Str != "refusal" || c.Get("1.refusal").Str != "No." {
					t.Fatal(last)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, complete := run(basicRequest(t), []byte(head+tt.tail))
			evs := splitEvents(t, out)
			last := evs[len(evs)-1]
			if complete != tt.complete || last.name != tt.last {
				t.Fatalf("complete %v, last %s", complete, last.name)
			}
			if tt.check != nil {
				tt.check(t, last.raw)
			}
			got := sdkStream(t, out)
			if got.terminal != tt.last {
				t.Fatalf("SDK: %+v", got)
			}
		})
	}
}

func TestStreamNoIndexToolCalls(t *testing.T) {
	// Gemini's OpenAI-compatible streams send tool calls without index.
	chat := `data: {"id":"chatcmpl-g","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"a","arguments":"{\"x\":"}}]}}]}` + "\n\n" +
		`data: {"id":"chatcmpl-g","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}` + "\n\n" +
		`data: {"id":"chatcmpl-g","choices":[{"index":0,"delta":{"tool_calls":[{"id":"c2","type":"function","function":{"name":"b","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}` + "\n\n" +
		"data: [DONE]\n\n"
	out, complete := run(basicRequest(t), []byte(chat))
	got := sdkStream(t, out)
	if !complete || len(got.final.Output) != 2 {
		t.Fatalf("%s", out)
	}
	a, b := got.final.Output[0].AsFunctionCall(), got.final.Output[1].AsFunctionCall()
	if a.CallID != "c1" || a.Arguments != `{"x":1}` || b.CallID != "c2" || b.Name != "b" || b.Arguments != "{}" || got.final.Usage.TotalTokens != 3 {
		t.Fatalf("%+v %+v", a, b)
	}
}

// TestStreamFromAnthropic chains the Anthropic translator's chat chunks into
// the Responses stream, as the gateway will for /v1/responses to Claude.
func TestStreamFromAnthropic(t *testing.T) {
	schema := &anthropic.Schema{Now: func() time.Time { return time.Unix(1795300400, 0) }}
	for _, f := range []string{"anthropic/messages_stream.sse", "anthropic/messages_stream_tool_use.sse", "anthropic/messages_stream_error.sse"} {
		t.Run(f, func(t *testing.T) {
			as := schema.NewStream("claude", true)
			var chat []byte
			for _, ev := range sseEventsNamed(t, readFixture(t, f)) {
				chat = as.Event(chat, ev[0], ev[1])
			}
			chat, upstreamOK := as.End(chat)
			out, complete := run(basicRequest(t), chat)
			if complete != upstreamOK {
				t.Fatalf("complete %v, upstream %v", complete, upstreamOK)
			}
			got := sdkStream(t, out)
			want := "response.completed"
			if !upstreamOK {
				want = "response.failed"
			}
			if got.terminal != want {
				t.Fatalf("SDK %+v\n%s", got, out)
			}
			if upstreamOK && got.final.Usage.TotalTokens == 0 {
				t.Fatal("no usage")
			}
		})
	}
}

func sseEventsNamed(t *testing.T, stream []byte) [][2][]byte {
	t.Helper()
	var sc sse.Scanner
	sc.Feed(stream)
	sc.Finish()
	var out [][2][]byte
	for {
		ev, ok := sc.Next()
		if !ok {
			return out
		}
		if ev.Data != nil {
			out = append(out, [2][]byte{bytes.Clone(ev.Name), bytes.Clone(ev.Data)})
		}
	}
}

func TestStreamUsage(t *testing.T) {
	s := basicRequest(t).NewStream(Options{})
	if _, ok := s.Usage(); ok {
		t.Fatal("usage before any")
	}
	out := s.Feed(nil, readFixture(t, "openai/chat_stream_reasoning.sse"))
	out, complete := s.End(out)
	u, ok := s.Usage()
	if !complete || !ok || u.CachedTokens != 1920 || u.ReasoningTokens != 1344 {
		t.Fatalf("%v %v %+v", complete, ok, u)
	}
	if eu, ok := EventUsage([]byte(splitEvents(t, out)[len(splitEvents(t, out))-1].raw)); !ok || eu != u {
		t.Fatalf("EventUsage of our completed event: %+v", eu)
	}
	if !strings.HasPrefix(s.ResponseID(), "resp_") {
		t.Fatal(s.ResponseID())
	}
}

func TestStreamOversizedEvent(t *testing.T) {
	s := basicRequest(t).NewStream(Options{})
	out := s.Feed(nil, append([]byte("data: "), bytes.Repeat([]byte("x"), MaxEventSize+1)...))
	out, complete := s.End(out)
	evs := splitEvents(t, out)
	if complete || evs[len(evs)-1].name != "response.failed" {
		t.Fatalf("%v %s", complete, out)
	}
}
