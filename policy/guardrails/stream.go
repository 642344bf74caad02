package guardrails

import (
	"strings"
	"unicode/utf8"

	"github.com/tollgate-ai/tollgate/internal/detect"
)

// StreamKind says what text a Stream carries.
type StreamKind int

// Stream kinds.
const (
	Content       StreamKind = iota // one choice's message content (grounding applies)
	ToolArguments                   // one tool call's function arguments
)

// Stream applies the output guardrails to one completion text as it streams:
// one per choice's content and one per tool call's arguments. Write it the
// deltas in order and send what it returns; Close it at the end of the text
// (finish_reason or end of stream) and send what that returns too.
//
// A Stream holds back at most the policy's output window. Its output does not
// depend on how the text is split into deltas: the concatenation of what
// Write and Close return, and the decisions taken, are the same for any
// chunking, including the whole text in one Write (FuzzStreamRedactor checks
// this). Emitted text never ends inside a UTF-8 sequence.
//
// How it works: the stream commits text in steps. A step needs a full window
// of W bytes after the commit point pos (or the end of the text), runs every
// detector over that window (plus a few bytes of left context for word
// boundaries), and commits up to pos+W/2: matches starting before that point
// are redacted, restored or blocked, and the text before them is emitted. A
// match of up to W/2 bytes is therefore always seen whole, and since every
// step depends only on the text, never on when it arrived, the result is
// independent of the chunking. A private-key block longer than the window is
// handled by suppressing text from its BEGIN line until its END line.
//
// When a blocking guardrail matches, Write returns the clean text before the
// match and a *Blocked error; the stream is then dead, and the caller ends the
// response with an error event. When grounding with action block applies to a
// Content stream, nothing can be judged before the whole answer is known, so
// the stream holds everything until Close.
type Stream struct {
	r           *Request
	passthrough bool
	holdAll     bool // grounding block: emit nothing before Close
	keep        bool // grounding: keep the text (with placeholders) to score it at Close
	restore     bool
	window      int
	hold        int

	buf     []byte // raw text; buf[:pos] is committed
	pos     int
	inBlock bool // suppressing a private-key block until its END line
	blocked *Blocked
	closed  bool

	out    []byte // text emitted by the current call
	ground []byte // the completion as grounding scores it (when keep): emitted text with placeholders, not restored values
	ms     []match
	sp     []detect.Span
}

// leftContext is how many bytes before the commit point detectors see, so
// that word boundaries there are judged as in the whole text.
const leftContext = 16

// NewStream starts a stream. Call it after CheckInput.
func (r *Request) NewStream(kind StreamKind) *Stream {
	s := &Stream{r: r, window: r.p.window, hold: r.p.hold}
	s.restore = r.p.restore && r.vault.anyRestorable()
	grounded := kind == Content && r.ground != nil
	s.holdAll = grounded && r.p.grounding.action == Block
	s.keep = grounded
	s.passthrough = len(r.p.output) == 0 && !s.restore && !grounded
	return s
}

// Write feeds the next delta and returns the text that may be sent now
// (often empty while the window fills). After a block, it returns the
// *Blocked error, now and on every later call.
func (s *Stream) Write(delta string) (string, error) {
	if s.blocked != nil {
		return "", s.blocked
	}
	if s.closed {
		return "", errClosed
	}
	if s.passthrough {
		return delta, nil
	}
	s.buf = append(s.buf, delta...)
	if s.holdAll {
		return "", nil
	}
	s.out = s.out[:0]
	s.process(false)
	return s.emit()
}

// Close ends the text and returns the rest of it. Grounding is judged here;
// with action block, an ungrounded answer returns the *Blocked error and no
// text.
func (s *Stream) Close() (string, error) {
	if s.blocked != nil {
		return "", s.blocked
	}
	if s.closed {
		return "", errClosed
	}
	s.closed = true
	if s.passthrough {
		return "", nil
	}
	s.out = s.out[:0]
	s.process(false)
	s.process(true)
	if s.blocked == nil && s.keep {
		gr := s.r.p.grounding
		if res := s.r.ground.Score(string(s.ground), gr.sentenceThreshold); res.Score < gr.threshold {
			s.r.recordScore(StageOutput, gr.name, gr.action, res.Unsupported(), res.Score)
			if gr.action == Block {
				s.blocked = &Blocked{Guardrail: gr.name, Stage: StageOutput, reason: "the answer is not grounded in the supplied context"}
				return "", s.blocked
			}
		}
	}
	return s.emit()
}

type streamError string

func (e streamError) Error() string { return string(e) }

const errClosed = streamError("guardrails: write to closed stream")

func (s *Stream) emit() (string, error) {
	out := string(s.out)
	if s.blocked != nil {
		return out, s.blocked
	}
	return out, nil
}

// process runs steps while a full window is available, or, when final, until
// the text is used up.
func (s *Stream) process(final bool) {
	for s.blocked == nil {
		avail := len(s.buf) - s.pos
		if avail == 0 || (!final && avail < s.window) {
			break
		}
		var wend, commit int
		last := final && avail <= s.window
		if last {
			wend, commit = len(s.buf), len(s.buf)
		} else {
			wend = cutPoint(s.buf, s.pos+s.window)
			commit = cutPoint(s.buf, s.pos+s.window-s.hold)
		}
		if s.inBlock {
			if e := detect.FindPEMEnd(string(s.buf[s.pos:wend])); e >= 0 {
				s.pos += e
				s.inBlock = false
			} else {
				s.pos = commit
				s.inBlock = !last
			}
			continue
		}
		s.step(wend, commit, last)
	}
	s.compact()
}

