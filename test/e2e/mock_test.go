package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/policy/keys"
)

const (
	mockKey       = "tg_e2eMockJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJ"
	mockBudgetKey = "tg_e2eMockBudgetKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK"
)

// mockConfig adds a schema mock provider (no cluster anywhere: the shipped
// bootstrap is unchanged) and keys with and without a spent-able budget.
func mockConfig() string {
	return fmt.Sprintf(`version: 1
providers:
  - {name: mock, schema: mock, models: [tollgate-mock, tollgate-mock-embed], direct_models: listed}
models:
  - {name: mock-chat, provider: mock, model: tollgate-mock}
  - {name: mock-embed, provider: mock, model: tollgate-mock-embed}
tenants:
  - name: mockers
keys:
  - {id: mock-key, sha256: %s, tenant: mockers}
  - {id: mock-budget-key, sha256: %s, tenant: mockers}
limits:
  budgets:
    - {scope: key, match: mock-budget-key, daily_usd: "0.0002"}
`, keys.Hash(mockKey), keys.Hash(mockBudgetKey))
}

// TestMockProvider: the gateway answers a schema mock provider itself, through
// the real request path (devfront on envoy/envoy.yaml), and meters it like a
// provider's answer; nothing reaches any upstream.
func TestMockProvider(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: mockConfig()})
	ctx := context.Background()
	var resp *http.Response
	c := h.newClient(mockKey, option.WithResponseInto(&resp))

	chat, err := c.Chat.Completions.New(ctx, chatParams("mock-chat"))
	if err != nil {
		t.Fatal(err)
	}
	want := "This is Tollgate's mock provider. You said: In one sentence, what does an API gateway do?"
	if chat.Choices[0].Message.Content != want || chat.Model != "tollgate-mock" || chat.Usage.TotalTokens == 0 {
		t.Fatalf("chat %+v", chat)
	}
	for k, v := range map[string]string{
		"X-Tollgate-Provider": "mock", "X-Tollgate-Model": "tollgate-mock", "X-Tollgate-Usage": "provider", "X-Tollgate-Cost-Usd": "0",
		"X-Tollgate-Prompt-Tokens": fmt.Sprint(chat.Usage.PromptTokens), "X-Tollgate-Total-Tokens": fmt.Sprint(chat.Usage.TotalTokens),
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !serverTiming.MatchString(resp.Header.Get("Server-Timing")) || resp.Header.Get("X-Tollgate-Request-Id") == "" {
		t.Errorf("headers %v", resp.Header)
	}

	p := chatParams("mock-chat")
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, p)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != want || acc.Usage.TotalTokens != chat.Usage.TotalTokens {
		t.Fatalf("stream: %v %q usage %+v", err, acc.Choices[0].Message.Content, acc.Usage)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("stream content-type %q", ct)
	}

	emb, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "mock-embed", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("The food was delicious")},
	})
	if err != nil || len(emb.Data) != 1 || len(emb.Data[0].Embedding) != 8 || emb.Usage.PromptTokens != 6 {
		t.Fatalf("embeddings %+v: %v", emb, err)
	}

	fail := chatParams("mock-chat")
	fail.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("please fail [mock:429]")}
	_, err = c.Chat.Completions.New(ctx, fail)
	wantAPIError(t, "asked-for 429", err, 429, "rate_limit_exceeded")

	logs := h.waitRequestLogs(4)
	for i, w := range []struct {
		status int
		known  bool
	}{{200, true}, {200, true}, {200, true}, {429, false}} {
		l := logs[i]
		if gjson.Get(l, "provider").Str != "mock" || gjson.Get(l, "status").Int() != int64(w.status) || gjson.Get(l, "outcome").Str != "completed" ||
			gjson.Get(l, "usage_from_provider").Bool() != w.known || gjson.Get(l, "refusal").Exists() {
			t.Errorf("log line %d: %s", i, l)
		}
		if w.known && gjson.Get(l, "cost_usd").Str != "0" {
			t.Errorf("log line %d cost: %s", i, l)
		}
	}
	if n := len(h.openai.Requests()) + len(h.anthropic.Requests()); n != 0 {
		t.Fatalf("%d requests reached an upstream", n)
	}
}

// TestMockAfterPolicy: a budget spent on a real provider refuses the next
// mock request too: admission runs before the mock answers.
func TestMockAfterPolicy(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: mockConfig()})
	c := h.newClient(mockBudgetKey)
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("mock-chat")); err != nil {
		t.Fatal(err)
	}
	// One openai answer (0.0002865 USD) spends the daily 0.0002.
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
		t.Fatal(err)
	}
	h.waitRequestLogs(2) // charged when the request ends
	_, err := c.Chat.Completions.New(context.Background(), chatParams("mock-chat"))
	wantAPIError(t, "budget spent", err, 429, "insufficient_quota")
	l := h.waitRequestLogs(3)[2]
	if gjson.Get(l, "refusal").Str != "insufficient_quota" || gjson.Get(l, "outcome").Str != "refused" || gjson.Get(l, "usage_from_provider").Bool() {
		t.Fatalf("log line %s", l)
	}
}
