package e2e

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

// fallbackConfig makes "resilient" an OpenAI → Anthropic chain behind the
// chain cluster of envoy/envoy-fallback.yaml.
const fallbackConfig = `version: 1
models:
  - name: resilient
    fallback:
      cluster: chain_smart_default
      targets:
        - {provider: openai, model: gpt-4o-mini}
        - {provider: anthropic, model: claude-sonnet-4-5}
`

func resilientParams() openai.ChatCompletionNewParams {
	p := claudeParams()
	p.Model = "resilient"
	return p
}

// checkFellBack asserts the request was tried on OpenAI, then answered by
// Anthropic with a correctly translated and authenticated request.
func checkFellBack(t *testing.T, h *harness, stream bool) {
	t.Helper()
	if n := len(h.openai.Requests()); n != 1 {
		t.Fatalf("%d attempts on the primary, want 1", n)
	}
	p := lastRequest(t, h.openai)
	if p.Path != "/v1/chat/completions" || p.Header.Get("Authorization") != "Bearer "+providerSecret || gjson.GetBytes(p.Body, "model").Str != "gpt-4o-mini" {
		t.Errorf("primary attempt: %s %s", p.Path, p.Body)
	}
	checkAnthropicUpstream(t, lastRequest(t, h.anthropic), stream)
	line := h.waitRequestLogs(1)[0]
	if gjson.Get(line, "provider").Str != "anthropic" || gjson.Get(line, "model").Str != "resilient" || !gjson.Get(line, "usage_from_provider").Bool() {
		t.Errorf("log %s", line)
	}
}

func TestFallback(t *testing.T) {
	claude := gjson.GetBytes(fixture(t, "anthropic/messages_response.json"), "content.0.text").Str
	cases := map[string]func(h *harness) func(){
		"429 with retry-after": func(h *harness) func() { h.openai.Fail(fakeprovider.Status(429, "1")); return nil },
		"500":                  func(h *harness) func() { h.openai.Fail(fakeprovider.Status(500, "")); return nil },
		"hung primary": func(h *harness) func() {
			h.openai.Fail(fakeprovider.SlowFirstByte(nil)) // never answers
			return func() {
				waitProviderRequests(h.t, h, 1)
				h.fireIdleTimeout() // the alias's time to first byte has passed
			}
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{fallback: true, extra: fallbackConfig})
			then := setup(h)
			if then != nil {
				go then()
			}
			resp, err := h.client.Chat.Completions.New(context.Background(), resilientParams())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Message.Content != claude {
				t.Fatalf("answer %q, want Anthropic's", resp.Choices[0].Message.Content)
			}
			checkFellBack(t, h, false)
		})
	}
}

func TestFallbackStream(t *testing.T) {
	h := newHarness(t, harnessOptions{fallback: true, extra: fallbackConfig})
	h.openai.Fail(fakeprovider.Status(429, "1"))
	acc := streamChat(t, h.client, resilientParams())
	if got, want := acc.Choices[0].Message.Content, anthropicStreamText(t, "anthropic/messages_stream.sse"); got != want {
		t.Fatalf("assembled %q, want Anthropic's %q", got, want)
	}
	checkFellBack(t, h, true)
}

func TestFallbackConnectFailure(t *testing.T) {
	h := newHarness(t, harnessOptions{fallback: true, extra: fallbackConfig})
	// Stop the primary: nothing listens at its address any more.
	h.openai.Close()
	if c, err := net.Dial("tcp", h.openai.Addr()); err == nil {
		c.Close()
		t.Skip("the primary's port was reused")
	}
	resp, err := h.client.Chat.Completions.New(context.Background(), resilientParams())
	if err != nil || !strings.Contains(resp.Choices[0].Message.Content, "API gateway") {
		t.Fatalf("after a connect failure: %v", err)
	}
	checkAnthropicUpstream(t, lastRequest(t, h.anthropic), false)
}

// TestNoFallbackAfterFirstByte: once the primary's stream has reached the
// client, a failure is not retried; the client sees an error, never a clean
// end.
func TestNoFallbackAfterFirstByte(t *testing.T) {
	h := newHarness(t, harnessOptions{fallback: true, extra: fallbackConfig})
	h.openai.Fail(fakeprovider.StreamError())
	s := h.client.Chat.Completions.NewStreaming(context.Background(), resilientParams())
	n := 0
	for s.Next() {
		n++
	}
	if s.Err() == nil || n == 0 {
		t.Fatalf("a stream failing after its first bytes: %d chunks, err %v", n, s.Err())
	}
	if k := len(h.anthropic.Requests()); k != 0 {
		t.Fatalf("retried on the secondary after bytes reached the client (%d requests)", k)
	}
}
