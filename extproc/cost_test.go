package extproc

import (
	"context"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// meterHarness is a gateway with providers of every schema, the built-in
// prices plus price_as mappings, an optional budget, and an observed log.
type meterHarness struct {
	snap *Snapshot
	srv  *Server
	logs *observer.ObservedLogs
}

func newMeterHarness(t testing.TB, budget bool) *meterHarness {
	t.Helper()
	cfg := &config.Config{
		Version: 1,
		Providers: []config.Provider{{
			Name: "openai", Schema: "openai", Cluster: "openai", BasePath: "/v1", DirectModels: "any",
		}, {
			Name: "anthropic", Schema: "anthropic", Cluster: "anthropic", BasePath: "/v1", DirectModels: "any",
		}, {
			Name: "azure", Schema: "azure-openai", Cluster: "azure", BasePath: "/openai", APIVersion: "2024-10-21", DirectModels: "any",
			PriceAs: map[string]string{"gpt-4o-prod": "openai/gpt-4o"},
		}, {
			Name: "local", Schema: "openai", Cluster: "ollama", BasePath: "/v1", DirectModels: "any", Unpriced: config.UnpricedAllow,
		}},
	}
	table, _ := routing.New(cfg, func(string) (string, bool) { return "", false })
	tenants, _ := configopts.NewTenancy(cfg, nil)
	store, err := keys.NewStore([]keys.Entry{{Key: keys.Key{ID: "k1", Tenant: config.DefaultTenant}, SHA256: keys.Hash(testKey)}})
	if err != nil {
		t.Fatal(err)
	}
	prices, err := pricing.Default().WithAliases(routing.PriceAliases(cfg))
	if err != nil {
		t.Fatal(err)
	}
	lim := &Limits{}
	var limiter limits.Limiter
	if budget {
		if lim, err = NewLimits(&config.Limits{Budgets: []config.BudgetRule{{Scope: "key", DailyUSD: "5"}}}); err != nil {
			t.Fatal(err)
		}
		limiter = limits.NewMemory(time.Now)
	}
	core, logs := observer.New(zap.InfoLevel)
	snap := &Snapshot{Routes: table, Keys: store, Tenants: tenants, Metadata: cfg.MetadataLimits(), Prices: prices, Limits: lim}
	srv := New(Options{Snapshot: func() *Snapshot { return snap }, Logger: zap.New(core), Limiter: limiter})
	return &meterHarness{snap: snap, srv: srv, logs: logs}
}

func (h *meterHarness) exchange() *exchange { return newExchange(context.Background(), h.srv, h.snap) }

// record is the finished exchange's log line as a map.
func (h *meterHarness) record(t testing.TB) map[string]any {
	t.Helper()
	lines := h.logs.FilterMessage("request").AllUntimed()
	if len(lines) == 0 {
		t.Fatal("no request log line")
	}
	return lines[len(lines)-1].ContextMap()
}

// streamChat sends a streaming chat request for model and feeds stream in
// two pieces split at split, the last with end of stream unless cut.
func streamChat(x *exchange, model string, stream []byte, split int, eos bool) string {
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"Summarise the contract."}]}`))
	x.handle(respHeaders(":status", "200", "content-type", "text/event-stream"))
	var out strings.Builder
	for _, c := range []struct {
		b   []byte
		eos bool
	}{{stream[:split], false}, {stream[split:], eos}} {
		resp, _ := x.handle(respBody(string(c.b), c.eos))
		out.Write(clientBytes(resp, c.b))
	}
	return out.String()
}

// TestStreamCostEveryOffset prices each metered stream fixture split at
// each offset of splitOffsets: the cost is exact and does not depend on where Envoy
// cut the stream. Anthropic cache writes are priced at their 5-minute and
// 1-hour rates, OpenAI cached prompt tokens at the cached rate and reasoning
// tokens (part of the completion) at the output rate.
func TestStreamCostEveryOffset(t *testing.T) {
	h := newMeterHarness(t, false)
	tests := []struct {
		fixture, model string
		want           usage.Usage
		cost           string
	}{
		// 21 input × 3.00 + 4,000 5-minute writes × 3.75 + 6,000 1-hour writes × 6.00 + 18 output × 15.00 ($/MTok).
		{"anthropic/messages_stream_cache_write.sse", "anthropic/claude-sonnet-4-5",
			usage.Usage{PromptTokens: 10021, CompletionTokens: 18, TotalTokens: 10039, CacheWrite5mTokens: 4000, CacheWrite1hTokens: 6000}, "0.051333"},
		// 290 uncached × 1.10 + 1,920 cached × 0.275 + 1,386 output (1,344 reasoning) × 4.40.
		{"openai/chat_stream_reasoning.sse", "openai/o4-mini",
			usage.Usage{PromptTokens: 2210, CompletionTokens: 1386, TotalTokens: 3596, CachedTokens: 1920, ReasoningTokens: 1344}, "0.0069454"},
	}
	for _, tt := range tests {
		stream := readFixture(t, tt.fixture)
		for _, i := range splitOffsets(stream) {
			x := h.exchange()
			out := streamChat(x, tt.model, stream, i, true)
			x.finish()
			r := x.rec
			if !r.usageKnown || r.estimated || r.usage != tt.want || !r.costKnown || r.cost.String() != tt.cost {
				t.Fatalf("%s split at %d: usage %+v (provider %v, estimated %v), cost %s (%v); want %+v, %s",
					tt.fixture, i, r.usage, r.usageKnown, r.estimated, r.cost, r.costKnown, tt.want, tt.cost)
			}
			if !strings.Contains(out, " cost_usd="+tt.cost+" ") || r.outcome != outcomeCompleted {
				t.Fatalf("%s split at %d: outcome %q, client stream:\n%s", tt.fixture, i, r.outcome, out)
			}
		}
		rec := h.record(t)
		for k, v := range map[string]int64{"cache_write_5m_tokens": tt.want.CacheWrite5mTokens, "cache_write_1h_tokens": tt.want.CacheWrite1hTokens,
			"reasoning_tokens": tt.want.ReasoningTokens, "cached_tokens": tt.want.CachedTokens} {
			if rec[k] != v {
				t.Errorf("%s: log %s = %v, want %d", tt.fixture, k, rec[k], v)
			}
		}
	}
}

// TestBufferedCacheWriteCost: a non-streamed Anthropic response with 1-hour
// cache writes and cache reads.
func TestBufferedCacheWriteCost(t *testing.T) {
	h := newMeterHarness(t, false)
	x := h.exchange()
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"anthropic/claude-sonnet-4-5","messages":[{"role":"user","content":"Summarise the contract."}]}`))
	x.handle(respHeaders(":status", "200", "content-type", "application/json"))
	resp, _ := x.handle(respBody(string(readFixture(t, "anthropic/messages_response_cache_write_1h.json")), true))
	// 21 × 3.00 + 2,500 reads × 0.30 + 10,000 1-hour writes × 6.00 + 18 × 15.00.
	if got := setHeaders(resp.GetResponseBody().GetResponse().GetHeaderMutation())["x-tollgate-cost-usd"]; got != "0.061083" {
		t.Fatalf("cost %q", got)
	}
}

