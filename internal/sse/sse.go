// Package sse cuts a Server-Sent Events byte stream, delivered in arbitrary
// chunks, into complete events.
//
// Envoy hands a STREAMED response body to the processor in pieces whose
// boundaries bear no relation to SSE events (Envoy ext_proc: STREAMED bodies arrive in arbitrary chunks): a chunk may hold half
// a line, a split "\r\n", a split UTF-8 rune, or many events. A Scanner
// buffers the bytes and returns each event once its terminating blank line has
// arrived, together with the exact bytes it was made of, so the caller can
// pass events through unchanged, drop them, or replace them.
//
// The scanner runs once per body chunk of every streamed response, so it is
// allocation-lean: it reuses one buffer, compacts it only when room is
// needed, never rescans bytes it has already searched, and returns fields
// that alias its buffer instead of copying them.
package sse

import (
	"bytes"
	"errors"
	"fmt"
)

// ErrEventTooLarge is reported by [Scanner.Err] when one event grows past
// [Scanner.MaxEventSize].
var ErrEventTooLarge = errors.New("sse: event exceeds size limit")

// Event is one complete SSE event. Its slices alias the Scanner's buffers and
// are valid only until the next call to Feed, Next, Finish or Reset.
type Event struct {
	// Raw holds the exact bytes of the event, including its terminating blank
	// line. Concatenating Raw of every event, then Rest, reproduces the input.
	Raw []byte
	// Name is the value of the last "event" field, nil if there is none.
	Name []byte
	// Data is the values of all "data" fields joined with "\n"; nil if the
	// event has no data field, empty but non-nil for a bare "data:". Per the
	// SSE spec only an event with data is dispatched to an application, so
	// Data == nil means "nothing to act on, pass Raw through".
	Data []byte
	// ID is the value of the last "id" field (values containing NUL are
	// ignored, as the SSE spec requires), nil if there is none.
	ID []byte

	fields bool // at least one field line, known or not
}

// IsComment reports whether the event has no field lines: it is made only of
// comment lines such as ": keep-alive", or is a stray blank line.
func (e Event) IsComment() bool { return !e.fields }

// minBuf is the smallest buffer allocated: large enough that a stream of
// typical chat-completion chunks (a few hundred bytes each) never grows it,
// small because every open stream holds one (docs/performance.md, memory
// per open stream); larger chunks grow it once, to twice their size.
const minBuf = 1 << 10

// Scanner splits SSE input into events. The zero value is ready to use; a
// Scanner is not safe for concurrent use.
//
// Lines end at "\r\n", "\n" or "\r"; an event ends at an empty line, so
// "\n\n", "\r\n\r\n", "\r\r" and mixtures all terminate one. A line starting
// with ':' is a comment; "name: value" and "name:value" are fields (one space
// after the colon is stripped); a line without a colon is a field with an
// empty value; unknown fields are ignored. A UTF-8 byte order mark at the very
// start of the stream is ignored when parsing but kept in Raw.
type Scanner struct {
	// MaxEventSize bounds the bytes of a single event (Raw), complete or
	// still buffering, protecting memory from a hostile upstream. Zero means
	// no limit. Reset keeps it.
	MaxEventSize int

	buf   []byte
	start int // offset of the first byte of the pending event in buf
	line  int // offset of the first byte of the line being searched
	scan  int // searching resumes here: buf[line:scan] holds no line terminator

	lf, cr finder // cached searches for '\n' and '\r'

	started bool // the first line of the stream has been parsed (BOM check done)
	eof     bool // Finish was called: a final '\r' is a line end
	err     error

	// Fields of the pending event, as offsets relative to start so that
	// compacting the buffer does not invalidate them. A field is absent when
	// its end is 0: a present one always follows its own name on the line.
	nameOff, nameEnd int
	idOff, idEnd     int
	dataOff, dataEnd int
	dataLines        int
	fields           bool
	data             []byte // joined data when an event has several data lines
}

// Feed appends a chunk of the stream. It copies p, so the caller may reuse p
// at once. It invalidates events returned earlier. After Err reports an error
// Feed discards its input, so the buffer stops growing.
func (s *Scanner) Feed(p []byte) {
	if s.err != nil || len(p) == 0 {
		return
	}
	if s.start == len(s.buf) && s.start > 0 {
		// Everything buffered has been returned: start over for free.
		s.shift(s.start)
		s.buf = s.buf[:0]
	}
	if len(s.buf)+len(p) > cap(s.buf) {
		s.makeRoom(len(p))
	}
	s.buf = append(s.buf, p...)
}

// makeRoom drops the consumed prefix of the buffer, growing it when the live
// bytes plus n would fill more than half of it. Keeping at least half free
// after each move means every byte moved is paid for by at least one byte
// appended later, so compaction costs amortised O(1) per input byte.
func (s *Scanner) makeRoom(n int) {
	live := len(s.buf) - s.start
	need := live + n
	var nb []byte
	if 2*need <= cap(s.buf) {
		nb = s.buf[:0]
	} else {
		nb = make([]byte, 0, max(2*need, minBuf))
	}
	nb = append(nb, s.buf[s.start:]...) // memmove: overlap is fine
	s.shift(s.start)
	s.buf = nb
}

// shift moves every buffer offset d bytes towards the front.
func (s *Scanner) shift(d int) {
	s.start -= d
	s.line -= d
	s.scan -= d
	s.lf.shift(d)
	s.cr.shift(d)
}

