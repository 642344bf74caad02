package configopts

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/policy/tenancy"
	"github.com/tollgate-ai/tollgate/routing/config"
)

func TestTenancy(t *testing.T) {
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
		},
	}
	env := map[string]string{"ACME_OPENAI": "sk-acme"}
	opts, warnings := Tenancy(cfg, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "ACME_MISSING") {
		t.Fatalf("warnings %v", warnings)
	}
	d := tenancy.New(opts)
	if v, ok, err := d.Credential("acme", "openai"); !ok || err != nil || v != "Bearer sk-acme" {
		t.Fatalf("acme openai: %q %v %v", v, ok, err)
	}
	if _, ok, err := d.Credential("acme", "other"); !ok || err == nil {
		t.Fatal("an unreadable tenant credential must refuse, not fall back to the platform's")
	}
	if a, err := d.Select(&keys.Key{Tenant: "acme", App: "bot"}, ""); err != nil || !a.AgentAllowed("1b4e28ba-2fa1-41d2-883f-0016d3cca427") {
		t.Fatalf("acme/bot: %v %v", a, err)
	}
	if a, err := d.Select(&keys.Key{}, ""); err != nil || a != nil {
		t.Fatalf("default tenant, no app: %v %v", a, err)
	}
}

// A tenant's own Vertex AI service-account key is a multi-line JSON
// document, read whole (not as a header value).
func TestTenancyDocumentCredential(t *testing.T) {
	cfg := &config.Config{
		Providers: []config.Provider{{Name: "vertex", Schema: config.SchemaVertexAI, Cluster: "v"}},
		Tenants:   []config.Tenant{{Name: "acme", ProviderCredentials: []config.TenantCredential{{Provider: "vertex", Source: config.SecretRef{Env: "SA"}}}}},
	}
	sa := "{\n  \"type\": \"service_account\"\n}\n"
	opts, warnings := Tenancy(cfg, func(string) (string, bool) { return sa, true })
	if len(warnings) != 0 {
		t.Fatal(warnings)
	}
	if v, ok, err := tenancy.New(opts).Credential("acme", "vertex"); !ok || err != nil || v != sa {
		t.Fatalf("%q %v %v", v, ok, err)
	}
}

// Every field of the guardrails section reaches package guardrails: the two
// types have the same fields, and a fully set section converts field by field.
func TestGuardrails(t *testing.T) {
	if _, ok := Guardrails(&config.Config{}); ok {
		t.Error("no section, yet ok")
	}
	same := func(a, b reflect.Type) {
		if a.NumField() != b.NumField() {
			t.Errorf("%v has %d fields, %v %d", a, a.NumField(), b, b.NumField())
			return
		}
		for i := range a.NumField() {
			if fa, fb := a.Field(i), b.Field(i); fa.Name != fb.Name || fa.Tag != fb.Tag {
				t.Errorf("%v.%s %q and %v.%s %q differ", a, fa.Name, fa.Tag, b, fb.Name, fb.Tag)
			}
		}
	}
	same(reflect.TypeFor[config.GuardrailPolicy](), reflect.TypeFor[guardrails.PolicyConfig]())
	same(reflect.TypeFor[config.Guardrail](), reflect.TypeFor[guardrails.GuardrailConfig]())
	same(reflect.TypeFor[config.Grounding](), reflect.TypeFor[guardrails.GroundingConfig]())

	in := config.GuardrailPolicy{Name: "p", OutputWindowBytes: 512,
		Grounding: &config.Grounding{Name: "g", Threshold: 0.5, SentenceThreshold: 0.6, Action: config.GuardrailFlag},
		Input: []config.Guardrail{{Name: "a", Type: config.GuardrailRegex, Action: config.GuardrailRedact, Roles: []string{"user"},
			Entities: []string{"e"}, Patterns: []string{"x+"}, Terms: []string{"t"}, Label: "L", RestoreRedacted: true,
			Threshold: 2, MaxChars: 3, MaxTokens: 4, MaxCompletionTokens: 5}},
		Output: []config.Guardrail{{Name: "b", Type: config.GuardrailPII, Action: config.GuardrailBlock}},
	}
	got, ok := Guardrails(&config.Config{Guardrails: &config.Guardrails{Policies: []config.GuardrailPolicy{in}}})
	want := guardrails.Config{Policies: []guardrails.PolicyConfig{{Name: "p", OutputWindowBytes: 512,
		Grounding: &guardrails.GroundingConfig{Name: "g", Threshold: 0.5, SentenceThreshold: 0.6, Action: guardrails.Flag},
		Input: []guardrails.GuardrailConfig{{Name: "a", Type: guardrails.TypeRegex, Action: guardrails.Redact, Roles: []string{"user"},
			Entities: []string{"e"}, Patterns: []string{"x+"}, Terms: []string{"t"}, Label: "L", RestoreRedacted: true,
			Threshold: 2, MaxChars: 3, MaxTokens: 4, MaxCompletionTokens: 5}},
		Output: []guardrails.GuardrailConfig{{Name: "b", Type: guardrails.TypePII, Action: guardrails.Block}},
	}}}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("Guardrails =\n%+v\nwant\n%+v", got, want)
	}
}

// The schema documents and validates the defaults and names package
// guardrails applies; they must agree.
func TestGuardrailConstants(t *testing.T) {
	if config.DefaultOutputWindow != guardrails.DefaultOutputWindow ||
		config.DefaultInjectionThreshold != guardrails.DefaultInjectionThreshold ||
		config.DefaultSentenceThreshold != guardrails.DefaultSentenceThreshold ||
		config.DefaultGroundingName != guardrails.DefaultGroundingName {
		t.Error("config and guardrails disagree on a default")
	}
	for _, c := range [][2]string{
		{string(config.GuardrailBlock), string(guardrails.Block)}, {string(config.GuardrailRedact), string(guardrails.Redact)},
		{string(config.GuardrailFlag), string(guardrails.Flag)},
		{config.GuardrailPII, guardrails.TypePII}, {config.GuardrailSecrets, guardrails.TypeSecrets}, {config.GuardrailRegex, guardrails.TypeRegex},
		{config.GuardrailDenyList, guardrails.TypeDenyList}, {config.GuardrailPromptInjection, guardrails.TypePromptInjection},
		{config.GuardrailPromptSize, guardrails.TypePromptSize}, {config.GuardrailMaxTokens, guardrails.TypeMaxTokens},
	} {
		if c[0] != c[1] {
			t.Errorf("config %q, guardrails %q", c[0], c[1])
		}
	}
}