// TestAnthropicCutStreamEstimated cuts the Anthropic stream after each event
// before message_delta, both as a clean end of stream and as a reset: the
// usage is never taken as the provider's final figure (message_start's
// output_tokens is a placeholder), but estimated from the larger of the
// partial count and the text received, with message_start's exact input.
func TestAnthropicCutStreamEstimated(t *testing.T) {
	h := newMeterHarness(t, false)
	full := readFixture(t, "anthropic/messages_stream.sse")
	events := strings.SplitAfter(string(full), "\n\n")
	text := 0
	for n := 1; n < len(events); n++ {
		if strings.Contains(events[n-1], "message_delta") {
			break
		}
		if strings.Contains(events[n-1], "text_delta") {
			text += len(strings.SplitN(strings.SplitN(events[n-1], `"text":"`, 2)[1], `"`, 2)[0])
		}
		cut := []byte(strings.Join(events[:n], ""))
		for _, eos := range []bool{true, false} {
			x := h.exchange()
			streamChat(x, "anthropic/claude-sonnet-4-5", cut, len(cut), eos)
			x.finish()
			r := x.rec
			want := usage.Usage{PromptTokens: 24, CompletionTokens: max(4, estimateTokens(text))}
			want.TotalTokens = want.PromptTokens + want.CompletionTokens
			if r.usageKnown || !r.estimated || r.usage != want || !r.costKnown {
				t.Fatalf("cut after %d events (eos %v): usage %+v provider %v estimated %v; want %+v", n, eos, r.usage, r.usageKnown, r.estimated, want)
			}
			wantOutcome := outcomeIncomplete
			if !eos {
				wantOutcome = outcomeReset
			}
			if rec := h.record(t); rec["outcome"] != wantOutcome || rec["status"] != int64(200) || rec["usage_estimated"] != true || rec["usage_from_provider"] != false {
				t.Fatalf("cut after %d events (eos %v): log %v", n, eos, rec)
			}
		}
	}
	if text < 20 {
		t.Fatalf("the cut never got past the placeholder: %d bytes of text", text)
	}
}

