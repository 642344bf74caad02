package messages

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzToChat checks that any client body either translates to a JSON
// object or is refused with a 400 in Anthropic's format, never panics.
func FuzzToChat(f *testing.F) {
	for _, name := range []string{"anthropic/messages_request.json", "anthropic/messages_request_tools.json", "anthropic/messages_request_agent.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(req(`"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"any"},"thinking":{"type":"enabled","budget_tokens":5000}`)))
	f.Add([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"image","source":{"type":"url","url":"u"}}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := ToChat(body, RequestOptions{})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 || !json.Valid(e.Body()) {
				t.Fatalf("error %v (%T)", err, err)
			}
			return
		}
		var m map[string]any
		if json.Unmarshal(out, &m) != nil {
			t.Fatalf("output is not a JSON object: %s", out)
		}
		if _, ok := m["messages"].([]any); !ok {
			t.Fatalf("no messages array: %s", out)
		}
	})
}

// FuzzStream feeds arbitrary upstream bytes, split at an arbitrary point,
// and checks that the output is always well-formed Anthropic SSE that ends
// in message_stop exactly when the stream completed, and in an error event
// otherwise.
func FuzzStream(f *testing.F) {
	// Small seeds: the fuzzer minimises every new input, and the fixture
	// streams are kilobytes long.
	const text = `data: {"id":"chatcmpl-a","choices":[{"index":0,"delta":{"content":"Hi"}}]}` + "\n\n"
	const think = `data: {"choices":[{"index":0,"delta":{"reasoning_content":"r"}}]}` + "\n\n"
	const tool = `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{"}}]}}]}` + "\n\n"
	const finish = `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}` + "\n\ndata: [DONE]\n\n"
	f.Add([]byte(text+finish), uint16(7))
	f.Add([]byte(think+text+tool+finish), uint16(40))
	f.Add([]byte(text+`data: {"error":{"message":"x","type":"server_error"}}`+"\n\n"), uint16(0))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"a\"},{\"index\":0}]},\"finish_reason\":\"stop\"}]}\n\n"), uint16(3))
	f.Fuzz(func(t *testing.T, in []byte, at uint16) {
		cut := int(at) % (len(in) + 1)
		out, complete, _ := translateStream(in[:cut], in[cut:])
		evs := events(t, out)
		if len(evs) == 0 {
			t.Fatal("no events")
		}
		last := evs[len(evs)-1].name
		if complete != (last == "message_stop") || (!complete && last != "error") {
			t.Fatalf("complete %v but last event %s", complete, last)
		}
		if strings.Count(string(out), "event: message_stop") > 1 || strings.Count(string(out), "event: error") > 1 {
			t.Fatalf("terminal event repeated:\n%s", out)
		}
		for i, e := range evs {
			if e.name == "error" && i != len(evs)-1 {
				t.Fatal("events after an error")
			}
		}
	})
}
