package e2e

import (
	"context"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/tidwall/gjson"
)

// weatherFormat is a response_format json_schema as openai-go sends it.
func weatherFormat() openai.ChatCompletionNewParamsResponseFormatUnion {
	return openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &openai.ResponseFormatJSONSchemaParam{
		JSONSchema: openai.ResponseFormatJSONSchemaJSONSchemaParam{
			Name:   "weather",
			Strict: openai.Bool(true),
			Schema: map[string]any{
				"type":                 "object",
				"properties":           map[string]any{"city": map[string]any{"type": "string"}, "temperature_c": map[string]any{"type": "number"}},
				"required":             []string{"city", "temperature_c"},
				"additionalProperties": false,
			},
		},
	}}
}

// TestBedrockStructuredOutput: response_format json_schema reaches Bedrock
// as a forced tool whose input schema is the schema, and the tool's input
// comes back to openai-go as the message content, streamed or not.
func TestBedrockStructuredOutput(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: bedrockConfig, bedrock: true, chunks: streamChunkings["7-byte"]})
	p := chatParams("bedrock-default")
	p.ResponseFormat = weatherFormat()

	checkUpstream := func(stream bool) {
		t.Helper()
		up := lastRequest(t, h.bedrock)
		checkBedrockUpstream(t, up, stream)
		tc := gjson.GetBytes(up.Body, "toolConfig")
		if tc.Get("toolChoice.tool.name").Str != "tollgate_json_object" || len(tc.Get("tools").Array()) != 1 ||
			tc.Get("tools.0.toolSpec.inputSchema.json.required.1").Str != "temperature_c" {
			t.Fatalf("stream=%v: toolConfig %s", stream, tc.Raw)
		}
	}

	out, err := h.client.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	m := out.Choices[0]
	if m.Message.Content != `{"city":"Paris","temperature_c":18}` || len(m.Message.ToolCalls) != 0 || m.FinishReason != "stop" {
		t.Fatalf("answer %+v", m)
	}
	if out.Usage.PromptTokens != 431 || out.Usage.CompletionTokens != 24 {
		t.Fatalf("usage %+v", out.Usage)
	}
	checkUpstream(false)

	acc := streamChat(t, h.client, p)
	c := acc.Choices[0]
	if gjson.Get(c.Message.Content, "city").Str != "Paris" || gjson.Get(c.Message.Content, "temperature_c").Int() != 18 ||
		len(c.Message.ToolCalls) != 0 || c.FinishReason != "stop" {
		t.Fatalf("streamed %+v", c)
	}
	checkUpstream(true)

	// Next to the client's own tools, the answer tool joins them and the
	// model must call one: here it calls the client's.
	p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather"})}
	out, err = h.client.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if calls := out.Choices[0].Message.ToolCalls; len(calls) != 1 || calls[0].Function.Name != "get_weather" || out.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("with tools: %+v", out.Choices[0])
	}
	tc := gjson.GetBytes(lastRequest(t, h.bedrock).Body, "toolConfig")
	if tc.Get("toolChoice.any").Raw != "{}" || tc.Get("tools.0.toolSpec.name").Str != "get_weather" || tc.Get("tools.1.toolSpec.name").Str != "tollgate_json_object" {
		t.Fatalf("with tools: toolConfig %s", tc.Raw)
	}

	// json_object with tools is refused, as for Anthropic: a 400 naming the
	// field, before anything reaches Bedrock.
	n := len(h.bedrock.Requests())
	p.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &openai.ResponseFormatJSONObjectParam{}}
	_, err = h.client.Chat.Completions.New(context.Background(), p)
	var e *openai.Error
	if !asAPIError(err, &e) || e.StatusCode != 400 || e.Param != "response_format" || e.Code != "unsupported_parameter" {
		t.Fatalf("json_object with tools: %v", err)
	}
	if len(h.bedrock.Requests()) != n {
		t.Fatal("a refused request reached Bedrock")
	}
}

