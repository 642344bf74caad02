package devfront

import "strings"

// normalizePath applies the HCM's normalize_path (RFC 3986 dot-segment removal) and
// merge_slashes to the path part of a request target, before ext_proc and routing see it.
// Percent-decoding of unreserved characters, which Envoy's canonicaliser also does, is not
// emulated. ok is false for a target Envoy would reject.
func normalizePath(target string, dots, slashes bool) (string, bool) {
	path, query, hasQuery := strings.Cut(target, "?")
	if !strings.HasPrefix(path, "/") {
		return "", false
	}
	if dots {
		path = removeDotSegments(path)
	}
	if slashes {
		for strings.Contains(path, "//") {
			path = strings.ReplaceAll(path, "//", "/")
		}
	}
	if hasQuery {
		return path + "?" + query, true
	}
	return path, true
}

// removeDotSegments is RFC 3986 §5.2.4 for an absolute path.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}
