package messages

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
)

// These tests put the official Anthropic Go SDK on both sides of the
// translation, over loopback HTTP: the requests it builds must translate,
// and the responses, streams and errors this package writes must parse.

// sdkServer answers every request with one status, content type and body,
// and records the last request body.
func sdkServer(t *testing.T, status int, contentType string, body []byte) (anthropic.Client, *[]byte) {
	t.Helper()
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		w.Header().Set("content-type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return anthropic.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("test"), option.WithMaxRetries(0)), &got
}

func sdkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// agentParams is a request with every translatable feature, built by the SDK.
func agentParams() anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:         "claude-sonnet-4-5",
		MaxTokens:     2048,
		System:        []anthropic.TextBlockParam{{Text: "Be brief."}},
		StopSequences: []string{"END"},
		Temperature:   anthropic.Float(0.5),
		Metadata:      anthropic.MetadataParam{UserID: anthropic.String("u-1")},
		Thinking:      anthropic.ThinkingConfigParamOfEnabled(20000),
		ToolChoice:    anthropic.ToolChoiceParamOfTool("lookup"),
		Tools: []anthropic.ToolUnionParam{anthropic.ToolUnionParamOfTool(anthropic.ToolInputSchemaParam{
			Properties: map[string]any{"q": map[string]any{"type": "string"}}, Required: []string{"q"}}, "lookup")},
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("find x"), anthropic.NewImageBlockBase64("image/jpeg", "/9j/")),
			anthropic.NewAssistantMessage(anthropic.NewToolUseBlock("toolu_1", map[string]any{"q": "x"}, "lookup")),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock("toolu_1", "x is 42", false)),
		},
	}
}

func TestSDKRequestTranslatesAndResponseParses(t *testing.T) {
	resp, err := FromChat(readFixture(t, "openai/chat_response_reasoning_tools.json"), "m")
	if err != nil {
		t.Fatal(err)
	}
	client, sent := sdkServer(t, 200, "application/json", resp)
	msg, err := client.Messages.New(sdkCtx(t), agentParams())
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 3 ||
		msg.Content[0].Thinking == "" || msg.Content[1].Text != "Checking the weather in Lisbon." ||
		msg.Content[2].Name != "get_current_weather" || string(msg.Content[2].Input) != `{"city":"Lisbon","unit":"celsius"}` ||
		msg.Usage.InputTokens != 54 || msg.Usage.CacheReadInputTokens != 256 || msg.Usage.OutputTokens != 58 {
		t.Fatalf("SDK read %+v", msg)
	}

	chat, err := ToChat(*sent, RequestOptions{Model: "gpt-5"})
	if err != nil {
		t.Fatalf("the SDK's request did not translate: %v\n%s", err, *sent)
	}
	c := gjson.ParseBytes(chat)
	for path, want := range map[string]string{
		"model": "gpt-5", "max_completion_tokens": "2048", "reasoning_effort": "high", "user": "u-1",
		"stop.0": "END", "temperature": "0.5", "tool_choice.function.name": "lookup",
		"tools.0.function.parameters.type": "object", "messages.0.content": "Be brief.",
		"messages.1.content.1.image_url.url":         "data:image/jpeg;base64,/9j/",
		"messages.2.tool_calls.0.function.arguments": `{"q":"x"}`,
		"messages.3.role":                            "tool", "messages.3.content": "x is 42",
	} {
		if got := c.Get(path).String(); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
}

// sdkStream streams a translated upstream fixture to the SDK and
// accumulates the message as SDK users do.
func sdkStream(t *testing.T, upstream []byte) (anthropic.Message, error) {
	t.Helper()
	out, _, _ := translateStream(upstream)
	client, _ := sdkServer(t, 200, "text/event-stream", out)
	params := agentParams()
	stream := client.Messages.NewStreaming(sdkCtx(t), params)
	defer stream.Close()
	var msg anthropic.Message
	for stream.Next() {
		if err := msg.Accumulate(stream.Current()); err != nil {
			return msg, err
		}
	}
	return msg, stream.Err()
}

func TestSDKStreams(t *testing.T) {
	tests := []struct {
		file       string
		stop       anthropic.StopReason
		blocks     []string // block types
		text       string   // first text block
		toolInput  string   // first tool_use input
		inTok      int64
		outTok     int64
		cachedRead int64
	}{
		{"openai/chat_stream.sse", anthropic.StopReasonEndTurn, []string{"text"}, "", "", 31, 22, 0},
		{"openai/chat_stream_tool_calls.sse", anthropic.StopReasonToolUse, []string{"tool_use", "tool_use"}, "", `{"city":"Lisbon","unit":"celsius"}`, 0, 0, 0},
		{"openai/chat_stream_reasoning_content.sse", anthropic.StopReasonToolUse, []string{"thinking", "text", "tool_use"},
			`Checking "Lisbon" now.`, `{"city":"Lisbon","unit":"celsius"}`, 54, 58, 256},
		{"azure_openai/chat_stream.sse", anthropic.StopReasonEndTurn, []string{"text"}, "", "", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			msg, err := sdkStream(t, readFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if msg.StopReason != tt.stop || !strings.HasPrefix(msg.ID, "msg_") {
				t.Fatalf("stop %q id %q", msg.StopReason, msg.ID)
			}
			var types []string
			text, input := "", ""
			for _, b := range msg.Content {
				types = append(types, b.Type)
				if b.Type == "text" && text == "" {
					text = b.Text
				}
				if b.Type == "tool_use" && input == "" {
					input = string(b.Input)
				}
			}
			if strings.Join(types, ",") != strings.Join(tt.blocks, ",") {
				t.Fatalf("blocks %v, want %v", types, tt.blocks)
			}
			if text == "" && tt.blocks[0] == "text" {
				t.Fatal("empty text")
			}
			if tt.text != "" && text != tt.text {
				t.Fatalf("text %q, want %q", text, tt.text)
			}
			if tt.toolInput != "" && gjson.Get(input, "@ugly").Raw != tt.toolInput {
				t.Fatalf("tool input %s, want %s", input, tt.toolInput)
			}
			if tt.outTok != 0 && (msg.Usage.InputTokens != tt.inTok || msg.Usage.OutputTokens != tt.outTok || msg.Usage.CacheReadInputTokens != tt.cachedRead) {
				t.Fatalf("usage %+v", msg.Usage)
			}
		})
	}
}

// TestSDKIncompleteStreams checks that the SDK reports a stream cut short or
// ended by a provider error as an error, never as a complete message.
func TestSDKIncompleteStreams(t *testing.T) {
	full := readFixture(t, "openai/chat_stream_reasoning_content.sse")
	cut := full[:len(full)/2]
	for name, in := range map[string][]byte{"cut": cut, "error chunk": readFixture(t, "openai/chat_stream_error.sse")} {
		t.Run(name, func(t *testing.T) {
			_, err := sdkStream(t, in)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) || apiErr.Type() != TypeAPI {
				t.Fatalf("SDK error %v (%T), want an api_error", err, err)
			}
		})
	}
}

