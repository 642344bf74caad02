package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/tidwall/gjson"
)

// A provider that refuses the gateway's own credential answers 401. The
// client's gateway key was fine, so the client gets 502 provider_auth_failed
// in its endpoint's format, never the provider's 401, whose message can
// show part of the platform's key; the operators find the provider's
// message in the log.

// staleCredentialConfig adds providers on the fake clusters whose
// credential the fakes do not accept: each one answers its real 401.
func staleCredentialConfig() string {
	return `version: 1
providers:
  - name: stale-openai
    schema: openai
    cluster: openai
    base_path: /v1
    credential:
      header: authorization
      prefix: "Bearer "
      source: {env: ` + acmeEnv + `}
    models: [gpt-4o-mini]
    price_as: {gpt-4o-mini: openai/gpt-4o-mini}
  - name: stale-anthropic
    schema: anthropic
    cluster: anthropic
    default_max_tokens: 1024
    credential:
      header: x-api-key
      source: {env: ` + providerEnv + `}
    models: [claude-sonnet-4-5]
    price_as: {claude-sonnet-4-5: anthropic/claude-sonnet-4-5}
models:
  - {name: stale-gpt, provider: stale-openai, model: gpt-4o-mini}
  - {name: stale-claude, provider: stale-anthropic, model: claude-sonnet-4-5}
`
}

// providerWords are what the fakes' 401 bodies say; none may reach the
// client.
var providerWords = []string{"Incorrect API key", "Xq9Z", "invalid x-api-key", "authentication_error", "invalid_api_key"}

// wantNoProviderAuthLeak fails if the client's error body carries the
// provider's message or the credential the gateway sent.
func wantNoProviderAuthLeak(t *testing.T, what, body string) {
	t.Helper()
	for _, s := range append([]string{acmeSecret, providerSecret, anthropicSecret}, providerWords...) {
		if strings.Contains(body, s) {
			t.Errorf("%s: the client's error carries %q: %s", what, s, body)
		}
	}
}

func TestProviderAuthFailedChat(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: staleCredentialConfig()})
	ctx := context.Background()
	for _, model := range []string{"stale-gpt", "stale-claude"} { // passed through; translated to Anthropic
		for _, stream := range []bool{false, true} {
			what := model
			if stream {
				what += " stream"
			}
			before := len(h.openai.Requests()) + len(h.anthropic.Requests())
			var err error
			if stream {
				s := h.client.Chat.Completions.NewStreaming(ctx, chatParams(model))
				for s.Next() {
				}
				err = s.Err()
			} else {
				_, err = h.client.Chat.Completions.New(ctx, chatParams(model))
			}
			wantAPIError(t, what, err, 502, "provider_auth_failed")
			var e *openai.Error
			if errors.As(err, &e) {
				wantNoProviderAuthLeak(t, what, e.RawJSON())
			}
			if len(h.openai.Requests())+len(h.anthropic.Requests()) != before+1 {
				t.Fatalf("%s: the provider was not asked", what)
			}
		}
	}
	wantCredentialRejectedLogs(t, h, 4)
}

func TestProviderAuthFailedMessages(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: staleCredentialConfig()})
	ctx := context.Background()
	c := h.anthropicClient(gatewayKey)
	for _, model := range []string{"stale-claude", "stale-gpt"} { // native; translated to chat
		for _, stream := range []bool{false, true} {
			what := model
			if stream {
				what += " stream"
			}
			var err error
			if stream {
				s := c.Messages.NewStreaming(ctx, messagesParams(model))
				for s.Next() {
				}
				err = s.Err()
			} else {
				_, err = c.Messages.New(ctx, messagesParams(model))
			}
			e := wantAnthropicError(t, what, err, 502, "api_error")
			body := string(e.RawJSON())
			if !strings.Contains(body, "provider_auth_failed") {
				t.Errorf("%s: the error must name provider_auth_failed: %s", what, body)
			}
			wantNoProviderAuthLeak(t, what, body)
		}
	}
	if len(h.anthropic.Requests()) != 2 || len(h.openai.Requests()) != 2 {
		t.Fatalf("provider requests: anthropic %d, openai %d", len(h.anthropic.Requests()), len(h.openai.Requests()))
	}
	wantCredentialRejectedLogs(t, h, 4)
}

// wantCredentialRejectedLogs waits for n request log lines and checks the
// operators' warning, with the provider's own message, was logged for each.
func wantCredentialRejectedLogs(t *testing.T, h *harness, n int) {
	t.Helper()
	for _, line := range h.waitRequestLogs(n) {
		if gjson.Get(line, "status").Int() != 502 {
			t.Errorf("request logged with status %d: %s", gjson.Get(line, "status").Int(), line)
		}
	}
	warned := 0
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, "provider rejected the gateway's credential") && gjson.Get(line, "provider_error").Str != "" {
			warned++
		}
	}
	if warned != n {
		t.Errorf("%d credential warnings with the provider's message, want %d", warned, n)
	}
}
