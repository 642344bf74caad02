package anthropic

import (
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
)

// checkField is the table of every top-level chat request field this
// translation knows. A field it does not know is refused, never dropped: a
// client that sends one expects it to do something, and is told when it
// cannot. docs/providers.md has the same table for the users.
func checkField(name string, v gjson.Result) error {
	switch name {
	// Translated by Request (or refused there for values it cannot express).
	case "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
		"stop", "stream", "tools", "tool_choice", "parallel_tool_calls", "user", "safety_identifier",
		"response_format", "reasoning_effort", "thinking", "n", "logprobs", "modalities":
		return nil

	// Ignored: they change nothing in the answer. stream_options is the
	// gateway's (usage is always reported); metadata only tags stored
	// completions in OpenAI's dashboard; prompt_cache_key and
	// prompt_cache_retention steer OpenAI's automatic cache, whereas
	// Anthropic caches at the cache_control breakpoints the request carries;
	// prediction only speeds up OpenAI's answer.
	case "stream_options", "metadata", "prompt_cache_key", "prompt_cache_retention", "prediction":
		return nil

	// Ignored at OpenAI's default, refused at any other value.
	case "frequency_penalty", "presence_penalty", "top_logprobs":
		if v.Type == gjson.Number && v.Num == 0 {
			return nil
		}
		return wire.UnsupportedParam(name, name+" is not supported for this model; only 0 is accepted.")
	case "logit_bias":
		if v.IsObject() && !nonEmptyObject(v) {
			return nil
		}
		return wire.UnsupportedParam(name, "logit_bias is not supported for this model.")
	case "store":
		if v.Type == gjson.False {
			return nil
		}
		return wire.UnsupportedParam(name, "store is not supported for this model: the completion would not be stored.")
	case "service_tier":
		if v.Str == "auto" || v.Str == "default" {
			return nil
		}
		return wire.UnsupportedParam(name, "service_tier "+v.Raw+" is not supported for this model; only auto and default are accepted.")
	case "verbosity":
		if v.Str == "medium" {
			return nil
		}
		return wire.UnsupportedParam(name, "verbosity is not supported for this model; only medium is accepted.")

	// Refused: nothing in Anthropic's API does it.
	case "seed":
		return wire.UnsupportedParam(name, "seed is not supported for this model: Anthropic offers no deterministic sampling.")
	case "audio", "functions", "function_call":
		return wire.UnsupportedParam(name, name+" is not supported for this model; use tools.")
	case "web_search_options":
		return wire.UnsupportedParam(name, "web_search_options is not supported for this model.")
	}
	return wire.UnknownField(name)
}
