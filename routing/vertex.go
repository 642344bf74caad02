package routing

import (
	"context"
	"fmt"

	"github.com/tollgate-ai/tollgate/internal/cloudauth"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/translate/vertex"
)

// compileVertex sets up a vertex-ai provider: the Vertex schema and access
// tokens minted from its service account.
func compileVertex(p *Provider, pc config.Provider, lookupEnv func(string) (string, bool)) error {
	p.Translator = &vertex.Schema{}
	if pc.Vertex == nil {
		return nil // validation refuses this
	}
	sa, err := pc.Vertex.ServiceAccount.ResolveDocument(lookupEnv)
	if err != nil {
		return fmt.Errorf("vertex service_account: %w", err)
	}
	tok, err := cloudauth.NewGoogleToken(sa, nil)
	if err != nil {
		return err
	}
	p.auth = tok
	return nil
}

// tenantAuth is a tenant's own minted credential for a provider (BYOK).
type tenantAuth struct {
	auth authenticator
	err  error
}

// compileTenantAuth builds the tenants' own token sources for vertex-ai
// providers: each tenant's service account mints its own tokens, cached per
// tenant like the platform's.
func (t *Table) compileTenantAuth(cfg *config.Config, lookupEnv func(string) (string, bool)) []error {
	var warnings []error
	for _, tc := range cfg.Tenants {
		for _, c := range tc.ProviderCredentials {
			p := t.providers[c.Provider]
			if p == nil || p.Schema != config.SchemaVertexAI {
				continue
			}
			var ta tenantAuth
			sa, err := c.Source.ResolveDocument(lookupEnv)
			if err == nil {
				ta.auth, err = cloudauth.NewGoogleToken(sa, nil)
			}
			if err != nil {
				ta.err = fmt.Errorf("tenant %s: provider %s: %w: %v", tc.Name, p.Name, ErrNoCredential, err)
				warnings = append(warnings, ta.err)
			}
			if p.tenantAuth == nil {
				p.tenantAuth = map[string]tenantAuth{}
			}
			p.tenantAuth[tc.Name] = ta
		}
	}
	return warnings
}

// AuthenticateTenant mints the credential of a tenant that brings its own
// for this provider (BYOK); own is false when it brings none, and the
// platform's credential applies (Authenticate).
func (p *Provider) AuthenticateTenant(ctx context.Context, tenant string, r Outgoing) (hs [][2]string, own bool, err error) {
	ta, ok := p.tenantAuth[tenant]
	if !ok {
		return nil, false, nil
	}
	if ta.err != nil {
		return nil, true, ta.err
	}
	hs, err = ta.auth.Authenticate(ctx, cloudauth.Request(r))
	return hs, true, err
}
