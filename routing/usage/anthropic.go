package usage

import (
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/byteview"
)

// Anthropic holds the counts of an Anthropic Messages API usage object.
// Anthropic splits input into three disjoint parts; OpenAI's prompt_tokens is
// their sum.
type Anthropic struct {
	InputTokens              int64 // input after the last cache breakpoint
	CacheCreationInputTokens int64 // input written to the prompt cache
	CacheReadInputTokens     int64 // input read from the prompt cache
	OutputTokens             int64
	// Ephemeral5mInputTokens and Ephemeral1hInputTokens split
	// CacheCreationInputTokens by TTL (usage.cache_creation); HasTTLSplit is
	// whether the provider sent that object.
	Ephemeral5mInputTokens int64
	Ephemeral1hInputTokens int64
	HasTTLSplit            bool
}

// FromAnthropic reads the Anthropic usage object obj (raw JSON: "usage" of a
// Messages response or of a message_delta event, "message.usage" of
// message_start) on top of prev. A count present in obj replaces prev's; a
// missing or null one keeps it. That is how stream usage combines: every
// count in message_delta is a running total (output_tokens above all), and
// older API versions send only output_tokens there.
//
// It reports false, returning prev, when obj is not a JSON object, has none
// of the four counts, or has a count that is not a whole number in
// [0, 2^53] — the same rules as FromOpenAI. cache_creation's
// ephemeral_5m_input_tokens and ephemeral_1h_input_tokens split the cache
// writes by TTL; other keys (service_tier, server_tool_use) are ignored.
func FromAnthropic(prev Anthropic, obj []byte) (Anthropic, bool) {
	if len(obj) == 0 {
		return prev, false
	}
	// Zero-copy view; no string derived from it outlives the call.
	js := byteview.String(obj)
	if !gjson.Valid(js) {
		return prev, false
	}
	r := gjson.Parse(js)
	if !r.IsObject() {
		return prev, false
	}
	next := prev
	dst := [...]*int64{&next.InputTokens, &next.CacheCreationInputTokens, &next.CacheReadInputTokens, &next.OutputTokens}
	paths := [...]string{"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"}
	seen := false
	for i, path := range paths {
		n, present, ok := count(r, path)
		if !ok {
			return prev, false
		}
		if present {
			*dst[i], seen = n, true
		}
	}
	if !seen {
		return prev, false
	}
	if cc := r.Get("cache_creation"); cc.IsObject() {
		var ttl [2]int64
		for i, path := range [...]string{"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"} {
			n, _, ok := count(cc, path)
			if !ok {
				return prev, false
			}
			ttl[i] = n
		}
		next.Ephemeral5mInputTokens, next.Ephemeral1hInputTokens, next.HasTTLSplit = ttl[0], ttl[1], true
	}
	return next, true
}

// OpenAI returns the usage in OpenAI's terms: prompt tokens are all input
// (uncached, cache writes and cache reads), cached tokens are the cache
// reads, and the cache writes are split by TTL. Without a cache_creation
// split every write has the default 5-minute TTL; writes the split does not
// account for count as 5-minute ones, and a split larger than the writes is
// capped at them, so the parts always add up to cache_creation_input_tokens.
// Anthropic reports no reasoning breakdown; thinking is part of OutputTokens.
func (a Anthropic) OpenAI() Usage {
	prompt := a.InputTokens + a.CacheCreationInputTokens + a.CacheReadInputTokens
	w1h := int64(0)
	if a.HasTTLSplit {
		w1h = min(a.Ephemeral1hInputTokens, a.CacheCreationInputTokens)
	}
	return Usage{
		PromptTokens:       prompt,
		CompletionTokens:   a.OutputTokens,
		TotalTokens:        prompt + a.OutputTokens,
		CachedTokens:       a.CacheReadInputTokens,
		CacheWrite5mTokens: a.CacheCreationInputTokens - w1h,
		CacheWrite1hTokens: w1h,
	}
}
