package extproc

import (
	"encoding/json"
	"strings"

	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Content capture for apps with capture_content: the prompt as the output
// of guardInput (redactions applied) and the completion as the client
// receives it (after the output guard). Latest GenAI conventions:
// gen_ai.input.messages and gen_ai.output.messages, JSON in the
// conventions' message schema (role + typed parts). v1.36.0: one span
// event per message (gen_ai.{system,user,assistant,tool}.message, and
// gen_ai.choice per completion choice), whose body fields are the event's
// attributes.

type msgPart struct {
	Type      string `json:"type"`
	Content   string `json:"content,omitempty"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments,omitempty"`
	Response  string `json:"response,omitempty"`
}

type message struct {
	Role         string    `json:"role"`
	Parts        []msgPart `json:"parts"`
	FinishReason string    `json:"finish_reason,omitempty"`
}

// readMessages reads OpenAI chat messages (a "messages" array, or a
// completion's "choices" array when choices is true).
func readMessages(arr gjson.Result, choices bool) []message {
	if !arr.IsArray() {
		return nil // gjson would visit a scalar once, as if it were an element
	}
	var out []message
	arr.ForEach(func(_, m gjson.Result) bool {
		fr := ""
		if choices {
			fr = m.Get("finish_reason").Str
			m = m.Get("message")
		}
		msg := message{Role: m.Get("role").Str, Parts: []msgPart{}, FinishReason: fr}
		if msg.Role == "" {
			msg.Role = "assistant"
		}
		switch c := m.Get("content"); {
		case msg.Role == "tool":
			msg.Parts = append(msg.Parts, msgPart{Type: "tool_call_response", ID: m.Get("tool_call_id").Str, Response: c.String()})
		case c.Type == gjson.String:
			msg.Parts = append(msg.Parts, msgPart{Type: "text", Content: c.Str})
		case c.IsArray():
			c.ForEach(func(_, p gjson.Result) bool {
				if p.Get("type").Str == "text" {
					msg.Parts = append(msg.Parts, msgPart{Type: "text", Content: p.Get("text").Str})
				}
				return true
			})
		}
		m.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			msg.Parts = append(msg.Parts, msgPart{Type: "tool_call", ID: tc.Get("id").Str,
				Name: tc.Get("function.name").Str, Arguments: tc.Get("function.arguments").Str})
			return true
		})
		out = append(out, msg)
		return true
	})
	return out
}

// recordContent puts the captured messages on the span in the conventions'
// form for the version in force.
func (s *spanState) recordContent(latest bool, system string) []attribute.KeyValue {
	if latest {
		var a []attribute.KeyValue
		if len(s.input) > 0 {
			if b, err := json.Marshal(s.input); err == nil {
				a = append(a, attribute.String("gen_ai.input.messages", string(b)))
			}
		}
		if len(s.output) > 0 {
			if b, err := json.Marshal(s.output); err == nil {
				a = append(a, attribute.String("gen_ai.output.messages", string(b)))
			}
		}
		return a
	}
	for _, m := range s.input {
		s.span.AddEvent("gen_ai."+m.Role+".message", trace.WithAttributes(
			attribute.String("gen_ai.system", system), attribute.String("content", m.text())))
	}
	for i, m := range s.output {
		b, _ := json.Marshal(struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}{"assistant", m.text()})
		s.span.AddEvent("gen_ai.choice", trace.WithAttributes(attribute.String("gen_ai.system", system),
			attribute.Int("index", i), attribute.String("finish_reason", m.FinishReason), attribute.String("message", string(b))))
	}
	return nil
}

func (m message) text() string {
	var b strings.Builder
	for _, p := range m.Parts {
		b.WriteString(p.Content)
		b.WriteString(p.Response)
	}
	return b.String()
}
