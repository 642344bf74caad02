// Package usage reads token usage from provider response bodies.
//
// It runs on every metered response and on every streamed chunk, so it reads
// only the "usage" object with gjson, without unmarshalling or copying the
// body, and allocates nothing.
package usage

import (
	"math"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
)

// Usage is the token usage an OpenAI-format response reports.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
	TotalTokens      int64
	// CachedTokens is prompt_tokens_details.cached_tokens, a part of
	// PromptTokens (uncached input = PromptTokens - CachedTokens).
	CachedTokens int64
	// ReasoningTokens is completion_tokens_details.reasoning_tokens, a part
	// of CompletionTokens (billed as output).
	ReasoningTokens int64
	// CacheWrite5mTokens and CacheWrite1hTokens are the prompt tokens
	// written to Anthropic's prompt cache with a 5-minute and a 1-hour TTL,
	// parts of PromptTokens.
	CacheWrite5mTokens int64
	CacheWrite1hTokens int64
	// AudioTokens is the audio input tokens within PromptTokens
	// (prompt_tokens_details.audio_tokens; a transcription's
	// input_token_details.audio_tokens).
	AudioTokens int64
	// AudioMillis is the input audio duration of a transcription billed by
	// duration ("usage":{"type":"duration","seconds":…}), in milliseconds.
	AudioMillis int64
}

// maxCount bounds every count: far above any real response, and low enough
// that prompt + completion cannot overflow int64 and that every accepted
// value is exact in a float64.
const maxCount = 1 << 53

// FromOpenAI reads the top-level "usage" object of an OpenAI-format body: a
// chat completion, one chat completion chunk (the data of one SSE event), or
// an embeddings response. It reports false when usage is absent, null, not
// an object, or not valid JSON.
//
// Rules, chosen so that a corrupt or hostile body never produces a wrong
// bill:
//   - a missing or null count is 0 (embeddings report only prompt_tokens and
//     total_tokens; some servers send null details);
//   - at least one of prompt_tokens, completion_tokens, total_tokens must be
//     present, so "usage":{} is reported as absent;
//   - a present count that is not a whole number in [0, 2^53] (negative,
//     fractional, string, bool, object) makes the whole usage invalid: false.
//     Whole numbers written as 12.0 or 1.2e1 are accepted;
//   - a missing total_tokens is prompt_tokens + completion_tokens; a present
//     one is kept as sent, even when it differs from the sum (Gemini's total
//     includes thinking tokens that completion_tokens does not).
//
// Only the usage object is validated, not the rest of the body. Duplicate
// keys resolve to the first occurrence. Gemini's OpenAI-compatible streams
// put running totals on several content chunks: callers keep the last usage
// seen, never a sum.
func FromOpenAI(body []byte) (Usage, bool) {
	if len(body) == 0 {
		return Usage{}, false
	}
	// A zero-copy string view of body: gjson only reads it, and no string
	// derived from it outlives this call, so body is never seen mutated.
	js := byteview.String(body)
	obj := gjson.Get(js, "usage")
	if !obj.IsObject() || !gjson.Valid(obj.Raw) {
		return Usage{}, false
	}
	var f openAIFields
	f.read(obj)
	var u Usage
	var prompt, completion, total, ok bool
	if u.PromptTokens, prompt, ok = countOf(f.prompt); !ok {
		return Usage{}, false
	}
	if u.CompletionTokens, completion, ok = countOf(f.completion); !ok {
		return Usage{}, false
	}
	if u.TotalTokens, total, ok = countOf(f.total); !ok {
		return Usage{}, false
	}
	if u.CachedTokens, _, ok = countOf(f.cached); !ok {
		return Usage{}, false
	}
	if u.ReasoningTokens, _, ok = countOf(f.reasoning); !ok {
		return Usage{}, false
	}
	if u.AudioTokens, _, ok = countOf(f.audio); !ok {
		return Usage{}, false
	}
	if !prompt && !completion && !total {
		return Usage{}, false
	}
	if !total {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u, true
}

// openAIFields are the values of an OpenAI usage object's counts, each the
// one gjson's Get of its path returns: the first member of that name, and
// for a nested count the first of the details objects (of the same name)
// that holds it. They are read in one pass over the object, where a Get per
// count would scan it again each time.
type openAIFields struct {
	prompt, completion, total, cached, reasoning, audio gjson.Result
}

func (f *openAIFields) read(obj gjson.Result) {
	first := func(dst *gjson.Result, v gjson.Result) {
		if !dst.Exists() {
			*dst = v
		}
	}
	obj.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens":
			first(&f.prompt, v)
		case "completion_tokens":
			first(&f.completion, v)
		case "total_tokens":
			first(&f.total, v)
		case "prompt_tokens_details":
			if v.IsObject() && (!f.cached.Exists() || !f.audio.Exists()) {
				v.ForEach(func(k, v gjson.Result) bool {
					switch k.Str {
					case "cached_tokens":
						first(&f.cached, v)
					case "audio_tokens":
						first(&f.audio, v)
					}
					return true
				})
			}
		case "completion_tokens_details":
			if v.IsObject() && !f.reasoning.Exists() {
				v.ForEach(func(k, v gjson.Result) bool {
					if k.Str == "reasoning_tokens" {
						first(&f.reasoning, v)
					}
					return true
				})
			}
		}
		return true
	})
}

// count reads one token count at path in obj. present is false for a missing
// or null value; ok is false for a present value that is not a whole number
// in [0, maxCount].
func count(obj gjson.Result, path string) (n int64, present, ok bool) {
	return countOf(obj.Get(path))
}

// countOf is count for a value already read.
func countOf(r gjson.Result) (n int64, present, ok bool) {
	switch r.Type {
	case gjson.Null:
		return 0, false, true
	case gjson.Number:
	default:
		return 0, true, false
	}
	if v, err := strconv.ParseInt(r.Raw, 10, 64); err == nil {
		return v, true, v >= 0 && v <= maxCount
	}
	// Exponent or fraction forms, or an integer beyond int64.
	f := r.Num
	if f < 0 || f > maxCount || f != math.Trunc(f) {
		return 0, true, false
	}
	return int64(f), true, true
}
