package extproc

import (
	"context"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// mockExchange is an exchange on a config whose alias "demo" and direct
// names route to a schema mock provider.
func mockExchange(t *testing.T) *exchange {
	t.Helper()
	cfg := &config.Config{
		Version: 1,
		Providers: []config.Provider{{Name: "mock", Schema: config.SchemaMock,
			Models: []string{"tollgate-mock", "tollgate-mock-embed"}, DirectModels: config.DirectListed}},
		Models: []config.Model{{Name: "demo", Provider: "mock", Model: "tollgate-mock"}},
	}
	table, warns := routing.New(cfg, func(string) (string, bool) { return "", false })
	if len(warns) > 0 {
		t.Fatal(warns)
	}
	tenants, _ := configopts.NewTenancy(cfg, func(string) (string, bool) { return "", false })
	store, err := keys.NewStore([]keys.Entry{{Key: keys.Key{ID: "k1", Tenant: config.DefaultTenant}, SHA256: keys.Hash(testKey)}})
	if err != nil {
		t.Fatal(err)
	}
	snap := &Snapshot{Routes: table, Keys: store, Tenants: tenants, Metadata: cfg.MetadataLimits(), Prices: pricing.Default(), Limits: &Limits{}}
	return newExchange(context.Background(), New(Options{Snapshot: func() *Snapshot { return snap }}), snap)
}

func mockHeaders(path string) *extprocv3.ProcessingRequest {
	return reqHeaders(false, ":method", "POST", ":path", path, ":authority", "gw",
		"authorization", "Bearer "+testKey, "content-type", "application/json", "x-request-id", "rid-1")
}

func TestAnswerMock(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		status           int
		contentType      string
		want, wantNot    []string          // in the body
		headers          map[string]string // exact values
		usageKnown       bool
		prompt, total    int64
	}{
		{name: "chat", path: "/v1/chat/completions",
			body:   `{"model":"demo","messages":[{"role":"user","content":"Hello"}]}`,
			status: 200, contentType: "application/json",
			want: []string{`"content":"This is Tollgate's mock provider. You said: Hello"`, `"model":"tollgate-mock"`, `"total_tokens":11`},
			headers: map[string]string{"x-tollgate-provider": "mock", "x-tollgate-model": "tollgate-mock", "x-tollgate-usage": "provider",
				"x-tollgate-prompt-tokens": "3", "x-tollgate-completion-tokens": "8", "x-tollgate-total-tokens": "11",
				"x-tollgate-cost-usd": "0", "x-request-id": "rid-1", "x-tollgate-request-id": "rid-1"},
			usageKnown: true, prompt: 3, total: 11},
		{name: "stream without usage", path: "/v1/chat/completions",
			body:   `{"model":"demo","stream":true,"messages":[{"role":"user","content":"Hi"}]}`,
			status: 200, contentType: "text/event-stream; charset=utf-8",
			want:       []string{`"content":" said:"`, `"finish_reason":"stop"`, "\n\n: tollgate request_id=rid-1 provider=mock model=tollgate-mock prompt_tokens=2 completion_tokens=8 total_tokens=10 cached_tokens=0 usage=provider cost_usd=0 ", "\n\ndata: [DONE]\n\n"},
			wantNot:    []string{`"usage":{`},
			usageKnown: true, prompt: 2, total: 10},
		{name: "stream with usage", path: "/v1/chat/completions",
			body:   `{"model":"demo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}]}`,
			status: 200, contentType: "text/event-stream; charset=utf-8",
			want:       []string{`"choices":[],`, `"usage":{"prompt_tokens":2,"completion_tokens":8,"total_tokens":10}`, "usage=provider", "data: [DONE]\n\n"},
			usageKnown: true, prompt: 2, total: 10},
		{name: "embeddings", path: "/v1/embeddings",
			body:   `{"model":"mock/tollgate-mock-embed","input":["a","bcdef"]}`,
			status: 200, contentType: "application/json",
			want:       []string{`"object":"list"`, `"model":"tollgate-mock-embed"`, `"prompt_tokens":3`},
			headers:    map[string]string{"x-tollgate-model": "tollgate-mock-embed", "x-tollgate-total-tokens": "3"},
			usageKnown: true, prompt: 3, total: 3},
		{name: "asked-for 429", path: "/v1/chat/completions",
			body:   `{"model":"demo","messages":[{"role":"user","content":"go [mock:429]"}]}`,
			status: 429, contentType: "application/json",
			want:    []string{`"code":"rate_limit_exceeded"`, `"type":"rate_limit_error"`},
			headers: map[string]string{"retry-after": "1", "x-tollgate-provider": "mock"}},
		{name: "asked-for 503 on a stream", path: "/v1/chat/completions",
			body:   `{"model":"demo","stream":true,"messages":[{"role":"user","content":"[mock:503]"}]}`,
			status: 503, contentType: "application/json",
			want: []string{`"code":"overloaded"`}, wantNot: []string{"data:"}},
		{name: "bad input", path: "/v1/embeddings",
			body:   `{"model":"mock/tollgate-mock-embed","input":[1]}`,
			status: 400, contentType: "application/json",
			want: []string{`"code":"invalid_input"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := mockExchange(t)
			if r, _ := x.handle(mockHeaders(tc.path)); r.GetRequestHeaders() == nil {
				t.Fatalf("request headers: %v", r)
			}
			r, _ := x.handle(reqBody(tc.body))
			ir := r.GetImmediateResponse()
			if ir == nil || !x.done {
				t.Fatalf("not answered by the gateway: %v", r)
			}
			got := string(ir.GetBody())
			h := setHeaders(ir.GetHeaders())
			if int(ir.GetStatus().GetCode()) != tc.status || h["content-type"] != tc.contentType {
				t.Fatalf("status %d content-type %q:\n%s", ir.GetStatus().GetCode(), h["content-type"], got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("body lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("body has %q:\n%s", w, got)
				}
			}
			for k, v := range tc.headers {
				if h[k] != v {
					t.Errorf("header %s = %q, want %q", k, h[k], v)
				}
			}
			if md := r.GetDynamicMetadata().GetFields()[metadataNamespace].GetStructValue().GetFields(); md["provider"].GetStringValue() != "mock" || !md[metaGatewayReply].GetBoolValue() {
				t.Errorf("dynamic metadata %v", md)
			}
			x.finish()
			rec := x.rec
			if rec.status != tc.status || rec.outcome != outcomeCompleted || rec.refusal != "" || rec.provider != "mock" {
				t.Errorf("record status %d outcome %q refusal %q provider %q", rec.status, rec.outcome, rec.refusal, rec.provider)
			}
			if rec.usageKnown != tc.usageKnown || rec.estimated || rec.usage.PromptTokens != tc.prompt || rec.usage.TotalTokens != tc.total {
				t.Errorf("record usage %+v known %v estimated %v", rec.usage, rec.usageKnown, rec.estimated)
			}
			if tc.usageKnown && (!rec.costKnown || rec.cost != 0) {
				t.Errorf("cost %v known %v, want exactly $0", rec.cost, rec.costKnown)
			}
		})
	}
}

// A model the mock does not serve stays a refusal, not a mock answer.
func TestAnswerMockRefusals(t *testing.T) {
	x := mockExchange(t)
	x.handle(chatHeaders())
	r, _ := x.handle(reqBody(`{"model":"nope","messages":[{"role":"user","content":"x"}]}`))
	if code, _ := immediateError(t, r); code != 404 || x.rec.refusal == "" {
		t.Fatalf("status %d refusal %q", code, x.rec.refusal)
	}
}
