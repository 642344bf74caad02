package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

const (
	awsKeyIDEnv     = "E2E_AWS_ACCESS_KEY_ID"
	awsSecretEnv    = "E2E_AWS_SECRET_ACCESS_KEY"
	awsTokenEnv     = "E2E_AWS_SESSION_TOKEN"
	awsSecretKey    = "e2e/bedrock/secret+access/key0123456789"
	awsSessionToken = "e2e-bedrock-session-token-FwoGZXIvYXdzEJr"
	bedrockHost     = "bedrock-runtime.us-east-1.amazonaws.com"
	bedrockModel    = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
)

var e2eAWS = fakeprovider.AWS{Region: "us-east-1", AccessKeyID: "AKIDE2EBEDROCK000001", SecretAccessKey: awsSecretKey, SessionToken: awsSessionToken}

const bedrockConfig = `version: 1
providers:
  - name: bedrock
    schema: bedrock
    cluster: bedrock
    default_max_tokens: 1024
    aws:
      region: us-east-1
      access_key_id: {env: ` + awsKeyIDEnv + `}
      secret_access_key: {env: ` + awsSecretEnv + `}
      session_token: {env: ` + awsTokenEnv + `}
    models: [` + bedrockModel + `]
    direct_models: listed
models:
  - {name: bedrock-default, provider: bedrock, model: ` + bedrockModel + `}
`

// checkBedrockUpstream asserts what reached the fake Bedrock, which has
// already verified the SigV4 signature (it answers 403 otherwise).
func checkBedrockUpstream(t *testing.T, r fakeprovider.Request, stream bool) {
	t.Helper()
	op := "/converse"
	if stream {
		op = "/converse-stream"
	}
	if r.Path != "/model/"+bedrockModel+op || r.Host != bedrockHost {
		t.Errorf("upstream %s %s", r.Host, r.Path)
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+e2eAWS.AccessKeyID+"/") ||
		r.Header.Get("X-Amz-Security-Token") != awsSessionToken || r.Header.Get("X-Api-Key") != "" {
		t.Errorf("credential headers %v", r.Header)
	}
	body := string(r.Body)
	if gjson.Get(body, "model").Exists() || gjson.Get(body, "inferenceConfig.maxTokens").Int() != 1024 || gjson.Get(body, "messages.0.role").Str != "user" {
		t.Errorf("translated request: %s", body)
	}
	if strings.Contains(body, gatewayKey) || strings.Contains(r.Header.Get("Authorization"), gatewayKey) {
		t.Error("the gateway key reached Bedrock")
	}
}

func bedrockCost(t *testing.T, prompt, cached, completion int64) string {
	t.Helper()
	c, ok := pricing.Default().Cost(pricing.Key{Provider: "bedrock", Model: bedrockModel}, pricing.Usage{PromptTokens: prompt, CachedTokens: cached, CompletionTokens: completion}, time.Now())
	if !ok {
		t.Fatalf("no price for %s", bedrockModel)
	}
	return c.Total.String()
}