// TestBufferedResetRecorded: a non-streaming response reset after its
// headers never reached the client (BUFFERED mode holds the headers), so the
// record says status 0, outcome reset — not 200.
func TestBufferedResetRecorded(t *testing.T) {
	h := newMeterHarness(t, false)
	for _, tc := range []struct {
		name        string
		body        bool // a first body chunk arrived without end of stream
		wantStatus  int64
		wantOutcome string
	}{
		{"reset after the headers", false, 0, outcomeReset},
		{"reset mid-body", true, 0, outcomeReset},
	} {
		x := h.exchange()
		x.handle(chatHeaders())
		x.handle(reqBody(`{"model":"openai/gpt-4o-mini"}`))
		x.handle(respHeaders(":status", "200", "content-type", "application/json"))
		if tc.body {
			x.handle(respBody(`{"id":"chatcmpl-1","choices":[{"message":{"content":"Hel`, false))
		}
		x.finish()
		rec := h.record(t)
		if rec["status"] != tc.wantStatus || rec["outcome"] != tc.wantOutcome {
			t.Errorf("%s: status %v outcome %v", tc.name, rec["status"], rec["outcome"])
		}
	}
	// A complete response is recorded as the client saw it.
	x := h.exchange()
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"openai/gpt-4o-mini"}`))
	x.handle(respHeaders(":status", "200", "content-type", "application/json"))
	x.handle(respBody(string(readFixture(t, "openai/chat_response.json")), true))
	x.finish()
	if rec := h.record(t); rec["status"] != int64(200) || rec["outcome"] != outcomeCompleted {
		t.Errorf("complete: status %v outcome %v", rec["status"], rec["outcome"])
	}
	// A refusal says so.
	x = h.exchange()
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"nope"}`))
	x.finish()
	if rec := h.record(t); rec["status"] != int64(404) || rec["outcome"] != outcomeRefused {
		t.Errorf("refused: status %v outcome %v", rec["status"], rec["outcome"])
	}
}

// TestUnpricedRefused: where a budget applies, a model without a price is
// refused (model_unpriced) unless its provider allows unpriced models; a
// price_as mapping prices an Azure deployment as the model it runs; without
// a budget an unpriced model is served and its record says unpriced.
func TestUnpricedRefused(t *testing.T) {
	for _, tc := range []struct {
		model    string
		budget   bool
		refused  bool
		unpriced bool
	}{
		{"openai/gpt-4o-mini", true, false, false},
		{"openai/my-finetune", true, true, true},
		{"azure/gpt-4o", true, true, true}, // a deployment named like an OpenAI model is not OpenAI's price
		{"azure/gpt-4o-prod", true, false, false},
		{"local/llama3", true, false, true},
		{"openai/my-finetune", false, false, true},
	} {
		h := newMeterHarness(t, tc.budget)
		x := h.exchange()
		x.handle(chatHeaders())
		resp, _ := x.handle(reqBody(`{"model":"` + tc.model + `","messages":[{"role":"user","content":"hi"}]}`))
		if tc.refused {
			status, e := immediateError(t, resp)
			if status != 400 || e.Error.Code == nil || *e.Error.Code != "model_unpriced" || e.Error.Param == nil || *e.Error.Param != "model" {
				t.Errorf("%s: %d %+v", tc.model, status, e)
			}
			x.finish()
		} else {
			if resp.GetImmediateResponse() != nil {
				t.Errorf("%s (budget %v): refused: %s", tc.model, tc.budget, resp.GetImmediateResponse().GetBody())
				continue
			}
			x.handle(respHeaders(":status", "200", "content-type", "application/json"))
			x.handle(respBody(string(readFixture(t, "openai/chat_response.json")), true))
			x.finish()
		}
		rec := h.record(t)
		if got := rec["unpriced"] == true; got != tc.unpriced {
			t.Errorf("%s (budget %v): log unpriced = %v, want %v: %v", tc.model, tc.budget, rec["unpriced"], tc.unpriced, rec)
		}
		if _, has := rec["cost_usd"]; has == tc.unpriced {
			t.Errorf("%s (budget %v): cost_usd present = %v", tc.model, tc.budget, has)
		}
	}
}

