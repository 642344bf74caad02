package anthropic

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
)

// jsonTool is the forced tool that carries a response_format json_object
// answer: Anthropic has no schema-less JSON mode. Its input comes back to the
// client as the message content, never as a tool call, so clients may not
// name a tool of their own so.
const jsonTool = "tollgate_json_object"

// outputConfig is what Request sends as thinking, output_config and the
// json_object tool.
type outputConfig struct {
	thinking   string // raw thinking object, or ""
	effort     string // output_config.effort, or ""
	format     string // raw output_config.format, or ""
	jsonObject bool   // answer through the forced jsonTool
}

// reasoning reads reasoning_effort, thinking and response_format.
//
// thinking (Anthropic's own object, which clients pointed at Claude send) is
// passed as given: {type: enabled, budget_tokens}, {type: adaptive} or
// {type: disabled}, with an optional display. reasoning_effort none sends
// nothing (no extended thinking, Anthropic's default); other values turn
// thinking on. Models with adaptive thinking (Claude 4.6 and later) get
// {type: adaptive} and output_config.effort (minimal → low, xhigh and max
// as named); older ones get {type: enabled} with a budget of 2048 (minimal,
// low), 8192 (medium), 16384 (high) or 32768 (xhigh, max) tokens, at
// most half of max_tokens so the answer keeps room, and never below 1024.
// With an explicit thinking object, reasoning_effort is sent as
// output_config.effort.
//
// response_format json_schema becomes output_config.format (Anthropic's
// structured outputs), whose answer is the text of the message;
// json_object becomes the forced jsonTool, which Anthropic allows neither
// with other tools nor with thinking.
func reasoning(root gjson.Result, model string, maxTokens int64) (outputConfig, error) {
	var c outputConfig
	effort, err := reasoningEffort(root.Get("reasoning_effort"))
	if err != nil {
		return c, err
	}
	switch th := root.Get("thinking"); {
	case wire.Present(th):
		if c.thinking, err = wire.ThinkingObject(th); err != nil {
			return c, err
		}
		c.effort = effort
	case effort == "":
	case adaptiveThinking(model):
		c.thinking, c.effort = `{"type":"adaptive"}`, effort
	default:
		if c.thinking, err = wire.EnabledThinking(effort, maxTokens); err != nil {
			return c, err
		}
	}

	rf := root.Get("response_format")
	if !wire.Present(rf) {
		return c, nil
	}
	if !rf.IsObject() {
		return c, wire.InvalidType("response_format", "an object")
	}
	switch rf.Get("type").String() {
	case "text":
	case "json_schema":
		schema := rf.Get("json_schema.schema")
		if !schema.IsObject() {
			return c, wire.InvalidBody("response_format.json_schema.schema", "response_format json_schema needs a schema object.")
		}
		c.format = `{"type":"json_schema","schema":` + schema.Raw + `}`
	case "json_object":
		if c.thinking != "" && !strings.Contains(c.thinking, `"disabled"`) {
			return c, wire.UnsupportedParam("response_format", "response_format json_object cannot be combined with thinking for this model; use json_schema.")
		}
		if ts := root.Get("tools"); ts.IsArray() && len(ts.Array()) > 0 {
			return c, wire.UnsupportedParam("response_format", "response_format json_object cannot be combined with tools for this model; use json_schema.")
		}
		c.jsonObject = true
	default:
		return c, wire.InvalidBody("response_format.type", "response_format.type must be one of text, json_object, json_schema.")
	}
	return c, nil
}

// reasoningEffort maps OpenAI's reasoning_effort to Anthropic's effort
// level; "" is none.
func reasoningEffort(v gjson.Result) (string, error) {
	if !wire.Present(v) {
		return "", nil
	}
	switch v.String() {
	case "none":
		if v.Type == gjson.String {
			return "", nil
		}
	case "minimal", "low":
		return "low", nil
	case "medium", "high", "xhigh", "max":
		if v.Type == gjson.String {
			return v.Str, nil
		}
	}
	return "", wire.InvalidBody("reasoning_effort", "reasoning_effort must be one of none, minimal, low, medium, high, xhigh, max.")
}

// adaptiveThinking reports whether a model id names a Claude with adaptive
// thinking and effort: Claude 4.6 and later. It reads the version after
// "claude-" in ids such as claude-opus-4-6, claude-sonnet-4-5-20250929,
// claude-sonnet-4-5@20250929 (Vertex) or claude-3-7-sonnet-latest; an id it
// cannot read is taken to be a newer model.
func adaptiveThinking(model string) bool {
	_, rest, ok := strings.Cut(model, "claude-")
	if !ok {
		return true
	}
	rest, _, _ = strings.Cut(rest, "@")
	parts := strings.Split(rest, "-")
	if len(parts) > 0 {
		switch parts[0] {
		case "opus", "sonnet", "haiku":
			parts = parts[1:]
		}
	}
	if len(parts) == 0 {
		return true
	}
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return true
	}
	minor := 0
	if len(parts) > 1 && len(parts[1]) <= 2 { // not a date
		minor, _ = strconv.Atoi(parts[1])
	}
	return major > 4 || major == 4 && minor >= 6
}

// appendOutput appends thinking and output_config.
func (c outputConfig) appendOutput(out []byte) []byte {
	if c.thinking != "" {
		out = append(out, `,"thinking":`...)
		out = append(out, c.thinking...)
	}
	if c.effort == "" && c.format == "" {
		return out
	}
	out = append(out, `,"output_config":{`...)
	if c.effort != "" {
		out = append(out, `"effort":"`...)
		out = append(out, c.effort...)
		out = append(out, '"')
		if c.format != "" {
			out = append(out, ',')
		}
	}
	if c.format != "" {
		out = append(out, `"format":`...)
		out = append(out, c.format...)
	}
	return append(out, '}')
}
