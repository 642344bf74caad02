package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

const (
	rpmKey    = "tg_e2eRpmGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGG"
	budgetKey = "tg_e2eBudgetHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH"
	streamKey = "tg_e2eStreamerIIIIIIIIIIIIIIIIIIIIIIIIIIIIIII"
)

// meteredConfig is a second config file: a tenant with limits and budgets.
func meteredConfig() string {
	return fmt.Sprintf(`version: 1
tenants:
  - name: metered
    apps:
      - {name: streamer, on_budget_exhausted: terminate}
keys:
  - {id: rpm-key, sha256: %s, tenant: metered}
  - {id: budget-key, sha256: %s, tenant: metered}
  - {id: stream-key, sha256: %s, tenant: metered, app: streamer}
limits:
  rate_limits:
    - {scope: key, match: rpm-key, requests_per_minute: 2, tokens_per_minute: 100000}
  budgets:
    - {scope: key, match: budget-key, daily_usd: "0.0004", max_cost_per_request_usd: "0.05"}
    - {scope: app, match: metered/streamer, daily_usd: "0.0002"}
`, keys.Hash(rpmKey), keys.Hash(budgetKey), keys.Hash(streamKey))
}

// cutComment removes the metering comment from a client stream, checking
// that there is exactly one and that it comes just before data: [DONE].
func cutComment(t *testing.T, got string) string {
	t.Helper()
	i := strings.Index(got, ": tollgate ")
	if i < 0 || strings.Count(got, ": tollgate ") != 1 {
		t.Fatalf("want one metering comment in the stream:\n%s", got)
	}
	end := strings.Index(got[i:], "\n\n") + i + 2
	if !strings.HasPrefix(got[end:], "data: [DONE]") {
		t.Fatalf("metering comment not just before [DONE]")
	}
	return got[:i] + got[end:]
}

// fixtureCost is what the fixture chat response costs on gpt-4o-mini.
func fixtureCost(t *testing.T) string {
	t.Helper()
	c, ok := pricing.Default().Cost(pricing.Key{Provider: "openai", Model: "gpt-4o-mini"}, pricing.Usage{PromptTokens: 1342, CachedTokens: 1152, CompletionTokens: 286}, time.Now())
	if !ok {
		t.Fatal("no price for gpt-4o-mini")
	}
	return c.Total.String()
}

var serverTiming = regexp.MustCompile(`^gateway;dur=\d+\.\d{3}, upstream;dur=\d+\.\d{3}$`)

func TestMeteringHeaders(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	var resp *http.Response
	c := h.newClient(gatewayKey, option.WithResponseInto(&resp))
	if _, err := c.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"X-Tollgate-Provider": "openai", "X-Tollgate-Model": "gpt-4o-mini",
		"X-Tollgate-Prompt-Tokens": "1342", "X-Tollgate-Completion-Tokens": "286", "X-Tollgate-Total-Tokens": "1628",
		"X-Tollgate-Cached-Tokens": "1152", "X-Tollgate-Usage": "provider", "X-Tollgate-Cost-Usd": fixtureCost(t),
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if fixtureCost(t) != "0.0002865" { // 190×0.15 + 1152×0.075 + 286×0.60 per million
		t.Errorf("fixture cost %s, want 0.0002865", fixtureCost(t))
	}
	if id := resp.Header.Get("X-Tollgate-Request-Id"); id == "" || gjson.Get(h.waitRequestLogs(1)[0], "request_id").Str != id {
		t.Errorf("x-tollgate-request-id %q does not match the log line", id)
	}
	if st := resp.Header.Get("Server-Timing"); !serverTiming.MatchString(st) {
		t.Errorf("server-timing %q", st)
	}
	if got := gjson.Get(h.waitRequestLogs(1)[0], "cost_usd").Str; got != fixtureCost(t) {
		t.Errorf("log cost_usd %q", got)
	}
	// Refusals carry the request id too.
	r, _ := h.raw("POST", "/v1/chat/completions", "", `{}`)
	if r.Header.Get("X-Tollgate-Request-Id") == "" {
		t.Error("refusal without x-tollgate-request-id")
	}
}

