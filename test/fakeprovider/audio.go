package fakeprovider

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/tidwall/sjson"
)

// transcription answers POST /v1/audio/transcriptions (multipart/form-data
// with a file and a model) in OpenAI's JSON format. The text names the
// model so tests can see what arrived. The usage has the shape the model is
// billed by: whisper-1 by duration ("type":"duration"), the gpt-4o
// transcription models by tokens ("type":"tokens"), each from its fixture.
func (p *openAI) transcription(contentType string, body []byte, id string) (reply, bool) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return p.apiError(http.StatusBadRequest, id, "Content-Type must be multipart/form-data.", "invalid_request_error", "", ""), false
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var model string
	audio := -1
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p.apiError(http.StatusBadRequest, id, "Malformed multipart body.", "invalid_request_error", "", ""), false
		}
		b, _ := io.ReadAll(part)
		switch part.FormName() {
		case "model":
			model = string(b)
		case "file":
			audio = len(b)
		}
	}
	switch {
	case model == "":
		return p.apiError(http.StatusBadRequest, id, "you must provide a model parameter", "invalid_request_error", "model", ""), false
	case audio < 0:
		return p.apiError(http.StatusBadRequest, id, "Missing required parameter: 'file'.", "invalid_request_error", "file", "missing_required_parameter"), false
	}
	out, _ := sjson.SetBytes([]byte(`{"text":""}`), "text", "transcribed by "+model)
	switch {
	case model == "whisper-1":
		out, _ = sjson.SetRawBytes(out, "usage", p.transcribeDuration)
	case strings.HasSuffix(model, "-transcribe"):
		out, _ = sjson.SetRawBytes(out, "usage", p.transcribeTokens)
	}
	return p.ok(id, out), true
}
