package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/policy/keys"
)

// wantAPIError asserts that err is the SDK's typed API error with a status
// and code.
func wantAPIError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Errorf("%s: %v, want an *openai.Error %d %s", what, err, status, code)
		return
	}
	if apiErr.StatusCode != status || apiErr.Code != code || apiErr.Message == "" || apiErr.Type == "" {
		t.Errorf("%s: %d %s/%s %q, want %d %s", what, apiErr.StatusCode, apiErr.Type, apiErr.Code, apiErr.Message, status, code)
	}
}

func chatWith(h *harness, key, model string, opts ...option.RequestOption) (*openai.ChatCompletion, error) {
	c := h.newClient(key, opts...)
	return c.Chat.Completions.New(context.Background(), chatParams(model))
}

func TestRefusedKeysLookAlike(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	var bodies []string
	for _, key := range []string{"tg_neverIssuedGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGG", expiredKey, disabledKey, ""} {
		_, err := chatWith(h, key, "smart-default")
		wantAPIError(t, "key "+key[:min(len(key), 8)], err, 401, "invalid_api_key")
		_, body := h.raw("POST", "/v1/chat/completions", key, `{"model":"smart-default"}`)
		bodies = append(bodies, string(body))
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("refusals differ, revealing which keys exist:\n%s\n%s", bodies[0], b)
		}
	}
	if n := len(h.openai.Requests()); n != 0 {
		t.Fatalf("%d refused requests reached the provider", n)
	}
}

