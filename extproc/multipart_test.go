package extproc

import (
	"bytes"
	"mime/multipart"
	"strings"
	"testing"
)

func formBody(t testing.TB, fields map[string]string, audio []byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fw, _ := w.CreateFormFile("file", "speech.mp3")
	fw.Write(audio)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	w.Close()
	return b.Bytes(), w.Boundary()
}

func TestFormField(t *testing.T) {
	// The audio holds bytes that look like a boundary and a model field.
	audio := []byte("ID3\x00\r\n--not-the-boundary\r\nname=\"model\"\r\n\r\nevil\x00\xff")
	body, boundary := formBody(t, map[string]string{"model": "whisper-default", "language": "en"}, audio)
	s, e, n := formField(body, boundary, "model")
	if n != 1 || string(body[s:e]) != "whisper-default" {
		t.Fatalf("model = %q %v", body[s:e], n)
	}
	if s, e, n := formField(body, boundary, "language"); n != 1 || string(body[s:e]) != "en" {
		t.Fatalf("language = %q", body[s:e])
	}
	if _, _, n := formField(body, boundary, "prompt"); n != 0 {
		t.Fatal("found a field that is not there")
	}
	if _, _, n := formField(body, "other", "model"); n != 0 {
		t.Fatal("found a field with the wrong boundary")
	}
}

// TestMultipartDuplicateModel: two model parts are ambiguous (form parsers
// differ on which one wins), so the request is refused before routing.
func TestMultipartDuplicateModel(t *testing.T) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	w.WriteField("model", "whisper-1")
	fw, _ := w.CreateFormFile("file", "a.mp3")
	fw.Write([]byte("audio"))
	w.WriteField("model", "openai/gpt-4o-mini")
	w.Close()
	if _, _, n := formField(b.Bytes(), w.Boundary(), "model"); n != 2 {
		t.Fatalf("counted %d model parts", n)
	}
	// One part naming the field in two Content-Disposition headers is as
	// ambiguous.
	twice := "--b\r\nContent-Disposition: form-data; name=\"language\"\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nx\r\n--b--\r\n"
	if _, _, n := formField([]byte(twice), "b", "model"); n != 2 {
		t.Fatalf("counted %d for %q", n, twice)
	}
	twice = strings.Replace(twice, `"language"`, `"model"`, 1)
	if _, _, n := formField([]byte(twice), "b", "model"); n != 2 {
		t.Fatalf("counted %d for %q", n, twice)
	}
	x := newTestExchange(t)
	x.handle(reqHeaders(false, ":method", "POST", ":path", "/v1/audio/transcriptions", "authorization", "Bearer "+testKey,
		"content-type", w.FormDataContentType()))
	resp, _ := x.handle(reqBody(b.String()))
	status, e := immediateError(t, resp)
	if status != 400 || e.Error.Code == nil || *e.Error.Code != "duplicate_key" || e.Error.Param == nil || *e.Error.Param != "model" {
		t.Fatalf("got %d %+v", status, e.Error)
	}
}

func FuzzFormField(f *testing.F) {
	body, boundary := formBody(f, map[string]string{"model": "m"}, []byte("audio"))
	f.Add(body, boundary)
	f.Add([]byte("--b\r\n\r\n\r\n--b--"), "b")
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		if boundary == "" {
			return
		}
		s, e, n := formField(body, boundary, "model")
		if n > 0 && (s < 0 || e < s || e > len(body)) {
			t.Fatalf("bounds %d..%d of %d", s, e, len(body))
		}
	})
}
