package devfront

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// headerMap is Envoy's header map: ordered entries with lower-case keys, pseudo-headers
// first. Values are bytes held in strings.
type headerMap struct {
	e []headerEntry
}

type headerEntry struct{ k, v string }

func (h *headerMap) get(k string) (string, bool) {
	for _, e := range h.e {
		if e.k == k {
			return e.v, true
		}
	}
	return "", false
}

func (h *headerMap) value(k string) string {
	v, _ := h.get(k)
	return v
}

func (h *headerMap) values(k string) []string {
	var out []string
	for _, e := range h.e {
		if e.k == k {
			out = append(out, e.v)
		}
	}
	return out
}

func (h *headerMap) has(k string) bool {
	_, ok := h.get(k)
	return ok
}

// set replaces every value of k with one value, keeping the first entry's position.
func (h *headerMap) set(k, v string) {
	for i, e := range h.e {
		if e.k == k {
			h.e[i].v = v
			h.removeFrom(k, i+1)
			return
		}
	}
	h.add(k, v)
}

// add appends a value; pseudo-headers stay in front of regular headers.
func (h *headerMap) add(k, v string) {
	if strings.HasPrefix(k, ":") {
		i := 0
		for i < len(h.e) && strings.HasPrefix(h.e[i].k, ":") {
			i++
		}
		h.e = append(h.e, headerEntry{})
		copy(h.e[i+1:], h.e[i:])
		h.e[i] = headerEntry{k, v}
		return
	}
	h.e = append(h.e, headerEntry{k, v})
}

func (h *headerMap) remove(k string) { h.removeFrom(k, 0) }

func (h *headerMap) removeFrom(k string, from int) {
	out := h.e[:from]
	for _, e := range h.e[from:] {
		if e.k != k {
			out = append(out, e)
		}
	}
	h.e = out
}

func (h *headerMap) size() int { return len(h.e) }

// byteSize is Envoy's HeaderMap::byteSize: keys plus values.
func (h *headerMap) byteSize() int {
	n := 0
	for _, e := range h.e {
		n += len(e.k) + len(e.v)
	}
	return n
}

// proto encodes the map the way ext_proc does with send_header_raw_value (the default in
// all target versions): lower-case key, value in raw_value, value left empty (Envoy ext_proc API: HeaderValue.raw_value).
func (h *headerMap) proto() *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for _, e := range h.e {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: e.k, RawValue: []byte(e.v)})
	}
	return m
}

// hopByHop are the connection-specific headers the HCM strips from requests and never
// forwards on responses (Envoy ext_proc API: HeaderValue.raw_value; Envoy ext_proc: transfer-encoding).
var hopByHop = map[string]bool{
	"connection":        true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"transfer-encoding": true,
	"upgrade":           true,
}

// validHeaderName follows HeaderUtility::headerNameIsValid: an RFC 7230 token, with one
// leading ':' allowed for pseudo-headers. Upper case is allowed (keys are lower-cased).
func validHeaderName(k string) bool {
	k = strings.TrimPrefix(k, ":")
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTchar(k[i]) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValue follows HeaderUtility::headerValueIsValid: no NUL, CR or LF.
func validHeaderValue(v string) bool {
	return !strings.ContainsAny(v, "\x00\r\n")
}

// validAuthority approximates HeaderUtility::authorityIsValid: RFC 3986 authority bytes.
func validAuthority(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~%!$&'()*+,;=:[]@", c) >= 0:
		default:
			return false
		}
	}
	return true
}