var meterComment = regexp.MustCompile(`(?m)^: tollgate request_id=\S+ provider=openai model=gpt-4o-mini prompt_tokens=(\d+) completion_tokens=(\d+) total_tokens=(\d+) cached_tokens=\d+ usage=provider cost_usd=[0-9.]+ gateway_ms=[0-9.]+ upstream_ms=[0-9.]+$`)

func TestStreamMeterComment(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// The SDK parses a stream carrying the comment.
	stream := h.client.Chat.Completions.NewStreaming(context.Background(), chatParams("smart-default"))
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != streamText(t, fixture(t, "openai/chat_stream.sse")) {
		t.Fatalf("SDK stream with the metering comment: %v", err)
	}
	resp, body := h.raw("POST", "/v1/chat/completions", gatewayKey, `{"model":"smart-default","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	m := meterComment.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no metering comment in:\n%s", body)
	}
	u := gjson.Get(lastUsageChunk(fixture(t, "openai/chat_stream.sse")), "usage")
	if m[1] != u.Get("prompt_tokens").String() || m[2] != u.Get("completion_tokens").String() || m[3] != u.Get("total_tokens").String() {
		t.Fatalf("comment %q disagrees with the provider's usage %s", m[0], u.Raw)
	}
	if !serverTiming.MatchString(resp.Header.Get("Server-Timing")) || resp.Header.Get("X-Tollgate-Request-Id") == "" {
		t.Fatalf("stream headers: %v", resp.Header)
	}
}

func lastUsageChunk(sse []byte) string {
	var last string
	for _, line := range strings.Split(string(sse), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok && gjson.Get(d, "usage").IsObject() {
			last = d
		}
	}
	return last
}

// TestCutStreamEstimated: a stream reset before its usage arrived still
// yields a usage record, estimated from the text received and flagged.
func TestCutStreamEstimated(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// The provider fails mid-stream: half the events, an error event, no
	// usage, no [DONE].
	h.openai.Fail(fakeprovider.StreamError())
	stream := h.client.Chat.Completions.NewStreaming(context.Background(), chatParams("smart-default"))
	n := 0
	for stream.Next() {
		n++
	}
	if stream.Err() == nil || n == 0 {
		t.Fatalf("a failed stream: %d chunks, err %v", n, stream.Err())
	}
	line := h.waitRequestLogs(1)[0]
	if !gjson.Get(line, "usage_estimated").Bool() || gjson.Get(line, "usage_from_provider").Bool() ||
		gjson.Get(line, "completion_tokens").Int() == 0 || gjson.Get(line, "prompt_tokens").Int() == 0 ||
		gjson.Get(line, "cost_usd").Str == "" {
		t.Fatalf("cut stream log line: %s", line)
	}

	// A connection reset: the kernel drops unread bytes on RST, so nothing
	// of the body may have arrived; the record is still there and flagged.
	h.openai.Fail(fakeprovider.ResetAfter(1200))
	stream = h.client.Chat.Completions.NewStreaming(context.Background(), chatParams("smart-default"))
	for stream.Next() {
	}
	if stream.Err() == nil {
		t.Fatal("a reset stream ended without an error at the client")
	}
	line = h.waitRequestLogs(2)[1]
	if !gjson.Get(line, "usage_estimated").Bool() || gjson.Get(line, "prompt_tokens").Int() == 0 {
		t.Fatalf("reset stream log line: %s", line)
	}
	// The stream's headers had reached the client: its 200 stands.
	if gjson.Get(line, "status").Int() != 200 || gjson.Get(line, "outcome").Str != "reset" {
		t.Fatalf("reset stream: status and outcome: %s", line)
	}
	if first := h.waitRequestLogs(1)[0]; gjson.Get(first, "outcome").Str != "incomplete" {
		t.Fatalf("stream ended by a provider error: outcome: %s", first)
	}

	// Anthropic: a stream ended by an error event after message_start, whose
	// output_tokens is a placeholder, is estimated, never taken as final.
	h.anthropic.Fail(fakeprovider.StreamError())
	stream = h.client.Chat.Completions.NewStreaming(context.Background(), chatParams("claude-default"))
	for stream.Next() {
	}
	if stream.Err() == nil {
		t.Fatal("a failed Anthropic stream ended without an error at the client")
	}
	line = h.waitRequestLogs(3)[2]
	if !gjson.Get(line, "usage_estimated").Bool() || gjson.Get(line, "usage_from_provider").Bool() ||
		gjson.Get(line, "prompt_tokens").Int() != 24 || gjson.Get(line, "completion_tokens").Int() <= 4 || gjson.Get(line, "outcome").Str != "incomplete" {
		t.Fatalf("failed Anthropic stream log line: %s", line)
	}
}

// TestBufferedResetRecorded: a non-streaming response reset mid-body never
// reached the client (the gateway holds buffered headers until the body is
// complete), so its record says status 0 and outcome reset, not 200.
func TestBufferedResetRecorded(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.openai.Fail(fakeprovider.ResetAfter(200))
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default"), option.WithMaxRetries(0)); err == nil {
		t.Fatal("a reset response reached the client as a success")
	}
	line := h.waitRequestLogs(1)[0]
	if gjson.Get(line, "status").Int() != 0 || gjson.Get(line, "outcome").Str != "reset" {
		t.Fatalf("reset response log line: %s", line)
	}
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
		t.Fatal(err)
	}
	if line := h.waitRequestLogs(2)[1]; gjson.Get(line, "status").Int() != 200 || gjson.Get(line, "outcome").Str != "completed" {
		t.Fatalf("complete response log line: %s", line)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: meteredConfig()})
	var resp *http.Response
	c := h.newClient(rpmKey, option.WithResponseInto(&resp))
	for i := range 2 {
		if _, err := c.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if resp.Header.Get("X-Ratelimit-Limit-Requests") != "2" || resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" ||
		resp.Header.Get("X-Ratelimit-Limit-Tokens") != "100000" || resp.Header.Get("X-Ratelimit-Reset-Requests") == "" {
		t.Fatalf("rate-limit headers on an admitted response: %v", resp.Header)
	}
	_, err := c.Chat.Completions.New(context.Background(), chatParams("smart-default"))
	wantAPIError(t, "third request in the minute", err, 429, "rate_limit_exceeded")
	r, body := h.raw("POST", "/v1/chat/completions", rpmKey, `{"model":"smart-default","messages":[]}`)
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" || gjson.GetBytes(body, "error.type").Str != "requests" {
		t.Fatalf("refusal: %d retry-after=%q %s", r.StatusCode, r.Header.Get("Retry-After"), body)
	}
	if n := len(h.openai.Requests()); n != 2 {
		t.Fatalf("%d requests reached the provider, want 2", n)
	}
}

func TestBudgets(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: meteredConfig()})
	c := h.newClient(budgetKey)
	// A request whose worst case costs more than max_cost_per_request.
	p := chatParams("smart-default")
	p.MaxCompletionTokens = openai.Int(1_000_000)
	_, err := c.Chat.Completions.New(context.Background(), p)
	wantAPIError(t, "estimate over max_cost_per_request", err, 400, "max_cost_per_request_exceeded")
	// Two requests of 0.0002865 USD: the daily 0.0004 is spent after the second.
	for i := range 2 {
		if _, err := c.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		h.waitRequestLogs(i + 2) // charged when the request ends
	}
	_, err = c.Chat.Completions.New(context.Background(), chatParams("smart-default"))
	wantAPIError(t, "budget spent", err, 429, "insufficient_quota")
}

// TestBudgetEndsRunningStream: an app whose policy is to terminate gets a
// terminal SSE error event when its budget runs out mid-stream.
func TestBudgetEndsRunningStream(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: meteredConfig()})
	stream := h.newClient(streamKey)
	release := holdNextResponse(t, h)
	type result struct {
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		s := stream.Chat.Completions.NewStreaming(context.Background(), chatParams("smart-default"))
		var acc openai.ChatCompletionAccumulator
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		r := result{err: s.Err()}
		if len(acc.Choices) > 0 {
			r.text = acc.Choices[0].Message.Content
		}
		done <- r
	}()
	waitProviderRequests(t, h, 1)
	// Another request of the same app spends the budget while the stream waits.
	if _, err := stream.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
		t.Fatal(err)
	}
	h.waitRequestLogs(1)
	close(release)
	r := <-done
	if r.err == nil || !strings.Contains(r.err.Error(), "budget") {
		t.Fatalf("stream past its budget: err=%v text=%q", r.err, r.text)
	}
	if r.text == streamText(t, fixture(t, "openai/chat_stream.sse")) {
		t.Fatal("the whole stream was delivered")
	}
}
