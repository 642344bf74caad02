package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/devfront"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

// anthropicStreamText concatenates the text deltas of an Anthropic stream
// fixture.
func anthropicStreamText(t *testing.T, name string) string {
	var b strings.Builder
	for _, line := range strings.Split(string(fixture(t, name)), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok && gjson.Get(d, "delta.type").Str == "text_delta" {
			b.WriteString(gjson.Get(d, "delta.text").Str)
		}
	}
	return b.String()
}

func claudeParams() openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model: "claude-default",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("You are a concise assistant for an internal platform team."),
			openai.UserMessage("In one sentence, what does an API gateway do?"),
		},
		Temperature: openai.Float(0.2),
	}
}

// checkAnthropicUpstream asserts what reached the Anthropic provider.
func checkAnthropicUpstream(t *testing.T, r fakeprovider.Request, stream bool) {
	t.Helper()
	if r.Path != "/v1/messages" || r.Host != "api.anthropic.com" {
		t.Errorf("upstream %s %s", r.Host, r.Path)
	}
	if r.Header.Get("X-Api-Key") != anthropicSecret || r.Header.Get("Anthropic-Version") != "2023-06-01" {
		t.Errorf("anthropic credential or version missing")
	}
	if r.Header.Get("Authorization") != "" {
		t.Errorf("an authorization header reached Anthropic")
	}
	body := string(r.Body)
	if gjson.Get(body, "model").Str != "claude-sonnet-4-5" || gjson.Get(body, "max_tokens").Int() != 1024 ||
		gjson.Get(body, "system").Str == "" || gjson.Get(body, "stream").Bool() != stream || gjson.Get(body, "messages.0.role").Str != "user" {
		t.Errorf("translated request: %s", body)
	}
	if r.ContentLength >= 0 && int(r.ContentLength) != len(r.Body) {
		t.Errorf("content-length %d for %d bytes", r.ContentLength, len(r.Body))
	}
}

func TestAnthropicChat(t *testing.T) {
	fronts(t, harnessOptions{}, func(t *testing.T, h *harness) {
		resp, err := h.client.Chat.Completions.New(context.Background(), claudeParams())
		if err != nil {
			t.Fatal(err)
		}
		want := gjson.GetBytes(fixture(t, "anthropic/messages_response.json"), "content.0.text").Str
		if resp.Choices[0].Message.Content != want || resp.Choices[0].FinishReason != "stop" {
			t.Fatalf("answer %q (%s), want %q", resp.Choices[0].Message.Content, resp.Choices[0].FinishReason, want)
		}
		// prompt = input + cache writes + cache reads; cached = cache reads.
		if resp.Usage.PromptTokens != 46+2048 || resp.Usage.PromptTokensDetails.CachedTokens != 2048 || resp.Usage.CompletionTokens != 29 {
			t.Fatalf("usage %+v", resp.Usage)
		}
		checkAnthropicUpstream(t, lastRequest(t, h.anthropic), false)
		line := h.waitRequestLogs(1)[0]
		if gjson.Get(line, "provider").Str != "anthropic" || gjson.Get(line, "prompt_tokens").Int() != 2094 || gjson.Get(line, "cost_usd").Str == "" {
			t.Fatalf("log %s", line)
		}
	})
}

