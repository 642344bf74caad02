package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

// The Anthropic Messages API to an Azure OpenAI deployment (azureConfig's
// azure-default): translated to chat completions on the deployment path,
// with Azure's key, and the answer translated back.

// azureCost is the cost of an Azure gpt-4o-prod call: priced as OpenAI's
// gpt-4o (azureConfig's price_as).
func azureCost(t *testing.T, prompt, cached, completion int64) string {
	t.Helper()
	c, ok := pricing.Default().Cost(pricing.Key{Provider: "openai", Model: "gpt-4o"},
		pricing.Usage{PromptTokens: prompt, CachedTokens: cached, CompletionTokens: completion}, time.Now())
	if !ok {
		t.Fatal("no price for openai/gpt-4o")
	}
	return c.Total.String()
}

// checkAzureMessagesUpstream asserts what the fake Azure received for a
// translated Messages request: the deployment path and api-version, the
// platform's key in api-key and nothing of the client's (its gateway key,
// its Anthropic headers), and a chat completions body.
func checkAzureMessagesUpstream(t *testing.T, up fakeprovider.Request, stream bool) {
	t.Helper()
	if up.Path != "/openai/deployments/gpt-4o-prod/chat/completions" || up.RawQuery != "api-version=2024-10-21" ||
		up.Host != "tollgate-e2e.openai.azure.com" {
		t.Fatalf("upstream %s %s?%s", up.Host, up.Path, up.RawQuery)
	}
	if up.Header.Get("Api-Key") != providerSecret || up.Header.Get("Authorization") != "" || up.Header.Get("X-Api-Key") != "" {
		t.Fatalf("credential: api-key is the platform's %t, authorization %t, x-api-key %t",
			up.Header.Get("Api-Key") == providerSecret, up.Header.Get("Authorization") != "", up.Header.Get("X-Api-Key") != "")
	}
	for name, values := range up.Header {
		if strings.HasPrefix(strings.ToLower(name), "anthropic-") {
			t.Fatalf("an Anthropic header reached Azure: %s", name)
		}
		for _, v := range values {
			if strings.Contains(v, gatewayKey) {
				t.Fatalf("the client's gateway key reached Azure in %s", name)
			}
		}
	}
	body := string(up.Body)
	if gjson.Get(body, "model").Str != "gpt-4o-prod" || gjson.Get(body, "messages.0.role").Str != "system" ||
		gjson.Get(body, "messages.1.role").Str != "user" || gjson.Get(body, "max_completion_tokens").Int() != 1024 ||
		gjson.Get(body, "system").Exists() || gjson.Get(body, "max_tokens").Exists() {
		t.Fatalf("chat body: %s", body)
	}
	if gjson.Get(body, "stream").Bool() != stream || stream && !gjson.Get(body, "stream_options.include_usage").Bool() {
		t.Fatalf("stream=%t: body %s", stream, body)
	}
}

