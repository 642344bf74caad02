package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

// The Responses API (POST /v1/responses) through the gateway with openai-go:
// natively to OpenAI, translated through chat for Anthropic.

func responsesParams(model string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model:        model,
		Instructions: openai.String("Answer briefly."),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("What is an API gateway?")},
	}
}

// streamedText reads a Responses stream to its end: the text of its
// output_text deltas and the terminal event's usage.
func streamedText(t *testing.T, s interface {
	Next() bool
	Current() responses.ResponseStreamEventUnion
	Err() error
}) (string, responses.ResponseUsage, string) {
	t.Helper()
	var text strings.Builder
	var u responses.ResponseUsage
	last := ""
	for s.Next() {
		ev := s.Current()
		last = ev.Type
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			u = ev.Response.Usage
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return text.String(), u, last
}

func TestResponsesNativeOpenAI(t *testing.T) {
	fronts(t, harnessOptions{}, func(t *testing.T, h *harness) {
		resp, err := h.client.Responses.New(context.Background(), responsesParams("smart-default"))
		if err != nil {
			t.Fatal(err)
		}
		want := gjson.GetBytes(fixture(t, "openai/responses_response.json"), "output.1.content.0.text").Str
		if resp.OutputText() != want {
			t.Fatalf("output %q, want %q", resp.OutputText(), want)
		}
		if resp.Usage.InputTokens != 1342 || resp.Usage.OutputTokens != 286 {
			t.Fatalf("usage %+v", resp.Usage)
		}
		up := lastRequest(t, h.openai)
		if up.Path != "/v1/responses" || gjson.GetBytes(up.Body, "model").Str != "gpt-4o-mini" ||
			up.Header.Get("Authorization") != "Bearer "+providerSecret {
			t.Fatalf("upstream %s %s %q", up.Path, up.Body, up.Header.Get("Authorization"))
		}
		line := h.waitRequestLogs(1)[0]
		if gjson.Get(line, "route").Str != "responses" || gjson.Get(line, "prompt_tokens").Int() != 1342 ||
			gjson.Get(line, "completion_tokens").Int() != 286 {
			t.Fatalf("log %s", line)
		}
	})
}

func TestResponsesNativeStatefulForwarded(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	p := responsesParams("smart-default")
	p.PreviousResponseID = openai.String("resp_previous")
	p.Store = openai.Bool(true)
	if _, err := h.client.Responses.New(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	up := lastRequest(t, h.openai)
	if gjson.GetBytes(up.Body, "previous_response_id").Str != "resp_previous" || !gjson.GetBytes(up.Body, "store").Bool() {
		t.Fatalf("upstream body %s", up.Body)
	}
}

func TestResponsesNativeStream(t *testing.T) {
	for name, chunks := range streamChunkings {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{chunks: chunks})
			s := h.client.Responses.NewStreaming(context.Background(), responsesParams("smart-default"))
			text, u, last := streamedText(t, s)
			if text == "" || last != "response.completed" || u.InputTokens == 0 || u.OutputTokens == 0 {
				t.Fatalf("text %q, last event %s, usage %+v", text, last, u)
			}
			line := h.waitRequestLogs(1)[0]
			if gjson.Get(line, "prompt_tokens").Int() != u.InputTokens || gjson.Get(line, "completion_tokens").Int() != u.OutputTokens {
				t.Fatalf("log %s, usage %+v", line, u)
			}
		})
	}
}

