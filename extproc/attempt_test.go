package extproc

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
)

func chainSnapshot(t *testing.T) *Snapshot {
	t.Helper()
	cfg := &config.Config{
		Providers: []config.Provider{
			{Name: "openai", Schema: "openai", Cluster: "openai", BasePath: "/v1",
				Credential: &config.Credential{Header: "authorization", Prefix: "Bearer ", Source: config.SecretRef{Env: "O"}}},
			{Name: "anthropic", Schema: "anthropic", Cluster: "anthropic", BasePath: "/v1", DefaultMaxTokens: 512,
				Credential: &config.Credential{Header: "x-api-key", Source: config.SecretRef{Env: "A"}}},
		},
		Models: []config.Model{{Name: "smart", Fallback: &config.Fallback{Cluster: "chain_smart", Targets: []config.ChainTarget{
			{Provider: "openai", Model: "gpt-4o-mini"}, {Provider: "anthropic", Model: "claude-sonnet-4-5"}}}}},
	}
	env := func(k string) (string, bool) { return map[string]string{"O": "sk-o", "A": "sk-a"}[k], true }
	table, _ := routing.New(cfg, env)
	tenants, _ := configopts.NewTenancy(cfg, env)
	store, _ := keys.NewStore([]keys.Entry{{Key: keys.Key{ID: "k1", Tenant: config.DefaultTenant}, SHA256: keys.Hash(testKey)}})
	return &Snapshot{Routes: table, Keys: store, Tenants: tenants, Metadata: cfg.MetadataLimits(), Limits: &Limits{}}
}

// attemptHeaders is the first message of an upstream attempt's stream.
func attemptHeaders(provider string, n int, stream bool) *extprocv3.ProcessingRequest {
	md, _ := structpb.NewStruct(map[string]any{metaModel: "smart", metaEndpoint: "chat", metaStream: stream, metaClientUsage: false})
	attrs, _ := structpb.NewStruct(map[string]any{attrProvider: provider, attrAttemptNo: n, "xds.cluster_name": "chain_smart"})
	return &extprocv3.ProcessingRequest{
		Request:         &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{}}},
		Attributes:      map[string]*structpb.Struct{attrsKey: attrs},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{metadataNamespace: md}},
	}
}

func runAttempt(t *testing.T, snap *Snapshot, provider string, n int, stream bool, body string) (map[string]string, []string, string) {
	t.Helper()
	first := attemptHeaders(provider, n, stream)
	if !isAttempt(first) {
		t.Fatal("attempt not recognised")
	}
	a := &attempt{srv: New(Options{}), snap: snap}
	if r, _ := a.handle(first); r.GetRequestHeaders() == nil {
		t.Fatalf("headers reply %v", r)
	}
	r, _ := a.handle(reqBody(body))
	c := r.GetRequestBody().GetResponse()
	return setHeaders(c.GetHeaderMutation()), c.GetHeaderMutation().GetRemoveHeaders(), string(c.GetBodyMutation().GetBody())
}

func TestAttemptTranslatesPerProvider(t *testing.T) {
	snap := chainSnapshot(t)
	body := `{"model":"smart","stream":true,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`

	set, removed, out := runAttempt(t, snap, "openai", 1, true, body)
	if set[":path"] != "/v1/chat/completions" || set["authorization"] != "Bearer sk-o" || gjson.Get(out, "model").Str != "gpt-4o-mini" ||
		!gjson.Get(out, "stream_options.include_usage").Bool() || set["content-length"] != itoa(len(out)) {
		t.Fatalf("openai attempt: %v %s", set, out)
	}
	if !contains(removed, "x-api-key") || !contains(removed, "anthropic-version") || contains(removed, "authorization") {
		t.Fatalf("openai attempt must remove other providers' headers, not its own: %v", removed)
	}

	// The retry goes to the next priority: same request headers object
	// (Envoy router: upstream_http_filters), so the Anthropic attempt removes OpenAI's credential.
	set, removed, out = runAttempt(t, snap, "anthropic", 2, true, body)
	if set[":path"] != "/v1/messages" || set["x-api-key"] != "sk-a" || set["anthropic-version"] == "" ||
		gjson.Get(out, "model").Str != "claude-sonnet-4-5" || gjson.Get(out, "system").Str != "be brief" ||
		gjson.Get(out, "max_tokens").Int() != 512 || set["content-length"] != itoa(len(out)) {
		t.Fatalf("anthropic attempt: %v %s", set, out)
	}
	if !contains(removed, "authorization") || contains(removed, "x-api-key") {
		t.Fatalf("anthropic attempt removals: %v", removed)
	}
}

func TestAttemptMisconfigured(t *testing.T) {
	set, removed, out := runAttempt(t, chainSnapshot(t), "mistral", 1, false, `{"model":"smart"}`)
	if out != "" || set[":path"] != "" || len(removed) != len(providerHeaders) {
		t.Fatalf("an attempt to an unknown provider must go on without a credential: %v %v %q", set, removed, out)
	}
}

func TestDownstreamChainRequest(t *testing.T) {
	snap := chainSnapshot(t)
	x := newExchange(t.Context(), New(Options{Snapshot: func() *Snapshot { return snap }}), snap)
	x.handle(chatHeaders())
	resp, _ := x.handle(reqBody(`{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	c := resp.GetRequestBody().GetResponse()
	set := setHeaders(c.GetHeaderMutation())
	if set[clusterHeader] != "chain_smart" || set[":path"] != "" || set["authorization"] != "" || c.GetBodyMutation() != nil {
		t.Fatalf("downstream must only pick the chain cluster: %v (%v)", set, resp)
	}
	md := resp.GetDynamicMetadata().GetFields()[metadataNamespace].GetStructValue().GetFields()
	if md[metaModel].GetStringValue() != "smart" || !md[metaStream].GetBoolValue() || md[metaEndpoint].GetStringValue() != "chat" {
		t.Fatalf("chain metadata %v", md)
	}
	// The response came from the secondary: it is read as Anthropic's.
	attrs, _ := structpb.NewStruct(map[string]any{attrProvider: "anthropic"})
	rh := respHeaders(":status", "200", "content-type", "text/event-stream")
	rh.Attributes = map[string]*structpb.Struct{attrsKey: attrs}
	x.handle(rh)
	if _, ok := x.body.(*streamReader); !ok || x.rec.provider != "anthropic" {
		t.Fatalf("response reader %T, provider %s", x.body, x.rec.provider)
	}
}

func TestChainRefusesTranscriptions(t *testing.T) {
	snap := chainSnapshot(t)
	x := newExchange(t.Context(), New(Options{Snapshot: func() *Snapshot { return snap }}), snap)
	x.handle(reqHeaders(false, ":method", "POST", ":path", "/v1/audio/transcriptions", "authorization", "Bearer "+testKey,
		"content-type", "multipart/form-data; boundary=b"))
	resp, _ := x.handle(reqBody("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nsmart\r\n--b--\r\n"))
	if status, e := immediateError(t, resp); status != 400 || e.Error.Code == nil || *e.Error.Code != "unsupported_endpoint" {
		t.Fatalf("transcription on a chain: %d %v", status, e.Error.Code)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
