package bedrock

import (
	"encoding/json"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/translate/internal/wire"
)

// jsonTool is the forced tool that carries a response_format json_object or
// json_schema answer: Converse has no JSON mode. Its input comes back to the
// client as the message content, never as a tool call, so clients may not
// name a tool of their own so. It is the name the Anthropic translation
// reserves for the same purpose.
const jsonTool = "tollgate_json_object"

// outputConfig is what Request sends for reasoning_effort, thinking and
// response_format.
type outputConfig struct {
	thinking string      // raw thinking object for additionalModelRequestFields, or ""
	json     *toolConfig // the forced jsonTool, or nil
}

// reasoning reads reasoning_effort, thinking and response_format.
//
// Thinking is Claude's: on Bedrock it travels in
// additionalModelRequestFields.thinking, exactly as in Anthropic's Messages
// API (https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html).
// A thinking object ({type: enabled, budget_tokens}, {type: adaptive},
// {type: disabled}, optional display) is passed as given. reasoning_effort
// none sends nothing; other values send {type: enabled, budget_tokens} with
// the Anthropic translation's budgets: 2048 (minimal, low), 8192 (medium),
// 16384 (high) or 32768 (xhigh, max) tokens, at most half of maxTokens so
// the answer keeps room, never below 1024. Both together are refused, as
// Converse has no separate effort setting. Models other than Claude get a
// 400 naming the field (thinking disabled and reasoning_effort none, which
// ask for nothing, pass).
//
// response_format json_schema and json_object become a forced tool whose
// input schema is the schema ({"type":"object"} for json_object) and whose
// input is returned as the message content. With thinking it is refused:
// Claude refuses a forced tool choice while thinking. With the client's
// tools, json_object is refused, as the Anthropic translation refuses it;
// json_schema, which Anthropic answers natively alongside tools, is offered
// next to them (see Request).
func reasoning(root gjson.Result, model string, maxTokens int64) (outputConfig, error) {
	var c outputConfig
	effort, err := reasoningEffort(root.Get("reasoning_effort"))
	if err != nil {
		return c, err
	}
	th := root.Get("thinking")
	thinkingOn := false
	switch {
	case wire.Present(th):
		if c.thinking, err = wire.ThinkingObject(th); err != nil {
			return c, err
		}
		if effort != "" {
			return c, wire.UnsupportedParam("reasoning_effort", "reasoning_effort cannot be combined with thinking for this provider; set thinking.budget_tokens instead.")
		}
		thinkingOn = th.Get("type").Str != "disabled"
		if !thinkingOn {
			c.thinking = "" // disabled is the default: send nothing
		}
		if thinkingOn && !isClaude(model) {
			return c, wire.UnsupportedParam("thinking", "thinking is only supported for Anthropic Claude models on this provider.")
		}
	case effort == "":
	case !isClaude(model):
		return c, wire.UnsupportedParam("reasoning_effort", "reasoning_effort is only supported for Anthropic Claude models on this provider.")
	default:
		if c.thinking, err = wire.EnabledThinking(effort, maxTokens); err != nil {
			return c, err
		}
		thinkingOn = true
	}

	rf := root.Get("response_format")
	if !wire.Present(rf) {
		return c, nil
	}
	if !rf.IsObject() {
		return c, wire.InvalidType("response_format", "an object")
	}
	var schema, desc string
	switch typ := rf.Get("type").String(); typ {
	case "text":
		return c, nil
	case "json_schema":
		s := rf.Get("json_schema.schema")
		if !s.IsObject() {
			return c, wire.InvalidBody("response_format.json_schema.schema", "response_format json_schema needs a schema object.")
		}
		if t := s.Get("type"); t.Exists() && t.String() != "object" {
			return c, wire.Unsupported("response_format.json_schema.schema", "The schema must describe an object for this provider.")
		}
		schema = wire.ObjectSchema(s)
		desc = "Respond with a JSON object that matches the schema."
		if d := rf.Get("json_schema.description"); d.Type == gjson.String && d.Str != "" {
			desc = d.Str
		}
	case "json_object":
		schema, desc = `{"type":"object"}`, "Respond with a JSON object."
	default:
		return c, wire.InvalidBody("response_format.type", "response_format.type must be one of text, json_object, json_schema.")
	}
	if thinkingOn {
		return c, wire.UnsupportedParam("response_format", "response_format "+rf.Get("type").String()+" cannot be combined with thinking for this provider.")
	}
	if ts := root.Get("tools"); ts.IsArray() && len(ts.Array()) > 0 && rf.Get("type").Str == "json_object" {
		return c, wire.UnsupportedParam("response_format", "response_format json_object cannot be combined with tools for this provider; use json_schema.")
	}
	c.json = &toolConfig{
		Tools:      []tool{{ToolSpec: &toolSpec{Name: jsonTool, Description: desc, InputSchema: inputSchema{JSON: json.RawMessage(schema)}}}},
		ToolChoice: json.RawMessage(`{"tool":{"name":"` + jsonTool + `"}}`),
	}
	return c, nil
}

// isClaude reports whether a Bedrock model id names an Anthropic Claude
// model: anthropic.claude-…, with or without a cross-region prefix (us.,
// eu., global.) or inside an inference profile ARN. An application
// inference profile ARN names no model and is taken to be another model.
func isClaude(model string) bool {
	return strings.Contains(strings.ToLower(model), "claude")
}

// reasoningEffort validates OpenAI's reasoning_effort and returns it, "" for
// none.
func reasoningEffort(v gjson.Result) (string, error) {
	if !wire.Present(v) {
		return "", nil
	}
	if v.Type == gjson.String {
		switch v.Str {
		case "none":
			return "", nil
		case "minimal", "low", "medium", "high", "xhigh", "max":
			return v.Str, nil
		}
	}
	return "", wire.InvalidBody("reasoning_effort", "reasoning_effort must be one of none, minimal, low, medium, high, xhigh, max.")
}
