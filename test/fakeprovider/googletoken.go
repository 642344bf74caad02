package fakeprovider

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TokenEndpoint is a loopback stand-in for Google's OAuth token endpoint
// (https://oauth2.googleapis.com/token): it accepts JWT-bearer grants signed
// by its service account's key (generated at run time; no private key is
// committed) and mints opaque access tokens with a chosen lifetime.
type TokenEndpoint struct {
	key      *rsa.PrivateKey
	email    string
	lifetime time.Duration

	mu       sync.Mutex
	issued   []string
	owner    map[string]string          // token → service account email
	accounts map[string]*rsa.PrivateKey // email → key: the default account and those of NewAccount
	url      string
}

// NewTokenEndpoint generates a test-only service account.
func NewTokenEndpoint(lifetime time.Duration) (*TokenEndpoint, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	email := "tollgate-test@tollgate-test-project.iam.gserviceaccount.com"
	return &TokenEndpoint{key: key, email: email, lifetime: lifetime,
		owner: map[string]string{}, accounts: map[string]*rsa.PrivateKey{email: key}}, nil
}

// NewAccount adds another service account (a tenant's own, for BYOK) and
// returns its key file; ServiceAccountJSON must have set the token URL.
func (e *TokenEndpoint) NewAccount(name string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	email := name + "@tollgate-test-project.iam.gserviceaccount.com"
	e.mu.Lock()
	e.accounts[email] = key
	url := e.url
	e.mu.Unlock()
	return serviceAccountJSON(key, email, url), nil
}

// Owner returns the email of the service account a token was minted for.
func (e *TokenEndpoint) Owner(tok string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.owner[tok]
}

// ServiceAccountJSON is the service-account key file, pointing token_uri at
// tokenURL (where ServeHTTP is mounted).
func (e *TokenEndpoint) ServiceAccountJSON(tokenURL string) []byte {
	e.mu.Lock()
	e.url = tokenURL
	e.mu.Unlock()
	return serviceAccountJSON(e.key, e.email, tokenURL)
}

func serviceAccountJSON(key *rsa.PrivateKey, email, tokenURL string) []byte {
	der := x509.MarshalPKCS1PrivateKey(key)
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "tollgate-test-project", "private_key_id": "0123456789abcdef",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "100000000000000000001",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": tokenURL,
	})
	return b
}

// Issued returns every access token minted so far.
func (e *TokenEndpoint) Issued() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.issued...)
}

// Valid reports whether an access token was minted here.
func (e *TokenEndpoint) Valid(tok string) bool {
	for _, t := range e.Issued() {
		if t == tok {
			return true
		}
	}
	return false
}

// ServeHTTP answers POST grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>.
func (e *TokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		tokenError(w, "unsupported_grant_type")
		return
	}
	email, err := e.verify(r.PostForm.Get("assertion"))
	if err != nil {
		tokenError(w, "invalid_grant")
		return
	}
	e.mu.Lock()
	tok := fmt.Sprintf("ya29.fake-access-token-%04d", len(e.issued)+1)
	e.issued = append(e.issued, tok)
	e.owner[tok] = email
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": int(e.lifetime / time.Second), "token_type": "Bearer"})
}

func tokenError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = fmt.Fprintf(w, `{"error":%q,"error_description":"Invalid JWT Signature."}`, code)
}

// verify checks the assertion's RS256 signature by its issuer's key, and its
// claims; it returns the issuer.
func (e *TokenEndpoint) verify(assertion string) (string, error) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		Iss, Scope, Aud string
		Exp, Iat        int64
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", err
	}
	e.mu.Lock()
	key, aud := e.accounts[c.Iss], e.url
	e.mu.Unlock()
	if key == nil {
		return "", fmt.Errorf("unknown service account")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return "", err
	}
	if c.Aud != aud || !strings.Contains(c.Scope, "https://www.googleapis.com/auth/cloud-platform") || c.Exp <= c.Iat {
		return "", fmt.Errorf("claims %+v", c)
	}
	return c.Iss, nil
}
