package tenancy

import (
	"errors"
	"testing"

	"github.com/tollgate-ai/tollgate/policy/keys"
)

func testDirectory(t *testing.T) *Directory {
	t.Helper()
	return New(Options{
		DefaultTenant: "default",
		Tenants: []TenantOptions{
			{Name: "acme", Apps: []AppOptions{{Name: "bot", AgentIDs: []string{"1B4E28BA-2FA1-41D2-883F-0016D3CCA427"}}, {Name: "etl"}},
				Credentials: []Credential{
					{Provider: "openai", Value: "Bearer sk-acme"},
					{Provider: "other", Err: errors.New("ACME_MISSING is not set")},
				}},
			{Name: "globex", Apps: []AppOptions{{Name: "bot"}}},
		},
	})
}

func TestSelect(t *testing.T) {
	d := testDirectory(t)
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
	d := testDirectory(t)
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
	d := testDirectory(t)
	bot, _ := d.Select(&keys.Key{Tenant: "acme", App: "bot"}, "")
	if !bot.AgentAllowed("1b4e28ba-2fa1-41d2-883f-0016d3cca427") || bot.AgentAllowed("7c9e6679-7425-40de-944b-e07fc1f90ae7") {
		t.Fatal("agent allowlist")
	}
	etl, _ := d.Select(&keys.Key{Tenant: "acme", App: "etl"}, "")
	if !etl.AgentAllowed("7c9e6679-7425-40de-944b-e07fc1f90ae7") {
		t.Fatal("no allowlist must admit any agent")
	}
}
