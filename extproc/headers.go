package extproc

import (
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
// value in raw_value (spec §1.2); value is read only as a fallback for older
// runtimes. A linear scan beats building a map for the ~20 headers of a
// request.
type headers []*corev3.HeaderValue

func (h headers) get(name string) string {
	for _, hv := range h {
		if hv.GetKey() == name {
			if raw := hv.GetRawValue(); len(raw) > 0 {
				return string(raw)
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
// set is an error (spec §2.3).
type mutation struct {
	m *extprocv3.HeaderMutation
}

func (mu *mutation) get() *extprocv3.HeaderMutation {
	if mu.m == nil {
		mu.m = &extprocv3.HeaderMutation{}
	}
	return mu.m
}

// set overwrites a header (append=false is Envoy's default, spec §2.3).
func (mu *mutation) set(name, value string) {
	m := mu.get()
	m.SetHeaders = append(m.SetHeaders, &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: name, RawValue: []byte(value)},
	})
}

func (mu *mutation) remove(name string) {
	m := mu.get()
	m.RemoveHeaders = append(m.RemoveHeaders, name)
}

// setContentLength keeps content-length exact after a body rewrite: Envoy
// refuses a mutated body whose length differs from content-length with a
// local 500 (spec §3.1).
func (mu *mutation) setContentLength(n int) {
	mu.set("content-length", strconv.Itoa(n))
}

// splitPath separates the query from a :path value.
func splitPath(p string) (path, query string) {
	path, query, _ = strings.Cut(p, "?")
	return path, query
}

func itoa(n int) string { return strconv.Itoa(n) }
