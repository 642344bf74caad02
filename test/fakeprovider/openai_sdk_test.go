package fakeprovider

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/shared"
	"github.com/tidwall/gjson"
)

// The fakes seen through the official openai-go SDK, as the e2e tests will.

const (
	openAIStreamText = "An API gateway is the single front door that authenticates, routes and meters every request before it reaches a backend."
	azureStreamText  = "An API gateway is the single entry point that authenticates, rate-limits and routes client requests."
)

func sdkClient(s *Server, basePath string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(s.URL() + basePath),
		option.WithAPIKey(testKey),
		option.WithMaxRetries(0),
	}, opts...)...)
}

func chatParams() openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("You are a concise assistant for an internal platform team."),
			openai.UserMessage("In one sentence, what does an API gateway do?"),
		},
	}
}

func withUsage(p openai.ChatCompletionNewParams) openai.ChatCompletionNewParams {
	p.StreamOptions.IncludeUsage = openai.Bool(true)
	return p
}

func withTools(p openai.ChatCompletionNewParams) openai.ChatCompletionNewParams {
	p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name: "get_current_weather",
		Parameters: shared.FunctionParameters{
			"type":       "object",
			"properties": map[string]any{"city": map[string]any{"type": "string"}, "unit": map[string]any{"type": "string"}},
			"required":   []string{"city", "unit"},
		},
	})}
	return p
}

// accumulate drains a stream into an accumulator, returning the chunk count
// and the stream's error.
func accumulate(stream *ssestream.Stream[openai.ChatCompletionChunk]) (openai.ChatCompletionAccumulator, int, error) {
	var acc openai.ChatCompletionAccumulator
	n := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		n++
	}
	return acc, n, stream.Err()
}

func content(acc openai.ChatCompletionAccumulator) string {
	if len(acc.Choices) == 0 {
		return ""
	}
	return acc.Choices[0].Message.Content
}

func TestOpenAISDKChat(t *testing.T) {
	s := startFake(t, OpenAI)
	ctx := testCtx(t)
	c := sdkClient(s, "/v1/")

	var raw *http.Response
	p := chatParams()
	p.Model = "o4-mini"
	resp, err := c.Chat.Completions.New(ctx, p, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ID != "chatcmpl-Dk4vQm7TzR2bW9sXyN1cLpE8aHfUo" || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("id %q finish %q", resp.ID, resp.Choices[0].FinishReason)
	}
	if want := "An API gateway is the single entry point that receives client requests, applies cross-cutting policy such as authentication, rate limiting and routing, and forwards each request to the right backend service."; resp.Choices[0].Message.Content != want {
		t.Errorf("content %q", resp.Choices[0].Message.Content)
	}
	u := resp.Usage
	if u.PromptTokens != 1342 || u.CompletionTokens != 286 || u.TotalTokens != 1628 || u.PromptTokensDetails.CachedTokens != 1152 || u.CompletionTokensDetails.ReasoningTokens != 192 {
		t.Errorf("usage %+v", u)
	}
	if raw.Header.Get("X-Request-Id") != "req_00000000000000000000000000000001" {
		t.Errorf("x-request-id %q", raw.Header.Get("X-Request-Id"))
	}
	req := s.Requests()[0]
	if req.Path != "/v1/chat/completions" || req.Header.Get("Authorization") != "Bearer "+testKey || gjson.GetBytes(req.Body, "model").Str != "o4-mini" {
		t.Errorf("recorded %s auth %q body %s", req.Path, req.Header.Get("Authorization"), req.Body)
	}
}

type toolCall struct{ id, name, args string }

