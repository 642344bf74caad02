package messages

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Helpers for targets that speak Messages natively: the body passes through
// and the gateway only reads it (usage) or rewrites text in place
// (guardrails).

// ReadUsage reads the usage of a Messages response body, in OpenAI's terms
// (prompt_tokens is the sum of Anthropic's three input counts).
func ReadUsage(body []byte) (usage.Usage, bool) {
	obj := gjson.GetBytes(body, "usage")
	if !obj.IsObject() {
		return usage.Usage{}, false
	}
	a, ok := usage.FromAnthropic(usage.Anthropic{}, []byte(obj.Raw))
	if !ok {
		return usage.Usage{}, false
	}
	return a.OpenAI(), true
}

// UsageReader folds the usage of a native Messages event stream:
// message_start's message.usage, then each message_delta's cumulative usage,
// which replaces the counts it repeats. The zero value is ready to use.
type UsageReader struct {
	a     usage.Anthropic
	seen  bool
	final bool
}

// Event reads the data of one stream event.
func (r *UsageReader) Event(data []byte) {
	var obj gjson.Result
	switch gjson.GetBytes(data, "type").String() {
	case "message_start":
		obj = gjson.GetBytes(data, "message.usage")
	case "message_delta":
		obj = gjson.GetBytes(data, "usage")
	default:
		return
	}
	if !obj.IsObject() {
		return
	}
	if a, ok := usage.FromAnthropic(r.a, []byte(obj.Raw)); ok {
		r.a, r.seen = a, true
		r.final = r.final || gjson.GetBytes(data, "type").Str == "message_delta"
	}
}

// Usage returns the usage so far; final is whether a message_delta gave the
// message's totals (message_start's output_tokens is a placeholder), ok
// whether any usage was seen.
func (r *UsageReader) Usage() (u usage.Usage, final, ok bool) {
	return r.a.OpenAI(), r.final, r.seen
}

// Piece is one piece of text a guardrail checks.
type Piece struct {
	Role string // "system", "user", "assistant" or "tool" (a tool result)
	Text string
}

// Edit replaces the text of Texts.Pieces[Index].
type Edit struct {
	Index int
	Text  string
}

// Texts is the checkable text of a Messages body and where each piece is.
type Texts struct {
	Pieces []Piece
	paths  []string
}

func (t *Texts) add(role, text, path string) {
	t.Pieces = append(t.Pieces, Piece{Role: role, Text: text})
	t.paths = append(t.paths, path)
}

// ErrNotObject is returned for a body that is not a JSON object.
var ErrNotObject = errors.New("messages: body is not a JSON object")

// PromptTexts lists the text of a Messages request that input guardrails
// check: system (string or text blocks), each message's string content or
// text blocks, and tool_result content (string or text blocks, role
// "tool"), in document order. tool_use input is structured JSON, not text,
// and thinking blocks are signed (editing them breaks the signature), so
// neither is listed.
func PromptTexts(body []byte) (*Texts, error) {
	root, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	t := &Texts{}
	addContent(t, "system", "system", root.Get("system"))
	root.Get("messages").ForEach(func(i, m gjson.Result) bool {
		role := m.Get("role").String()
		base := "messages." + i.String() + ".content"
		c := m.Get("content")
		if c.Type == gjson.String {
			t.add(role, c.Str, base)
			return true
		}
		c.ForEach(func(j, b gjson.Result) bool {
			path := base + "." + j.String()
			switch b.Get("type").Str {
			case "text":
				if tx := b.Get("text"); tx.Type == gjson.String {
					t.add(role, tx.Str, path+".text")
				}
			case "tool_result":
				addContent(t, "tool", path+".content", b.Get("content"))
			}
			return true
		})
		return true
	})
	return t, nil
}

// ResponseTexts lists the text blocks of a Messages response, for output
// guardrails on a non-streamed answer.
func ResponseTexts(body []byte) (*Texts, error) {
	root, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	t := &Texts{}
	addContent(t, "assistant", "content", root.Get("content"))
	return t, nil
}

// addContent lists content that is a string or an array of blocks, taking
// the text blocks.
func addContent(t *Texts, role, path string, c gjson.Result) {
	switch {
	case c.Type == gjson.String:
		t.add(role, c.Str, path)
	case c.IsArray():
		c.ForEach(func(j, b gjson.Result) bool {
			if tx := b.Get("text"); b.Get("type").Str == "text" && tx.Type == gjson.String {
				t.add(role, tx.Str, path+"."+j.String()+".text")
			}
			return true
		})
	}
}

