package extproc

import (
	"bytes"
	"mime"
	"strings"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
)

// Audio transcriptions arrive as multipart/form-data: the audio and a model
// field. The gateway finds the model field by scanning the buffered body in
// place — the audio is never copied to be read — and rewrites only that
// field's value.

// formField locates the value of a multipart form field in body: the value
// is body[start:end]. n is the number of parts with that name (the value is
// the first one's): a provider's form parser may take any of several, so
// callers refuse n > 1. It copies nothing and scans each byte a bounded
// number of times.
func formField(body []byte, boundary, name string) (start, end, n int) {
	delim := []byte("--" + boundary)
	pos := 0
	for {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			return start, end, n
		}
		pos += i + len(delim)
		if bytes.HasPrefix(body[pos:], []byte("--")) {
			return start, end, n // the closing delimiter
		}
		hdrEnd := bytes.Index(body[pos:], []byte("\r\n\r\n"))
		if hdrEnd < 0 {
			return start, end, n
		}
		headers := body[pos : pos+hdrEnd]
		valueStart := pos + hdrEnd + 4
		next := bytes.Index(body[valueStart:], append([]byte("\r\n"), delim...))
		if next < 0 {
			return start, end, n
		}
		if k := partNames(headers, name); k > 0 {
			if n == 0 {
				start, end = valueStart, valueStart+next
			}
			n += k
		}
		pos = valueStart + next
	}
}

// partNames reports whether a part's Content-Disposition names the field
// name: 1 if it does, 0 if not. A part with more than one Content-Disposition
// is ambiguous (parsers take the first or the last): if any of them names
// the field, it counts as 2, so that the caller refuses it as a duplicate.
func partNames(headers []byte, name string) int {
	dispositions, named := 0, false
	for _, line := range strings.Split(string(headers), "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "content-disposition") {
			continue
		}
		dispositions++
		if _, params, err := mime.ParseMediaType(strings.TrimSpace(v)); err == nil && params["name"] == name {
			named = true
		}
	}
	switch {
	case !named:
		return 0
	case dispositions > 1:
		return 2
	}
	return 1
}

// parseMultipart reads the model of a transcription request.
func parseMultipart(x *exchange, req *upstreamRequest) error {
	mt, params, err := mime.ParseMediaType(x.contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return oaierror.InvalidRequest("invalid_content_type", "", "Audio transcriptions take a multipart/form-data body.")
	}
	x.boundary = params["boundary"]
	start, end, n := formField(req.body, x.boundary, "model")
	ok := n > 0
	switch {
	case n > 1:
		return oaierror.InvalidRequest("duplicate_key", "model", "The request has the form field \"model\" more than once.")
	case x.deployment != "":
		x.rec.model = x.deployment
	case !ok || start == end:
		return oaierror.InvalidRequest("missing_required_parameter", "model", "You must provide a model parameter.")
	default:
		x.rec.model = string(req.body[start:end])
	}
	if ok {
		x.bodyModel = string(req.body[start:end])
	}
	return nil
}

// rewriteFormModel replaces the model field's value for the provider.
func rewriteFormModel(x *exchange, req *upstreamRequest) error {
	if x.target.Model == x.bodyModel {
		return nil
	}
	start, end, n := formField(req.body, x.boundary, "model")
	if n != 1 {
		return oaierror.InvalidRequest("missing_required_parameter", "model", "You must provide a model parameter.")
	}
	out := make([]byte, 0, len(req.body)-(end-start)+len(x.target.Model))
	out = append(out, req.body[:start]...)
	out = append(out, x.target.Model...)
	out = append(out, req.body[end:]...)
	req.body, req.bodyChanged = out, true
	return nil
}