func TestMessagesAzure(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: azureConfig, azure: true})
	c := h.anthropicClient(gatewayKey, option.WithHeader("anthropic-beta", "prompt-caching-2024-07-31"))

	msg, err := c.Messages.New(context.Background(), messagesParams("azure-default"))
	if err != nil {
		t.Fatal(err)
	}
	want := gjson.GetBytes(fixture(t, "azure_openai/chat_response.json"), "choices.0.message.content").Str
	if len(msg.Content) != 1 || msg.Content[0].Type != "text" || msg.Content[0].Text != want || msg.StopReason != anthropic.StopReasonEndTurn ||
		msg.Role != "assistant" || !strings.HasPrefix(msg.ID, "msg_") {
		t.Fatalf("answer %+v", msg)
	}
	if msg.Usage.InputTokens != 31 || msg.Usage.OutputTokens != 24 || msg.Usage.CacheReadInputTokens != 0 {
		t.Fatalf("usage %+v", msg.Usage)
	}
	checkAzureMessagesUpstream(t, lastRequest(t, h.azure), false)
	line := h.waitRequestLogs(1)[0]
	if gjson.Get(line, "route").Str != "messages" || gjson.Get(line, "provider").Str != "azure" || gjson.Get(line, "model").Str != "azure-default" ||
		gjson.Get(line, "prompt_tokens").Int() != 31 || gjson.Get(line, "completion_tokens").Int() != 24 ||
		!gjson.Get(line, "usage_from_provider").Bool() || gjson.Get(line, "cost_usd").Str != azureCost(t, 31, 0, 24) {
		t.Fatalf("log %s", line)
	}

	// Streamed: the SDK gets Anthropic's event sequence (it drops ping) and
	// accumulates the text, the stop reason and the usage Azure reported
	// last.
	s := c.Messages.NewStreaming(context.Background(), messagesParams("azure-default"))
	var streamed anthropic.Message
	var seq []string
	for s.Next() {
		ev := s.Current()
		if n := len(seq); n == 0 || seq[n-1] != ev.Type {
			seq = append(seq, ev.Type)
		}
		if err := streamed.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(seq, " "), "message_start content_block_start content_block_delta content_block_stop message_delta message_stop"; got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	if want := streamText(t, fixture(t, "azure_openai/chat_stream.sse")); len(streamed.Content) != 1 || streamed.Content[0].Text != want {
		t.Fatalf("streamed %+v, want %q", streamed.Content, want)
	}
	if streamed.StopReason != anthropic.StopReasonEndTurn || streamed.Usage.OutputTokens != 17 || streamed.Usage.InputTokens != 31 ||
		!strings.HasPrefix(streamed.ID, "msg_") || streamed.Model == "" {
		t.Fatalf("stream: id %q model %q stop %q usage %+v", streamed.ID, streamed.Model, streamed.StopReason, streamed.Usage)
	}
	checkAzureMessagesUpstream(t, lastRequest(t, h.azure), true)
	line = h.waitRequestLogs(2)[1]
	if gjson.Get(line, "route").Str != "messages" || !gjson.Get(line, "stream").Bool() || gjson.Get(line, "provider").Str != "azure" ||
		gjson.Get(line, "prompt_tokens").Int() != 31 || gjson.Get(line, "completion_tokens").Int() != 17 ||
		!gjson.Get(line, "usage_from_provider").Bool() || gjson.Get(line, "cost_usd").Str != azureCost(t, 31, 0, 17) {
		t.Fatalf("log %s", line)
	}
}

// weatherTool is the tool of the Azure tool-use round trip; Azure's fake
// calls get_current_weather for Lisbon.
func weatherTool() anthropic.ToolUnionParam {
	return anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
		Name:        "get_current_weather",
		Description: anthropic.String("Get the current weather for one city."),
		InputSchema: anthropic.ToolInputSchemaParam{
			Properties: map[string]any{
				"city": map[string]any{"type": "string"},
				"unit": map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
			},
			Required: []string{"city", "unit"},
		},
	}}
}

