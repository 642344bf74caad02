package wire

import (
	"strings"

	"github.com/tidwall/gjson"
)

// CheckFields calls check for every top-level field of a request that is
// set (null counts as unset) and returns its first error. A translator's
// check is its table of known fields: it returns nil for a field it
// translates or deliberately ignores, and an error for the rest, unknown
// fields included, so that no field passes silently.
func CheckFields(root gjson.Result, check func(name string, v gjson.Result) error) error {
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		if Present(v) {
			err = check(k.Str, v)
		}
		return err == nil
	})
	return err
}

// UnknownField is the refusal of a field a translator does not know.
func UnknownField(name string) error {
	return UnsupportedParam(name, "Unrecognized request argument supplied: "+name+". This provider's translation does not know it, and the gateway does not drop fields silently.")
}

// UntranslatedField decides the OpenAI chat fields that no Anthropic-shaped
// provider (Anthropic, Bedrock Converse, Claude on Vertex) can express, the
// same way for all of them. known is false for a field it does not decide.
//
//   - Ignored, as they change nothing in the answer: stream_options (the
//     gateway's business; usage is always reported), metadata (tags stored
//     completions in OpenAI's dashboard), prompt_cache_key and
//     prompt_cache_retention (steer OpenAI's automatic cache; these
//     providers cache at explicit breakpoints) and prediction (only speeds
//     up OpenAI's answer).
//   - Ignored at OpenAI's default, refused otherwise: frequency_penalty,
//     presence_penalty and top_logprobs at 0, logit_bias {}, store false,
//     service_tier auto or default, verbosity medium.
//   - Refused: seed, audio, functions, function_call, web_search_options.
func UntranslatedField(name string, v gjson.Result) (known bool, err error) {
	switch name {
	case "stream_options", "metadata", "prompt_cache_key", "prompt_cache_retention", "prediction":
		return true, nil
	case "frequency_penalty", "presence_penalty", "top_logprobs":
		if v.Type == gjson.Number && v.Num == 0 {
			return true, nil
		}
		return true, UnsupportedParam(name, name+" is not supported for this model; only 0 is accepted.")
	case "logit_bias":
		if v.IsObject() && strings.TrimSpace(v.Raw[1:len(v.Raw)-1]) == "" {
			return true, nil
		}
		return true, UnsupportedParam(name, "logit_bias is not supported for this model.")
	case "store":
		if v.Type == gjson.False {
			return true, nil
		}
		return true, UnsupportedParam(name, "store is not supported for this model: the completion would not be stored.")
	case "service_tier":
		if v.Str == "auto" || v.Str == "default" {
			return true, nil
		}
		return true, UnsupportedParam(name, "service_tier "+v.Raw+" is not supported for this model; only auto and default are accepted.")
	case "verbosity":
		if v.Str == "medium" {
			return true, nil
		}
		return true, UnsupportedParam(name, "verbosity is not supported for this model; only medium is accepted.")
	case "seed":
		return true, UnsupportedParam(name, "seed is not supported for this model: the provider offers no deterministic sampling.")
	case "audio", "functions", "function_call":
		return true, UnsupportedParam(name, name+" is not supported for this model; use tools.")
	case "web_search_options":
		return true, UnsupportedParam(name, "web_search_options is not supported for this model.")
	}
	return false, nil
}

// ObjectSchema returns a tool's JSON Schema object (raw JSON) with
// "type":"object" added when it has no type: Anthropic and Converse require
// one, and a schema without it ({} included) describes an object's
// properties.
func ObjectSchema(p gjson.Result) string {
	if p.Get("type").Exists() {
		return p.Raw
	}
	if inner := strings.TrimSpace(p.Raw[1 : len(p.Raw)-1]); inner != "" {
		return `{"type":"object",` + inner + `}`
	}
	return `{"type":"object"}`
}
