package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/devfront"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/fixtures/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// streamText concatenates the content deltas of an OpenAI SSE fixture.
func streamText(t *testing.T, sse []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(sse), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		b.WriteString(gjson.Get(data, "choices.0.delta.content").Str)
	}
	return b.String()
}

// withoutUsage is what OpenAI sends a client that did not ask for usage: the
// include_usage stream minus its usage chunk and its "usage":null fields.
func withoutUsage(sse []byte) string {
	var b strings.Builder
	for _, ev := range strings.SplitAfter(string(sse), "\n\n") {
		if ev == "" || strings.Contains(ev, `"choices":[]`) {
			continue
		}
		b.WriteString(strings.Replace(ev, `,"usage":null`, "", 1))
	}
	return b.String()
}

func chatParams(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("In one sentence, what does an API gateway do?")},
	}
}

// checkUpstream asserts what every proxied request must look like when it
// reaches the provider.
func checkUpstream(t *testing.T, r fakeprovider.Request, path, model string) {
	t.Helper()
	if r.Path != path {
		t.Errorf("upstream path %q, want %q", r.Path, path)
	}
	if r.Host != "api.openai.com" {
		t.Errorf("upstream host %q, want api.openai.com (auto_host_rewrite)", r.Host)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+providerSecret {
		t.Errorf("provider credential not injected: %q", got)
	}
	if m := gjson.GetBytes(r.Body, "model").Str; m != model {
		t.Errorf("upstream model %q, want %q", m, model)
	}
	if r.ContentLength >= 0 && int(r.ContentLength) != len(r.Body) {
		t.Errorf("content-length %d for a %d-byte body", r.ContentLength, len(r.Body))
	}
	if ae := r.Header.Get("Accept-Encoding"); ae != "" {
		t.Errorf("accept-encoding %q reached the provider", ae)
	}
	for name, vals := range r.Header {
		if strings.HasPrefix(strings.ToLower(name), "x-tollgate-") {
			t.Errorf("gateway header %s reached the provider", name)
		}
		for _, v := range vals {
			if strings.Contains(v, gatewayKey) {
				t.Errorf("the client's gateway key reached the provider in %s", name)
			}
		}
	}
}

func lastRequest(t *testing.T, s *fakeprovider.Server) fakeprovider.Request {
	t.Helper()
	reqs := s.Requests()
	if len(reqs) == 0 {
		t.Fatal("the provider received no request")
	}
	return reqs[len(reqs)-1]
}

func TestChat(t *testing.T) {
	frontsUnderBasePaths(t, harnessOptions{}, func(t *testing.T, h *harness) {
		resp, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default"))
		if err != nil {
			t.Fatal(err)
		}
		want := gjson.GetBytes(fixture(t, "openai/chat_response.json"), "choices.0.message.content").Str
		if got := resp.Choices[0].Message.Content; got != want {
			t.Fatalf("content %q, want %q", got, want)
		}
		if resp.Usage.PromptTokens != 1342 || resp.Usage.PromptTokensDetails.CachedTokens != 1152 {
			t.Fatalf("usage %+v", resp.Usage)
		}
		checkUpstream(t, lastRequest(t, h.openai), "/v1/chat/completions", "gpt-4o-mini")

		logs := h.waitRequestLogs(1)
		line := logs[0]
		for path, want := range map[string]any{
			"key_id": "e2e-key", "route": "chat", "model": "smart-default", "provider": "openai",
			"provider_model": "gpt-4o-mini", "status": 200.0, "prompt_tokens": 1342.0, "completion_tokens": 286.0,
			"total_tokens": 1628.0, "cached_tokens": 1152.0, "usage_from_provider": true, "stream": false,
		} {
			if got := gjson.Get(line, path).Value(); got != want {
				t.Errorf("log %s = %v, want %v", path, got, want)
			}
		}
		if !gjson.Get(line, "request_id").Exists() || gjson.Get(line, "request_id").Str == "" {
			t.Error("log line has no request id")
		}
		if h.envoyLog != nil {
			rec := h.envoyLog()
			md := rec[len(rec)-1].DynamicMetadata["tollgate"].GetFields()
			if md["model"].GetStringValue() != "smart-default" || md["provider"].GetStringValue() != "openai" {
				t.Errorf("dynamic metadata for the access log: %v", md)
			}
			if rec[len(rec)-1].Cluster != "openai" {
				t.Errorf("cluster %q", rec[len(rec)-1].Cluster)
			}
		}
	})
}

// streamChunkings are the response splits every streaming case runs with.
var streamChunkings = map[string]devfront.Chunker{
	"1-byte":           devfront.Fixed(1),
	"7-byte":           devfront.Fixed(7),
	"random":           devfront.Random(20261121, 97),
	"7-byte-empty-eos": devfront.EmptyEnd(devfront.Fixed(7)),
}

func TestChatStream(t *testing.T) {
	usageStream := fixture(t, "openai/chat_stream.sse")
	wantText := streamText(t, usageStream)
	chunkings := maps.Clone(streamChunkings)
	chunkings["7-byte-base-path"] = devfront.Fixed(7)
	for name, chunks := range chunkings {
		t.Run(name, func(t *testing.T) {
			o := harnessOptions{chunks: chunks}
			if name == "7-byte-base-path" {
				o.basePath = e2eBasePath
			}
			h := newHarness(t, o)

			// The client did not ask for usage: the gateway asks for it,
			// meters it, and hides it, so the client sees the stream OpenAI
			// would have sent it.
			stream := h.client.Chat.Completions.NewStreaming(context.Background(), chatParams("smart-default"))
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				c := stream.Current()
				if len(c.Choices) == 0 {
					t.Fatal("the usage chunk reached a client that did not ask for it")
				}
				if c.JSON.Usage.Valid() {
					t.Fatal("a usage field reached a client that did not ask for it")
				}
				acc.AddChunk(c)
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if got := acc.Choices[0].Message.Content; got != wantText {
				t.Fatalf("assembled %q, want %q", got, wantText)
			}
			up := lastRequest(t, h.openai)
			checkUpstream(t, up, "/v1/chat/completions", "gpt-4o-mini")
			if !gjson.GetBytes(up.Body, "stream_options.include_usage").Bool() {
				t.Fatal("the gateway did not ask the provider for usage")
			}

			// Byte for byte, the same stream without the usage chunk.
			resp, body := h.raw("POST", "/v1/chat/completions", gatewayKey, `{"model":"smart-default","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
			body = []byte(cutComment(t, string(body)))
			if resp.StatusCode != 200 || string(body) != withoutUsage(usageStream) {
				t.Fatalf("status %d, stream bytes differ:\n got %q\nwant %q", resp.StatusCode, body, withoutUsage(usageStream))
			}

			// The client asked for usage: it gets the provider's stream untouched.
			p := chatParams("smart-default")
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream = h.client.Chat.Completions.NewStreaming(context.Background(), p)
			var last openai.ChatCompletionChunk
			n := 0
			for stream.Next() {
				last = stream.Current()
				n++
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if len(last.Choices) != 0 || last.Usage.PromptTokens == 0 || last.Usage.TotalTokens != last.Usage.PromptTokens+last.Usage.CompletionTokens {
				t.Fatalf("usage chunk missing: %+v", last)
			}
			resp, body = h.raw("POST", "/v1/chat/completions", gatewayKey, `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
			if resp.StatusCode != 200 || cutComment(t, string(body)) != string(usageStream) {
				t.Fatalf("status %d: the stream was changed on its way to a client that asked for usage", resp.StatusCode)
			}

			logs := h.waitRequestLogs(4)
			for _, line := range logs {
				if !gjson.Get(line, "usage_from_provider").Bool() || gjson.Get(line, "completion_tokens").Int() != last.Usage.CompletionTokens ||
					!gjson.Get(line, "stream").Bool() || !gjson.Get(line, "ttfb").Exists() {
					t.Errorf("stream log line: %s", line)
				}
			}
		})
	}
}

func TestChatStreamRealEnvoy(t *testing.T) {
	fronts(t, harnessOptions{}, func(t *testing.T, h *harness) {
		if h.envoyLog != nil {
			t.Skip("covered with every chunking by TestChatStream")
		}
		acc := streamChat(t, h.client, chatParams("smart-default"))
		if got, want := acc.Choices[0].Message.Content, streamText(t, fixture(t, "openai/chat_stream.sse")); got != want {
			t.Fatalf("assembled %q, want %q", got, want)
		}
	})
}

func TestEmbeddings(t *testing.T) {
	frontsUnderBasePaths(t, harnessOptions{}, func(t *testing.T, h *harness) {
		resp, err := h.client.Embeddings.New(context.Background(), openai.EmbeddingNewParams{
			Model: "embed-default",
			Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("The food was delicious")},
		})
		if err != nil {
			t.Fatal(err)
		}
		wantLen := len(gjson.GetBytes(fixture(t, "openai/embeddings_response.json"), "data.0.embedding").Array())
		if len(resp.Data) == 0 || len(resp.Data[0].Embedding) != wantLen || resp.Usage.PromptTokens == 0 {
			t.Fatalf("embeddings %+v", resp)
		}
		checkUpstream(t, lastRequest(t, h.openai), "/v1/embeddings", "text-embedding-3-small")
		line := h.waitRequestLogs(1)[0]
		if gjson.Get(line, "route").Str != "embeddings" || gjson.Get(line, "prompt_tokens").Int() != resp.Usage.PromptTokens {
			t.Fatalf("log %s", line)
		}
	})
}

func TestModels(t *testing.T) {
	frontsUnderBasePaths(t, harnessOptions{}, func(t *testing.T, h *harness) {
		page, err := h.client.Models.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		want := "anthropic/claude-sonnet-4-5,claude-default,embed-default,openai/gpt-4o-mini,openai/o4-mini,openai/text-embedding-3-small,reasoning-default,smart-default"
		if strings.Join(ids, ",") != want {
			t.Fatalf("models %v, want %s", ids, want)
		}
		if n := len(h.openai.Requests()); n != 0 {
			t.Fatalf("the models list reached the provider (%d requests)", n)
		}
	})
}

func TestErrors(t *testing.T) {
	fronts(t, harnessOptions{}, func(t *testing.T, h *harness) {
		raw := []struct {
			name, method, path, key, body string
			status                        int
			code                          string
		}{
			{"no key", "POST", "/v1/chat/completions", "", `{"model":"smart-default"}`, 401, "invalid_api_key"},
			{"invalid json", "POST", "/v1/chat/completions", gatewayKey, `{"model":`, 400, "invalid_json"},
			{"missing model", "POST", "/v1/chat/completions", gatewayKey, `{"messages":[]}`, 400, "missing_required_parameter"},
			{"model not a string", "POST", "/v1/chat/completions", gatewayKey, `{"model":["smart-default"]}`, 400, "invalid_type"},
			{"duplicate keys", "POST", "/v1/chat/completions", gatewayKey, `{"model":"smart-default","model":"openai/o4-mini"}`, 400, "duplicate_key"},
			{"empty body", "POST", "/v1/embeddings", gatewayKey, ``, 400, "missing_body"},
			{"unknown path", "GET", "/v1/files", gatewayKey, ``, 404, "unknown_url"},
			{"unknown model", "POST", "/v1/embeddings", gatewayKey, `{"model":"nope","input":"x"}`, 404, "model_not_found"},
		}
		for _, tt := range raw {
			resp, body := h.raw(tt.method, tt.path, tt.key, tt.body)
			if resp.StatusCode != tt.status || gjson.GetBytes(body, "error.code").Str != tt.code ||
				gjson.GetBytes(body, "error.message").Str == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%s: %d %s (content-type %q), want %d %s", tt.name, resp.StatusCode, body, resp.Header.Get("Content-Type"), tt.status, tt.code)
			}
		}
		if n := len(h.openai.Requests()); n != 0 {
			t.Fatalf("refused requests reached the provider (%d)", n)
		}

		// The SDK surfaces the gateway's refusals as typed API errors.
		sdk := []struct {
			name   string
			call   func() error
			status int
			code   string
		}{
			{"wrong key", func() error {
				c := h.newClient("tg_wrong")
				_, err := c.Chat.Completions.New(context.Background(), chatParams("smart-default"))
				return err
			}, 401, "invalid_api_key"},
			{"unknown model", func() error {
				_, err := h.client.Chat.Completions.New(context.Background(), chatParams("gpt-7"))
				return err
			}, 404, "model_not_found"},
			{"unlisted provider model", func() error {
				_, err := h.client.Chat.Completions.New(context.Background(), chatParams("openai/gpt-4o"))
				return err
			}, 404, "model_not_found"},
			{"key in api-key header is still a bad key", func() error {
				c := h.newClient("", option.WithHeaderDel("Authorization"), option.WithHeader("api-key", "tg_wrong"))
				_, err := c.Chat.Completions.New(context.Background(), chatParams("smart-default"))
				return err
			}, 401, "invalid_api_key"},
		}
		for _, tt := range sdk {
			var apiErr *openai.Error
			if err := tt.call(); !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status || apiErr.Code != tt.code {
				t.Errorf("%s: %v, want %d %s", tt.name, err, tt.status, tt.code)
			}
		}

		// A provider error reaches the client unchanged.
		h.openai.Fail(fakeprovider.Status(500, ""))
		resp, body := h.raw("POST", "/v1/chat/completions", gatewayKey, `{"model":"smart-default","messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 500 || string(body) != string(fixture(t, "openai/error_500.json")) {
			t.Fatalf("provider error changed on its way: %d %q", resp.StatusCode, body)
		}
	})
}

func TestAlternateKeyHeaders(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, hdr := range []string{"api-key", "x-api-key"} {
		c := h.newClient("", option.WithHeaderDel("Authorization"), option.WithHeader(hdr, gatewayKey))
		if _, err := c.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
			t.Fatalf("%s: %v", hdr, err)
		}
		checkUpstream(t, lastRequest(t, h.openai), "/v1/chat/completions", "gpt-4o-mini")
		if v := lastRequest(t, h.openai).Header.Get(hdr); v != "" {
			t.Fatalf("client %s header reached the provider", hdr)
		}
	}
}

func TestClientCannotPickCluster(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	resp, body := h.raw("POST", "/v1/chat/completions", gatewayKey, `{"model":"smart-default","messages":[{"role":"user","content":"hi"}]}`,
		"x-tollgate-cluster", "tollgate_ext_proc", "x-tollgate-debug", "1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if h.envoyLog()[0].Cluster != "openai" {
		t.Fatalf("routed to %q", h.envoyLog()[0].Cluster)
	}
	checkUpstream(t, lastRequest(t, h.openai), "/v1/chat/completions", "gpt-4o-mini")
}

func TestSecretsNeverLogged(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, _ = h.client.Chat.Completions.New(context.Background(), chatParams("smart-default"))
	wrong := h.newClient(gatewayKey + "x")
	_, _ = wrong.Chat.Completions.New(context.Background(), chatParams("smart-default"))
	h.raw("POST", "/v1/chat/completions", gatewayKey, `{"model":`)
	h.waitRequestLogs(3)
	logs := h.logs.String()
	for _, secret := range []string{gatewayKey, providerSecret, gatewayKey[3:20]} {
		if strings.Contains(logs, secret) {
			t.Fatalf("secret material in the logs")
		}
	}
	if strings.Contains(logs, "API gateway do") {
		t.Fatal("prompt text in the logs")
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(h.requestLogs()[0]), &line); err != nil {
		t.Fatalf("log line is not JSON: %v", err)
	}
}