// step commits the text from pos to (at least) commit, looking at the window
// that ends at wend.
func (s *Stream) step(wend, commit int, last bool) {
	p := s.r.p
	ctx := cutPoint(s.buf, max(s.pos-leftContext, 0))
	text := string(s.buf[ctx:wend])
	ms := s.ms[:0]
	for gi, g := range p.output {
		ms, s.sp = g.find(ms, s.sp, gi, text)
	}
	if s.restore {
		ms = findRestores(ms, &s.r.vault, text)
	}
	// Keep matches starting at or after pos, in buffer coordinates; split off
	// flags and note the earliest block.
	edits := ms[:0]
	blockAt, blockG := -1, -1
	var flags []match
	for _, m := range ms {
		m.start += ctx
		m.end += ctx
		if m.start < s.pos {
			continue
		}
		if m.g == restoreMatch {
			edits = append(edits, m)
			continue
		}
		switch p.output[m.g].action {
		case Flag:
			flags = append(flags, m)
		case Block:
			if m.start < commit && (blockAt < 0 || m.start < blockAt || (m.start == blockAt && m.g < blockG)) {
				blockAt, blockG = m.start, m.g
			}
		case Redact:
			edits = append(edits, m)
		}
	}
	edits = resolve(edits)
	s.ms = ms

	from := s.pos
	stop := commit
	if blockAt >= 0 {
		stop = blockAt
	}
	for _, e := range edits {
		if e.start >= commit || (blockAt >= 0 && e.end > stop) {
			if blockAt >= 0 {
				stop = min(stop, e.start)
			}
			break
		}
		s.emitRaw(s.buf[s.pos:e.start])
		s.emitEdit(e, text[e.start-ctx:e.end-ctx])
		s.pos = e.end
		if e.g != restoreMatch {
			s.r.record(StageOutput, p.output[e.g].name, Redact, 1)
		}
		if e.open && !last {
			// The key block goes on beyond the window: suppress until its END line.
			s.pos = e.start + len("-----BEGIN ")
			s.inBlock = true
			break
		}
	}
	if blockAt >= 0 {
		if !s.inBlock && s.pos < stop {
			s.emitRaw(s.buf[s.pos:stop])
			s.pos = stop
		}
		s.blocked = &Blocked{Guardrail: p.output[blockG].name, Stage: StageOutput}
		s.r.record(StageOutput, s.blocked.Guardrail, Block, 1)
	} else if !s.inBlock && s.pos < commit {
		s.emitRaw(s.buf[s.pos:commit])
		s.pos = commit
	}
	for _, f := range flags {
		if f.start >= from && f.start < s.pos {
			s.r.record(StageOutput, p.output[f.g].name, Flag, 1)
		}
	}
}

// emitRaw emits text unchanged.
func (s *Stream) emitRaw(b []byte) {
	s.out = append(s.out, b...)
	if s.keep {
		s.ground = append(s.ground, b...)
	}
}

// emitEdit emits the replacement of the matched value: the original for a
// placeholder being restored, else a placeholder for the redacted value.
// Grounding sees placeholders either way, so neither restored nor redacted
// values count for or against the answer.
func (s *Stream) emitEdit(e match, value string) {
	if e.g == restoreMatch {
		orig, _ := s.r.vault.restorable(value)
		s.out = append(s.out, orig...)
		if s.keep {
			s.ground = append(s.ground, value...)
		}
		return
	}
	p := s.r.vault.placeholder(e.label, value, false, false)
	s.out = append(s.out, p...)
	if s.keep {
		s.ground = append(s.ground, p...)
	}
}

// findRestores appends the restorable placeholders in s.
func findRestores(dst []match, v *Vault, s string) []match {
	for from := 0; from < len(s); {
		k := strings.IndexByte(s[from:], '[')
		if k < 0 {
			break
		}
		i := from + k
		from = i + 1
		if e := findPlaceholder(s, i); e > 0 {
			if _, ok := v.restorable(s[i:e]); ok {
				dst = append(dst, match{start: i, end: e, g: restoreMatch})
				from = e
			}
		}
	}
	return dst
}

// compact drops committed text no longer needed as left context.
func (s *Stream) compact() {
	if s.pos < 4096 || s.pos < len(s.buf)/2 {
		return
	}
	cut := cutPoint(s.buf, s.pos-leftContext)
	n := copy(s.buf, s.buf[cut:])
	s.buf = s.buf[:n]
	s.pos -= cut
}

// cutPoint returns the largest x' <= x that does not fall inside a UTF-8
// sequence, judged from the bytes before x only (the byte at x may not have
// arrived yet): if a leading byte within the three bytes before x announces a
// sequence running past x, the cut moves back to that leading byte.
func cutPoint(b []byte, x int) int {
	for i := x - 1; i >= 0 && i >= x-utf8.UTFMax+1; i-- {
		c := b[i]
		if c < utf8.RuneSelf {
			return x
		}
		if utf8.RuneStart(c) {
			if i+seqLen(c) > x {
				return i
			}
			return x
		}
	}
	return x
}

// seqLen returns the length a UTF-8 leading byte announces (1 for a byte that
// cannot lead a sequence).
func seqLen(c byte) int {
	switch {
	case c&0xE0 == 0xC0:
		return 2
	case c&0xF0 == 0xE0:
		return 3
	case c&0xF8 == 0xF0:
		return 4
	}
	return 1
}
