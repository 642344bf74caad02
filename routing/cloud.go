package routing

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate-ai/tollgate/internal/cloudauth"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/bedrock"
)

// Outgoing is a request as it leaves for the provider, after every rewrite:
// what a minted credential (a SigV4 signature) covers.
type Outgoing struct {
	Method string
	Path   string // :path as sent
	Body   []byte
	Time   time.Time
}

// authenticator mints the credential headers of one outgoing request.
type authenticator interface {
	Authenticate(ctx context.Context, r cloudauth.Request) ([][2]string, error)
}

// MintsCredential reports whether the provider's credential is minted for
// each request after its last mutation (bedrock's SigV4 signature, Vertex
// AI's access token) rather than a fixed header from Credential.
func (p *Provider) MintsCredential() bool { return p.auth != nil }

// Authenticate returns the credential headers for one outgoing request. It
// must be called after the last change to the body, the path and the
// headers it covers. Errors never carry secret material.
func (p *Provider) Authenticate(ctx context.Context, r Outgoing) ([][2]string, error) {
	if p.credErr != nil {
		return nil, p.credErr
	}
	if p.auth == nil {
		return nil, nil
	}
	return p.auth.Authenticate(ctx, cloudauth.Request(r))
}

// UpstreamPath is the :path for an endpoint, provider model and streaming
// choice: Path, except for schemas whose path names the model or the
// streaming operation.
func (p *Provider) UpstreamPath(e Endpoint, model string, stream bool) (string, bool) {
	if mp, ok := p.Translator.(translate.ModelPath); ok {
		sub, ok := mp.ModelPath(e.suffix(), model, stream)
		return p.BasePath + sub, ok
	}
	return p.Path(e, model)
}

// compileCloud sets up a bedrock or vertex-ai provider's translator and
// credential minting. A credential that cannot be set up leaves the provider
// routable with every request failing, as for a missing Secret.
func compileCloud(p *Provider, pc config.Provider, lookupEnv func(string) (string, bool)) error {
	switch pc.Schema {
	case config.SchemaBedrock:
		p.Translator = &bedrock.Schema{}
		a := pc.AWS
		if a == nil {
			return nil // validation refuses this
		}
		creds, err := awsCredentials(a, lookupEnv)
		if err != nil {
			return err
		}
		p.auth = cloudauth.NewSigV4(creds, "bedrock", a.Region, a.Host)
	case config.SchemaVertexAI:
		return compileVertex(p, pc, lookupEnv)
	}
	return nil
}

func awsCredentials(a *config.AWS, lookupEnv func(string) (string, bool)) (cloudauth.CredentialsProvider, error) {
	if a.AccessKeyID == nil {
		return cloudauth.DefaultChain(context.Background(), a.Region)
	}
	id, err := a.AccessKeyID.Resolve(lookupEnv)
	if err != nil {
		return nil, fmt.Errorf("aws access_key_id: %w", err)
	}
	secret, err := a.SecretAccessKey.Resolve(lookupEnv)
	if err != nil {
		return nil, fmt.Errorf("aws secret_access_key: %w", err)
	}
	var token []byte
	if a.SessionToken != nil {
		if token, err = a.SessionToken.Resolve(lookupEnv); err != nil {
			return nil, fmt.Errorf("aws session_token: %w", err)
		}
	}
	return cloudauth.StaticKeys(string(id), string(secret), string(token)), nil
}
