package extproc

import (
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// headerPrefix marks headers that belong to the gateway. A client-sent one
// never survives the request_headers reply.
const headerPrefix = "x-tollgate-"

// clusterHeader is the route's cluster_header (envoy/envoy.yaml).
const clusterHeader = "x-tollgate-cluster"

// headers reads an Envoy header map. Envoy sends lower-cased keys with the
// value in raw_value (Envoy ext_proc API: HeaderValue.raw_value); value is read only as a fallback for older
// runtimes. A linear scan beats building a map for the ~20 headers of a
// request.
type headers []*corev3.HeaderValue

// get returns the value of header name, or "". The value views the
// message's bytes rather than copying them: protobuf's decoder gives each
// bytes field an array of its own and nothing writes to it, so a value kept
// for the request (its id, path) holds only that value's array.
func (h headers) get(name string) string {
	for _, hv := range h {
		if hv.GetKey() == name {
			if raw := hv.GetRawValue(); len(raw) > 0 {
				return view(raw)
			}
			return hv.GetValue()
		}
	}
	return ""
}

func headersOf(m *corev3.HeaderMap) headers {
	if m == nil {
		return nil
	}
	return headers(m.GetHeaders())
}

// mutation accumulates a HeaderMutation. Values go in raw_value only: with
// Envoy's default runtime a value-only entry sets the header to "" and both
// set is an error (Envoy ext_proc API: HeaderMutation).
//
// A request sets a dozen or more headers; each would cost three objects (the
// option, the header, the value's bytes). They are carved instead from
// chunks: header entries a few at a time, values from a shared byte buffer,
// each value's slice capped at its length so an append elsewhere copies
// rather than writing into the next value. A mutation in use is not copied:
// the copies would hand out the same free entries.
//
// Most replies set one to nine headers, so the first chunk is small and
// holds the HeaderMutation itself (firstChunk); later ones hold eight.
type mutation struct {
	m    *extprocv3.HeaderMutation
	free []headerSet // the current chunk's unused entries
	raw  []byte      // the current value buffer; its spare capacity is unused

	// Room allocated with what holds the mutation (a reply), used instead
	// of an allocation of its own: for the first chunk (large preferred),
	// or for a mutation that only removes headers (bare).
	room  *firstChunk
	large *largeChunk
	bare  *bareChunk
}

// headerSet is one set_headers entry: an option and the header it points to,
// allocated together.
type headerSet struct {
	opt corev3.HeaderValueOption
	hv  corev3.HeaderValue
}

const (
	headerChunk  = 8   // header entries allocated at once after the first chunk
	rawChunk     = 256 // bytes of values allocated at once after the first chunk
	firstSets    = 4   // header entries of the first chunk
	firstRaw     = 128 // bytes of values of the first chunk
	firstPtrs    = 12  // set_headers capacity of the first chunk: a buffered response body reply sets 9 to 11
	firstRemoves = 4   // remove_headers capacity of a mutation's first allocation
	largeSets    = 9   // header entries of a large first chunk: the metering headers (reserveFor)
	largeRaw     = 192 // bytes of values of a large first chunk
)

// firstChunk is a mutation's first allocation: the HeaderMutation with room
// for its first set_headers pointers, entries and values, and for its first
// remove_headers. Each is used in place, never copied.
type firstChunk struct {
	m    extprocv3.HeaderMutation
	ptrs [firstPtrs]*corev3.HeaderValueOption
	rm   [firstRemoves]string
	sets [firstSets]headerSet
	raw  [firstRaw]byte
}

// largeChunk is firstChunk for a reply known to set many headers.
type largeChunk struct {
	m    extprocv3.HeaderMutation
	ptrs [firstPtrs]*corev3.HeaderValueOption
	rm   [firstRemoves]string
	sets [largeSets]headerSet
	raw  [largeRaw]byte
}

func (mu *mutation) get() *extprocv3.HeaderMutation {
	if mu.m == nil && (mu.room != nil || mu.large != nil) {
		mu.reserve()
	}
	if mu.m == nil {
		a := mu.bare
		if a == nil {
			a = &bareChunk{}
		}
		a.m.SetHeaders, a.m.RemoveHeaders = a.sets[:0], a.rm[:0]
		mu.m = &a.m
	}
	return mu.m
}

// bareChunk is the mutation with room for its first set_headers and
// remove_headers entries, for a reply that only removes headers.
type bareChunk struct {
	m    extprocv3.HeaderMutation
	sets [headerChunk]*corev3.HeaderValueOption
	rm   [firstRemoves]string
}

// reserveFor makes room for n more headers at once when the mutation is
// still empty and n is more than a first chunk holds: one allocation
// instead of two.
func (mu *mutation) reserveFor(n int) {
	if mu.m != nil || n <= firstSets {
		return
	}
	if mu.large == nil {
		mu.large = &largeChunk{}
	}
	mu.reserve()
}

// set overwrites a header (append=false is Envoy's default, Envoy ext_proc API: HeaderMutation).
func (mu *mutation) set(name, value string) {
	mu.reserve()
	mu.add(name, copyValue(mu, value))
}

// setBytes is set with the value's bytes, which it copies: callers format
// into a buffer on their stack.
func (mu *mutation) setBytes(name string, value []byte) {
	mu.reserve()
	mu.add(name, copyValue(mu, value))
}

// setInt is set with a decimal value.
func (mu *mutation) setInt(name string, v int64) {
	var b [20]byte
	mu.setBytes(name, strconv.AppendInt(b[:0], v, 10))
}

// reserve makes sure an entry is free, allocating a chunk (entries and value
// room) when none is.
func (mu *mutation) reserve() {
	if len(mu.free) > 0 {
		return
	}
	if mu.m == nil {
		if c := mu.large; c != nil {
			c.m.SetHeaders, c.m.RemoveHeaders = c.ptrs[:0], c.rm[:0]
			mu.m, mu.free, mu.raw = &c.m, c.sets[:], c.raw[:0]
			return
		}
		c := mu.room
		if c == nil {
			c = &firstChunk{}
		}
		c.m.SetHeaders, c.m.RemoveHeaders = c.ptrs[:0], c.rm[:0]
		mu.m, mu.free, mu.raw = &c.m, c.sets[:], c.raw[:0]
		return
	}
	c := &headerChunkOf{}
	mu.free = c.sets[:]
	if cap(mu.raw)-len(mu.raw) < rawChunk {
		mu.raw = c.raw[:0]
	}
}

// add appends a set_headers entry from a reserved chunk.
func (mu *mutation) add(name string, raw []byte) {
	m := mu.get()
	e := &mu.free[0]
	mu.free = mu.free[1:]
	e.hv.Key, e.hv.RawValue = name, raw
	e.opt.Header = &e.hv
	m.SetHeaders = append(m.SetHeaders, &e.opt)
}

// headerChunkOf is what a mutation allocates at once: header entries and
// room for their values.
type headerChunkOf struct {
	sets [headerChunk]headerSet
	raw  [rawChunk]byte
}

// copyValue copies v into the value buffer and returns its copy, capped.
func copyValue[T string | []byte](mu *mutation, v T) []byte {
	n := len(v)
	if cap(mu.raw)-len(mu.raw) < n {
		if n > rawChunk/2 {
			b := make([]byte, n) // a large value gets its own: the buffer's rest stays usable
			copy(b, v)
			return b
		}
		mu.raw = make([]byte, 0, rawChunk)
	}
	start := len(mu.raw)
	mu.raw = append(mu.raw, v...)
	return mu.raw[start:len(mu.raw):len(mu.raw)]
}

func (mu *mutation) remove(name string) {
	m := mu.get()
	m.RemoveHeaders = append(m.RemoveHeaders, name)
}

// setContentLength keeps content-length exact after a body rewrite: Envoy
// refuses a mutated body whose length differs from content-length with a
// local 500 (Envoy ext_proc: content-length after a body mutation).
func (mu *mutation) setContentLength(n int) {
	mu.setInt("content-length", int64(n))
}

// Header rules, both directions. They are the documented lists of
// docs/architecture.md ("Headers"); change both together.
//
// strippedUpstream reports whether a client's request header k must not reach
// a provider: everything the gateway itself consumes (x-tollgate-*,
// x-agent-id, the gateway key in any of its headers), accept-encoding (usage
// is read from uncompressed bodies, Envoy ext_proc: STREAMED bodies arrive in arbitrary chunks), and headers that select a
// provider account's scope or features (openai-organization, openai-project,
// openai-beta; anthropic-version, anthropic-beta). A client may not steer the
// platform's account: OpenAI answers an organization or project that does
// not match the platform's key with 401, and an anthropic-beta name can turn
// on differently priced features. The gateway sets the headers its providers
// need itself (the credential, anthropic-version). Every other header passes.
func strippedUpstream(k string) bool {
	switch k {
	case "authorization", "api-key", "x-api-key", "accept-encoding", "x-agent-id":
		return true
	}
	return strings.HasPrefix(k, headerPrefix) || strings.HasPrefix(k, "openai-") || strings.HasPrefix(k, "anthropic-") ||
		// AWS and Google request headers are part of what the gateway signs
		// or authenticates for Bedrock and Vertex; a client's must not mix in.
		strings.HasPrefix(k, "x-amz-") || strings.HasPrefix(k, "x-goog-")
}

// strippedDownstream reports whether a provider's response header k must not
// reach the client: headers that name or describe the platform's provider
// account (organization, project, Azure region and deployment) and the
// provider's rate-limit headers, which disclose the account's quota. The
// gateway's own x-ratelimit-* (set in the same reply where gateway limits
// apply; Envoy's MutationUtils::applyHeaderMutations applies remove_headers
// before set_headers) take their place.
// A provider's retry-after, retry-after-ms and x-should-retry pass: they tell
// SDKs when to retry, not how large the account is. x-tollgate-* is the
// gateway's namespace, never a provider's.
func strippedDownstream(k string) bool {
	switch k {
	case "openai-organization", "openai-project", "anthropic-organization-id":
		return true
	}
	for _, p := range [...]string{"x-ratelimit-", "anthropic-ratelimit-", "x-ms-", "azureml-", headerPrefix} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// removeMatching removes every header of h that drop selects, each name once.
func removeMatching(h headers, mu *mutation, drop func(string) bool) {
	var seen []string // a handful at most: a slice beats a map
	for _, hv := range h {
		k := hv.GetKey()
		if drop(k) && !slices.Contains(seen, k) {
			seen = append(seen, k)
			mu.remove(k)
		}
	}
}

// splitPath separates the query from a :path value.
func splitPath(p string) (path, query string) {
	path, query, _ = strings.Cut(p, "?")
	return path, query
}

func itoa(n int) string { return strconv.Itoa(n) }
