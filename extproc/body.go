package extproc

import (
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/extproc/internal/jsonscan"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
)

// One view of the request body: parseRequest validates it once
// (jsonscan: syntax, UTF-8, no lone surrogates, no key twice at any depth),
// so every value the gateway reads is the value a provider's parser reads.
// The steps then read it in place, without copying it into a string, and
// queue their changes as splices over the client's bytes; applyEdits writes
// them in one pass, in place when they fit.

// splice replaces body[start:end] with text.
type splice struct {
	start, end int
	text       []byte
}

// bodyError is the client's refusal for a body the scanner refused.
func bodyError(err error) *oaierror.Error {
	e, ok := err.(*jsonscan.Error)
	if !ok {
		return oaierror.InvalidRequest("invalid_json", "", "The request body is not valid JSON.")
	}
	switch e.Kind {
	case jsonscan.Duplicate:
		// A provider's parser may take a different duplicate than ours did:
		// routing on one value and billing another is not an option.
		return oaierror.InvalidRequest("duplicate_key", e.Path, "The request body has the key "+quote(e.Path)+" more than once.")
	case jsonscan.Encoding:
		return oaierror.InvalidRequest("invalid_json", e.Path, "The request body is not valid JSON: "+e.Error()+".")
	}
	if e.Reason == "the document is not an object" {
		return oaierror.InvalidRequest("invalid_json", "", "The request body must be a JSON object.")
	}
	return oaierror.InvalidRequest("invalid_json", e.Path, "The request body is not valid JSON: "+e.Error()+".")
}

// member returns the index of the top-level member name, or -1.
func (r *upstreamRequest) member(name string) int {
	for i, m := range r.members {
		if m.Is(name) {
			return i
		}
	}
	return -1
}

// get reads a top-level member of the validated body, in place.
func (r *upstreamRequest) get(name string) gjson.Result {
	i := r.member(name)
	if i < 0 {
		return gjson.Result{}
	}
	m := r.members[i]
	res := gjson.Parse(view(r.body[m.ValueStart:m.ValueEnd]))
	res.Index = m.ValueStart
	return res
}

// edit queues a change to the client's body.
func (r *upstreamRequest) edit(start, end int, text []byte) {
	r.edits = append(r.edits, splice{start: start, end: end, text: text})
}

// deleteMember queues the removal of top-level member i; applyEdits
// removes its comma with it.
func (r *upstreamRequest) deleteMember(i int) {
	if r.deleted == nil {
		r.deleted = make([]bool, len(r.members))
	}
	r.deleted[i] = true
}

// addMember queues a new top-level member, written after the last one.
func (r *upstreamRequest) addMember(name string, rawValue []byte) {
	r.added = oaierror.AppendString(r.added, name)
	r.added = append(r.added, ':')
	r.added = append(r.added, rawValue...)
	r.added = append(r.added, ',')
}

// setString queues the replacement of a string value read with gjson from
// this body (v.Index is its offset). It fails if v was not located.
func (r *upstreamRequest) setString(v gjson.Result, s string) bool {
	if v.Index <= 0 || v.Index+len(v.Raw) > len(r.body) || view(r.body[v.Index:v.Index+len(v.Raw)]) != v.Raw {
		return false
	}
	r.edit(v.Index, v.Index+len(v.Raw), r.quoted(s))
	return true
}

// quoted returns s as a JSON string, written to the room in r.texts, capped
// so that a later text never writes over it.
func (r *upstreamRequest) quoted(s string) []byte {
	start := len(r.texts)
	r.texts = oaierror.AppendString(r.texts, s)
	return r.texts[start:len(r.texts):len(r.texts)]
}

// includeUsage queues stream_options.include_usage = true, keeping any
// other stream option.
func (r *upstreamRequest) includeUsage() {
	opts := r.get("stream_options")
	switch {
	case !opts.Exists():
		r.addMember("stream_options", []byte(`{"include_usage":true}`))
	case !opts.IsObject():
		r.edit(opts.Index, opts.Index+len(opts.Raw), []byte(`{"include_usage":true}`))
	default:
		if u := opts.Get("include_usage"); u.Exists() {
			r.edit(u.Index, u.Index+len(u.Raw), []byte("true"))
			return
		}
		end := opts.Index + len(opts.Raw) - 1                     // the closing brace
		if strings.TrimSpace(opts.Raw[1:len(opts.Raw)-1]) == "" { // {}
			r.edit(opts.Index, end+1, []byte(`{"include_usage":true}`))
		} else {
			r.edit(end, end, []byte(`,"include_usage":true`))
		}
	}
}

// setModel queues the model id, adding the member if the body has none.
func (r *upstreamRequest) setModel(model string) {
	value := r.quoted(model)
	if i := r.member("model"); i >= 0 {
		r.edit(r.members[i].ValueStart, r.members[i].ValueEnd, value)
	} else {
		r.addMember("model", value) // Azure-style bodies may have none
	}
}

