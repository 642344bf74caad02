package routing

import "github.com/tollgate-ai/tollgate/routing/config"

func compileVertex(p *Provider, pc config.Provider, lookupEnv func(string) (string, bool)) error {
	return nil
}