func TestAnthropicStream(t *testing.T) {
	for name, chunks := range streamChunkings {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{chunks: chunks})
			p := claudeParams()
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			acc := streamChat(t, h.client, p)
			if got, want := acc.Choices[0].Message.Content, anthropicStreamText(t, "anthropic/messages_stream.sse"); got != want {
				t.Fatalf("assembled %q, want %q", got, want)
			}
			if acc.Usage.CompletionTokens == 0 || acc.Usage.PromptTokens == 0 {
				t.Fatalf("usage chunk %+v", acc.Usage)
			}
			checkAnthropicUpstream(t, lastRequest(t, h.anthropic), true)
			_, body := h.raw("POST", "/v1/chat/completions", gatewayKey, `{"model":"claude-default","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
			if !strings.Contains(string(body), "\n: tollgate ") || !strings.HasSuffix(string(body), "data: [DONE]\n\n") || strings.Contains(string(body), "event:") {
				t.Fatalf("translated stream:\n%s", body)
			}
		})
	}
}

func TestAnthropicToolStream(t *testing.T) {
	h := newHarness(t, harnessOptions{chunks: devfront.Fixed(5)})
	p := claudeParams()
	p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})}
	acc := streamChat(t, h.client, p)
	calls := acc.Choices[0].Message.ToolCalls
	if len(calls) == 0 || calls[0].Function.Name == "" || !json.Valid([]byte(calls[0].Function.Arguments)) || acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("tool calls %+v finish %q", calls, acc.Choices[0].FinishReason)
	}
	if !gjson.GetBytes(lastRequest(t, h.anthropic).Body, "tools.0.input_schema").Exists() {
		t.Fatal("tools not translated for Anthropic")
	}
}

func TestAnthropicErrors(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// 500 is not retried by the route's policy: the client gets Anthropic's
	// error in OpenAI's shape.
	h.anthropic.Fail(fakeprovider.Status(500, ""))
	var apiErr *openai.Error
	_, err := h.client.Chat.Completions.New(context.Background(), claudeParams())
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != 500 || apiErr.Type != "server_error" {
		t.Fatalf("Anthropic 500: %v", err)
	}
	h.anthropic.Fail(fakeprovider.Status(400, ""))
	_, err = h.client.Chat.Completions.New(context.Background(), claudeParams())
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Type != "invalid_request_error" {
		t.Fatalf("Anthropic 400: %v", err)
	}
	// 529 overloaded is retryable (envoy.yaml retries 429/503/529 on the
	// same provider): one overload is absorbed by Envoy.
	h.anthropic.Fail(fakeprovider.Status(529, ""))
	if _, err := h.client.Chat.Completions.New(context.Background(), claudeParams()); err != nil {
		t.Fatalf("a single 529 should be retried: %v", err)
	}
	if n := len(h.anthropic.Requests()); n != 4 {
		t.Fatalf("%d upstream requests, want 4: 500 and 400 not retried, 529 retried once", n)
	}
	// An error event after HTTP 200 and partial output: the SDK reports it.
	h.anthropic.Fail(fakeprovider.StreamError())
	s := h.client.Chat.Completions.NewStreaming(context.Background(), claudeParams())
	n := 0
	for s.Next() {
		n++
	}
	if s.Err() == nil || n == 0 {
		t.Fatalf("stream error event: %d chunks, err %v", n, s.Err())
	}
	// Embeddings are not an Anthropic endpoint.
	_, err = h.client.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "claude-default", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}})
	wantAPIError(t, "embeddings on Anthropic", err, 400, "unsupported_endpoint")
	// A client request that cannot be expressed for Anthropic.
	c := h.newClient(gatewayKey, option.WithJSONSet("n", 3))
	_, err = c.Chat.Completions.New(context.Background(), claudeParams())
	var e *openai.Error
	if !asAPIError(err, &e) || e.StatusCode != 400 {
		t.Fatalf("n=3 on Anthropic: %v", err)
	}
}

// TestWeightedPool: an alias that is a pool of an OpenAI and an Anthropic
// target (3:1) sends each request to one of them, translated for it, and
// the split follows the weights.
func TestWeightedPool(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: `version: 1
models:
  - name: pooled-default
    targets:
      - {provider: openai, model: gpt-4o-mini, weight: 3}
      - {provider: anthropic, model: claude-sonnet-4-5, weight: 1}
`})
	openaiText := gjson.GetBytes(fixture(t, "openai/chat_response.json"), "choices.0.message.content").Str
	claudeText := gjson.GetBytes(fixture(t, "anthropic/messages_response.json"), "content.0.text").Str
	const n = 80
	for i := range n {
		resp, err := h.client.Chat.Completions.New(context.Background(), chatParams("pooled-default"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if c := resp.Choices[0].Message.Content; c != openaiText && c != claudeText {
			t.Fatalf("request %d: answer from neither provider: %q", i, c)
		}
	}
	o, a := len(h.openai.Requests()), len(h.anthropic.Requests())
	if o+a != n || a < n/8 || a > n*3/8 {
		t.Fatalf("split openai %d / anthropic %d of %d, want about 3:1", o, a, n)
	}
	checkUpstream(t, lastRequest(t, h.openai), "/v1/chat/completions", "gpt-4o-mini")
	if gjson.GetBytes(lastRequest(t, h.anthropic).Body, "model").Str != "claude-sonnet-4-5" {
		t.Fatal("anthropic member got the wrong model")
	}
}