// Redact returns body with each edit's piece replaced by its text. body must
// be the body Texts was read from.
func (t *Texts) Redact(body []byte, edits []Edit) ([]byte, error) {
	for _, e := range edits {
		if e.Index < 0 || e.Index >= len(t.paths) {
			return nil, errors.New("messages: redaction of piece " + strconv.Itoa(e.Index) + " out of range")
		}
		var err error
		if body, err = sjson.SetBytes(body, t.paths[e.Index], e.Text); err != nil {
			return nil, errors.Join(errors.New("messages: redacting "+t.paths[e.Index]), err)
		}
	}
	return body, nil
}

func parseObject(body []byte) (gjson.Result, error) {
	if !gjson.ValidBytes(body) {
		return gjson.Result{}, ErrNotObject
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return gjson.Result{}, ErrNotObject
	}
	return root, nil
}

// DeltaKind is the kind of text a content_block_delta carries.
type DeltaKind int

// Delta kinds. Output guardrails check DeltaText as content and
// DeltaToolInput as tool arguments (JSON fragments, like chat's
// tool_calls arguments).
const (
	DeltaText      DeltaKind = iota + 1 // text_delta.text
	DeltaToolInput                      // input_json_delta.partial_json
	DeltaThinking                       // thinking_delta.thinking
)

var deltaFields = [...]string{DeltaText: "text", DeltaToolInput: "partial_json", DeltaThinking: "thinking"}
var deltaTypes = [...]string{DeltaText: "text_delta", DeltaToolInput: "input_json_delta", DeltaThinking: "thinking_delta"}

// Delta reads a native content_block_delta event's block index, kind and
// text; ok is false for every other event and delta type.
func Delta(data []byte) (index int64, kind DeltaKind, text string, ok bool) {
	ev := gjson.ParseBytes(data)
	if ev.Get("type").Str != "content_block_delta" {
		return 0, 0, "", false
	}
	d := ev.Get("delta")
	for k := DeltaText; k <= DeltaThinking; k++ {
		if d.Get("type").Str == deltaTypes[k] {
			if t := d.Get(deltaFields[k]); t.Type == gjson.String {
				return ev.Get("index").Int(), k, t.Str, true
			}
		}
	}
	return 0, 0, "", false
}

// SetDelta returns a content_block_delta event's data with its text (of the
// kind Delta reported) replaced.
func SetDelta(data []byte, kind DeltaKind, text string) ([]byte, error) {
	if kind < DeltaText || kind > DeltaThinking {
		return nil, errors.New("messages: unknown delta kind")
	}
	return sjson.SetBytes(data, "delta."+deltaFields[kind], text)
}

// BlockStop reads the index of a content_block_stop event, where a guarded
// stream must release what it held back (with AppendDelta) before the stop
// goes out.
func BlockStop(data []byte) (index int64, ok bool) {
	ev := gjson.ParseBytes(data)
	if ev.Get("type").Str != "content_block_stop" {
		return 0, false
	}
	return ev.Get("index").Int(), true
}

// AppendDelta appends a complete content_block_delta SSE event carrying
// text of kind for block index.
func AppendDelta(out []byte, index int64, kind DeltaKind, text string) []byte {
	out = deltaStart(out, int(index))
	switch kind {
	case DeltaToolInput:
		out = append(out, `"type":"input_json_delta","partial_json":`...)
	case DeltaThinking:
		out = append(out, `"type":"thinking_delta","thinking":`...)
	default:
		out = append(out, `"type":"text_delta","text":`...)
	}
	out = oaierror.AppendString(out, text)
	return append(out, "}}\n\n"...)
}

// ForVertex rewrites a Messages body for Vertex AI's Anthropic publisher
// endpoints (rawPredict, streamRawPredict): the model moves to the path, so
// it leaves the body, and the API version travels in the body as
// anthropic_version (version: vertex-2023-10-16) instead of a header
// (https://docs.cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude).
// Everything else is Anthropic's Messages body as the client sent it.
func ForVertex(body []byte, version string) ([]byte, error) {
	if _, err := parseObject(body); err != nil {
		return nil, err
	}
	out, err := sjson.DeleteBytes(body, "model")
	if err == nil {
		out, err = sjson.SetBytes(out, "anthropic_version", version)
	}
	if err != nil {
		return nil, fmt.Errorf("messages: vertex body: %w", err)
	}
	return out, nil
}