func TestOpenAISDKStream(t *testing.T) {
	lisbon := toolCall{"call_Rk3TfV9bZq1LmW8yXc2NdH5e", "get_current_weather", `{"city":"Lisbon","unit":"celsius"}`}
	porto := toolCall{"call_Wd7YhC2pKs9QaE4vJm6TbN1x", "get_current_weather", `{"city":"Porto","unit":"celsius"}`}
	for _, tc := range []struct {
		name                      string
		params                    openai.ChatCompletionNewParams
		chunks                    int
		text, finish              string
		prompt, completion, total int64
		tools                     []toolCall
	}{
		{"no usage", chatParams(), 9, openAIStreamText, "stop", 0, 0, 0, nil},
		{"include_usage", withUsage(chatParams()), 10, openAIStreamText, "stop", 31, 22, 53, nil},
		{"tools with usage", withUsage(withTools(chatParams())), 15, "", "tool_calls", 88, 46, 134, []toolCall{lisbon, porto}},
		{"tools without usage", withTools(chatParams()), 14, "", "tool_calls", 0, 0, 0, []toolCall{lisbon, porto}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startFake(t, OpenAI)
			c := sdkClient(s, "/v1/")
			acc, n, err := accumulate(c.Chat.Completions.NewStreaming(testCtx(t), tc.params))
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.chunks {
				t.Errorf("%d chunks, want %d", n, tc.chunks)
			}
			if got := content(acc); got != tc.text {
				t.Errorf("text %q, want %q", got, tc.text)
			}
			if got := acc.Choices[0].FinishReason; got != tc.finish {
				t.Errorf("finish %q, want %q", got, tc.finish)
			}
			if u := acc.Usage; u.PromptTokens != tc.prompt || u.CompletionTokens != tc.completion || u.TotalTokens != tc.total {
				t.Errorf("usage %d/%d/%d, want %d/%d/%d", u.PromptTokens, u.CompletionTokens, u.TotalTokens, tc.prompt, tc.completion, tc.total)
			}
			var got []toolCall
			for _, c := range acc.Choices[0].Message.ToolCalls {
				got = append(got, toolCall{c.ID, c.Function.Name, c.Function.Arguments})
			}
			if len(got) != len(tc.tools) {
				t.Fatalf("tool calls %+v, want %+v", got, tc.tools)
			}
			for i := range got {
				if got[i] != tc.tools[i] {
					t.Errorf("tool call %d: %+v, want %+v", i, got[i], tc.tools[i])
				}
			}
		})
	}
}

func TestOpenAISDKEmbeddingsAndModels(t *testing.T) {
	s := startFake(t, OpenAI)
	ctx := testCtx(t)
	c := sdkClient(s, "/v1/")
	want := [2][8]float64{
		{-0.41735363, 0.2290412, 0.53128797, -0.08817392, 0.31960183, -0.46094865, 0.10562344, 0.40277213},
		{0.12473615, -0.5218861, 0.2665307, 0.47194305, -0.03911722, 0.33580455, -0.49226388, 0.21448934},
	}
	for _, format := range []openai.EmbeddingNewParamsEncodingFormat{"", openai.EmbeddingNewParamsEncodingFormatFloat, openai.EmbeddingNewParamsEncodingFormatBase64} {
		t.Run("format "+string(format), func(t *testing.T) {
			resp, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model:          "text-embedding-3-small",
				Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"Envoy terminates TLS.", "The gateway meters tokens."}},
				EncodingFormat: format,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Data) != 2 || resp.Usage.PromptTokens != 12 || resp.Model != "text-embedding-3-small" {
				t.Fatalf("response %+v", resp)
			}
			for i, d := range resp.Data {
				if len(d.Embedding) != 8 {
					t.Fatalf("embedding %d has %d values", i, len(d.Embedding))
				}
				for j, v := range d.Embedding {
					w := want[i][j]
					if format == openai.EmbeddingNewParamsEncodingFormatBase64 {
						w = float64(float32(w)) // float32 on the wire
					}
					if v != w {
						t.Errorf("embedding %d[%d] = %v, want %v", i, j, v, w)
					}
				}
			}
		})
	}
	reqs := s.Requests()
	if got := gjson.GetBytes(reqs[len(reqs)-1].Body, "encoding_format").Str; got != "base64" {
		t.Errorf("last request encoding_format %q", got)
	}

	page, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "gpt-4o-mini,gpt-4.1-mini,o4-mini,text-embedding-3-small,gpt-3.5-turbo" {
		t.Errorf("models %s", got)
	}
}