func TestBedrockChat(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: bedrockConfig, bedrock: true})
	var resp *http.Response
	c := h.newClient(gatewayKey, option.WithResponseInto(&resp))
	out, err := c.Chat.Completions.New(context.Background(), chatParams("bedrock-default"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Choices[0].Message.Content != "Hello! How can I help you today?" || out.Choices[0].FinishReason != "stop" {
		t.Fatalf("answer %+v", out.Choices[0])
	}
	// Bedrock reports input apart from cache reads: prompt = 12 + 1500.
	if out.Usage.PromptTokens != 1512 || out.Usage.PromptTokensDetails.CachedTokens != 1500 || out.Usage.CompletionTokens != 11 || out.Usage.TotalTokens != 1523 {
		t.Fatalf("usage %+v", out.Usage)
	}
	cost := bedrockCost(t, 1512, 1500, 11)
	if cost != "0.000651" { // 12×3 + 1500×0.30 + 11×15 per million
		t.Fatalf("fixture cost %s", cost)
	}
	if resp.Header.Get("X-Tollgate-Cost-Usd") != cost || resp.Header.Get("X-Tollgate-Provider") != "bedrock" || resp.Header.Get("X-Tollgate-Prompt-Tokens") != "1512" {
		t.Fatalf("metering headers %v", resp.Header)
	}
	checkBedrockUpstream(t, lastRequest(t, h.bedrock), false)
	if line := h.waitRequestLogs(1)[0]; gjson.Get(line, "cost_usd").Str != cost || gjson.Get(line, "provider").Str != "bedrock" {
		t.Fatalf("log %s", line)
	}

	// Bedrock's throttling reaches the client as OpenAI's 429 once Envoy's
	// retries (num_retries: 2, each attempt re-sent with the same signature)
	// are spent too; a validation error as a 400.
	h.bedrock.Fail(fakeprovider.Status(429, ""), fakeprovider.Status(429, ""), fakeprovider.Status(429, ""))
	_, err = c.Chat.Completions.New(context.Background(), chatParams("bedrock-default"))
	var e *openai.Error
	if !asAPIError(err, &e) || e.StatusCode != 429 || e.Code != "rate_limit_exceeded" {
		t.Fatalf("throttled: %v", err)
	}
	if n := len(h.bedrock.Requests()); n != 4 {
		t.Fatalf("%d requests, want 1 + 3 attempts", n)
	}
	h.bedrock.Fail(fakeprovider.Status(400, ""))
	_, err = c.Chat.Completions.New(context.Background(), chatParams("bedrock-default"))
	if !asAPIError(err, &e) || e.StatusCode != 400 || e.Type != "invalid_request_error" || !strings.Contains(e.Message, "non-empty") {
		t.Fatalf("validation: %v", err)
	}
}

func TestBedrockStream(t *testing.T) {
	for name, chunks := range streamChunkings {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{extra: bedrockConfig, bedrock: true, chunks: chunks})
			p := chatParams("bedrock-default")
			p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			acc := streamChat(t, h.client, p)
			if acc.Choices[0].Message.Content != "Hello! How can I help you today?" || acc.Choices[0].FinishReason != "stop" {
				t.Fatalf("assembled %+v", acc.Choices[0])
			}
			if acc.Usage.PromptTokens != 1512 || acc.Usage.CompletionTokens != 11 || acc.Usage.PromptTokensDetails.CachedTokens != 1500 {
				t.Fatalf("usage %+v", acc.Usage)
			}
			checkBedrockUpstream(t, lastRequest(t, h.bedrock), true)
			if line := h.waitRequestLogs(1)[0]; gjson.Get(line, "cost_usd").Str != bedrockCost(t, 1512, 1500, 11) || gjson.Get(line, "prompt_tokens").Int() != 1512 {
				t.Fatalf("log %s", line)
			}
			_, body := h.raw("POST", "/v1/chat/completions", gatewayKey, `{"model":"bedrock-default","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
			if !strings.Contains(string(body), "\n: tollgate ") || !strings.HasSuffix(string(body), "data: [DONE]\n\n") || strings.Contains(string(body), `"usage":{`) {
				t.Fatalf("translated stream:\n%s", body)
			}
		})
	}
}

func TestBedrockTools(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: bedrockConfig, bedrock: true})
	p := chatParams("bedrock-default")
	p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
	})}
	out, err := h.client.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if calls := out.Choices[0].Message.ToolCalls; len(calls) != 1 || calls[0].Function.Name != "get_weather" ||
		calls[0].Function.Arguments != `{"city":"Paris","unit":"celsius"}` || out.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("tool calls %+v", out.Choices[0])
	}
	if !gjson.GetBytes(lastRequest(t, h.bedrock).Body, "toolConfig.tools.0.toolSpec.inputSchema.json").IsObject() {
		t.Fatalf("tools not translated: %s", lastRequest(t, h.bedrock).Body)
	}

	acc := streamChat(t, h.client, p)
	calls := acc.Choices[0].Message.ToolCalls
	if len(calls) != 1 || calls[0].ID != "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q" || !json.Valid([]byte(calls[0].Function.Arguments)) ||
		gjson.Get(calls[0].Function.Arguments, "city").Str != "Paris" || acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("streamed tool calls %+v", acc.Choices[0])
	}

	// The tool result goes back as a toolResult block, signed over the new body.
	p.Messages = append(p.Messages, acc.Choices[0].Message.ToParam(), openai.ToolMessage(`{"temp_c":18}`, calls[0].ID))
	if _, err := h.client.Chat.Completions.New(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	body := lastRequest(t, h.bedrock).Body
	if gjson.GetBytes(body, "messages.2.content.0.toolResult.toolUseId").Str != calls[0].ID || gjson.GetBytes(body, "messages.1.content.1.toolUse.name").Str != "get_weather" {
		t.Fatalf("tool round trip: %s", body)
	}
}

// TestBedrockCredentialsNeverLogged: neither the AWS keys nor a signature
// reach the logs, even when signing fails.
func TestBedrockCredentialsNeverLogged(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: bedrockConfig, bedrock: true})
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("bedrock-default")); err != nil {
		t.Fatal(err)
	}
	h.waitRequestLogs(1)
	logs := h.logs.String()
	for _, s := range []string{awsSecretKey, awsSessionToken, "AWS4-HMAC-SHA256", "Signature="} {
		if strings.Contains(logs, s) {
			t.Fatalf("credential material %q… in the logs", s[:6])
		}
	}
}

// withChainFallback points the second priority of the bootstrap's chain
// cluster at another provider's host and gateway provider name.
func withChainFallback(t *testing.T, bootstrap []byte, host, provider string) []byte {
	t.Helper()
	js, err := yaml.YAMLToJSON(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range gjson.GetBytes(js, "static_resources.clusters").Array() {
		if c.Get("name").Str != "chain_smart_default" {
			continue
		}
		p := "static_resources.clusters." + strconv.Itoa(i) + ".load_assignment.endpoints.1.lb_endpoints.0."
		for path, v := range map[string]any{
			"endpoint.hostname":                          host,
			"endpoint.address.socket_address.address":    host,
			"metadata.filter_metadata.tollgate.provider": provider,
		} {
			if js, err = sjson.SetBytes(js, p+path, v); err != nil {
				t.Fatal(err)
			}
		}
		return js
	}
	t.Fatal("no chain_smart_default cluster")
	return nil
}

// bedrockFallbackConfig makes "resilient" an OpenAI → Bedrock chain.
const bedrockFallbackConfig = bedrockConfig + `  - name: resilient
    fallback:
      cluster: chain_smart_default
      targets:
        - {provider: openai, model: gpt-4o-mini}
        - {provider: bedrock, model: ` + bedrockModel + `}
`

// TestBedrockFallback: when OpenAI fails, Envoy's retry goes to Bedrock, and
// that attempt is translated and signed over its own body (the fake Bedrock
// verifies the signature), with OpenAI's credential removed.
func TestBedrockFallback(t *testing.T) {
	for _, stream := range []bool{false, true} {
		h := newHarness(t, harnessOptions{fallback: true, bedrock: true, extra: bedrockFallbackConfig})
		h.openai.Fail(fakeprovider.Status(500, ""))
		p := chatParams("resilient")
		var content string
		if stream {
			acc := streamChat(t, h.client, p)
			content = acc.Choices[0].Message.Content
		} else {
			out, err := h.client.Chat.Completions.New(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			content = out.Choices[0].Message.Content
		}
		if content != "Hello! How can I help you today?" || len(h.openai.Requests()) != 1 {
			t.Fatalf("stream=%v: answer %q after %d OpenAI attempts", stream, content, len(h.openai.Requests()))
		}
		up := lastRequest(t, h.bedrock)
		checkBedrockUpstream(t, up, stream)
		if strings.Contains(up.Header.Get("Authorization"), providerSecret) {
			t.Fatal("OpenAI's key reached Bedrock")
		}
		line := h.waitRequestLogs(1)[0]
		if gjson.Get(line, "provider").Str != "bedrock" || gjson.Get(line, "prompt_tokens").Int() != 1512 || gjson.Get(line, "cost_usd").Str != bedrockCost(t, 1512, 1500, 11) {
			t.Fatalf("log %s", line)
		}
	}
}