// TestMessagesAzureToolUse: a tool-use round trip to Azure, streamed and
// not: the deployment's function call reaches the SDK as a tool_use block,
// and the tool_result follow-up reaches Azure as the assistant's tool_calls
// and a tool message.
func TestMessagesAzureToolUse(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: azureConfig, azure: true})
	c := h.anthropicClient(gatewayKey)
	for i, tt := range []struct {
		stream bool
		callID string
	}{
		{false, gjson.GetBytes(fixture(t, "azure_openai/chat_response_tool_calls.json"), "choices.0.message.tool_calls.0.id").Str},
		{true, "call_Bq4nT8wKe2YhV6sLm0RxC3pJ"}, // azure_openai/chat_stream_tool_calls.sse
	} {
		p := messagesParams("azure-default")
		p.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather in Lisbon, in Celsius?"))}
		p.Tools = []anthropic.ToolUnionParam{weatherTool()}
		msg := messagesText(t, c, p, tt.stream)
		if msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 1 {
			t.Fatalf("stream=%t: %+v", tt.stream, msg)
		}
		use := msg.Content[0]
		if use.Type != "tool_use" || use.ID != tt.callID || use.Name != "get_current_weather" ||
			gjson.GetBytes(use.Input, "city").Str != "Lisbon" || gjson.GetBytes(use.Input, "unit").Str != "celsius" {
			t.Fatalf("stream=%t: tool_use %+v input %s", tt.stream, use, use.Input)
		}
		if msg.Usage.InputTokens != 84 || msg.Usage.OutputTokens != 19 {
			t.Fatalf("stream=%t: usage %+v", tt.stream, msg.Usage)
		}
		up := lastRequest(t, h.azure)
		checkAzureMessagesUpstream(t, up, tt.stream)
		tool := gjson.GetBytes(up.Body, "tools.0")
		if tool.Get("type").Str != "function" || tool.Get("function.name").Str != "get_current_weather" ||
			tool.Get("function.parameters.type").Str != "object" || tool.Get("function.parameters.required.1").Str != "unit" {
			t.Fatalf("stream=%t: tools %s", tt.stream, gjson.GetBytes(up.Body, "tools").Raw)
		}

		// The follow-up carries the call and its result.
		p.Messages = append(p.Messages, msg.ToParam(),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, "18°C and clear", false)))
		answer := messagesText(t, c, p, tt.stream)
		want := gjson.GetBytes(fixture(t, "azure_openai/chat_response.json"), "choices.0.message.content").Str
		if tt.stream {
			want = streamText(t, fixture(t, "azure_openai/chat_stream.sse"))
		}
		if len(answer.Content) != 1 || answer.Content[0].Text != want || answer.StopReason != anthropic.StopReasonEndTurn {
			t.Fatalf("stream=%t: follow-up %+v", tt.stream, answer)
		}
		up = lastRequest(t, h.azure)
		checkAzureMessagesUpstream(t, up, tt.stream)
		msgs := gjson.GetBytes(up.Body, "messages")
		call, result := msgs.Get("2"), msgs.Get("3")
		var args map[string]string
		if err := json.Unmarshal([]byte(call.Get("tool_calls.0.function.arguments").Str), &args); err != nil {
			t.Fatalf("stream=%t: arguments: %v", tt.stream, err)
		}
		if call.Get("role").Str != "assistant" || call.Get("tool_calls.0.id").Str != use.ID || call.Get("tool_calls.0.type").Str != "function" ||
			call.Get("tool_calls.0.function.name").Str != "get_current_weather" || args["city"] != "Lisbon" || args["unit"] != "celsius" {
			t.Fatalf("stream=%t: assistant turn %s", tt.stream, call.Raw)
		}
		if result.Get("role").Str != "tool" || result.Get("tool_call_id").Str != use.ID || !strings.Contains(result.Get("content").String(), "18°C and clear") ||
			len(msgs.Array()) != 4 {
			t.Fatalf("stream=%t: messages %s", tt.stream, msgs.Raw)
		}
		logs := h.waitRequestLogs(2*i + 2)
		for _, line := range logs[2*i:] {
			if gjson.Get(line, "route").Str != "messages" || gjson.Get(line, "provider").Str != "azure" ||
				!gjson.Get(line, "usage_from_provider").Bool() || gjson.Get(line, "cost_usd").Str == "" {
				t.Fatalf("log %s", line)
			}
		}
		if gjson.Get(logs[2*i], "cost_usd").Str != azureCost(t, 84, 0, 19) {
			t.Fatalf("tool call's log %s", logs[2*i])
		}
	}
}

