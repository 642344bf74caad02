package extproc

import (
	"bytes"
	"mime/multipart"
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
	s, e, ok := formField(body, boundary, "model")
	if !ok || string(body[s:e]) != "whisper-default" {
		t.Fatalf("model = %q %v", body[s:e], ok)
	}
	if s, e, ok := formField(body, boundary, "language"); !ok || string(body[s:e]) != "en" {
		t.Fatalf("language = %q", body[s:e])
	}
	if _, _, ok := formField(body, boundary, "prompt"); ok {
		t.Fatal("found a field that is not there")
	}
	if _, _, ok := formField(body, "other", "model"); ok {
		t.Fatal("found a field with the wrong boundary")
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
		s, e, ok := formField(body, boundary, "model")
		if ok && (s < 0 || e < s || e > len(body)) {
			t.Fatalf("bounds %d..%d of %d", s, e, len(body))
		}
	})
}
