package responses

import (
	"fmt"
	"github.com/tollgate-ai/tollgate/internal/byteview"
	"slices"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Helpers for requests forwarded natively to OpenAI's Responses API, where
// the gateway reads but does not translate. The usage of a non-streamed
// response body is usage.FromResponses(body).

// Terminal event types of a Responses stream.
const (
	EventCompleted  = "response.completed"
	EventIncomplete = "response.incomplete"
	EventFailed     = "response.failed"
)

// EventType returns the "type" of one Responses stream event's data, "" if
// it has none.
func EventType(data []byte) string {
	return gjson.GetBytes(data, "type").Str
}

// EventUsage reads the usage of a terminal Responses stream event
// (response.completed, response.incomplete or response.failed: the usage of
// its "response" object). ok is false for any other event or when the
// response carries no valid usage.
func EventUsage(data []byte) (u usage.Usage, ok bool) {
	js := byteview.String(data)
	switch gjson.Get(js, "type").Str {
	case EventCompleted, EventIncomplete, EventFailed:
	default:
		return usage.Usage{}, false
	}
	r := gjson.Get(js, "response")
	if !r.IsObject() {
		return usage.Usage{}, false
	}
	return usage.FromResponses(rawBytes(data, r))
}

// rawBytes returns r's bytes within data without copying when r's offset
// is known.
func rawBytes(data []byte, r gjson.Result) []byte {
	if r.Index > 0 && r.Index+len(r.Raw) <= len(data) {
		return data[r.Index : r.Index+len(r.Raw)]
	}
	return []byte(r.Raw)
}

// Text is one piece of text in a JSON body that guardrails read: the
// decoded Text and where its JSON string literal (quotes included) lies in
// the body, body[Start:End], so that it can be replaced in place.
type Text struct {
	// Role is "system" for instructions, the message's role for message
	// content, "assistant" for function call arguments and "tool" for
	// function call outputs.
	Role string
	// Path is the gjson/sjson path of the string, e.g. "input.2.content.0.text".
	Path       string
	Text       string
	Start, End int
}

// InputTexts lists the texts of a Responses request body that input
// guardrails read: instructions, a string input, and in input items the
// message content (a string, or the text of input_text, output_text and
// refusal parts), function_call arguments and function_call_output output
// (a string or input_text parts). Images, files and unknown items carry no
// text. The body must be valid JSON; an error means it is not.
func InputTexts(body []byte) ([]Text, error) {
	root, err := wire.RequestObject(body)
	if err != nil {
		return nil, err
	}
	var ts []Text
	add := func(role, path string, v gjson.Result) {
		if v.Type == gjson.String {
			ts = append(ts, Text{Role: role, Path: path, Text: v.Str, Start: v.Index, End: v.Index + len(v.Raw)})
		}
	}
	add("system", "instructions", root.Get("instructions"))
	in := root.Get("input")
	if in.Type == gjson.String {
		add("user", "input", in)
	}
	in.ForEach(func(i, it gjson.Result) bool {
		base := "input." + i.String()
		switch typ := it.Get("type").Str; {
		case typ == "message" || (typ == "" && it.Get("role").Exists()):
			role := it.Get("role").Str
			c := it.Get("content")
			if c.Type == gjson.String {
				add(role, base+".content", c)
			}
			c.ForEach(func(j, part gjson.Result) bool {
				p := base + ".content." + j.String()
				switch part.Get("type").Str {
				case "input_text", "output_text":
					add(role, p+".text", part.Get("text"))
				case "refusal":
					add(role, p+".refusal", part.Get("refusal"))
				}
				return true
			})
		case typ == "function_call":
			add("assistant", base+".arguments", it.Get("arguments"))
		case typ == "function_call_output":
			out := it.Get("output")
			if out.Type == gjson.String {
				add("tool", base+".output", out)
			}
			out.ForEach(func(j, part gjson.Result) bool {
				if part.Get("type").Str == "input_text" {
					add("tool", base+".output."+j.String()+".text", part.Get("text"))
				}
				return true
			})
		}
		return true
	})
	for _, t := range ts {
		if t.Start <= 0 || t.End > len(body) {
			return nil, fmt.Errorf("responses: offset of %s unknown", t.Path)
		}
	}
	return ts, nil
}

// Edit replaces texts[Index] with Text (the shape of guardrails.Edit).
type Edit struct {
	Index int
	Text  string
}

// ApplyEdits returns body with each edited text replaced by its new text,
// written as a JSON string. texts must be InputTexts(body) (or OutputTexts
// of the same event); the result is a new slice.
func ApplyEdits(body []byte, texts []Text, edits []Edit) ([]byte, error) {
	sorted := slices.Clone(edits)
	slices.SortFunc(sorted, func(a, b Edit) int { return texts[a.Index].Start - texts[b.Index].Start })
	out := make([]byte, 0, len(body))
	at := 0
	for _, e := range sorted {
		if e.Index < 0 || e.Index >= len(texts) {
			return nil, fmt.Errorf("responses: edit index %d out of range", e.Index)
		}
		t := texts[e.Index]
		if t.Start < at || t.End > len(body) {
			return nil, fmt.Errorf("responses: overlapping or stale edit of %s", t.Path)
		}
		out = append(out, body[at:t.Start]...)
		out = oaierror.AppendString(out, e.Text)
		at = t.End
	}
	return append(out, body[at:]...), nil
}

// Output text kinds.
const (
	// OutputDelta is an increment of a message's text
	// (response.output_text.delta "delta").
	OutputDelta = iota
	// OutputFull is the whole text of a message part so far, repeated by the
	// done events (output_text.done "text", content_part.* "part.text",
	// output_item.* message content, and every message in the output of
	// the response.* events).
	OutputFull
	// ArgumentsDelta is an increment of a function call's arguments
	// (response.function_call_arguments.delta "delta").
	ArgumentsDelta
	// ArgumentsFull is a function call's whole arguments
	// (function_call_arguments.done "arguments", function_call items).
	ArgumentsFull
)

// OutputText is one piece of model output in a Responses stream event.
type OutputText struct {
	Kind                      int
	ItemID                    string // "" when the event names none
	OutputIndex, ContentIndex int64
	// Path, Text, Start and End are as in [Text].
	Path       string
	Text       string
	Start, End int
}

// OutputTexts lists the model output in one Responses stream event's data
// (or, for a non-streamed response body, pass the body: it is read like the
// "response" of response.completed). Output guardrails filter the deltas
// as they stream and must also replace the full texts that the done and
// response.* events repeat, or the client's SDK, which prefers those, sees
// the unfiltered text.
func OutputTexts(data []byte) []OutputText {
	js := byteview.String(data)
	if !gjson.Valid(js) {
		return nil
	}
	ev := gjson.Parse(js)
	var ts []OutputText
	add := func(kind int, path string, v gjson.Result, itemID string, oi, ci int64) {
		if v.Type == gjson.String && v.Index > 0 {
			ts = append(ts, OutputText{Kind: kind, ItemID: itemID, OutputIndex: oi, ContentIndex: ci,
				Path: path, Text: v.Str, Start: v.Index, End: v.Index + len(v.Raw)})
		}
	}
	item := func(path string, it gjson.Result, oi int64) {
		id := it.Get("id").Str
		switch it.Get("type").Str {
		case "message":
			it.Get("content").ForEach(func(j, part gjson.Result) bool {
				if part.Get("type").Str == "output_text" {
					add(OutputFull, path+".content."+j.String()+".text", part.Get("text"), id, oi, j.Int())
				}
				return true
			})
		case "function_call":
			add(ArgumentsFull, path+".arguments", it.Get("arguments"), id, oi, 0)
		}
	}
	itemID, oi, ci := ev.Get("item_id").Str, ev.Get("output_index").Int(), ev.Get("content_index").Int()
	switch typ := ev.Get("type").Str; typ {
	case "response.output_text.delta":
		add(OutputDelta, "delta", ev.Get("delta"), itemID, oi, ci)
	case "response.output_text.done":
		add(OutputFull, "text", ev.Get("text"), itemID, oi, ci)
	case "response.content_part.added", "response.content_part.done":
		if ev.Get("part.type").Str == "output_text" {
			add(OutputFull, "part.text", ev.Get("part.text"), itemID, oi, ci)
		}
	case "response.function_call_arguments.delta":
		add(ArgumentsDelta, "delta", ev.Get("delta"), itemID, oi, 0)
	case "response.function_call_arguments.done":
		add(ArgumentsFull, "arguments", ev.Get("arguments"), itemID, oi, 0)
	case "response.output_item.added", "response.output_item.done":
		item("item", ev.Get("item"), oi)
	default:
		base, resp := "response.output", ev.Get("response")
		if typ == "" || typ == "response" { // a response body
			base, resp = "output", ev
		}
		resp.Get("output").ForEach(func(i, it gjson.Result) bool {
			item(base+"."+strconv.Itoa(int(i.Int())), it, i.Int())
			return true
		})
	}
	return ts
}

// TextsOf returns each output as a Text (role "assistant"), for ApplyEdits.
func TextsOf(os []OutputText) []Text {
	ts := make([]Text, len(os))
	for i, o := range os {
		ts[i] = Text{Role: "assistant", Path: o.Path, Text: o.Text, Start: o.Start, End: o.End}
	}
	return ts
}