func TestResponsesTranslatedAnthropic(t *testing.T) {
	fronts(t, harnessOptions{}, func(t *testing.T, h *harness) {
		resp, err := h.client.Responses.New(context.Background(), responsesParams("claude-default"))
		if err != nil {
			t.Fatal(err)
		}
		want := gjson.GetBytes(fixture(t, "anthropic/messages_response.json"), "content.0.text").Str
		if resp.OutputText() != want || resp.Status != "completed" || resp.Usage.OutputTokens != 29 {
			t.Fatalf("response %q status %s usage %+v", resp.OutputText(), resp.Status, resp.Usage)
		}
		up := lastRequest(t, h.anthropic)
		if up.Path != "/v1/messages" || gjson.GetBytes(up.Body, "model").Str != "claude-sonnet-4-5" ||
			gjson.GetBytes(up.Body, "system").String() == "" {
			t.Fatalf("upstream %s %s", up.Path, up.Body)
		}
		line := h.waitRequestLogs(1)[0]
		if gjson.Get(line, "provider").Str != "anthropic" || gjson.Get(line, "completion_tokens").Int() != 29 {
			t.Fatalf("log %s", line)
		}
	})
}

func TestResponsesTranslatedAnthropicStream(t *testing.T) {
	for name, chunks := range streamChunkings {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{chunks: chunks})
			s := h.client.Responses.NewStreaming(context.Background(), responsesParams("claude-default"))
			text, u, last := streamedText(t, s)
			if want := anthropicStreamText(t, "anthropic/messages_stream.sse"); text != want {
				t.Fatalf("assembled %q, want %q", text, want)
			}
			if last != "response.completed" || u.OutputTokens == 0 || u.InputTokens == 0 {
				t.Fatalf("last event %s, usage %+v", last, u)
			}
			line := h.waitRequestLogs(1)[0]
			if gjson.Get(line, "completion_tokens").Int() != u.OutputTokens {
				t.Fatalf("log %s, usage %+v", line, u)
			}
		})
	}
}

func TestResponsesTranslatedRefusals(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, tc := range []struct{ body, param string }{
		{`{"model":"claude-default","input":"hi","previous_response_id":"resp_1"}`, "previous_response_id"},
		{`{"model":"claude-default","input":"hi","store":true}`, "store"},
		{`{"model":"claude-default","input":"hi","tools":[{"type":"web_search"}]}`, "tools[0].type"},
	} {
		resp, body := h.raw("POST", "/v1/responses", gatewayKey, tc.body)
		if resp.StatusCode != 400 || gjson.GetBytes(body, "error.code").Str != "unsupported_parameter" ||
			!strings.HasPrefix(gjson.GetBytes(body, "error.param").Str, strings.SplitN(tc.param, "[", 2)[0]) {
			t.Errorf("%s: %d %s", tc.body, resp.StatusCode, body)
		}
	}
	if n := len(h.anthropic.Requests()); n != 0 {
		t.Fatalf("%d refused requests reached the provider", n)
	}
	// The SDK surfaces the refusal as a typed error.
	p := responsesParams("claude-default")
	p.PreviousResponseID = openai.String("resp_1")
	_, err := h.client.Responses.New(context.Background(), p)
	var apiErr *openai.Error
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "unsupported_parameter" || apiErr.Param != "previous_response_id" {
		t.Fatalf("error %v", err)
	}
}

