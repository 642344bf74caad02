package cache

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/tidwall/gjson"
)

// Replay renders a stored chat.completion body as the chat.completion.chunk
// SSE stream a streaming client expects: one chunk with the role and the
// whole content (and tool calls) of each choice, one with each choice's
// finish_reason, the usage chunk only when includeUsage (as OpenAI sends it:
// empty choices, after the last choice chunk, with usage null on the
// others), then data: [DONE].
func Replay(body []byte, includeUsage bool) []byte {
	root := gjson.ParseBytes(body)
	var head []byte
	head = append(head, `{"id":`...)
	head = appendString(head, root.Get("id").String())
	head = append(head, `,"object":"chat.completion.chunk","created":`...)
	head = strconv.AppendInt(head, root.Get("created").Int(), 10)
	head = append(head, `,"model":`...)
	head = appendString(head, root.Get("model").String())
	if fp := root.Get("system_fingerprint"); fp.Type == gjson.String {
		head = append(head, `,"system_fingerprint":`...)
		head = appendString(head, fp.String())
	}
	if includeUsage {
		head = append(head, `,"usage":null`...)
	}
	head = append(head, `,"choices":[`...)

	var out []byte
	chunk := func(choice []byte) {
		out = append(out, "data: "...)
		out = append(out, head...)
		out = append(out, choice...)
		out = append(out, "]}\n\n"...)
	}
	choices := root.Get("choices").Array()
	for _, c := range choices {
		idx := c.Get("index").Int()
		m := c.Get("message")
		var d []byte
		d = append(d, `{"index":`...)
		d = strconv.AppendInt(d, idx, 10)
		d = append(d, `,"delta":{"role":"assistant"`...)
		if v := m.Get("content"); v.Type == gjson.String {
			d = append(d, `,"content":`...)
			d = appendString(d, v.String())
		}
		if v := m.Get("reasoning_content"); v.Type == gjson.String {
			d = append(d, `,"reasoning_content":`...)
			d = appendString(d, v.String())
		}
		if v := m.Get("refusal"); v.Type == gjson.String {
			d = append(d, `,"refusal":`...)
			d = appendString(d, v.String())
		}
		if tcs := m.Get("tool_calls"); tcs.IsArray() {
			d = append(d, `,"tool_calls":[`...)
			for i, tc := range tcs.Array() {
				if i > 0 {
					d = append(d, ',')
				}
				d = append(d, `{"index":`...)
				d = strconv.AppendInt(d, int64(i), 10)
				d = append(d, `,"id":`...)
				d = appendString(d, tc.Get("id").String())
				d = append(d, `,"type":"function","function":{"name":`...)
				d = appendString(d, tc.Get("function.name").String())
				d = append(d, `,"arguments":`...)
				d = appendString(d, tc.Get("function.arguments").String())
				d = append(d, "}}"...)
			}
			d = append(d, ']')
		}
		d = append(d, `},"finish_reason":null}`...)
		chunk(d)
	}
	for _, c := range choices {
		var d []byte
		d = append(d, `{"index":`...)
		d = strconv.AppendInt(d, c.Get("index").Int(), 10)
		d = append(d, `,"delta":{},"finish_reason":`...)
		d = appendString(d, c.Get("finish_reason").String())
		d = append(d, '}')
		chunk(d)
	}
	if includeUsage {
		if u := root.Get("usage"); u.IsObject() {
			out = append(out, "data: "...)
			out = append(out, head[:len(head)-len(`,"usage":null,"choices":[`)]...)
			out = append(out, `,"choices":[],"usage":`...)
			out = compact(out, u) // one line: a stored body may be pretty-printed
			out = append(out, "}\n\n"...)
		}
	}
	return append(out, "data: [DONE]\n\n"...)
}

// compact appends v's JSON without insignificant whitespace, keeping its
// key order, so it fits on one SSE data line.
func compact(dst []byte, v gjson.Result) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(v.Raw)); err != nil {
		return canonical(dst, v)
	}
	return append(dst, b.Bytes()...)
}