// Next returns the next complete event, or false when no complete event is
// buffered yet (or after an error; see Err).
func (s *Scanner) Next() (Event, bool) {
	if s.err != nil {
		return Event{}, false
	}
	buf := s.buf
	for {
		ls := s.line
		lf := s.lf.next(buf, s.scan, '\n')
		cr := s.cr.next(buf, s.scan, '\r')
		var le, ns int // line end (exclusive) and next line start
		switch {
		case cr >= 0 && (lf < 0 || cr < lf):
			switch {
			case cr+1 < len(buf):
				le, ns = cr, cr+1
				if buf[cr+1] == '\n' {
					ns++
				}
			case s.eof:
				le, ns = cr, cr+1
			default:
				// A '\r' ending the buffer may be the first half of
				// "\r\n": wait for the next byte before deciding.
				s.scan = cr
				return Event{}, s.pending()
			}
		case lf >= 0:
			le, ns = lf, lf+1
		default:
			s.scan = len(buf)
			return Event{}, s.pending()
		}
		s.line, s.scan = ns, ns

		if !s.started {
			s.started = true
			if bytes.HasPrefix(buf[ls:le], bom) {
				ls += len(bom)
			}
		}
		if ls == le {
			return s.dispatch(ns)
		}
		s.parseLine(buf[ls:le], ls-s.start)
	}
}

var bom = []byte("\xEF\xBB\xBF")

// pending checks the size limit while an event is incomplete; it always
// returns false so Next can tail-call it.
func (s *Scanner) pending() bool {
	if s.MaxEventSize > 0 && len(s.buf)-s.start > s.MaxEventSize {
		s.err = fmt.Errorf("%w: more than %d bytes buffered", ErrEventTooLarge, s.MaxEventSize)
	}
	return false
}

// dispatch builds the event ending just before offset end and starts the next.
func (s *Scanner) dispatch(end int) (Event, bool) {
	if s.MaxEventSize > 0 && end-s.start > s.MaxEventSize {
		s.err = fmt.Errorf("%w: event of %d bytes, limit %d", ErrEventTooLarge, end-s.start, s.MaxEventSize)
		return Event{}, false
	}
	raw := s.buf[s.start:end]
	ev := Event{Raw: raw, fields: s.fields}
	if s.nameEnd > 0 {
		ev.Name = raw[s.nameOff:s.nameEnd:s.nameEnd]
	}
	if s.idEnd > 0 {
		ev.ID = raw[s.idOff:s.idEnd:s.idEnd]
	}
	switch {
	case s.dataLines == 1:
		ev.Data = raw[s.dataOff:s.dataEnd:s.dataEnd]
	case s.dataLines > 1:
		ev.Data = s.data
	}
	s.start = end
	s.nameOff, s.nameEnd = 0, 0
	s.idOff, s.idEnd = 0, 0
	s.dataOff, s.dataEnd, s.dataLines = 0, 0, 0
	s.fields = false
	return ev, true
}

// parseLine records one non-empty line of the pending event; off is the
// line's offset relative to the event start.
func (s *Scanner) parseLine(line []byte, off int) {
	if line[0] == ':' {
		return // comment
	}
	s.fields = true
	name, value := line, line[len(line):]
	vOff := off + len(line)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		vOff = off + i + 1
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
			vOff++
		}
	}
	switch string(name) {
	case "data":
		s.dataLines++
		switch s.dataLines {
		case 1:
			s.dataOff, s.dataEnd = vOff, vOff+len(value)
		case 2:
			first := s.buf[s.start+s.dataOff : s.start+s.dataEnd]
			s.data = append(append(append(s.data[:0], first...), '\n'), value...)
		default:
			s.data = append(append(s.data, '\n'), value...)
		}
	case "event":
		s.nameOff, s.nameEnd = vOff, vOff+len(value)
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			s.idOff, s.idEnd = vOff, vOff+len(value)
		}
	}
}

// Rest returns the buffered bytes that do not yet form a complete event: what
// to flush unchanged at end of stream. It aliases the buffer.
func (s *Scanner) Rest() []byte { return s.buf[s.start:] }

// Finish marks the end of the input, so a '\r' ending the buffer counts as a
// line end: call it at end_of_stream, then drain Next before taking Rest. An
// unterminated final event stays in Rest and is never returned, as the SSE
// spec discards it. Feed must not be called after Finish until Reset.
func (s *Scanner) Finish() { s.eof = true }

// Err returns the error that stopped the scanner, wrapping ErrEventTooLarge,
// or nil. Once set, Next returns false and Feed discards input until Reset;
// Rest still returns the bytes buffered so far.
func (s *Scanner) Err() error { return s.err }

// Reset empties the scanner for a new stream, keeping its buffers and
// MaxEventSize.
func (s *Scanner) Reset() {
	*s = Scanner{MaxEventSize: s.MaxEventSize, buf: s.buf[:0], data: s.data[:0]}
}

// finder caches a forward search for one byte so that repeated searches from
// increasing positions never look at the same bytes twice: at is the
// position of the occurrence found by the last search, and upto the end
// (exclusive) of the region already searched. A cached hit is valid while
// at < upto; the zero value means nothing searched yet.
type finder struct{ at, upto int }

// next returns the index of the first c at or after from, or -1. Callers pass
// non-decreasing from values between shifts, and bytes are only ever
// appended to buf.
func (f *finder) next(buf []byte, from int, c byte) int {
	if f.at >= from && f.at < f.upto {
		return f.at
	}
	i := max(from, f.upto)
	if j := bytes.IndexByte(buf[i:], c); j >= 0 {
		f.at, f.upto = i+j, i+j+1
		return f.at
	}
	f.at, f.upto = len(buf), len(buf)
	return -1
}

func (f *finder) shift(d int) { f.at -= d; f.upto -= d }
