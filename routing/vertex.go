package routing

import (
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