// TestMessagesAzureErrors: Azure's own errors ({"error":{"code","message"}})
// reach the Anthropic SDK as its typed errors, and an error inside an Azure
// stream ends the Anthropic stream with an error event.
func TestMessagesAzureErrors(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: azureConfig, azure: true})
	ctx := context.Background()
	var resp *http.Response
	c := h.anthropicClient(gatewayKey, option.WithResponseInto(&resp))

	// Envoy retries a 429 twice (envoy/envoy.yaml's retry_policy): the
	// client sees Azure's third.
	throttled := []fakeprovider.Failure{fakeprovider.Status(429, "7"), fakeprovider.Status(429, "7"), fakeprovider.Status(429, "7")}
	h.azure.Fail(throttled...)
	_, err := c.Messages.New(ctx, messagesParams("azure-default"))
	e := wantAnthropicError(t, "Azure 429", err, 429, "rate_limit_error")
	// Azure's code is the status again: the message does not repeat it.
	if msg := gjson.Get(e.RawJSON(), "error.message").Str; !strings.HasSuffix(msg, "Please retry after 7 seconds.") || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("429: %s, retry-after %q", e.RawJSON(), resp.Header.Get("Retry-After"))
	}
	if n := len(h.azure.Requests()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}

	h.azure.Fail(fakeprovider.Status(400, ""))
	_, err = c.Messages.New(ctx, messagesParams("azure-default"))
	e = wantAnthropicError(t, "Azure 400", err, 400, "invalid_request_error")
	if msg := gjson.Get(e.RawJSON(), "error.message").Str; msg != "Bad Request" {
		t.Fatalf("400: %s", e.RawJSON())
	}

	// Streamed, the error arrives before any event: the same typed error.
	h.azure.Fail(throttled...)
	s := c.Messages.NewStreaming(ctx, messagesParams("azure-default"))
	for s.Next() {
	}
	wantAnthropicError(t, "Azure 429 on a stream", s.Err(), 429, "rate_limit_error")

	// An error inside the stream (after HTTP 200) ends it with an error
	// event, never with message_stop.
	h.azure.Fail(fakeprovider.StreamError())
	s = c.Messages.NewStreaming(ctx, messagesParams("azure-default"))
	var got anthropic.Message
	stopped := false
	for s.Next() {
		ev := s.Current()
		stopped = stopped || ev.Type == "message_stop"
		_ = got.Accumulate(ev)
	}
	if err := s.Err(); err == nil || stopped {
		t.Fatalf("a failed Azure stream: err %v, message_stop %t", err, stopped)
	}

	// Every one is logged against Azure.
	for _, line := range h.waitRequestLogs(4) {
		if gjson.Get(line, "route").Str != "messages" || gjson.Get(line, "provider").Str != "azure" {
			t.Fatalf("log %s", line)
		}
	}
}

// TestMessagesAzureCountTokens: count_tokens for an Azure model is the
// gateway's estimate, flagged as one; Azure is never called.
func TestMessagesAzureCountTokens(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: azureConfig, azure: true})
	var resp *http.Response
	c := h.anthropicClient(gatewayKey, option.WithResponseInto(&resp))
	n, err := c.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    "azure-default",
		System:   anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: []anthropic.TextBlockParam{{Text: "You are terse."}}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("How many tokens is this?"))},
		Tools:    []anthropic.MessageCountTokensToolUnionParam{{OfTool: weatherTool().OfTool}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.InputTokens <= 0 || resp.Header.Get("x-tollgate-estimated") != "true" {
		t.Fatalf("estimate %d, header %q", n.InputTokens, resp.Header.Get("x-tollgate-estimated"))
	}
	if len(h.azure.Requests()) != 0 {
		t.Fatal("an estimate must not call Azure")
	}
	// A body the estimate cannot read is refused in Anthropic's format.
	r, body := h.raw("POST", "/v1/messages/count_tokens", "", `{"model":"azure-default","messages":"nope"}`, "x-api-key", gatewayKey)
	if r.StatusCode != 400 || gjson.GetBytes(body, "type").Str != "error" || gjson.GetBytes(body, "error.type").Str != "invalid_request_error" {
		t.Fatalf("bad body: %d %s", r.StatusCode, body)
	}
}
