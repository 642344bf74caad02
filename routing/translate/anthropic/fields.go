package anthropic

import (
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
)

// checkField is the table of every top-level chat request field this
// translation knows. A field it does not know is refused, never dropped: a
// client that sends one expects it to do something, and is told when it
// cannot. The fields no Anthropic-shaped provider can express are decided
// by wire.UntranslatedField. docs/providers.md has the table for users.
func checkField(name string, v gjson.Result) error {
	switch name {
	// Translated by Request (or refused there for values it cannot express).
	case "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
		"stop", "stream", "tools", "tool_choice", "parallel_tool_calls", "user", "safety_identifier",
		"response_format", "reasoning_effort", "thinking", "n", "logprobs", "modalities":
		return nil
	}
	if known, err := wire.UntranslatedField(name, v); known {
		return err
	}
	return wire.UnknownField(name)
}
