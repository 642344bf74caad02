package bedrock

import (
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
)

// checkField is the table of every top-level chat request field the Converse
// translation knows; an unknown field is refused, never dropped. The fields
// no Anthropic-shaped provider can express are decided by
// wire.UntranslatedField. docs/providers.md has the table for users.
func checkField(name string, v gjson.Result) error {
	switch name {
	// Translated by Request (or refused there for values it cannot express).
	case "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
		"stream", "tools", "tool_choice", "n", "logprobs", "modalities", "response_format",
		"reasoning_effort", "thinking":
		return nil
	// Ignored: an end-user id only labels the request at OpenAI, and
	// Converse's requestMetadata accepts too few characters to carry any id.
	case "user", "safety_identifier":
		return nil
	// Converse has no switch for parallel tool calls: true is its behaviour.
	case "parallel_tool_calls":
		if v.Type == gjson.True {
			return nil
		}
		return wire.UnsupportedParam(name, "parallel_tool_calls false is not supported for this provider.")
	}
	if known, err := wire.UntranslatedField(name, v); known {
		return err
	}
	return wire.UnknownField(name)
}
