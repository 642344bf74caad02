package usage

import (
	"unsafe"

	"github.com/tidwall/gjson"
)

// FromResponses reads an OpenAI Responses API usage object: the "usage" of
// a response object (the body of POST /v1/responses, or the "response" of
// a response.completed, response.incomplete or response.failed event). It
// reports false when usage is absent, null, not an object, or not valid
// JSON.
//
// The counts map onto chat's: input_tokens → PromptTokens (it includes
// input_tokens_details.cached_tokens → CachedTokens), output_tokens →
// CompletionTokens (it includes output_tokens_details.reasoning_tokens →
// ReasoningTokens), total_tokens → TotalTokens. The rules are FromOpenAI's:
// missing or null counts are 0, at least one of the three top-level counts
// must be present, a present count that is not a whole number in [0, 2^53]
// makes the usage invalid, and a missing total is input + output.
func FromResponses(response []byte) (Usage, bool) {
	if len(response) == 0 {
		return Usage{}, false
	}
	// Zero-copy view; no string derived from it outlives the call.
	js := unsafe.String(unsafe.SliceData(response), len(response))
	obj := gjson.Get(js, "usage")
	if !obj.IsObject() || !gjson.Valid(obj.Raw) {
		return Usage{}, false
	}
	var u Usage
	var in, out, total, ok bool
	if u.PromptTokens, in, ok = count(obj, "input_tokens"); !ok {
		return Usage{}, false
	}
	if u.CompletionTokens, out, ok = count(obj, "output_tokens"); !ok {
		return Usage{}, false
	}
	if u.TotalTokens, total, ok = count(obj, "total_tokens"); !ok {
		return Usage{}, false
	}
	if u.CachedTokens, _, ok = count(obj, "input_tokens_details.cached_tokens"); !ok {
		return Usage{}, false
	}
	if u.ReasoningTokens, _, ok = count(obj, "output_tokens_details.reasoning_tokens"); !ok {
		return Usage{}, false
	}
	if !in && !out && !total {
		return Usage{}, false
	}
	if !total {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u, true
}
