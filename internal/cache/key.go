// Package cache stores complete chat-completion answers and hands them back for
// identical requests. It holds the key definition, the entry format, the
// stores (bounded memory LRU and Redis) and the SSE replay of a stored answer.
//
// The processor decides when the cache is consulted: only after every step
// that could refuse the request (authentication, allowlists, input
// guardrails, rate-limit admission). This package knows nothing of that; it
// only answers "what is the key" and "what is stored under it".
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Strategy says which parts of a request the key covers besides the fixed
// scope (tenant, guardrail scope, endpoint, provider and provider model).
type Strategy string

// Hash strategies (docs/cache.md#keys).
const (
	// Content covers the messages' roles and contents (and tool calls and
	// results), and the tools offered.
	Content Strategy = "content"
	// ContentModel adds the model the client named (an alias and the
	// provider model it resolves to are different keys).
	ContentModel Strategy = "content+model"
	// FullRequest covers every field except the gateway's own (tollgate_*)
	// and the volatile ones (user, metadata, stream, stream_options).
	FullRequest Strategy = "full_request"
)

// ParseStrategy validates a configured strategy; empty means Content.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case "", Content:
		return Content, nil
	case ContentModel, FullRequest:
		return Strategy(s), nil
	}
	return "", fmt.Errorf("unknown hash_strategy %q (want content, content+model or full_request)", s)
}

// KeyInput is everything a key is derived from.
type KeyInput struct {
	Tenant string // always covered: tenants never share entries
	// Scope separates apps whose answers may differ for the same request:
	// the processor passes the app's guardrail policy identity, so apps
	// with the same output guardrails share entries and others do not.
	Scope         string
	Endpoint      string // e.g. "chat"
	Provider      string
	ProviderModel string
	Model         string // as the client named it; covered by ContentModel and FullRequest
	Strategy      Strategy
	Body          []byte // the client's JSON request body, already validated
}

// keyVersion changes whenever the key definition does, so old entries in a
// shared Redis are never read with a new meaning.
const keyVersion = "tollgate-cache-v1"

// volatile fields never enter a FullRequest key: they do not change the
// answer (user, metadata) or only its framing (stream, stream_options).
var volatile = map[string]bool{"user": true, "metadata": true, "stream": true, "stream_options": true}

// Key returns the hex SHA-256 key of in. The hashed material is a sequence
// of length-prefixed fields, so no two inputs share a preimage; the request
// part is canonical JSON (object keys sorted, no insignificant whitespace,
// numbers and strings as their values), so key order and formatting do not
// change the key.
func Key(in KeyInput) (string, error) {
	if !gjson.ValidBytes(in.Body) {
		return "", errors.New("cache key: body is not valid JSON")
	}
	root := gjson.ParseBytes(in.Body)
	if !root.IsObject() {
		return "", errors.New("cache key: body is not a JSON object")
	}
	var b []byte
	field := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	field(keyVersion)
	field(string(in.Strategy))
	field(in.Tenant)
	field(in.Scope)
	field(in.Endpoint)
	field(in.Provider)
	field(in.ProviderModel)
	var req []byte
	switch in.Strategy {
	case Content, ContentModel:
		req = append(req, '{')
		req = appendString(req, "messages")
		req = append(req, ':')
		req = canonical(req, root.Get("messages"))
		req = append(req, ',')
		req = appendString(req, "tools")
		req = append(req, ':')
		req = canonical(req, root.Get("tools"))
		req = append(req, '}')
		if in.Strategy == ContentModel {
			field(in.Model)
		}
	case FullRequest:
		field(in.Model)
		req = canonicalObject(req, root, func(k string) bool {
			return !volatile[k] && !strings.HasPrefix(k, "tollgate_") && k != "model"
		})
	default:
		return "", fmt.Errorf("cache key: unknown strategy %q", in.Strategy)
	}
	field(string(req))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// canonical appends v as canonical JSON; a missing value is null.
func canonical(dst []byte, v gjson.Result) []byte {
	switch {
	case !v.Exists():
		return append(dst, "null"...)
	case v.IsObject():
		return canonicalObject(dst, v, nil)
	case v.IsArray():
		dst = append(dst, '[')
		for i, e := range v.Array() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = canonical(dst, e)
		}
		return append(dst, ']')
	}
	switch v.Type {
	case gjson.String:
		return appendString(dst, v.String())
	case gjson.Number:
		// The value, not the spelling: 1, 1.0 and 1e0 are one number.
		return strconv.AppendFloat(dst, v.Float(), 'g', -1, 64)
	case gjson.True:
		return append(dst, "true"...)
	case gjson.False:
		return append(dst, "false"...)
	}
	return append(dst, "null"...)
}

// canonicalObject appends obj with its keys sorted, keeping the keys keep
// accepts (all when nil). The body was validated without duplicate keys, so
// each key is unique.
func canonicalObject(dst []byte, obj gjson.Result, keep func(string) bool) []byte {
	type member struct {
		k string
		v gjson.Result
	}
	var ms []member
	obj.ForEach(func(k, v gjson.Result) bool {
		if keep == nil || keep(k.String()) {
			ms = append(ms, member{k.String(), v})
		}
		return true
	})
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.k, b.k) })
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.k)
		dst = append(dst, ':')
		dst = canonical(dst, m.v)
	}
	return append(dst, '}')
}

// appendString appends s as a JSON string with a fixed escaping (Go's
// strconv quoting is not JSON, so escape by hand): the same text always
// yields the same bytes, whatever escapes the client used.
func appendString(dst []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
