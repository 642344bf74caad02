package openai

import (
	"bytes"

	"github.com/tidwall/sjson"

	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// Passthrough is the identity schema of a provider the client could have
// called itself (OpenAI, Azure OpenAI, any OpenAI-compatible API, the mock):
// Schema, except that responses reach the client exactly as the provider
// sent them. Its stream is a translate.RawStream: an event that needs no
// change is appended as the bytes that arrived, never decoded and
// re-encoded; only the usage the gateway asked for on the client's behalf
// is removed. Schema (used by Vertex AI for Gemini) re-frames instead.
type Passthrough struct{ Schema }

var _ translate.Verbatim = Passthrough{}

// Verbatim reports true: bodies and events pass through as sent.
func (Passthrough) Verbatim() bool { return true }

// NewStream returns the pass-through stream. Without includeUsage it drops
// the usage-only chunk ("choices":[]) and the "usage" key of the others.
func (Passthrough) NewStream(_ string, includeUsage bool) translate.Stream {
	return &PassStream{includeUsage: includeUsage}
}

// IncompleteEvent ends a stream the provider cut short (no [DONE], no error
// event), in OpenAI's error format, which SDKs raise as an error.
var IncompleteEvent = []byte(`data: {"error":{"message":"The provider's stream ended before the response was complete.","type":"server_error","param":null,"code":"stream_incomplete"}}` + "\n\n")

var doneData = []byte("[DONE]")

// PassStream is Passthrough's stream. Events after [DONE] or an error
// event still pass: the provider's bytes are the client's.
type PassStream struct {
	includeUsage  bool
	done, errored bool
	u             usage.Usage
	ok            bool
	spliced       []byte // reused for an event whose usage key is removed
}

var _ translate.RawStream = (*PassStream)(nil)

// Raw appends raw, or raw with its usage removed, or nothing for the
// usage-only chunk the client did not ask for.
func (s *PassStream) Raw(out, raw, data []byte) []byte {
	out, _ = s.RawText(out, raw, data)
	return out
}

// RawText is Raw that also returns the bytes of completion text the event
// carries (ChunkText), read in the same pass over the event.
func (s *PassStream) RawText(out, raw, data []byte) ([]byte, int) {
	if len(data) == 0 || data[0] != '{' { // comments, [DONE], non-JSON
		if bytes.Equal(data, doneData) {
			s.done = true
		}
		return append(out, raw...), 0
	}
	c := readChunk(data)
	if c.errored {
		s.errored = true
	}
	usageObject := len(c.usage) > 0 && c.usage[0] == '{'
	if usageObject {
		// Providers may repeat usage (Gemini sends it on content chunks);
		// the last one is the total.
		if got, ok := usage.FromOpenAI(data); ok {
			s.u, s.ok = got, true
		}
	}
	if s.includeUsage || c.usage == nil {
		return append(out, raw...), c.text
	}
	if usageObject && !c.choice {
		return out, c.text // the usage-only chunk the client did not ask for
	}
	i := bytes.Index(raw, data)
	if i < 0 { // multi-line data is not how chat completions stream
		return append(out, raw...), c.text
	}
	// Every chunk carries "usage" when the gateway injected include_usage,
	// so the key is cut out in place: no decoding, no allocation.
	if a, b, ok := cutMember(data, c.usageAt, c.usageAt+len(c.usage)); ok {
		out = append(out, raw[:i+a]...)
		return append(out, raw[i+b:]...), c.text
	}
	stripped, err := sjson.DeleteBytes(data, "usage")
	if err != nil {
		return append(out, raw...), c.text
	}
	out = append(out, raw[:i]...)
	out = append(out, stripped...)
	return append(out, raw[i+len(data):]...), c.text
}

// cutMember finds the bytes to remove with the object member whose value
// is obj[vs:ve]: obj[a:b] is the member and one comma next to it (the one
// before it, or for the first member the one after it, with the whitespace
// before that comma), so obj[:a]+obj[b:] is the object without it, as
// sjson.DeleteBytes writes it. ok is false for layouts it does not expect
// (a key with escapes, a value that is not a member's); the caller then
// falls back to sjson.
func cutMember(obj []byte, vs, ve int) (a, b int, ok bool) {
	if vs <= 0 || ve > len(obj) {
		return 0, 0, false
	}
	i := skipSpaceBack(obj, vs-1)
	if i < 0 || obj[i] != ':' {
		return 0, 0, false
	}
	i = skipSpaceBack(obj, i-1)
	if i < 0 || obj[i] != '"' {
		return 0, 0, false
	}
	q := bytes.LastIndexByte(obj[:i], '"') // the key's opening quote
	if q < 0 || bytes.IndexByte(obj[q:i], '\\') >= 0 {
		return 0, 0, false
	}
	switch p := skipSpaceBack(obj, q-1); {
	case p < 0:
		return 0, 0, false
	case obj[p] == ',':
		return p, ve, true
	case obj[p] == '{':
		b = ve
		if n := skipSpace(obj, ve); n < len(obj) && obj[n] == ',' {
			b = n + 1
		}
		return p + 1, b, true
	}
	return 0, 0, false
}

// skipSpaceBack returns the index of the last non-space byte at or before i.
func skipSpaceBack(b []byte, i int) int {
	for i >= 0 && b[i] <= ' ' {
		i--
	}
	return i
}

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' {
		i++
	}
	return i
}

// Event takes an event without its raw bytes: it is framed as one data line
// per line of data, as the SSE spec reads it back.
func (s *PassStream) Event(out []byte, name, data []byte) []byte {
	s.spliced = s.spliced[:0]
	if len(name) > 0 {
		s.spliced = append(append(append(s.spliced, "event: "...), name...), '\n')
	}
	s.spliced = translate.AppendData(s.spliced, data)
	return s.Raw(out, s.spliced, data)
}

// State reports whether [DONE] and whether an error event arrived.
func (s *PassStream) State() (done, errored bool) { return s.done, s.errored }

// End adds the incomplete-stream error event unless [DONE] or the
// provider's own error event ended the stream; complete is [DONE] without
// an error.
func (s *PassStream) End(out []byte) ([]byte, bool) {
	if !s.done && !s.errored {
		out = append(out, IncompleteEvent...)
	}
	return out, s.done && !s.errored
}

func (s *PassStream) Usage() (usage.Usage, bool) { return s.u, s.ok }

// Partial is Usage: OpenAI sends usage once, complete, at the end.
func (s *PassStream) Partial() (usage.Usage, bool) { return s.u, s.ok }
