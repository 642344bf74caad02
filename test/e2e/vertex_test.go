package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	vertexHost   = "us-central1-aiplatform.googleapis.com"
	vertexBase   = "/v1/projects/tollgate-test-project/locations/us-central1"
	vertexClaude = "claude-sonnet-4-5@20250929"
	vertexGemini = "google/gemini-2.5-flash"
)

// vertexHarness runs the gateway with a vertex-ai provider whose
// service-account key (generated for the test) points at a loopback token
// endpoint.
func vertexHarness(t *testing.T, lifetime time.Duration) (*harness, *fakeprovider.TokenEndpoint) {
	t.Helper()
	return vertexHarnessWith(t, lifetime, nil)
}

// vertexHarnessWith adds the configuration more returns, given the token
// endpoint (set up with its URL) and a directory for secret files.
func vertexHarnessWith(t *testing.T, lifetime time.Duration, more func(ep *fakeprovider.TokenEndpoint, dir string) string) (*harness, *fakeprovider.TokenEndpoint) {
	t.Helper()
	ep, err := fakeprovider.NewTokenEndpoint(lifetime)
	if err != nil {
		t.Fatal(err)
	}
	tokens := httptest.NewServer(ep)
	t.Cleanup(tokens.Close)
	dir := t.TempDir()
	sa := filepath.Join(dir, "vertex-sa.json")
	if err := os.WriteFile(sa, ep.ServiceAccountJSON(tokens.URL+"/token"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `version: 1
providers:
  - name: vertex
    schema: vertex-ai
    cluster: vertex
    default_max_tokens: 1024
    vertex: {project: tollgate-test-project, location: us-central1, service_account: {file: ` + sa + `}}
    models: ["` + vertexClaude + `", ` + vertexGemini + `]
    direct_models: listed
models:
  - {name: vertex-claude, provider: vertex, model: "` + vertexClaude + `"}
  - {name: vertex-gemini, provider: vertex, model: ` + vertexGemini + `}
`
	if more != nil {
		cfg += more(ep, dir)
	}
	h := newHarness(t, harnessOptions{extra: cfg, vertex: ep})
	t.Cleanup(func() { // no access token or key material in the logs
		logs := h.logs.String()
		for _, tok := range ep.Issued() {
			if strings.Contains(logs, tok) {
				t.Errorf("access token %q… in the logs", tok[:8])
			}
		}
		if strings.Contains(logs, "PRIVATE KEY") || strings.Contains(logs, "ya29.") {
			t.Error("credential material in the logs")
		}
	})
	return h, ep
}

func vertexCost(t *testing.T, model string, prompt, cached, completion int64) string {
	t.Helper()
	c, ok := pricing.Default().Cost(pricing.Key{Provider: "vertex", Model: model}, pricing.Usage{PromptTokens: prompt, CachedTokens: cached, CompletionTokens: completion}, time.Now())
	if !ok {
		t.Fatalf("no price for %s", model)
	}
	return c.Total.String()
}

func TestVertexGemini(t *testing.T) {
	h, ep := vertexHarness(t, time.Hour)
	var resp *http.Response
	c := h.newClient(gatewayKey, option.WithResponseInto(&resp))
	out, err := c.Chat.Completions.New(context.Background(), chatParams("vertex-gemini"))
	if err != nil {
		t.Fatal(err)
	}
	if want := gjson.GetBytes(fixture(t, "openai/chat_response.json"), "choices.0.message.content").Str; out.Choices[0].Message.Content != want {
		t.Fatalf("answer %q", out.Choices[0].Message.Content)
	}
	if out.Usage.PromptTokens != 1342 || out.Usage.CompletionTokens != 286 ||
		resp.Header.Get("X-Tollgate-Cost-Usd") != vertexCost(t, vertexGemini, 1342, 1152, 286) {
		t.Fatalf("usage %+v cost %s", out.Usage, resp.Header.Get("X-Tollgate-Cost-Usd"))
	}
	up := lastRequest(t, h.vertex)
	if up.Path != vertexBase+"/endpoints/openapi/chat/completions" || up.Host != vertexHost || gjson.GetBytes(up.Body, "model").Str != vertexGemini {
		t.Fatalf("upstream %s %s %s", up.Host, up.Path, up.Body)
	}

	// Streams: the gateway asks for usage, meters it, and hides it from a
	// client that did not ask. One token served every request.
	s := h.client.Chat.Completions.NewStreaming(context.Background(), chatParams("vertex-gemini"))
	var acc openai.ChatCompletionAccumulator
	n := 0
	for s.Next() {
		acc.AddChunk(s.Current())
		if s.Current().JSON.Usage.Valid() {
			n++
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != streamText(t, fixture(t, "openai/chat_stream.sse")) || n != 0 {
		t.Fatalf("stream %q, %d usage chunks", acc.Choices[0].Message.Content, n)
	}
	if !gjson.GetBytes(lastRequest(t, h.vertex).Body, "stream_options.include_usage").Bool() {
		t.Fatal("stream usage not requested")
	}
	// Exact usage from the fixture's usage chunk, priced by (vertex, model).
	var want gjson.Result
	for _, l := range strings.Split(string(fixture(t, "openai/chat_stream.sse")), "\n") {
		if u := gjson.Get(strings.TrimPrefix(l, "data: "), "usage"); u.IsObject() {
			want = u
		}
	}
	line := h.waitRequestLogs(2)[1]
	if gjson.Get(line, "prompt_tokens").Int() != want.Get("prompt_tokens").Int() || gjson.Get(line, "completion_tokens").Int() != want.Get("completion_tokens").Int() ||
		gjson.Get(line, "cost_usd").Str != vertexCost(t, vertexGemini, want.Get("prompt_tokens").Int(), want.Get("prompt_tokens_details.cached_tokens").Int(), want.Get("completion_tokens").Int()) {
		t.Fatalf("log %s, want usage %s", line, want.Raw)
	}
	if len(ep.Issued()) != 1 {
		t.Fatalf("%d tokens minted for two requests", len(ep.Issued()))
	}
}

func TestVertexClaude(t *testing.T) {
	// Tokens that expire within oauth2's refresh margin: every request mints
	// a fresh one, and each is accepted.
	h, ep := vertexHarness(t, 5*time.Second)
	var resp *http.Response
	c := h.newClient(gatewayKey, option.WithResponseInto(&resp))
	p := chatParams("vertex-claude")
	out, err := c.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	want := gjson.GetBytes(fixture(t, "anthropic/messages_response.json"), "content.0.text").Str
	if out.Choices[0].Message.Content != want || out.Usage.PromptTokens != 2094 || out.Usage.PromptTokensDetails.CachedTokens != 2048 {
		t.Fatalf("answer %+v usage %+v", out.Choices[0], out.Usage)
	}
	if got := resp.Header.Get("X-Tollgate-Cost-Usd"); got != vertexCost(t, vertexClaude, 2094, 2048, 29) {
		t.Fatalf("cost %s", got)
	}
	up := lastRequest(t, h.vertex)
	if up.Path != vertexBase+"/publishers/anthropic/models/"+vertexClaude+":rawPredict" ||
		gjson.GetBytes(up.Body, "anthropic_version").Str != "vertex-2023-10-16" || gjson.GetBytes(up.Body, "model").Exists() {
		t.Fatalf("upstream %s %s", up.Path, up.Body)
	}

	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	acc := streamChat(t, h.client, p)
	// messages_stream.sse: 24 input tokens, no cache, 27 output tokens (message_delta).
	if acc.Choices[0].Message.Content != anthropicStreamText(t, "anthropic/messages_stream.sse") || acc.Usage.PromptTokens != 24 || acc.Usage.CompletionTokens != 27 {
		t.Fatalf("stream %q usage %+v", acc.Choices[0].Message.Content, acc.Usage)
	}
	if line := h.waitRequestLogs(2)[1]; gjson.Get(line, "cost_usd").Str != vertexCost(t, vertexClaude, 24, 0, 27) || gjson.Get(line, "usage_estimated").Bool() {
		t.Fatalf("stream log %s", line)
	}
	if up := lastRequest(t, h.vertex); !strings.HasSuffix(up.Path, ":streamRawPredict") {
		t.Fatalf("stream path %s", up.Path)
	}
	if len(ep.Issued()) != 2 {
		t.Fatalf("%d tokens minted, want one per request", len(ep.Issued()))
	}
	for i, r := range h.vertex.Requests() {
		if r.Header.Get("Authorization") != "Bearer "+ep.Issued()[i] {
			t.Fatalf("request %d sent %q…", i, r.Header.Get("Authorization")[:12])
		}
	}
}

// TestVertexTools: tool calls stream back through both Vertex paths — Claude
// (the Anthropic translation over streamRawPredict) and Gemini (the
// OpenAI-compatible endpoint) — as OpenAI tool-call chunks.
func TestVertexTools(t *testing.T) {
	h, _ := vertexHarness(t, time.Hour)
	for _, alias := range []string{"vertex-claude", "vertex-gemini"} {
		t.Run(alias, func(t *testing.T) {
			p := chatParams(alias)
			p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
				Name:       "get_weather",
				Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
			})}
			acc := streamChat(t, h.client, p)
			calls := acc.Choices[0].Message.ToolCalls
			if len(calls) == 0 || calls[0].Function.Name == "" || !json.Valid([]byte(calls[0].Function.Arguments)) || acc.Choices[0].FinishReason != "tool_calls" {
				t.Fatalf("tool calls %+v finish %q", calls, acc.Choices[0].FinishReason)
			}
			up := lastRequest(t, h.vertex)
			switch alias {
			case "vertex-claude":
				if !gjson.GetBytes(up.Body, "tools.0.input_schema").Exists() || !strings.HasSuffix(up.Path, ":streamRawPredict") {
					t.Fatalf("upstream %s %s", up.Path, up.Body)
				}
			default:
				if gjson.GetBytes(up.Body, "tools.0.function.name").Str != "get_weather" {
					t.Fatalf("upstream %s %s", up.Path, up.Body)
				}
			}
		})
	}
}

const initechKey = "tg_e2eInitechGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGG"

// TestVertexBYOK: a tenant's own service account serves its
// provider/model requests; aliases and other tenants stay on the platform's.
func TestVertexBYOK(t *testing.T) {
	var initechSA string
	h, ep := vertexHarnessWith(t, time.Hour, func(ep *fakeprovider.TokenEndpoint, dir string) string {
		b, err := ep.NewAccount("initech")
		if err != nil {
			t.Fatal(err)
		}
		initechSA = filepath.Join(dir, "initech-sa.json")
		if err := os.WriteFile(initechSA, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return `tenants:
  - name: initech
    provider_credentials:
      - {provider: vertex, source: {file: ` + initechSA + `}}
keys:
  - {id: initech-key, sha256: ` + keys.Hash(initechKey) + `, tenant: initech}
`
	})
	cases := []struct {
		key, model string
		owner      string
		byok       bool
	}{
		{initechKey, "vertex/" + vertexGemini, "initech@", true},
		{initechKey, "vertex-gemini", "tollgate-test@", false},          // aliases stay on the platform's account
		{gatewayKey, "vertex/" + vertexGemini, "tollgate-test@", false}, // never another tenant's
	}
	for i, tc := range cases {
		c := h.newClient(tc.key)
		if _, err := c.Chat.Completions.New(context.Background(), chatParams(tc.model)); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		tok, _ := strings.CutPrefix(lastRequest(t, h.vertex).Header.Get("Authorization"), "Bearer ")
		if !strings.HasPrefix(ep.Owner(tok), tc.owner) {
			t.Fatalf("case %d: token of %q, want %s…", i, ep.Owner(tok), tc.owner)
		}
		if line := h.waitRequestLogs(i + 1)[i]; gjson.Get(line, "byok").Bool() != tc.byok {
			t.Fatalf("case %d: log %s", i, line)
		}
	}
	if strings.Contains(h.logs.String(), initechKey) {
		t.Fatal("key in the logs")
	}
}
