// Package jsonscan validates a JSON document in one pass under the rules the
// gateway needs so that what it reads from a body is what every provider's
// parser reads: the syntax of RFC 8259, strings that are valid UTF-8 without
// lone surrogate escapes, and no key twice in any object (keys compared after
// decoding escapes). A last-key-wins parser (Go's encoding/json, Python's
// json, JSON.parse) and a first-key reader (gjson) then agree on every value.
//
// The scanner does not build a tree and does not allocate per key: an
// object's keys are compared linearly against the keys already seen in it,
// and only objects with many keys get a map.
package jsonscan

import "strconv"

// MaxDepth is the deepest nesting of arrays and objects accepted. Request
// bodies nest a few levels (tool schemas a few more); parsers such as
// Python's json give up near 1000.
const MaxDepth = 512

// Kind classifies a refusal.
type Kind uint8

// Kinds of refusal.
const (
	Syntax    Kind = iota + 1 // not JSON, or nested deeper than MaxDepth
	Encoding                  // a string with invalid UTF-8 or a lone surrogate escape
	Duplicate                 // a key twice in one object
)

// Error says why a document was refused and where.
type Error struct {
	Kind Kind
	// Path is the JSON path of the value at fault (for Duplicate, of the
	// repeated key), e.g. messages[0].content; "" for the document itself.
	Path   string
	Offset int    // byte offset where the problem was found
	Reason string // what is wrong, e.g. "invalid UTF-8 in a string"
}

func (e *Error) Error() string {
	s := e.Reason
	if e.Path != "" {
		s += " at " + e.Path
	}
	return s + " (byte " + strconv.Itoa(e.Offset) + ")"
}

// Member is one member of the top-level object: the key as written (between
// its quotes, escapes not decoded) and the value's byte range.
type Member struct {
	Key                  []byte // aliases the scanned document
	KeyStart             int    // offset of the key's opening quote
	ValueStart, ValueEnd int    // the value is doc[ValueStart:ValueEnd]
	escaped              bool
}

// Name returns the key, escapes decoded. It allocates only for keys with
// escapes, or to make the string.
func (m Member) Name() string {
	if !m.escaped {
		return string(m.Key)
	}
	return string(appendUnescaped(nil, m.Key))
}

// Is reports whether the decoded key equals name, without allocating for
// keys written without escapes.
func (m Member) Is(name string) bool {
	if !m.escaped {
		return string(m.Key) == name
	}
	return m.Name() == name
}

// HasPrefix reports whether the decoded key starts with prefix.
func (m Member) HasPrefix(prefix string) bool {
	if !m.escaped {
		return len(m.Key) >= len(prefix) && string(m.Key[:len(prefix)]) == prefix
	}
	n := m.Name()
	return len(n) >= len(prefix) && n[:len(prefix)] == prefix
}

// Validate checks that doc is one JSON value under the package's rules.
func Validate(doc []byte) error {
	var s scanner
	return s.run(doc)
}

// Object checks doc like Validate, requires it to be an object (a Syntax
// error otherwise), and appends its top-level members, in document order, to
// dst.
func Object(doc []byte, dst []Member) ([]Member, error) {
	var s scanner
	s.collect, s.members = true, dst
	if err := s.run(doc); err != nil {
		return dst, err
	}
	return s.members, nil
}
