package cloudauth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// CloudPlatformScope is the OAuth scope Vertex AI accepts.
const CloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

// tokenTimeout bounds one call to the token endpoint.
const tokenTimeout = 10 * time.Second

// GoogleToken mints OAuth access tokens from a service-account JSON key with
// the JWT-bearer flow (golang.org/x/oauth2/google), at the key's token_uri.
// A token is reused until shortly before it expires (oauth2.ReuseTokenSource)
// and then refreshed; it is safe for concurrent use.
type GoogleToken struct {
	src oauth2.TokenSource
}

// NewGoogleToken parses a service-account key. client makes the token
// requests; nil means a client with a timeout. Errors never quote the key.
func NewGoogleToken(serviceAccountJSON []byte, client *http.Client) (*GoogleToken, error) {
	cfg, err := google.JWTConfigFromJSON(serviceAccountJSON, CloudPlatformScope)
	if err != nil {
		return nil, errors.New("google service account: not a service-account JSON key")
	}
	if !validKey(cfg.PrivateKey) {
		// Caught at load rather than at the first request.
		return nil, errors.New("google service account: private_key is not a PEM RSA private key")
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = google.Endpoint.TokenURL
	}
	if client == nil {
		client = &http.Client{Timeout: tokenTimeout}
	}
	// The context only carries the HTTP client: token sources outlive any
	// one request.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	return &GoogleToken{src: cfg.TokenSource(ctx)}, nil // a ReuseTokenSource
}

// validKey reports whether b is a PEM private key the JWT signer can use.
func validKey(b []byte) bool {
	block, _ := pem.Decode(b)
	if block == nil {
		return false
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return true
	}
	_, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	return err == nil
}

// Authenticate returns authorization: Bearer <access token>. The token does
// not depend on the request, so it may be minted before or after the body
// changes; it is still minted last, like every credential.
func (g *GoogleToken) Authenticate(_ context.Context, _ Request) ([][2]string, error) {
	tok, err := g.src.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			// The body may echo the assertion: keep only the status.
			return nil, errors.New("google token endpoint answered " + re.Response.Status)
		}
		return nil, errors.New("google access token: token endpoint unreachable or invalid answer")
	}
	return [][2]string{{"authorization", "Bearer " + tok.AccessToken}}, nil
}