func TestModelAllowlists(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	limited := h.newClient(limitedKey)

	_, err := limited.Chat.Completions.New(context.Background(), chatParams("smart-default"))
	wantAPIError(t, "chat outside the key's allowlist", err, 403, "model_not_allowed")
	if _, err := limited.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "embed-default", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")},
	}); err != nil {
		t.Fatalf("embeddings inside the allowlist: %v", err)
	}
	_, err = limited.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
		Model: "openai/text-embedding-3-small", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")},
	})
	wantAPIError(t, "embeddings by provider/model outside the allowlist", err, 403, "model_not_allowed")

	page, err := limited.Models.List(context.Background())
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "embed-default" {
		t.Fatalf("models for a limited key: %v %+v", err, page)
	}

	// App allowlists: the chatbot app may use smart-* and embed-default.
	chatbot := h.newClient(chatbotKey1, option.WithHeader("x-agent-id", agentID),
		option.WithJSONSet("tollgate_metadata", map[string]string{"workspace_id": "ws-1"}))
	_, err = chatbot.Chat.Completions.New(context.Background(), chatParams("reasoning-default"))
	wantAPIError(t, "chat outside the app's allowlist", err, 403, "model_not_allowed")
	chatbotPlain := h.newClient(chatbotKey1)
	page, err = chatbotPlain.Models.List(context.Background())
	if err != nil {
		t.Fatalf("models for the chatbot app: %v", err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if err != nil || strings.Join(ids, ",") != "embed-default,smart-default" {
		t.Fatalf("models for the chatbot app: %v %v", err, ids)
	}
}

func TestAppsAgentsAndMetadata(t *testing.T) {
	h := newHarness(t, harnessOptions{})

	_, err := chatWith(h, chatbotKey1, "smart-default")
	wantAPIError(t, "no agent id", err, 400, "invalid_agent_id")
	_, err = chatWith(h, chatbotKey1, "smart-default", option.WithHeader("x-agent-id", "agent-42"))
	wantAPIError(t, "agent id not a UUID", err, 400, "invalid_agent_id")
	_, err = chatWith(h, chatbotKey1, "smart-default", option.WithHeader("x-agent-id", agentID))
	wantAPIError(t, "required metadata missing", err, 400, "missing_required_metadata")
	_, err = chatWith(h, chatbotKey1, "smart-default", option.WithHeader("x-agent-id", agentID),
		option.WithJSONSet("tollgate_metadata", map[string]any{"workspace_id": 7}))
	wantAPIError(t, "metadata value not a string", err, 400, "invalid_metadata")
	_, err = chatWith(h, chatbotKey1, "smart-default", option.WithHeader("x-agent-id", agentID),
		option.WithJSONSet("tollgate_app_id", "batch"))
	wantAPIError(t, "app-scoped key naming another app", err, 403, "app_mismatch")
	if n := len(h.openai.Requests()); n != 0 {
		t.Fatalf("%d refused requests reached the provider", n)
	}

	// Body metadata (extra_body) and header metadata together.
	_, err = chatWith(h, chatbotKey1, "smart-default", option.WithHeader("x-agent-id", agentID),
		option.WithJSONSet("tollgate_metadata", map[string]string{"workspace_id": "ws-1", "operation": "summarise"}),
		option.WithJSONSet("tollgate_app_id", "chatbot"),
		option.WithHeader("x-tollgate-metadata-source_service", "billing-api"))
	if err != nil {
		t.Fatal(err)
	}
	up := lastRequest(t, h.openai)
	checkUpstream(t, up, "/v1/chat/completions", "gpt-4o-mini")
	if strings.Contains(string(up.Body), "tollgate_") {
		t.Fatalf("tollgate_* fields reached the provider: %s", up.Body)
	}
	line := h.waitRequestLogs(6)[5]
	for path, want := range map[string]string{
		"tenant": "acme", "app": "chatbot", "tier": "gold", "agent_id": agentID, "key_id": "acme-chatbot-1",
		"metadata.workspace_id": "ws-1", "metadata.operation": "summarise", "metadata.source_service": "billing-api",
	} {
		if got := gjson.Get(line, path).Str; got != want {
			t.Errorf("log %s = %q, want %q", path, got, want)
		}
	}
}

func TestTenantScopedKeyChoosesApp(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// acme's tenant key acting as its batch app (allowlist openai/*): the
	// alias resolves to an OpenAI model, so it is allowed.
	if _, err := chatWith(h, gatewayKey, "smart-default", option.WithHeader("x-tollgate-app-id", "batch")); err != nil {
		t.Fatalf("tenant key choosing its own app: %v", err)
	}
	// globex's key naming acme's app, in the body and in a header.
	_, err := chatWith(h, globexKey, "smart-default", option.WithJSONSet("tollgate_app_id", "chatbot"))
	wantAPIError(t, "another tenant's app in the body", err, 403, "app_mismatch")
	_, err = chatWith(h, globexKey, "smart-default", option.WithHeader("x-tollgate-app-id", "batch"))
	wantAPIError(t, "another tenant's app in a header", err, 403, "app_mismatch")
	c := h.newClient(globexKey, option.WithHeader("x-tollgate-app-id", "chatbot"))
	_, err = c.Models.List(context.Background())
	wantAPIError(t, "another tenant's app on /v1/models", err, 403, "app_mismatch")
	if _, err := chatWith(h, globexKey, "smart-default", option.WithHeader("x-tollgate-app-id", "research")); err != nil {
		t.Fatalf("globex's own app: %v", err)
	}
	logs := h.waitRequestLogs(5)
	if gjson.Get(logs[4], "tenant").Str != "globex" || gjson.Get(logs[4], "app").Str != "research" || gjson.Get(logs[4], "tier").Str != "silver" {
		t.Fatalf("log %s", logs[4])
	}
}

// TestKeyRotation: two live keys for one app; the first is removed from the
// Secret while one of its requests is in flight. That request finishes, the
// removed key is refused, the other keeps working.
func TestKeyRotation(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	opts := []option.RequestOption{option.WithHeader("x-agent-id", agentID),
		option.WithJSONSet("tollgate_metadata", map[string]string{"workspace_id": "ws-1"})}
	for _, k := range []string{chatbotKey1, chatbotKey2} {
		if _, err := chatWith(h, k, "smart-default", opts...); err != nil {
			t.Fatalf("live key: %v", err)
		}
	}

	release := holdNextResponse(t, h)
	type result struct {
		resp *openai.ChatCompletion
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, err := chatWith(h, chatbotKey1, "smart-default", opts...)
		done <- result{r, err}
	}()
	waitProviderRequests(t, h, 3)

	h.writeConfig(strings.Replace(gatewayConfig(), "  - {id: acme-chatbot-1, sha256: "+keys.Hash(chatbotKey1)+", tenant: acme, app: chatbot}\n", "", 1))
	h.waitReload(false)
	_, err := chatWith(h, chatbotKey1, "smart-default", opts...)
	wantAPIError(t, "removed key", err, 401, "invalid_api_key")
	if _, err := chatWith(h, chatbotKey2, "smart-default", opts...); err != nil {
		t.Fatalf("the other live key after rotation: %v", err)
	}

	close(release)
	if r := <-done; r.err != nil || len(r.resp.Choices) == 0 {
		t.Fatalf("in-flight request of the removed key: %v", r.err)
	}

	// Disabling works the same way as removing.
	h.writeConfig(strings.Replace(gatewayConfig(), keys.Hash(chatbotKey2)+", tenant: acme, app: chatbot}", keys.Hash(chatbotKey2)+", tenant: acme, app: chatbot, disabled: true}", 1))
	h.waitReload(false)
	_, err = chatWith(h, chatbotKey2, "smart-default", opts...)
	wantAPIError(t, "disabled key", err, 401, "invalid_api_key")
}

func TestAzureStyleClients(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// openai-go's own Azure client: deployment in the path, api-version in
	// the query, key in api-key.
	az := openai.NewClient(
		azure.WithEndpoint(h.front.URL(), "2024-10-21"),
		azure.WithAPIKey(gatewayKey),
		azure.WithUnsafeAllowHTTP(),
		option.WithMaxRetries(0),
	)
	resp, err := az.Chat.Completions.New(context.Background(), chatParams("smart-default"))
	if err != nil {
		t.Fatalf("Azure client: %v", err)
	}
	if resp.Choices[0].Message.Content == "" {
		t.Fatal("empty answer")
	}
	up := lastRequest(t, h.openai)
	checkUpstream(t, up, "/v1/chat/completions", "gpt-4o-mini")
	if up.RawQuery != "" || up.Header.Get("Api-Key") != "" {
		t.Fatalf("Azure-only parts reached OpenAI: query %q, api-key present %v", up.RawQuery, up.Header.Get("Api-Key") != "")
	}
	stream := az.Chat.Completions.NewStreaming(context.Background(), chatParams("smart-default"))
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != streamText(t, fixture(t, "openai/chat_stream.sse")) {
		t.Fatalf("Azure client stream: %v", err)
	}

	// The common enterprise wrapper: plain OpenAI paths, but api-key and
	// x-agent-id as default headers and an api-version query parameter.
	wrapper := openai.NewClient(
		option.WithBaseURL(h.front.URL()+"/v1/"),
		option.WithHeader("api-key", chatbotKey2),
		option.WithHeader("x-agent-id", agentID),
		option.WithHeader("x-tollgate-metadata-workspace_id", "ws-9"),
		option.WithQuery("api-version", "2024-10-21"),
		option.WithMaxRetries(0),
	)
	if _, err := wrapper.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
		t.Fatalf("enterprise wrapper: %v", err)
	}
	up = lastRequest(t, h.openai)
	checkUpstream(t, up, "/v1/chat/completions", "gpt-4o-mini")
	if up.RawQuery != "" {
		t.Fatalf("api-version reached OpenAI: %q", up.RawQuery)
	}
	// Unknown deployment: the SDK's typed 404.
	_, err = az.Chat.Completions.New(context.Background(), chatParams("no-such-deployment"))
	wantAPIError(t, "unknown deployment", err, 404, "model_not_found")
}

func TestBringYourOwnKey(t *testing.T) {
	h := newHarness(t, harnessOptions{anyCred: true})
	cases := []struct {
		key, model, wantCred string
		byok                 bool
	}{
		{gatewayKey, "openai/gpt-4o-mini", acmeSecret, true},     // acme's provider/model request: its own key
		{gatewayKey, "smart-default", providerSecret, false},     // aliases stay on the platform credential
		{globexKey, "openai/gpt-4o-mini", providerSecret, false}, // never another tenant's key
	}
	for i, c := range cases {
		if _, err := chatWith(h, c.key, c.model); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got := lastRequest(t, h.openai).Header.Get("Authorization"); got != "Bearer "+c.wantCred {
			t.Errorf("case %d: upstream credential is not the expected one", i)
		}
		line := h.waitRequestLogs(i + 1)[i]
		if gjson.Get(line, "byok").Bool() != c.byok {
			t.Errorf("case %d: log byok = %v", i, gjson.Get(line, "byok").Bool())
		}
	}
}
