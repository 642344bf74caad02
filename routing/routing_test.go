package routing

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/routing/config"
)

func testConfig() *config.Config {
	return &config.Config{
		Version: 1,
		Providers: []config.Provider{
			{Name: "openai", Schema: "openai", Cluster: "openai", BasePath: "/v1",
				Credential: &config.Credential{Header: "authorization", Prefix: "Bearer ", Source: config.SecretRef{Env: "K"}},
				Models:     []string{"gpt-4o", "gpt-4o-mini"}, DirectModels: "listed"},
			{Name: "ollama", Schema: "openai", Cluster: "ollama", BasePath: "/v1", DirectModels: "any", Models: []string{"llama3.2"}},
			{Name: "hidden", Schema: "openai", Cluster: "hidden", BasePath: "/v1", DirectModels: "none", Models: []string{"m"}},
			{Name: "nokey", Schema: "openai", Cluster: "nokey", BasePath: "/v1",
				Credential: &config.Credential{Header: "x-api-key", Source: config.SecretRef{Env: "MISSING"}}},
		},
		Models: []config.Model{
			{Name: "smart-default", Provider: "openai", Model: "gpt-4o"},
			{Name: "secret-model", Provider: "hidden", Model: "m"},
			{Name: "nokey-model", Provider: "nokey", Model: "x"},
		},
	}
}

func env(k string) (string, bool) {
	if k == "K" {
		return "sk-secret", true
	}
	return "", false
}

func TestResolve(t *testing.T) {
	table, warnings := New(testConfig(), env)
	if len(warnings) != 1 || !errors.Is(warnings[0], ErrNoCredential) || strings.Contains(warnings[0].Error(), "sk-secret") {
		t.Fatalf("warnings %v", warnings)
	}
	tests := []struct {
		name, provider, model string
	}{
		{"smart-default", "openai", "gpt-4o"},
		{"openai/gpt-4o-mini", "openai", "gpt-4o-mini"},
		{"openai/gpt-4.1", "", ""}, // listed only
		{"ollama/llama3.2", "ollama", "llama3.2"},
		{"ollama/qwen3:8b", "ollama", "qwen3:8b"}, // any
		{"ollama/", "", ""},
		{"hidden/m", "", ""}, // direct names off
		{"secret-model", "hidden", "m"},
		{"gpt-4o", "", ""}, // bare provider ids are not aliases
		{"unknown/x", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		got, ok := table.Resolve(tt.name)
		if ok != (tt.provider != "") {
			t.Errorf("Resolve(%q) ok=%v", tt.name, ok)
			continue
		}
		if ok && (got.Provider.Name != tt.provider || got.Model != tt.model || got.Name != tt.name || got.Direct != strings.Contains(tt.name, "/")) {
			t.Errorf("Resolve(%q) = %s/%s (%s)", tt.name, got.Provider.Name, got.Model, got.Name)
		}
	}
}

func TestModelsListed(t *testing.T) {
	table, _ := New(testConfig(), env)
	got := strings.Join(table.Models(), ",")
	want := "nokey-model,ollama/llama3.2,openai/gpt-4o,openai/gpt-4o-mini,secret-model,smart-default"
	if got != want {
		t.Fatalf("models %s, want %s", got, want)
	}
}

func TestCredentialAndPath(t *testing.T) {
	table, _ := New(testConfig(), env)
	p := table.Provider("openai")
	h, v, err := p.Credential()
	if err != nil || h != "authorization" || v != "Bearer sk-secret" {
		t.Fatalf("credential %q %q %v", h, v, err)
	}
	if strings.Contains(p.String(), "sk-") {
		t.Fatal("provider String leaks the credential")
	}
	if h, _, err := table.Provider("ollama").Credential(); h != "" || err != nil {
		t.Fatalf("provider without credential: %q %v", h, err)
	}
	if _, _, err := table.Provider("nokey").Credential(); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("missing credential: %v", err)
	}
	for _, tt := range []struct {
		e    Endpoint
		want string
	}{
		{EndpointChat, "/v1/chat/completions"},
		{EndpointEmbeddings, "/v1/embeddings"},
	} {
		if got, _ := p.Path(tt.e, "m"); got != tt.want {
			t.Errorf("Path(%v) = %s, want %s", tt.e, got, tt.want)
		}
	}
}

func TestSchemaPaths(t *testing.T) {
	cfg := &config.Config{Providers: []config.Provider{
		{Name: "claude", Schema: config.SchemaAnthropic, Cluster: "anthropic", BasePath: "/v1"},
		{Name: "azure", Schema: config.SchemaAzureOpenAI, Cluster: "azure", BasePath: "/openai", APIVersion: "2024-10-21"},
		{Name: "mock", Schema: config.SchemaMock},
	}}
	table, _ := New(cfg, env)
	tests := []struct {
		provider string
		e        Endpoint
		model    string
		want     string
		ok       bool
	}{
		{"claude", EndpointChat, "claude-sonnet-4-5", "/v1/messages", true},
		{"claude", EndpointEmbeddings, "x", "", false},
		{"azure", EndpointChat, "gpt-4o prod", "/openai/deployments/gpt-4o%20prod/chat/completions?api-version=2024-10-21", true},
		{"azure", EndpointEmbeddings, "emb", "/openai/deployments/emb/embeddings?api-version=2024-10-21", true},
		{"azure", EndpointResponses, "gpt-4o prod", "/openai/v1/responses", true},
		// Answered by the gateway itself: chat and embeddings only.
		{"mock", EndpointChat, "m", "/chat/completions", true},
		{"mock", EndpointEmbeddings, "m", "/embeddings", true},
		{"mock", EndpointTranscriptions, "m", "", false},
	}
	for _, tt := range tests {
		p := table.Provider(tt.provider)
		got, ok := p.Path(tt.e, tt.model)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("%s %v: %q %v, want %q %v", tt.provider, tt.e, got, ok, tt.want, tt.ok)
		}
		if p.Mock() != (tt.provider == "mock") {
			t.Errorf("%s: Mock() = %v", tt.provider, p.Mock())
		}
	}
	// The paths computed once at load are the ones built per request.
	for _, name := range []string{"claude", "azure", "mock"} {
		p := table.Provider(name)
		for e := range Endpoint(endpoints) {
			got, ok := p.Path(e, "m")
			want, wantOK := p.path(e, "m")
			if got != want || ok != wantOK {
				t.Errorf("%s %v: Path %q %v, built %q %v", name, e, got, ok, want, wantOK)
			}
		}
	}
	if n := testing.AllocsPerRun(10, func() { table.Provider("claude").Path(EndpointChat, "m") }); n != 0 {
		t.Errorf("Path allocates %v times", n)
	}
}

