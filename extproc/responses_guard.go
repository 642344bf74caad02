package extproc

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/responses"
)

// Output guardrails on native Responses answers (OpenAI, Azure OpenAI).
// Translated targets are guarded on the provider's chat answer instead
// (translatedResponses), exactly as on chat.

// outputKind is the guardrail stream kind of a Responses output text.
func outputKind(kind int) guardrails.StreamKind {
	if kind == responses.ArgumentsDelta || kind == responses.ArgumentsFull {
		return guardrails.ToolArguments
	}
	return guardrails.Content
}

// guardResponsesBody checks every output text of a whole Responses object
// and returns it with the guardrails' redactions; a block is the error.
func guardResponsesBody(g *guardrails.Request, body []byte) ([]byte, error) {
	ts := responses.OutputTexts(body)
	var edits []responses.Edit
	for i, t := range ts {
		out, err := g.CheckOutput(outputKind(t.Kind), t.Text)
		if err != nil {
			return nil, err
		}
		if out != t.Text {
			edits = append(edits, responses.Edit{Index: i, Text: out})
		}
	}
	if len(edits) == 0 {
		return body, nil
	}
	return responses.ApplyEdits(body, responses.TextsOf(ts), edits)
}

// responsesGuardEvent ends a native Responses stream a guardrail blocked:
// the error event the SDKs raise, as the endpoint ends a cut stream.
func responsesGuardEvent(err error) []byte {
	e := guardError(err)
	b := []byte("event: error\ndata: {\"type\":\"error\",\"code\":")
	b = oaierror.AppendString(b, e.Code)
	b = append(b, `,"message":`...)
	b = oaierror.AppendString(b, e.Message)
	b = append(b, `,"param":`...)
	if e.Param == "" {
		b = append(b, "null"...)
	} else {
		b = oaierror.AppendString(b, e.Param)
	}
	return append(b, "}\n\n"...)
}

// partKey names one guarded text of a Responses stream: a message's
// content part or a function call's arguments.
type partKey struct {
	output, content int64
	args            bool
}

// guardedPart is one part's guard and the text it released so far.
type guardedPart struct {
	g      *guardrails.Stream
	itemID string
	sent   strings.Builder
}

// responsesStreamGuard applies output guardrails to a native Responses
// event stream. Deltas carry what each part's guard releases; when a part's
// full text first comes (its done event), the guard is closed, the rest it
// held back goes out as one more delta, and that full text and every later
// repetition of it (output_item.done, response.completed) become exactly
// the concatenation of the deltas the client received.
type responsesStreamGuard struct {
	req  *guardrails.Request
	open map[partKey]*guardedPart
	done map[partKey]string
}

func newResponsesStreamGuard(r *guardrails.Request) *responsesStreamGuard {
	if r == nil || !r.OutputActive() {
		return nil
	}
	return &responsesStreamGuard{req: r, open: map[partKey]*guardedPart{}, done: map[partKey]string{}}
}

// event guards one event: it appends to out any delta the guards released
// before it, and returns the event's raw bytes and data, rewritten where
// the guardrails redacted. A block is the error.
func (g *responsesStreamGuard) event(out, raw, data []byte) ([]byte, []byte, []byte, error) {
	ts := responses.OutputTexts(data)
	if len(ts) == 0 {
		return out, raw, data, nil
	}
	var edits []responses.Edit
	edit := func(i int, text string) {
		if text != ts[i].Text {
			edits = append(edits, responses.Edit{Index: i, Text: text})
		}
	}
	for i, t := range ts {
		args := t.Kind == responses.ArgumentsDelta || t.Kind == responses.ArgumentsFull
		k := partKey{t.OutputIndex, t.ContentIndex, args}
		if args {
			k.content = 0
		}
		switch t.Kind {
		case responses.OutputDelta, responses.ArgumentsDelta:
			p := g.open[k]
			if p == nil {
				p = &guardedPart{g: g.req.NewStream(outputKind(t.Kind)), itemID: t.ItemID}
				g.open[k] = p
			}
			rel, err := p.g.Write(t.Text)
			if err != nil {
				return out, raw, data, err
			}
			p.sent.WriteString(rel)
			edit(i, rel)
		default:
			if final, ok := g.done[k]; ok {
				edit(i, final)
				continue
			}
			if p := g.open[k]; p != nil {
				rest, err := p.g.Close()
				if err != nil {
					return out, raw, data, err
				}
				if rest != "" {
					out = appendResponsesDelta(out, p.itemID, k, rest, gjson.GetBytes(data, "sequence_number").Int())
				}
				p.sent.WriteString(rest)
				delete(g.open, k)
				g.done[k] = p.sent.String()
				edit(i, g.done[k])
				continue
			}
			if t.Text == "" { // a part just opened: nothing to check yet
				continue
			}
			// A full text no delta announced: checked whole.
			final, err := g.req.CheckOutput(outputKind(t.Kind), t.Text)
			if err != nil {
				return out, raw, data, err
			}
			g.done[k] = final
			edit(i, final)
		}
	}
	if len(edits) == 0 {
		return out, raw, data, nil
	}
	d, err := responses.ApplyEdits(data, responses.TextsOf(ts), edits)
	if err != nil {
		return out, raw, data, err // fails closed: guardrail_failed
	}
	r := append([]byte("event: "), responses.EventType(d)...)
	r = translate.AppendData(append(r, '\n'), d)
	return out, r, d, nil
}

// appendResponsesDelta writes the rest a part's guard held back as one more
// delta event. It shares the sequence number of the done event it precedes,
// which the SDKs do not check for gaps or repeats.
func appendResponsesDelta(out []byte, itemID string, k partKey, rest string, seq int64) []byte {
	typ := "response.output_text.delta"
	if k.args {
		typ = "response.function_call_arguments.delta"
	}
	d := []byte(`{"type":"` + typ + `","sequence_number":` + strconv.FormatInt(seq, 10) + `,"item_id":`)
	d = oaierror.AppendString(d, itemID)
	d = append(d, `,"output_index":`+strconv.FormatInt(k.output, 10)...)
	if !k.args {
		d = append(d, `,"content_index":`+strconv.FormatInt(k.content, 10)+`,"logprobs":[]`...)
	}
	d = append(d, `,"delta":`...)
	d = oaierror.AppendString(d, rest)
	d = append(d, '}')
	out = append(out, "event: "+typ+"\n"...)
	return translate.AppendData(out, d)
}