// TestSDKErrors checks every status mapping through the SDK's typed error.
func TestSDKErrors(t *testing.T) {
	for _, e := range []*oaierror.Error{
		oaierror.InvalidRequest("unsupported_parameter", "top_k", "top_k is not supported."),
		oaierror.InvalidAPIKey(),
		{Status: 403, Type: oaierror.TypePermission, Message: "The model is not allowed for this key."},
		oaierror.ModelNotFound("gpt-9"),
		{Status: 413, Type: oaierror.TypeInvalidRequest, Message: "too large"},
		{Status: 429, Type: oaierror.TypeRateLimit, Code: "rate_limit_exceeded", Message: "slow down"},
		oaierror.Internal(500, "guardrail_failed", "The gateway could not apply its guardrails."),
		{Status: 529, Type: oaierror.TypeServer, Message: "Overloaded"},
	} {
		a := FromOpenAI(e)
		client, _ := sdkServer(t, a.Status, "application/json", a.Body())
		_, err := client.Messages.New(sdkCtx(t), agentParams())
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("%d: SDK error %v (%T)", e.Status, err, err)
		}
		if apiErr.StatusCode != e.Status || string(apiErr.Type()) != TypeForStatus(e.Status) {
			t.Errorf("%d: SDK saw %d %q", e.Status, apiErr.StatusCode, apiErr.Type())
		}
	}
}

func TestSDKCountTokens(t *testing.T) {
	_, out, err := Estimate(readFixture(t, "anthropic/count_tokens_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	client, sent := sdkServer(t, 200, "application/json", out)
	res, err := client.Messages.CountTokens(sdkCtx(t), anthropic.MessageCountTokensParams{
		Model:    "claude-sonnet-4-5",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := gjson.GetBytes(out, "input_tokens").Int(); res.InputTokens != want || want == 0 {
		t.Fatalf("SDK read %d, want %d", res.InputTokens, want)
	}
	if _, _, err := Estimate(*sent); err != nil {
		t.Fatalf("the SDK's count_tokens request was refused: %v", err)
	}
}