// Stored responses live at OpenAI: GET and DELETE go to the one OpenAI
// provider the key may use, with the platform credential (globex has no
// key of its own).
func TestResponsesStoredResource(t *testing.T) {
	fronts(t, harnessOptions{}, func(t *testing.T, h *harness) {
		c := h.newClient(globexKey)
		r, err := c.Responses.Get(context.Background(), "resp_stored1", responses.ResponseGetParams{})
		if err != nil {
			t.Fatal(err)
		}
		if r.ID != "resp_stored1" || r.OutputText() == "" {
			t.Fatalf("response %s %q", r.ID, r.OutputText())
		}
		up := lastRequest(t, h.openai)
		if up.Method != "GET" || up.Path != "/v1/responses/resp_stored1" || up.Header.Get("Authorization") != "Bearer "+providerSecret ||
			up.Header.Get("X-Tollgate-Provider") != "" {
			t.Fatalf("upstream %s %s %q", up.Method, up.Path, up.Header.Get("Authorization"))
		}
		if err := c.Responses.Delete(context.Background(), "resp_stored1"); err != nil {
			t.Fatal(err)
		}
		if up := lastRequest(t, h.openai); up.Method != "DELETE" || up.Path != "/v1/responses/resp_stored1" {
			t.Fatalf("upstream %s %s", up.Method, up.Path)
		}
		line := h.waitRequestLogs(2)[0]
		if gjson.Get(line, "route").Str != "responses" || gjson.Get(line, "provider").Str != "openai" || gjson.Get(line, "total_tokens").Int() != 0 {
			t.Fatalf("log %s", line)
		}
		// Refusals: a provider the key may not use, a malformed id, another method.
		for _, tc := range []struct {
			method, path string
			hdr          []string
			status       int
			code         string
		}{
			{"GET", "/v1/responses/resp_1", []string{"x-tollgate-provider", "anthropic"}, 403, "provider_not_allowed"},
			{"GET", "/v1/responses/resp.1", nil, 404, "unknown_url"},
			{"POST", "/v1/responses/resp_1", nil, 405, "method_not_allowed"},
		} {
			resp, body := h.raw(tc.method, tc.path, globexKey, "", tc.hdr...)
			if resp.StatusCode != tc.status || gjson.GetBytes(body, "error.code").Str != tc.code {
				t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, body)
			}
		}
	})
}