// memberEdits turns deleted and added members into splices.
func (r *upstreamRequest) memberEdits() {
	n := len(r.members)
	kept := n
	for _, d := range r.deleted {
		if d {
			kept--
		}
	}
	// A run of deleted members at the end is cut from the end of the last
	// kept value, taking the comma before it; any other deleted member is
	// cut up to the next member's key, taking the comma after it.
	tail := n
	for tail > 0 && r.deleted != nil && r.deleted[tail-1] {
		tail--
	}
	for i := 0; i < tail; i++ {
		if r.deleted != nil && r.deleted[i] {
			r.edit(r.members[i].KeyStart, r.members[i+1].KeyStart, nil)
		}
	}
	if tail < n {
		start := r.members[tail].KeyStart
		if tail > 0 {
			start = r.members[tail-1].ValueEnd
		}
		r.edit(start, r.members[n-1].ValueEnd, nil)
	}
	if len(r.added) == 0 {
		return
	}
	added := r.added[:len(r.added)-1] // the last comma
	if n == 0 {
		r.edit(openBrace(r.body)+1, openBrace(r.body)+1, added)
		return
	}
	if kept > 0 {
		added = append([]byte{','}, added...)
	}
	end := r.members[n-1].ValueEnd
	r.edit(end, end, added)
}

func openBrace(b []byte) int {
	for i, c := range b {
		if c == '{' {
			return i
		}
	}
	return -1
}

// applyEdits writes every queued change in one pass. It works in place
// when the result fits the body's capacity (the gRPC codec,
// extproc/internal/grpccodec, leaves spare capacity after large bodies) and nothing kept reads the
// client's bytes (redaction keeps originals for restore: then a new
// buffer). It reports false if two changes overlap, which the steps never
// queue.
func (r *upstreamRequest) applyEdits() bool {
	r.memberEdits()
	edits := r.edits
	r.edits, r.deleted, r.added, r.members = nil, nil, nil, nil
	if len(edits) == 0 {
		return true
	}
	slices.SortStableFunc(edits, func(a, b splice) int { return a.start - b.start })
	size := len(r.body)
	for i, e := range edits {
		if i > 0 && e.start < edits[i-1].end {
			return false
		}
		size += len(e.text) - (e.end - e.start)
	}
	if size <= cap(r.body) && !r.pinned {
		r.body = spliceInPlace(r.body, edits, size)
	} else {
		r.body = spliceCopy(r.body, edits, size)
	}
	r.bodyChanged = true
	return true
}

// preview returns the body with the changes queued so far (redactions,
// the model id) applied, leaving the queue and the body as they are: for
// readers that must see what the provider will get before spliceBody runs.
// Top-level member additions and removals (gateway fields, stream options)
// are not part of the preview. It copies the body, so it is only for
// opt-in paths (content capture), never the hot path.
func (r *upstreamRequest) preview() []byte {
	if len(r.edits) == 0 {
		return r.body
	}
	edits := slices.Clone(r.edits)
	slices.SortStableFunc(edits, func(a, b splice) int { return a.start - b.start })
	size := len(r.body)
	for i, e := range edits {
		if i > 0 && e.start < edits[i-1].end {
			return nil // overlapping edits: applyEdits refuses the request too
		}
		size += len(e.text) - (e.end - e.start)
	}
	return spliceCopy(r.body, edits, size)
}

func spliceCopy(b []byte, edits []splice, size int) []byte {
	out := make([]byte, 0, size)
	pos := 0
	for _, e := range edits {
		out = append(out, b[pos:e.start]...)
		out = append(out, e.text...)
		pos = e.end
	}
	return append(out, b[pos:]...)
}

// spliceInPlace rewrites b in its own array. The kept stretches between
// edits move by the growth of the edits before them: those moving left are
// copied first, front to back, then those moving right, back to front, so
// no stretch is overwritten before it moves; the edits' texts go in last.
func spliceInPlace(b []byte, edits []splice, size int) []byte {
	type stretch struct{ from, to, n int }
	var buf [8]stretch
	st := buf[:0]
	pos, shift := 0, 0
	for _, e := range edits {
		st = append(st, stretch{pos, pos + shift, e.start - pos})
		shift += len(e.text) - (e.end - e.start)
		pos = e.end
	}
	st = append(st, stretch{pos, pos + shift, len(b) - pos})
	out := b[:max(size, len(b))]
	for _, s := range st {
		if s.to <= s.from {
			copy(out[s.to:s.to+s.n], out[s.from:s.from+s.n])
		}
	}
	for i := len(st) - 1; i >= 0; i-- {
		if s := st[i]; s.to > s.from {
			copy(out[s.to:s.to+s.n], out[s.from:s.from+s.n])
		}
	}
	for i, e := range edits {
		copy(out[st[i].to+st[i].n:], e.text)
	}
	return out[:size]
}

// clone copies a string read from the body, so that nothing kept for the
// life of the request aliases (and pins, or sees edits of) the body.
func clone(s string) string { return strings.Clone(s) }

// readHook is told every value the request steps read from the client's
// JSON body, by gjson path (the differential fuzz test compares them with
// what encoding/json reads from the forwarded body).
type readHook func(path string, v gjson.Result)

// read reports a value the gateway used to the test hook x.reads; nil in
// production. Callers that build the path check x.reads first, so the hot
// path builds no path strings.
func (x *exchange) read(path string, v gjson.Result) {
	if x.reads != nil {
		x.reads(path, v)
	}
}
