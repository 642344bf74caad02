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

	"github.com/tollgate-ai/tollgate/policy/allow"
	"github.com/tollgate-ai/tollgate/policy/keys"
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
	// Cache opts the app into the response cache; CacheAnyTemperature also
	// caches requests that are not deterministic (docs/cache.md).
	Cache, CacheAnyTemperature bool
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
	tenants       map[string]*Tenant
	defaultTenant string
}

// Options is what New compiles: every tenant with its apps and its own
// provider credentials, already read by the caller.
type Options struct {
	// DefaultTenant is the tenant of keys that name none; it exists even
	// when Tenants does not list it.
	DefaultTenant string
	Tenants       []TenantOptions
}

// TenantOptions is one tenant.
type TenantOptions struct {
	Name        string
	Apps        []AppOptions
	Credentials []Credential
}

// AppOptions is one app of a tenant.
type AppOptions struct {
	Name              string
	Models            []string // model allowlist (see package allow); empty allows every model
	Tier              string
	GuardrailPolicy   string
	RequiredMetadata  []string
	RequireAgentID    bool
	AgentIDs          []string // UUIDs, compared case-insensitively; empty admits any agent
	OnBudgetExhausted string
	CaptureContent    bool
	Cache             bool
	CacheAnyTemp      bool
}

// Credential is a tenant's own credential for a provider: the header value
// to send (any prefix included), or the error that kept it from being read.
// A credential with an error refuses the requests that would use it, never
// falling back to the platform's credential, which would bill the wrong
// account.
type Credential struct {
	Provider string
	Value    string // never logged
	Err      error
}

// New compiles the tenants in opts.
func New(opts Options) *Directory {
	d := &Directory{tenants: map[string]*Tenant{}, defaultTenant: opts.DefaultTenant}
	for _, tc := range opts.Tenants {
		t := &Tenant{Name: tc.Name, apps: map[string]*App{}, creds: map[string]credential{}}
		for _, ac := range tc.Apps {
			a := &App{
				Tenant: tc.Name, Name: ac.Name, Models: allow.List(ac.Models), Tier: ac.Tier,
				GuardrailPolicy: ac.GuardrailPolicy, RequiredMetadata: ac.RequiredMetadata, RequireAgentID: ac.RequireAgentID,
				OnBudgetExhausted: ac.OnBudgetExhausted,
				CaptureContent:    ac.CaptureContent,
				Cache:             ac.Cache, CacheAnyTemperature: ac.Cache && ac.CacheAnyTemp,
			}
			if len(ac.AgentIDs) > 0 {
				a.AgentIDs = make(map[string]bool, len(ac.AgentIDs))
				for _, id := range ac.AgentIDs {
					a.AgentIDs[normalizeUUID(id)] = true
				}
			}
			t.apps[a.Name] = a
		}
		for _, c := range tc.Credentials {
			t.creds[c.Provider] = credential{value: c.Value, err: c.Err}
		}
		d.tenants[t.Name] = t
	}
	if d.tenants[opts.DefaultTenant] == nil {
		d.tenants[opts.DefaultTenant] = &Tenant{Name: opts.DefaultTenant}
	}
	return d
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
		name = d.defaultTenant
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