// TestResponsesOutputGuardrails: output guardrails apply to the Responses
// API (natively at OpenAI here): a redaction reaches the SDK in the deltas
// and in the response object alike, a block is a 400 guardrail_blocked.
func TestResponsesOutputGuardrails(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: guardrailConfig()})
	ctx := context.Background()

	want := gjson.GetBytes(fixture(t, "openai/responses_response.json"), "output.1.content.0.text").Str
	redacted := guardedClient(h, "redacted-output")
	resp, err := redacted.Responses.New(ctx, responsesParams("smart-default"))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.OutputText(); got != strings.ReplaceAll(want, "API", "[TERM_1]") {
		t.Fatalf("redacted output %q", got)
	}

	city := guardedClient(h, "redacted-city")
	s := city.Responses.NewStreaming(ctx, responsesParams("smart-default"))
	var deltas strings.Builder
	final := ""
	for s.Next() {
		switch ev := s.Current(); ev.Type {
		case "response.output_text.delta":
			deltas.WriteString(ev.Delta)
		case "response.completed":
			final = ev.Response.OutputText()
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if deltas.String() != "[CITY_1] is sunny at 21°C." || final != deltas.String() {
		t.Fatalf("redacted stream: deltas %q, completed %q", deltas.String(), final)
	}

	strict := guardedClient(h, "strict-output")
	_, err = strict.Responses.New(ctx, responsesParams("smart-default"))
	wantAPIError(t, "blocked answer", err, 400, "guardrail_blocked")
}

// TestResponsesAzure: the Responses API natively to Azure OpenAI, on its v1
// path (the deployment is the body's model, no api-version), with the
// resource's api-key; metered from the answer, streamed or not, and priced
// as the deployment's price_as entry (gpt-4o).
func TestResponsesAzure(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: azureConfig, azure: true})
	resp, err := h.client.Responses.New(context.Background(), responsesParams("azure-default"))
	if err != nil {
		t.Fatal(err)
	}
	want := gjson.GetBytes(fixture(t, "openai/responses_response.json"), "output.1.content.0.text").Str
	if resp.OutputText() != want || resp.Usage.InputTokens != 1342 || resp.Usage.OutputTokens != 286 {
		t.Fatalf("output %q usage %+v", resp.OutputText(), resp.Usage)
	}
	up := lastRequest(t, h.azure)
	if up.Path != "/openai/v1/responses" || up.RawQuery != "" || gjson.GetBytes(up.Body, "model").Str != "gpt-4o-prod" ||
		up.Header.Get("Api-Key") != providerSecret || up.Header.Get("Authorization") != "" || up.Host != "tollgate-e2e.openai.azure.com" {
		t.Fatalf("upstream %s %s?%s %s", up.Host, up.Path, up.RawQuery, up.Body)
	}
	if len(h.openai.Requests()) != 0 {
		t.Fatal("an Azure request reached OpenAI")
	}
	// 1342 input tokens, 1152 of them cached, and 286 output at gpt-4o's
	// $2.50 / $1.25 cached / $10 per million.
	line := h.waitRequestLogs(1)[0]
	if gjson.Get(line, "route").Str != "responses" || gjson.Get(line, "provider").Str != "azure" ||
		gjson.Get(line, "prompt_tokens").Int() != 1342 || gjson.Get(line, "completion_tokens").Int() != 286 ||
		!gjson.Get(line, "usage_from_provider").Bool() || gjson.Get(line, "cost_usd").Str != "0.004775" {
		t.Fatalf("log %s", line)
	}

	s := h.client.Responses.NewStreaming(context.Background(), responsesParams("azure-default"))
	text, u, last := streamedText(t, s)
	if want := streamedFixtureText(t, "openai/responses_stream.sse"); text != want || last != "response.completed" ||
		u.InputTokens != 37 || u.OutputTokens != 8 {
		t.Fatalf("text %q (want %q), last event %s, usage %+v", text, want, last, u)
	}
	if up := lastRequest(t, h.azure); up.Path != "/openai/v1/responses" || !gjson.GetBytes(up.Body, "stream").Bool() {
		t.Fatalf("upstream %s %s", up.Path, up.Body)
	}
	line = h.waitRequestLogs(2)[1]
	if gjson.Get(line, "provider").Str != "azure" || !gjson.Get(line, "stream").Bool() || gjson.Get(line, "prompt_tokens").Int() != 37 ||
		gjson.Get(line, "completion_tokens").Int() != 8 || !gjson.Get(line, "usage_from_provider").Bool() || gjson.Get(line, "cost_usd").Str != "0.0001725" {
		t.Fatalf("log %s", line)
	}

	// Azure's errors reach the SDK as typed errors.
	h.azure.Fail(fakeprovider.Status(400, ""))
	_, err = h.client.Responses.New(context.Background(), responsesParams("azure-default"))
	var e *openai.Error
	if !asAPIError(err, &e) || e.StatusCode != 400 {
		t.Fatalf("Azure error: %v", err)
	}
}

// streamedFixtureText is the text of a Responses stream fixture's
// output_text deltas.
func streamedFixtureText(t *testing.T, name string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(string(fixture(t, name)), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if ok && gjson.Get(data, "type").Str == "response.output_text.delta" {
			b.WriteString(gjson.Get(data, "delta").Str)
		}
	}
	return b.String()
}

const cappedKey = "tg_e2eCappedKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK"