// TestBedrockReasoning: reasoning_effort turns on Claude's thinking with a
// budget, and the thinking comes back as reasoning_content and
// thinking_blocks, which replay on the next turn.
func TestBedrockReasoning(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: bedrockConfig, bedrock: true})
	p := chatParams("bedrock-default")
	p.ReasoningEffort = openai.ReasoningEffortLow
	p.MaxCompletionTokens = openai.Int(16000)
	out, err := h.client.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	th := gjson.GetBytes(lastRequest(t, h.bedrock).Body, "additionalModelRequestFields.thinking")
	if th.Get("type").Str != "enabled" || th.Get("budget_tokens").Int() != 2048 {
		t.Fatalf("thinking %s", th.Raw)
	}
	raw := out.Choices[0].Message.RawJSON()
	if out.Choices[0].Message.Content != "Hello! How can I help?" ||
		gjson.Get(raw, "reasoning_content").Str != "The user greets me. A short greeting back fits." ||
		gjson.Get(raw, "thinking_blocks.0.signature").Str == "" {
		t.Fatalf("message %s", raw)
	}

	// The assistant message, sent back as received, replays its thinking.
	_, body := h.raw("POST", "/v1/chat/completions", gatewayKey, `{"model":"bedrock-default","reasoning_effort":"low","max_completion_tokens":16000,
		"messages":[{"role":"user","content":"Hi"},`+raw+`,{"role":"user","content":"Bye"}]}`)
	if !gjson.ValidBytes(body) || gjson.GetBytes(body, "error").Exists() {
		t.Fatalf("replay: %s", body)
	}
	up := lastRequest(t, h.bedrock).Body
	if gjson.GetBytes(up, "messages.1.content.0.reasoningContent.reasoningText.signature").Str != gjson.Get(raw, "thinking_blocks.0.signature").Str {
		t.Fatalf("replayed %s", up)
	}

	s := h.client.Chat.Completions.NewStreaming(context.Background(), p)
	reasoning := ""
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		ch := s.Current()
		acc.AddChunk(ch)
		reasoning += gjson.Get(ch.RawJSON(), "choices.0.delta.reasoning_content").Str
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if reasoning != "The user greets me. A short greeting back fits." || acc.Choices[0].Message.Content != "Hello! How can I help?" {
		t.Fatalf("streamed reasoning %q content %q", reasoning, acc.Choices[0].Message.Content)
	}
}

// TestBedrockFeatureStreams: the response_format and thinking streams
// assemble the same whatever the chunking of Bedrock's binary event stream.
func TestBedrockFeatureStreams(t *testing.T) {
	for name, chunks := range streamChunkings {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{extra: bedrockConfig, bedrock: true, chunks: chunks})
			p := chatParams("bedrock-default")
			p.ResponseFormat = weatherFormat()
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			acc := streamChat(t, h.client, p)
			if c := acc.Choices[0]; c.Message.Content != `{"city": "Paris", "temperature_c": 18}` || c.FinishReason != "stop" || acc.Usage.CompletionTokens != 24 {
				t.Fatalf("json: %+v %+v", c, acc.Usage)
			}

			p = chatParams("bedrock-default")
			p.ReasoningEffort = openai.ReasoningEffortHigh
			p.MaxCompletionTokens = openai.Int(40000)
			s := h.client.Chat.Completions.NewStreaming(context.Background(), p)
			acc = openai.ChatCompletionAccumulator{}
			reasoning, blocks := "", 0
			for s.Next() {
				ch := s.Current()
				acc.AddChunk(ch)
				d := gjson.Get(ch.RawJSON(), "choices.0.delta")
				reasoning += d.Get("reasoning_content").Str
				blocks += len(d.Get("thinking_blocks").Array())
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if reasoning != "The user greets me. A short greeting back fits." || blocks != 1 || acc.Choices[0].Message.Content != "Hello! How can I help?" {
				t.Fatalf("reasoning %q blocks %d content %q", reasoning, blocks, acc.Choices[0].Message.Content)
			}
			if b := gjson.GetBytes(lastRequest(t, h.bedrock).Body, "additionalModelRequestFields.thinking.budget_tokens").Int(); b != 16384 {
				t.Fatalf("budget %d", b)
			}
		})
	}
}
