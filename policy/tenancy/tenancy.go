// Package tenancy resolves who a request belongs to: the tenant of its key,
// and the app whose policy governs it.
//
// An app-scoped key is bound to its app. A tenant-scoped key may choose one
// of its tenant's apps (tollgate_app_id in the body or x-tollgate-app-id), or
// none. Naming an app of another tenant, an unknown app, or an app other
// than an app-scoped key's own is the same refusal: a caller learns nothing
// about which apps exist elsewhere.
package tenancy

import (
	"errors"
	"fmt"

	"github.com/tollgate-ai/tollgate/policy/allow"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// ErrAppMismatch refuses an app the key may not act as.
var ErrAppMismatch = errors.New("app not available to this key")

// App is an application and its policy.
type App struct {
	Tenant           string
	Name             string
	Models           allow.List
	Tier             string
	GuardrailPolicy  string
	RequiredMetadata []string
	RequireAgentID   bool
	AgentIDs         map[string]bool // nil: any agent
	// OnBudgetExhausted is "terminate" to end a running stream whose budget
	// runs out; otherwise the stream finishes.
	OnBudgetExhausted string
	// CaptureContent records prompts and completions on the request's trace
	// span (after guardrail redaction); off by default.
	CaptureContent bool
}

// Tenant owns apps and, optionally, its own provider credentials.
type Tenant struct {
	Name  string
	apps  map[string]*App
	creds map[string]credential // provider name → tenant's own credential
}

type credential struct {
	value string // provider prefix + tenant secret; never logged
	err   error
}

// Directory is the compiled tenant configuration. It is immutable.
type Directory struct {
	tenants map[string]*Tenant
}

// New compiles the tenants of cfg. Tenant credentials are read through
// lookupEnv and the filesystem; one that cannot be read is reported in the
// warnings and refuses the requests that would use it (never falling back to
// the platform's credential, which would bill the wrong account).
func New(cfg *config.Config, lookupEnv func(string) (string, bool)) (*Directory, []error) {
	d := &Directory{tenants: map[string]*Tenant{}}
	prefixes := map[string]string{}
	documents := map[string]bool{} // providers whose tenant credential is a document (a service-account key)
	for _, p := range cfg.Providers {
		if p.Credential != nil {
			prefixes[p.Name] = p.Credential.Prefix
		}
		documents[p.Name] = p.Schema == config.SchemaVertexAI
	}
	var warnings []error
	for _, tc := range cfg.Tenants {
		t := &Tenant{Name: tc.Name, apps: map[string]*App{}, creds: map[string]credential{}}
		for _, ac := range tc.Apps {
			a := &App{
				Tenant: tc.Name, Name: ac.Name, Models: allow.List(ac.Models), Tier: ac.Tier,
				GuardrailPolicy: ac.GuardrailPolicy, RequiredMetadata: ac.RequiredMetadata, RequireAgentID: ac.RequireAgentID,
				OnBudgetExhausted: ac.OnBudgetExhausted,
				CaptureContent:    ac.CaptureContent,
			}
			if len(ac.AgentIDs) > 0 {
				a.AgentIDs = make(map[string]bool, len(ac.AgentIDs))
				for _, id := range ac.AgentIDs {
					a.AgentIDs[normalizeUUID(id)] = true
				}
			}
			t.apps[a.Name] = a
		}
		for _, c := range tc.ProviderCredentials {
			resolve := c.Source.Resolve
			if documents[c.Provider] {
				resolve = c.Source.ResolveDocument
			}
			secret, err := resolve(lookupEnv)
			if err != nil {
				err = fmt.Errorf("tenant %s: credential for provider %s: %w", tc.Name, c.Provider, err)
				warnings = append(warnings, err)
				t.creds[c.Provider] = credential{err: err}
				continue
			}
			t.creds[c.Provider] = credential{value: prefixes[c.Provider] + string(secret)}
		}
		d.tenants[t.Name] = t
	}
	if d.tenants[config.DefaultTenant] == nil {
		d.tenants[config.DefaultTenant] = &Tenant{Name: config.DefaultTenant}
	}
	return d, warnings
}

// Select returns the app a request acts as: requested is the app id the
// client named ("" for none). It returns nil for a tenant-scoped key that
// names no app.
func (d *Directory) Select(k *keys.Key, requested string) (*App, error) {
	t := d.tenant(k.Tenant)
	if t == nil {
		return nil, ErrAppMismatch
	}
	if k.App != "" {
		if requested != "" && requested != k.App {
			return nil, ErrAppMismatch
		}
		requested = k.App
	}
	if requested == "" {
		return nil, nil
	}
	a := t.apps[requested]
	if a == nil {
		return nil, ErrAppMismatch
	}
	return a, nil
}

// Credential returns the tenant's own credential for a provider: ok is false
// when the tenant has none (use the platform's).
func (d *Directory) Credential(tenant, provider string) (value string, ok bool, err error) {
	t := d.tenant(tenant)
	if t == nil {
		return "", false, nil
	}
	c, ok := t.creds[provider]
	return c.value, ok, c.err
}

func (d *Directory) tenant(name string) *Tenant {
	if name == "" {
		name = config.DefaultTenant
	}
	return d.tenants[name]
}

// AgentAllowed reports whether an app admits an agent id.
func (a *App) AgentAllowed(id string) bool {
	return a.AgentIDs == nil || a.AgentIDs[normalizeUUID(id)]
}

// normalizeUUID lower-cases hex so allowlists are case-insensitive.
func normalizeUUID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
