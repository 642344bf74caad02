package extproc

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
)

// Minted credentials (bedrock's SigV4 signature, Vertex AI's access token)
// cover the request as it leaves: a signature is over the final body, path,
// host and content-length. So minting is the last step of the request chain,
// after every body mutation (translation, stream usage, guardrail redaction),
// and a fallback attempt mints again over its own translated body.

// mintTimeout bounds fetching credentials (an STS or token endpoint call when
// the cache is cold), well inside Envoy's ext_proc message timeout.
const mintTimeout = 5 * time.Second

// mintCredential adds the minted credential headers for the request as it
// will leave. It must be the last body step.
func mintCredential(x *exchange, req *upstreamRequest) error {
	if !x.target.Provider.MintsCredential() {
		return nil // a static credential, set by routeUpstream
	}
	p := x.target.Provider
	var hs [][2]string
	var err error
	own := false
	if x.target.Direct {
		// Bring your own key, as for pasted credentials: a tenant's own
		// service account serves its provider/model requests.
		ctx, cancel := context.WithTimeout(x.ctx, mintTimeout)
		hs, own, err = p.AuthenticateTenant(ctx, x.key.Tenant, routing.Outgoing{Method: "POST", Path: req.path, Body: req.body, Time: x.srv.now()})
		cancel()
		x.rec.byok = x.rec.byok || own
	}
	if !own {
		hs, err = mint(x.ctx, p, req.path, req.body, x.srv.now())
	}
	if err != nil {
		return failure(oaierror.Internal(503, "provider_unavailable", "The provider for this model is not available."),
			fmt.Errorf("provider %s credential (byok %t): %w", p.Name, own, err))
	}
	for _, h := range hs {
		req.mu.set(h[0], h[1])
	}
	return nil
}

// mint returns the credential headers for one outgoing request. Errors from
// the credential sources never carry key material (the SDKs' and ours).
func mint(ctx context.Context, p *routing.Provider, path string, body []byte, now time.Time) ([][2]string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, mintTimeout)
	defer cancel()
	return p.Authenticate(ctx, routing.Outgoing{Method: "POST", Path: path, Body: body, Time: now})
}
