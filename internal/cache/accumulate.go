package cache

import (
	"slices"
	"strconv"

	"github.com/tidwall/gjson"
)

// Accumulator rebuilds the chat.completion body of a streamed answer from
// its chat.completion.chunk events, so a streamed miss can fill the cache as
// a non-streamed one does. Feed it each event's data (not [DONE]).
type Accumulator struct {
	id, model, fingerprint string
	created                int64
	choices                []*accChoice
	usage                  []byte
	broken                 bool
}

type accChoice struct {
	index                       int64
	content, reasoning, refusal []byte
	hasContent                  bool
	finish                      string
	tools                       []*accTool
}

type accTool struct {
	id, name string
	args     []byte
}

// Add consumes one chunk's JSON. A chunk that is not valid JSON or not a
// chat.completion.chunk object (an error event) marks the stream as not
// cacheable.
func (a *Accumulator) Add(data []byte) {
	if !gjson.ValidBytes(data) {
		a.broken = true
		return
	}
	r := gjson.ParseBytes(data)
	if !r.IsObject() || r.Get("error").Exists() {
		a.broken = true
		return
	}
	if a.id == "" {
		a.id = r.Get("id").String()
		a.model = r.Get("model").String()
		a.created = r.Get("created").Int()
	}
	if fp := r.Get("system_fingerprint"); fp.Type == gjson.String {
		a.fingerprint = fp.String()
	}
	if u := r.Get("usage"); u.IsObject() {
		a.usage = append(a.usage[:0], u.Raw...)
	}
	r.Get("choices").ForEach(func(_, c gjson.Result) bool {
		ch := a.choice(c.Get("index").Int())
		d := c.Get("delta")
		if v := d.Get("content"); v.Type == gjson.String {
			ch.content = append(ch.content, v.String()...)
			ch.hasContent = true
		}
		if v := d.Get("reasoning_content"); v.Type == gjson.String {
			ch.reasoning = append(ch.reasoning, v.String()...)
		}
		if v := d.Get("refusal"); v.Type == gjson.String {
			ch.refusal = append(ch.refusal, v.String()...)
		}
		d.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			i := int(tc.Get("index").Int())
			if i < 0 || i > 1024 {
				a.broken = true
				return false
			}
			for len(ch.tools) <= i {
				ch.tools = append(ch.tools, &accTool{})
			}
			t := ch.tools[i]
			if v := tc.Get("id"); v.Type == gjson.String && t.id == "" {
				t.id = v.String()
			}
			if v := tc.Get("function.name"); v.Type == gjson.String && t.name == "" {
				t.name = v.String()
			}
			t.args = append(t.args, tc.Get("function.arguments").String()...)
			return true
		})
		if v := c.Get("finish_reason"); v.Type == gjson.String {
			ch.finish = v.String()
		}
		return true
	})
}

func (a *Accumulator) choice(index int64) *accChoice {
	for _, c := range a.choices {
		if c.index == index {
			return c
		}
	}
	c := &accChoice{index: index}
	a.choices = append(a.choices, c)
	return c
}

// SetUsage sets the answer's usage object, for a stream whose usage chunk
// was removed before it was added (the gateway asked for it, not the
// client). A later usage chunk replaces it.
func (a *Accumulator) SetUsage(usage []byte) {
	a.usage = append(a.usage[:0], usage...)
}

// Body returns the chat.completion body of a stream that completed: every
// choice finished and usage seen. ok is false otherwise; such a stream is
// never stored.
func (a *Accumulator) Body() (body []byte, ok bool) {
	if a.broken || len(a.choices) == 0 || a.usage == nil {
		return nil, false
	}
	slices.SortFunc(a.choices, func(x, y *accChoice) int { return int(x.index - y.index) })
	b := []byte(`{"id":`)
	b = appendString(b, a.id)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, a.created, 10)
	b = append(b, `,"model":`...)
	b = appendString(b, a.model)
	b = append(b, `,"choices":[`...)
	for i, c := range a.choices {
		if c.finish == "" {
			return nil, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, c.index, 10)
		b = append(b, `,"message":{"role":"assistant","content":`...)
		if c.hasContent {
			b = appendString(b, string(c.content))
		} else {
			b = append(b, "null"...)
		}
		if len(c.reasoning) > 0 {
			b = append(b, `,"reasoning_content":`...)
			b = appendString(b, string(c.reasoning))
		}
		if len(c.refusal) > 0 {
			b = append(b, `,"refusal":`...)
			b = appendString(b, string(c.refusal))
		}
		if len(c.tools) > 0 {
			b = append(b, `,"tool_calls":[`...)
			for j, t := range c.tools {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"id":`...)
				b = appendString(b, t.id)
				b = append(b, `,"type":"function","function":{"name":`...)
				b = appendString(b, t.name)
				b = append(b, `,"arguments":`...)
				b = appendString(b, string(t.args))
				b = append(b, "}}"...)
			}
			b = append(b, ']')
		}
		b = append(b, `},"finish_reason":`...)
		b = appendString(b, c.finish)
		b = append(b, '}')
	}
	b = append(b, `],"usage":`...)
	b = append(b, a.usage...)
	if a.fingerprint != "" {
		b = append(b, `,"system_fingerprint":`...)
		b = appendString(b, a.fingerprint)
	}
	return append(b, '}'), true
}