// TestResponsesOutputCap: under a tokens-per-minute limit, a Responses
// request without max_output_tokens reaches the provider capped at the
// limits' default_max_tokens: in max_output_tokens natively, in max_tokens
// (not Anthropic's own default) translated.
func TestResponsesOutputCap(t *testing.T) {
	extra := fmt.Sprintf(`version: 1
tenants:
  - name: capped
keys:
  - {id: capped-key, sha256: %s, tenant: capped}
limits:
  default_max_tokens: 300
  rate_limits:
    - {scope: key, match: capped-key, tokens_per_minute: 100000}
`, keys.Hash(cappedKey))
	h := newHarness(t, harnessOptions{extra: extra})
	c := h.newClient(cappedKey)
	if _, err := c.Responses.New(context.Background(), responsesParams("smart-default")); err != nil {
		t.Fatal(err)
	}
	if up := lastRequest(t, h.openai); gjson.GetBytes(up.Body, "max_output_tokens").Int() != 300 {
		t.Fatalf("OpenAI got %s", up.Body)
	}
	s := c.Responses.NewStreaming(context.Background(), responsesParams("claude-default"))
	if _, _, last := streamedText(t, s); last != "response.completed" {
		t.Fatalf("last event %s", last)
	}
	if up := lastRequest(t, h.anthropic); gjson.GetBytes(up.Body, "max_tokens").Int() != 300 {
		t.Fatalf("Anthropic got %s", up.Body)
	}
	// The client's own cap is the client's.
	p := responsesParams("smart-default")
	p.MaxOutputTokens = openai.Int(40)
	if _, err := c.Responses.New(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if up := lastRequest(t, h.openai); gjson.GetBytes(up.Body, "max_output_tokens").Int() != 40 {
		t.Fatalf("OpenAI got %s", up.Body)
	}
}

const respGuardKey = "tg_e2eRespGuardMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM"

// responsesGuardConfig: output guardrails that block the native stream
// fixture's city, redact "API" and block "gateway" (the Anthropic answer).
func responsesGuardConfig() string {
	return fmt.Sprintf(`version: 1
guardrails:
  policies:
    - name: no-city
      output:
        - {name: no-city-word, type: deny_list, terms: [Lisbon], action: block}
    - name: no-gateway
      output:
        - {name: no-gateway-word, type: deny_list, terms: [gateway], action: block}
    - name: hide-api
      output:
        - {name: api-word, type: regex, patterns: ['\bAPI\b'], label: TERM, action: redact}
tenants:
  - name: resp-guarded
    apps:
      - {name: no-city, guardrail_policy: no-city}
      - {name: no-gateway, guardrail_policy: no-gateway}
      - {name: hide-api, guardrail_policy: hide-api}
keys:
  - {id: resp-guard-key, sha256: %s, tenant: resp-guarded}
`, keys.Hash(respGuardKey))
}

// TestResponsesGuardedNativeStreamBlocked: an output guardrail blocking a
// native (OpenAI) Responses stream ends it with the Responses API's error
// event, which openai-go delivers as an event of type "error" carrying the
// gateway's code; the blocked word never reaches the client.
func TestResponsesGuardedNativeStreamBlocked(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: responsesGuardConfig()})
	c := h.newClient(respGuardKey, option.WithHeader("x-tollgate-app-id", "no-city"))
	s := c.Responses.NewStreaming(context.Background(), responsesParams("smart-default"))
	var types []string
	var errEv responses.ResponseStreamEventUnion
	for s.Next() {
		ev := s.Current()
		types = append(types, ev.Type)
		if strings.Contains(ev.RawJSON(), "Lisbon") {
			t.Fatalf("the blocked word reached the client: %s", ev.RawJSON())
		}
		if ev.Type == "error" {
			errEv = ev
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(types) < 2 || types[len(types)-1] != "error" || errEv.Code != "guardrail_blocked" || !strings.Contains(errEv.Message, "no-city-word") {
		t.Fatalf("events %v, error event %s", types, errEv.RawJSON())
	}
	if slices.Contains(types, "response.completed") {
		t.Fatalf("a blocked stream completed: %v", types)
	}
	line := h.waitRequestLogs(1)[0]
	if gjson.Get(line, "route").Str != "responses" || gjson.Get(line, "provider").Str != "openai" {
		t.Fatalf("log %s", line)
	}

	// Non-streamed (the other fixture: "An API gateway is…"): the whole
	// answer is checked, a block is a typed 400.
	c = h.newClient(respGuardKey, option.WithHeader("x-tollgate-app-id", "no-gateway"))
	_, err := c.Responses.New(context.Background(), responsesParams("smart-default"))
	wantAPIError(t, "blocked answer", err, 400, "guardrail_blocked")
}

// TestResponsesGuardedTranslated: output guardrails on a translated
// (Anthropic) Responses answer read the provider's answer as chat does:
// a redaction reaches the SDK in the response object and in the stream's
// deltas and final response alike; a block is a typed 400, or, mid-stream,
// the stream's response.failed event naming it.
func TestResponsesGuardedTranslated(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: responsesGuardConfig()})
	ctx := context.Background()
	hide := h.newClient(respGuardKey, option.WithHeader("x-tollgate-app-id", "hide-api"))
	resp, err := hide.Responses.New(ctx, responsesParams("claude-default"))
	if err != nil {
		t.Fatal(err)
	}
	want := gjson.GetBytes(fixture(t, "anthropic/messages_response.json"), "content.0.text").Str
	if got := resp.OutputText(); got != strings.ReplaceAll(want, "API", "[TERM_1]") || resp.Status != "completed" {
		t.Fatalf("redacted output %q, status %s", got, resp.Status)
	}
	s := hide.Responses.NewStreaming(ctx, responsesParams("claude-default"))
	var deltas strings.Builder
	final := ""
	for s.Next() {
		switch ev := s.Current(); ev.Type {
		case "response.output_text.delta":
			deltas.WriteString(ev.Delta)
		case "response.completed":
			final = ev.Response.OutputText()
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	streamWant := strings.ReplaceAll(anthropicStreamText(t, "anthropic/messages_stream.sse"), "API", "[TERM_1]")
	if deltas.String() != streamWant || final != streamWant {
		t.Fatalf("redacted stream: deltas %q, completed %q, want %q", deltas.String(), final, streamWant)
	}

	block := h.newClient(respGuardKey, option.WithHeader("x-tollgate-app-id", "no-gateway"))
	_, err = block.Responses.New(ctx, responsesParams("claude-default"))
	wantAPIError(t, "blocked answer", err, 400, "guardrail_blocked")

	s = block.Responses.NewStreaming(ctx, responsesParams("claude-default"))
	var types []string
	var failed responses.ResponseStreamEventUnion
	for s.Next() {
		ev := s.Current()
		types = append(types, ev.Type)
		if strings.Contains(strings.ToLower(ev.RawJSON()), "gateway") && ev.Type != "response.failed" {
			t.Fatalf("the blocked word reached the client: %s", ev.RawJSON())
		}
		if ev.Type == "response.failed" {
			failed = ev
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if types[len(types)-1] != "response.failed" || failed.Response.Error.Code != "guardrail_blocked" {
		t.Fatalf("events %v, failed %s", types, failed.RawJSON())
	}
}

// TestResponsesFallback: a fallback alias (OpenAI → Anthropic) serves the
// Responses API: the OpenAI attempt is native, the Anthropic one
// translated, and the client gets a Responses answer from whichever member
// answered, streamed or not, metered as that member's.
func TestResponsesFallback(t *testing.T) {
	params := responsesParams("resilient")
	t.Run("primary answers natively", func(t *testing.T) {
		h := newHarness(t, harnessOptions{fallback: true, extra: fallbackConfig})
		resp, err := h.client.Responses.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		if want := gjson.GetBytes(fixture(t, "openai/responses_response.json"), "output.1.content.0.text").Str; resp.OutputText() != want {
			t.Fatalf("output %q, want OpenAI's", resp.OutputText())
		}
		up := lastRequest(t, h.openai)
		if up.Path != "/v1/responses" || gjson.GetBytes(up.Body, "model").Str != "gpt-4o-mini" || gjson.GetBytes(up.Body, "instructions").Str == "" ||
			up.Header.Get("Authorization") != "Bearer "+providerSecret {
			t.Fatalf("upstream %s %s", up.Path, up.Body)
		}
		if n := len(h.anthropic.Requests()); n != 0 {
			t.Fatalf("%d requests reached the secondary", n)
		}
		line := h.waitRequestLogs(1)[0]
		if gjson.Get(line, "provider").Str != "openai" || gjson.Get(line, "model").Str != "resilient" || gjson.Get(line, "prompt_tokens").Int() != 1342 {
			t.Fatalf("log %s", line)
		}
	})
	t.Run("primary answers natively, streamed", func(t *testing.T) {
		h := newHarness(t, harnessOptions{fallback: true, extra: fallbackConfig})
		s := h.client.Responses.NewStreaming(context.Background(), params)
		text, u, last := streamedText(t, s)
		if want := streamedFixtureText(t, "openai/responses_stream.sse"); text != want || last != "response.completed" || u.OutputTokens != 8 {
			t.Fatalf("text %q (want %q), last event %s, usage %+v", text, want, last, u)
		}
		if up := lastRequest(t, h.openai); up.Path != "/v1/responses" || gjson.GetBytes(up.Body, "stream_options").Exists() {
			t.Fatalf("upstream %s %s", up.Path, up.Body)
		}
		line := h.waitRequestLogs(1)[0]
		if gjson.Get(line, "provider").Str != "openai" || gjson.Get(line, "completion_tokens").Int() != 8 {
			t.Fatalf("log %s", line)
		}
	})
	t.Run("secondary translated", func(t *testing.T) {
		h := newHarness(t, harnessOptions{fallback: true, extra: fallbackConfig})
		h.openai.Fail(fakeprovider.Status(429, "1"))
		resp, err := h.client.Responses.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		want := gjson.GetBytes(fixture(t, "anthropic/messages_response.json"), "content.0.text").Str
		if resp.OutputText() != want || resp.Status != "completed" || resp.Usage.OutputTokens != 29 {
			t.Fatalf("response %q status %s usage %+v", resp.OutputText(), resp.Status, resp.Usage)
		}
		if p := lastRequest(t, h.openai); p.Path != "/v1/responses" {
			t.Fatalf("primary attempt %s", p.Path)
		}
		checkAnthropicUpstream(t, lastRequest(t, h.anthropic), false)
		line := h.waitRequestLogs(1)[0]
		if gjson.Get(line, "provider").Str != "anthropic" || gjson.Get(line, "model").Str != "resilient" ||
			gjson.Get(line, "completion_tokens").Int() != 29 || !gjson.Get(line, "usage_from_provider").Bool() {
			t.Fatalf("log %s", line)
		}
	})
	t.Run("secondary translated, streamed", func(t *testing.T) {
		h := newHarness(t, harnessOptions{fallback: true, extra: fallbackConfig})
		h.openai.Fail(fakeprovider.Status(500, ""))
		s := h.client.Responses.NewStreaming(context.Background(), params)
		text, u, last := streamedText(t, s)
		if want := anthropicStreamText(t, "anthropic/messages_stream.sse"); text != want || last != "response.completed" || u.OutputTokens == 0 {
			t.Fatalf("assembled %q (want %q), last event %s, usage %+v", text, want, last, u)
		}
		checkAnthropicUpstream(t, lastRequest(t, h.anthropic), true)
		line := h.waitRequestLogs(1)[0]
		if gjson.Get(line, "provider").Str != "anthropic" || gjson.Get(line, "completion_tokens").Int() != u.OutputTokens {
			t.Fatalf("log %s", line)
		}
	})
	t.Run("a feature the secondary cannot take is refused up front", func(t *testing.T) {
		h := newHarness(t, harnessOptions{fallback: true, extra: fallbackConfig})
		p := responsesParams("resilient")
		p.PreviousResponseID = openai.String("resp_1")
		_, err := h.client.Responses.New(context.Background(), p)
		var apiErr *openai.Error
		if !asAPIError(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "unsupported_parameter" || apiErr.Param != "previous_response_id" {
			t.Fatalf("error %v", err)
		}
		if len(h.openai.Requests())+len(h.anthropic.Requests()) != 0 {
			t.Fatal("a refused request reached a provider")
		}
	})
}
