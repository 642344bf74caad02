package tenancy

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/routing/config"
)

func testDirectory(t *testing.T) (*Directory, []error) {
	t.Helper()
	cfg := &config.Config{
		Providers: []config.Provider{
			{Name: "openai", Credential: &config.Credential{Header: "authorization", Prefix: "Bearer ", Source: config.SecretRef{Env: "PLATFORM"}}},
			{Name: "other", Credential: &config.Credential{Header: "x-key", Source: config.SecretRef{Env: "X"}}},
		},
		Tenants: []config.Tenant{
			{Name: "acme", Apps: []config.App{{Name: "bot", AgentIDs: []string{"1B4E28BA-2FA1-41D2-883F-0016D3CCA427"}}, {Name: "etl"}},
				ProviderCredentials: []config.TenantCredential{
					{Provider: "openai", Source: config.SecretRef{Env: "ACME_OPENAI"}},
					{Provider: "other", Source: config.SecretRef{Env: "ACME_MISSING"}},
				}},
			{Name: "globex", Apps: []config.App{{Name: "bot"}}},
		},
	}
	env := map[string]string{"ACME_OPENAI": "sk-acme"}
	return New(cfg, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestSelect(t *testing.T) {
	d, _ := testDirectory(t)
	tests := []struct {
		name      string
		key       keys.Key
		requested string
		wantApp   string // "" with no error: no app
		wantErr   bool
	}{
		{"app key, no request", keys.Key{Tenant: "acme", App: "bot"}, "", "acme/bot", false},
		{"app key, own app", keys.Key{Tenant: "acme", App: "bot"}, "bot", "acme/bot", false},
		{"app key, other app of its tenant", keys.Key{Tenant: "acme", App: "bot"}, "etl", "", true},
		{"tenant key, no app", keys.Key{Tenant: "acme"}, "", "", false},
		{"tenant key chooses", keys.Key{Tenant: "acme"}, "etl", "acme/etl", false},
		{"tenant key, same name in its own tenant", keys.Key{Tenant: "globex"}, "bot", "globex/bot", false},
		{"tenant key, app only another tenant has", keys.Key{Tenant: "globex"}, "etl", "", true},
		{"tenant key, unknown app", keys.Key{Tenant: "acme"}, "nope", "", true},
		{"default tenant has no apps", keys.Key{}, "bot", "", true},
		{"unknown tenant", keys.Key{Tenant: "ghost"}, "", "", true},
	}
	for _, tt := range tests {
		a, err := d.Select(&tt.key, tt.requested)
		if tt.wantErr {
			if !errors.Is(err, ErrAppMismatch) {
				t.Errorf("%s: err %v, want ErrAppMismatch", tt.name, err)
			}
			continue
		}
		got := ""
		if a != nil {
			got = a.Tenant + "/" + a.Name
		}
		if err != nil || got != tt.wantApp {
			t.Errorf("%s: %q %v, want %q", tt.name, got, err, tt.wantApp)
		}
	}
}

func TestCredentials(t *testing.T) {
	d, warnings := testDirectory(t)
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "ACME_MISSING") {
		t.Fatalf("warnings %v", warnings)
	}
	if v, ok, err := d.Credential("acme", "openai"); !ok || err != nil || v != "Bearer sk-acme" {
		t.Fatalf("acme openai: %q %v %v", v, ok, err)
	}
	if _, ok, err := d.Credential("acme", "other"); !ok || err == nil {
		t.Fatal("an unreadable tenant credential must refuse, not fall back to the platform's")
	}
	if _, ok, _ := d.Credential("globex", "openai"); ok {
		t.Fatal("one tenant's credential used for another")
	}
	if _, ok, _ := d.Credential("", "openai"); ok {
		t.Fatal("default tenant has no credentials")
	}
}

func TestAgentAllowed(t *testing.T) {
	d, _ := testDirectory(t)
	bot, _ := d.Select(&keys.Key{Tenant: "acme", App: "bot"}, "")
	if !bot.AgentAllowed("1b4e28ba-2fa1-41d2-883f-0016d3cca427") || bot.AgentAllowed("7c9e6679-7425-40de-944b-e07fc1f90ae7") {
		t.Fatal("agent allowlist")
	}
	etl, _ := d.Select(&keys.Key{Tenant: "acme", App: "etl"}, "")
	if !etl.AgentAllowed("7c9e6679-7425-40de-944b-e07fc1f90ae7") {
		t.Fatal("no allowlist must admit any agent")
	}
}

// TestDocumentCredential: a tenant's own Vertex AI service-account key is a
// multi-line JSON document, read whole (not as a header value).
func TestDocumentCredential(t *testing.T) {
	cfg := &config.Config{
		Providers: []config.Provider{{Name: "vertex", Schema: config.SchemaVertexAI, Cluster: "v"}},
		Tenants:   []config.Tenant{{Name: "acme", ProviderCredentials: []config.TenantCredential{{Provider: "vertex", Source: config.SecretRef{Env: "SA"}}}}},
	}
	sa := "{\n  \"type\": \"service_account\"\n}\n"
	d, warnings := New(cfg, func(string) (string, bool) { return sa, true })
	if len(warnings) != 0 {
		t.Fatal(warnings)
	}
	if v, ok, err := d.Credential("acme", "vertex"); !ok || err != nil || v != sa {
		t.Fatalf("%q %v %v", v, ok, err)
	}
}