func TestOpenAISDKErrors(t *testing.T) {
	t.Run("401", func(t *testing.T) {
		s := startFake(t, OpenAI)
		c := sdkClient(s, "/v1/", option.WithAPIKey("sk-wrong"))
		_, err := c.Chat.Completions.New(testCtx(t), chatParams())
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("429 with Retry-After", func(t *testing.T) {
		s := startFake(t, OpenAI)
		s.Fail(Status(429, "7"))
		c := sdkClient(s, "/v1/")
		_, err := c.Chat.Completions.New(testCtx(t), chatParams())
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || apiErr.Type != "tokens" {
			t.Fatalf("err %v", err)
		}
		if got := apiErr.Response.Header.Get("Retry-After"); got != "7" {
			t.Errorf("Retry-After %q", got)
		}
	})
	t.Run("429 retried by the SDK", func(t *testing.T) {
		s := startFake(t, OpenAI)
		s.Fail(Status(429, "0"))
		c := sdkClient(s, "/v1/", option.WithMaxRetries(1))
		resp, err := c.Chat.Completions.New(testCtx(t), chatParams())
		if err != nil || resp.Usage.TotalTokens != 1628 {
			t.Fatalf("resp %v err %v", resp, err)
		}
		if n := len(s.Requests()); n != 2 {
			t.Errorf("%d requests, want 2 (one 429, one retry)", n)
		}
	})
	t.Run("500", func(t *testing.T) {
		s := startFake(t, OpenAI)
		s.Fail(Status(500, ""))
		c := sdkClient(s, "/v1/")
		_, err := c.Chat.Completions.New(testCtx(t), chatParams())
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 500 || apiErr.Type != "server_error" {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("slow first byte holds the stream", func(t *testing.T) {
		s := startFake(t, OpenAI)
		ctx := testCtx(t)
		c := sdkClient(s, "/v1/")
		release := make(chan struct{})
		s.Fail(SlowFirstByte(release))
		type streamed struct {
			text string
			err  error
		}
		held := make(chan streamed, 1)
		go func() {
			acc, _, err := accumulate(c.Chat.Completions.NewStreaming(ctx, chatParams()))
			held <- streamed{content(acc), err}
		}()
		if _, err := s.WaitRequests(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Chat.Completions.New(ctx, chatParams()); err != nil {
			t.Fatalf("request while another is held: %v", err)
		}
		select {
		case r := <-held:
			t.Fatalf("stream finished before release: %+v", r)
		default:
		}
		close(release)
		if r := <-held; r.err != nil || r.text != openAIStreamText {
			t.Fatalf("after release: %+v", r)
		}
	})
	t.Run("reset mid-stream", func(t *testing.T) {
		s := startFake(t, OpenAI)
		events := splitEvents(fixture(t, "openai/chat_stream_no_usage.sse"))
		s.Fail(ResetAfter(len(events[0]) + len(events[1]) + len(events[2]) + 5))
		c := sdkClient(s, "/v1/")
		acc, n, err := accumulate(c.Chat.Completions.NewStreaming(testCtx(t), chatParams()))
		if err == nil {
			t.Fatal("stream ended without error")
		}
		if n != 3 || content(acc) != "An API" {
			t.Errorf("before the reset: %d chunks, text %q; want 3 chunks, %q", n, content(acc), "An API")
		}
	})
	t.Run("reset mid-body", func(t *testing.T) {
		s := startFake(t, OpenAI)
		s.Fail(ResetAfter(100))
		c := sdkClient(s, "/v1/")
		_, err := c.Chat.Completions.New(testCtx(t), chatParams())
		var apiErr *openai.Error
		if err == nil || errors.As(err, &apiErr) {
			t.Fatalf("err %v, want a transport/body error", err)
		}
	})
	t.Run("stream error event", func(t *testing.T) {
		s := startFake(t, OpenAI)
		s.Fail(StreamError())
		c := sdkClient(s, "/v1/")
		acc, n, err := accumulate(c.Chat.Completions.NewStreaming(testCtx(t), chatParams()))
		var se *ssestream.StreamError
		if !errors.As(err, &se) || !strings.Contains(se.Message, "server_error") {
			t.Fatalf("err %v, want *ssestream.StreamError", err)
		}
		if n != 4 || content(acc) != "An API gateway" {
			t.Errorf("before the error: %d chunks, text %q", n, content(acc))
		}
	})
}

func TestAzureSDK(t *testing.T) {
	t.Run("deployment form with api-key", func(t *testing.T) {
		s := startFake(t, Azure)
		// What azure.WithEndpoint + azure.WithAPIKey send, without pulling
		// the Azure SDK into go.mod.
		c := openai.NewClient(
			option.WithBaseURL(s.URL()+"/openai/deployments/gw-mini/"),
			option.WithAPIKey(""),
			option.WithHeader("api-key", testKey),
			option.WithQuery("api-version", "2024-10-21"),
			option.WithMaxRetries(0),
		)
		resp, err := c.Chat.Completions.New(testCtx(t), chatParams())
		if err != nil {
			t.Fatal(err)
		}
		if want := "An API gateway is the single entry point that authenticates, rate-limits and routes client requests to backend services."; resp.Choices[0].Message.Content != want {
			t.Errorf("content %q", resp.Choices[0].Message.Content)
		}
		if u := resp.Usage; u.PromptTokens != 31 || u.CompletionTokens != 24 || u.TotalTokens != 55 || resp.Model != "gpt-4.1-mini-2025-04-14" {
			t.Errorf("usage %+v model %q", u, resp.Model)
		}
		req := s.Requests()[0]
		if req.Path != "/openai/deployments/gw-mini/chat/completions" || req.RawQuery != "api-version=2024-10-21" || req.Header.Get("Api-Key") != testKey || req.Header.Get("Authorization") != "" {
			t.Errorf("recorded %s?%s headers %v", req.Path, req.RawQuery, req.Header)
		}
	})
	for _, tc := range []struct {
		name                      string
		params                    openai.ChatCompletionNewParams
		chunks                    int
		prompt, completion, total int64
	}{
		{"v1 stream with usage", withUsage(chatParams()), 9, 31, 17, 48},
		{"v1 stream without usage", chatParams(), 8, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startFake(t, Azure)
			c := sdkClient(s, "/openai/v1/")
			acc, n, err := accumulate(c.Chat.Completions.NewStreaming(testCtx(t), tc.params))
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.chunks || content(acc) != azureStreamText {
				t.Errorf("%d chunks, text %q", n, content(acc))
			}
			if u := acc.Usage; u.PromptTokens != tc.prompt || u.CompletionTokens != tc.completion || u.TotalTokens != tc.total {
				t.Errorf("usage %+v", u)
			}
		})
	}
	t.Run("errors in Azure's shape", func(t *testing.T) {
		s := startFake(t, Azure)
		s.Fail(Status(429, "3"))
		c := sdkClient(s, "/openai/v1/")
		_, err := c.Chat.Completions.New(testCtx(t), chatParams())
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "429" || !strings.Contains(apiErr.Message, "retry after 3 seconds") {
			t.Fatalf("429: %v", err)
		}
		c = sdkClient(s, "/openai/v1/", option.WithAPIKey("wrong"))
		_, err = c.Chat.Completions.New(testCtx(t), chatParams())
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "401" || !strings.HasPrefix(apiErr.Message, "Access denied") {
			t.Fatalf("401: %v", err)
		}
	})
}
