package usage

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
)

// FromTranscription reads the "usage" object of an audio transcription
// response (POST /v1/audio/transcriptions, JSON formats). It has one of two
// shapes:
//
//	{"type":"tokens","input_tokens":14,"output_tokens":45,"total_tokens":59,
//	 "input_token_details":{"audio_tokens":14,"text_tokens":0}}
//	{"type":"duration","seconds":3.2}
//
// Token usage becomes prompt (input) and completion (output) tokens, with
// the audio part in AudioTokens; without input_token_details every input
// token is taken as audio, the dearer kind, so a bill is never low. Duration
// usage becomes AudioMillis, read from the number's decimal text and rounded
// up to the next millisecond. It reports false when usage is absent, has
// another type, or has a count that is not a whole number in [0, 2^53] (a
// duration: not a non-negative number below 2^53 ms).
func FromTranscription(body []byte) (Usage, bool) {
	if len(body) == 0 {
		return Usage{}, false
	}
	js := byteview.String(body) // zero-copy; nothing outlives the call
	obj := gjson.Get(js, "usage")
	if !obj.IsObject() || !gjson.Valid(obj.Raw) {
		return Usage{}, false
	}
	switch obj.Get("type").String() {
	case "tokens":
		var u Usage
		var in, out, total, hasAudio, ok bool
		if u.PromptTokens, in, ok = count(obj, "input_tokens"); !ok {
			return Usage{}, false
		}
		if u.CompletionTokens, out, ok = count(obj, "output_tokens"); !ok {
			return Usage{}, false
		}
		if u.TotalTokens, total, ok = count(obj, "total_tokens"); !ok {
			return Usage{}, false
		}
		if u.AudioTokens, hasAudio, ok = count(obj, "input_token_details.audio_tokens"); !ok {
			return Usage{}, false
		}
		if !in && !out && !total {
			return Usage{}, false
		}
		if !hasAudio {
			u.AudioTokens = u.PromptTokens
		}
		u.AudioTokens = min(u.AudioTokens, u.PromptTokens)
		if !total {
			u.TotalTokens = u.PromptTokens + u.CompletionTokens
		}
		return u, true
	case "duration":
		r := obj.Get("seconds")
		if r.Type != gjson.Number {
			return Usage{}, false
		}
		ms, ok := millis(r.Raw)
		if !ok {
			return Usage{}, false
		}
		return Usage{AudioMillis: ms}, true
	}
	return Usage{}, false
}

// millis converts a JSON number of seconds ("3", "2.5", "0.0011") to whole
// milliseconds, rounding up, from its text. Exponent forms and values of
// 2^53 ms or more are refused.
func millis(raw string) (int64, bool) {
	if strings.ContainsAny(raw, "eE-+") {
		return 0, false
	}
	whole, frac, _ := strings.Cut(raw, ".")
	if len(whole) == 0 || len(whole) > 13 {
		return 0, false
	}
	s, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, false
	}
	ms := s * 1000
	scale := int64(100)
	up := false
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if i < 3 {
			ms += int64(c-'0') * scale
			scale /= 10
		} else if c != '0' {
			up = true // a remainder below a millisecond rounds up
		}
	}
	if up {
		ms++
	}
	return ms, ms < maxCount
}
