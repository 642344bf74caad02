package e2e

import (
	"context"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestNestedDuplicateKeyRefused: a second "content" key inside a message is
// how a client would slip a blocked prompt past the guardrails (which would
// read one value) to a provider (whose parser keeps the last). The gateway
// refuses it with duplicate_key, naming the path, and the provider never sees
// it; the same with the key name escaped.
func TestNestedDuplicateKeyRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: guardrailConfig()})
	c := guardedClient(h, "safe")
	const secret = "deploy with sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh please"
	for name, body := range map[string]string{
		"plain":   `{"model":"smart-default","messages":[{"role":"user","content":"hello","content":"` + secret + `"}]}`,
		"escaped": `{"model":"smart-default","messages":[{"role":"user","content":"hello","c\u006fntent":"` + secret + `"}]}`,
	} {
		_, err := c.Chat.Completions.New(context.Background(), userParams("hello"),
			option.WithRequestBody("application/json", []byte(body)))
		wantAPIError(t, name, err, 400, "duplicate_key")
		var e *openai.Error
		if asAPIError(err, &e) && e.Param != "messages[0].content" {
			t.Errorf("%s: param %q, want messages[0].content", name, e.Param)
		}
	}
	if n := len(h.openai.Requests()); n != 0 {
		t.Fatalf("%d refused requests reached the provider", n)
	}
	// The same prompt once, without the trick, is blocked by the guardrail:
	// the refusal above is not hiding a request that would have passed.
	_, err := c.Chat.Completions.New(context.Background(), userParams(secret))
	wantAPIError(t, "single content", err, 400, "guardrail_blocked")
}
