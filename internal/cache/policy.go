package cache

import (
	"strings"

	"github.com/tidwall/gjson"
)

// Why a request bypasses the cache (the x-tollgate-cache: bypass reason in
// the log and the metric).
const (
	BypassClient           = "client_opt_out"   // Cache-Control no-cache/no-store, or tollgate_cache: false
	BypassNondeterministic = "nondeterministic" // neither temperature 0 nor a seed, and the app caches only deterministic requests
)

// Bypass returns why the request must not be answered from or stored in the
// cache, or "" when it may. cacheControl is the client's Cache-Control
// header; body is the validated request; anyTemperature is the app's
// opt-in to cache requests that are not deterministic.
//
// Deterministic means temperature 0 or a seed: the cases where the
// provider's answer to the same request is, or is meant to be, the same.
func Bypass(cacheControl string, body []byte, anyTemperature bool) string {
	if noCache(cacheControl) {
		return BypassClient
	}
	root := gjson.ParseBytes(body)
	if v := root.Get("tollgate_cache"); v.Exists() && v.Type == gjson.False {
		return BypassClient
	}
	if anyTemperature {
		return ""
	}
	if t := root.Get("temperature"); t.Type == gjson.Number && t.Float() == 0 {
		return ""
	}
	if s := root.Get("seed"); s.Type == gjson.Number {
		return ""
	}
	return BypassNondeterministic
}

// noCache reports whether a Cache-Control request header asks not to use a
// stored response (RFC 9111 §5.2.1: no-cache, no-store), matching directive
// names case-insensitively and ignoring arguments.
func noCache(h string) bool {
	for d := range strings.SplitSeq(h, ",") {
		d = strings.TrimSpace(d)
		if i := strings.IndexByte(d, '='); i >= 0 {
			d = d[:i]
		}
		if strings.EqualFold(d, "no-cache") || strings.EqualFold(d, "no-store") {
			return true
		}
	}
	return false
}
