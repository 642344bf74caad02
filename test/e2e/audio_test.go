package e2e

import (
	"bytes"
	"context"
	"mime"
	"mime/multipart"
	"testing"

	"github.com/openai/openai-go/v3"
)

const audioConfig = `version: 1
models:
  - {name: whisper-default, provider: openai, model: whisper-1}
  - {name: transcribe-default, provider: openai, model: gpt-4o-transcribe}
  - {name: claude-audio, provider: anthropic, model: claude-sonnet-4-5}
`

func TestAudioTranscription(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: audioConfig})
	audio := bytes.Repeat([]byte("RIFF\x00\x01fake-wave-bytes\r\n--"), 4096) // ~100 KiB, with boundary-like bytes
	resp, err := h.client.Audio.Transcriptions.New(context.Background(), openai.AudioTranscriptionNewParams{
		File:  openai.File(bytes.NewReader(audio), "speech.wav", "audio/wav"),
		Model: "whisper-default",
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != "transcribed by whisper-1" {
		t.Fatalf("text %q", resp.Text)
	}
	up := lastRequest(t, h.openai)
	if up.Path != "/v1/audio/transcriptions" || up.Header.Get("Authorization") != "Bearer "+providerSecret || up.Host != "api.openai.com" {
		t.Fatalf("upstream %s %s", up.Host, up.Path)
	}
	if up.ContentLength >= 0 && int(up.ContentLength) != len(up.Body) {
		t.Fatalf("content-length %d for %d bytes", up.ContentLength, len(up.Body))
	}
	// The audio arrived intact; only the model field changed.
	_, params, _ := mime.ParseMediaType(up.Header.Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(up.Body), params["boundary"])
	got := map[string][]byte{}
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		var b bytes.Buffer
		b.ReadFrom(p)
		got[p.FormName()] = b.Bytes()
	}
	if !bytes.Equal(got["file"], audio) || string(got["model"]) != "whisper-1" {
		t.Fatalf("upstream form: model %q, audio intact %v", got["model"], bytes.Equal(got["file"], audio))
	}
	line := h.waitRequestLogs(1)[0]
	// whisper-1 is billed by duration: 9.4 s at 0.006 $/min.
	for _, want := range []string{`"route":"transcriptions"`, `"audio_ms":9400`, `"cost_usd":"0.00094"`, `"usage_from_provider":true`, `"outcome":"completed"`} {
		if !bytes.Contains([]byte(line), []byte(want)) {
			t.Fatalf("log lacks %s: %s", want, line)
		}
	}
	// gpt-4o-transcribe is billed by tokens: 14 audio input tokens at 6.00 and 45 output tokens at 10.00 $/MTok.
	if _, err := h.client.Audio.Transcriptions.New(context.Background(), openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(audio[:100]), "a.wav", "audio/wav"), Model: "transcribe-default"}); err != nil {
		t.Fatal(err)
	}
	line = h.waitRequestLogs(2)[1]
	for _, want := range []string{`"prompt_tokens":14`, `"audio_tokens":14`, `"completion_tokens":45`, `"cost_usd":"0.000534"`} {
		if !bytes.Contains([]byte(line), []byte(want)) {
			t.Fatalf("log lacks %s: %s", want, line)
		}
	}

	// Confined like chat, and refused where the provider has no such endpoint.
	limited := h.newClient(limitedKey)
	_, err = limited.Audio.Transcriptions.New(context.Background(), openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(audio[:100]), "a.wav", "audio/wav"), Model: "whisper-default"})
	wantAPIError(t, "key not allowed the model", err, 403, "model_not_allowed")
	_, err = h.client.Audio.Transcriptions.New(context.Background(), openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(audio[:100]), "a.wav", "audio/wav"), Model: "claude-audio"})
	wantAPIError(t, "transcription on Anthropic", err, 400, "unsupported_endpoint")
	r, _ := h.raw("POST", "/v1/audio/transcriptions", gatewayKey, `{"model":"whisper-default"}`)
	if r.StatusCode != 400 {
		t.Fatalf("JSON body to the transcription endpoint: %d", r.StatusCode)
	}
}