func TestPoolSplit(t *testing.T) {
	cfg := &config.Config{
		Providers: []config.Provider{{Name: "a", Cluster: "a"}, {Name: "b", Cluster: "b"}},
		Models: []config.Model{{Name: "pooled", Targets: []config.PoolTarget{
			{Provider: "a", Model: "m1", Weight: 3}, {Provider: "b", Model: "m2", Weight: 1}, {Provider: "a", Model: "m3"},
		}}},
	}
	table, _ := New(cfg, env)
	rng := rand.New(rand.NewPCG(20261121, 1)) // fixed seed: the test is deterministic
	counts := map[string]int{}
	const n = 20000
	for range n {
		tg, ok := table.Choose("pooled", rng.IntN)
		if !ok || tg.Name != "pooled" {
			t.Fatalf("choose: %+v %v", tg, ok)
		}
		counts[tg.Canonical()]++
	}
	// Weights 3:1:1 (an unset weight is 1): expect 60%, 20%, 20%, within 1.5 points.
	for target, want := range map[string]float64{"a/m1": 0.6, "b/m2": 0.2, "a/m3": 0.2} {
		if got := float64(counts[target]) / n; math.Abs(got-want) > 0.015 {
			t.Errorf("%s: share %.3f, want %.2f", target, got, want)
		}
	}
	if tg, ok := table.Resolve("pooled"); !ok || tg.Model != "m1" {
		t.Fatalf("Resolve on a pool: %+v", tg)
	}
	if got := strings.Join(table.Models(), ","); got != "pooled" {
		t.Fatalf("models %s", got)
	}
}

func TestFallbackChain(t *testing.T) {
	cfg := &config.Config{
		Providers: []config.Provider{{Name: "openai", Cluster: "openai"}, {Name: "claude", Schema: config.SchemaAnthropic, Cluster: "anthropic", BasePath: "/v1"}},
		Models: []config.Model{{Name: "smart", Fallback: &config.Fallback{Cluster: "chain_smart", Targets: []config.ChainTarget{
			{Provider: "openai", Model: "gpt-4o"}, {Provider: "claude", Model: "claude-sonnet-4-5"}}}}},
	}
	table, _ := New(cfg, env)
	tg, ok := table.Resolve("smart")
	if !ok || tg.Chain == nil || tg.Chain.Cluster != "chain_smart" || tg.Provider.Name != "openai" {
		t.Fatalf("resolve: %+v", tg)
	}
	m, ok := tg.Chain.Member("claude")
	if !ok || m.Model != "claude-sonnet-4-5" || m.Provider.Translator == nil || m.Name != "smart" {
		t.Fatalf("member: %+v", m)
	}
	if _, ok := tg.Chain.Member("mistral"); ok {
		t.Fatal("member of an unknown provider")
	}
}

// An alias with if_no_credential goes to its stand-in only while its own
// provider's credential cannot be read.
func TestIfNoCredential(t *testing.T) {
	cfg := func() *config.Config {
		c := testConfig()
		c.Models = []config.Model{{Name: "smart-default", Provider: "openai", Model: "gpt-4o",
			IfNoCredential: &config.Target{Provider: "ollama", Model: "llama3.2"}}}
		return c
	}
	for _, tc := range []struct {
		name            string
		env             func(string) (string, bool)
		provider, model string
	}{
		{"credential set", env, "openai", "gpt-4o"},
		{"credential missing", func(string) (string, bool) { return "", false }, "ollama", "llama3.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table, _ := New(cfg(), tc.env)
			got, ok := table.names["smart-default"]
			if !ok || got.Provider.Name != tc.provider || got.Model != tc.model || got.Name != "smart-default" {
				t.Fatalf("smart-default -> %+v (found %v)", got, ok)
			}
		})
	}
}

// TestProviderAddress: a provider's url gives its address and port (the
// span's server.address); an external cluster gives none.
func TestProviderAddress(t *testing.T) {
	table, _ := New(&config.Config{Providers: []config.Provider{
		{Name: "a", URL: "https://api.example.com", Cluster: "a"},
		{Name: "b", URL: "http://10.0.0.7:8080", Cluster: "b"},
		{Name: "c", Cluster: "external"},
	}}, func(string) (string, bool) { return "", false })
	for name, want := range map[string]struct {
		host string
		port int
	}{"a": {"api.example.com", 443}, "b": {"10.0.0.7", 8080}, "c": {"", 0}} {
		p := table.providers[name]
		if p.Address != want.host || p.Port != want.port {
			t.Errorf("%s: %s:%d, want %s:%d", name, p.Address, p.Port, want.host, want.port)
		}
	}
}