// TestTranscriptionCost prices both transcription usage shapes through the
// exchange: tokens (audio input at its own rate) and duration (per minute).
func TestTranscriptionCost(t *testing.T) {
	h := newMeterHarness(t, false)
	for _, tc := range []struct {
		model, fixture string
		want           usage.Usage
		cost           string
	}{
		// 14 audio tokens × 6.00 + 45 output × 10.00 ($/MTok).
		{"gpt-4o-transcribe", "openai/transcription_response_tokens.json",
			usage.Usage{PromptTokens: 14, CompletionTokens: 45, TotalTokens: 59, AudioTokens: 14}, "0.000534"},
		// The same, streamed: the usage of transcript.text.done.
		{"gpt-4o-transcribe", "openai/transcription_stream_tokens.sse",
			usage.Usage{PromptTokens: 14, CompletionTokens: 45, TotalTokens: 59, AudioTokens: 14}, "0.000534"},
		// 9.4 s at 0.006 $/min.
		{"whisper-1", "openai/transcription_response_duration.json", usage.Usage{AudioMillis: 9400}, "0.00094"},
	} {
		x := h.exchange()
		body, boundary := formBody(t, map[string]string{"model": "openai/" + tc.model}, []byte("RIFF-audio"))
		x.handle(reqHeaders(false, ":method", "POST", ":path", "/v1/audio/transcriptions", ":authority", "gw", "authorization", "Bearer "+testKey,
			"content-type", "multipart/form-data; boundary="+boundary))
		x.handle(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}})
		x.handle(respHeaders(":status", "200", "content-type", "application/json"))
		resp, _ := x.handle(respBody(string(readFixture(t, tc.fixture)), true))
		if got := setHeaders(resp.GetResponseBody().GetResponse().GetHeaderMutation())["x-tollgate-cost-usd"]; got != tc.cost {
			t.Errorf("%s: cost header %q, want %s", tc.model, got, tc.cost)
		}
		x.finish()
		if x.rec.usage != tc.want || !x.rec.usageKnown {
			t.Errorf("%s: usage %+v %v", tc.model, x.rec.usage, x.rec.usageKnown)
		}
	}
	if rec := h.record(t); rec["audio_ms"] != int64(9400) || rec["cost_usd"] != "0.00094" {
		t.Errorf("log %v", rec)
	}
}

func FuzzTranscriptionUsage(f *testing.F) {
	f.Add([]byte(`{"text":"x","usage":{"type":"duration","seconds":9.4}}`))
	f.Add([]byte("data: {\"type\":\"transcript.text.done\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":3,\"output_tokens\":1}}\r\n\r\n"))
	f.Add([]byte("data: \"transcript.text.done\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, ok := transcriptionUsage(b)
		if ok && (u.PromptTokens < 0 || u.CompletionTokens < 0 || u.AudioTokens > u.PromptTokens || u.AudioMillis < 0) {
			t.Fatalf("%q: %+v", b, u)
		}
	})
}

// TestAnthropicErrorEventEstimated: a stream that ends with Anthropic's error
// event never reached message_delta, so its usage is the flagged estimate
// (message_start's exact input, the larger of the placeholder and the text
// received), recorded as incomplete — never as the provider's final figure.
func TestAnthropicErrorEventEstimated(t *testing.T) {
	h := newMeterHarness(t, false)
	stream := readFixture(t, "anthropic/messages_stream_error.sse")
	x := h.exchange()
	streamChat(x, "anthropic/claude-sonnet-4-5", stream, len(stream), true)
	x.finish()
	r := x.rec
	if r.usageKnown || !r.estimated || r.usage.PromptTokens == 0 || !r.costKnown {
		t.Fatalf("usage %+v provider %v estimated %v cost %v", r.usage, r.usageKnown, r.estimated, r.costKnown)
	}
	if rec := h.record(t); rec["outcome"] != outcomeIncomplete || rec["usage_estimated"] != true || rec["usage_from_provider"] != false {
		t.Fatalf("log %v", rec)
	}
}
