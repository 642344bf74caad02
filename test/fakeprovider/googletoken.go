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

	mu     sync.Mutex
	issued []string
	url    string
}

// NewTokenEndpoint generates a test-only service account.
func NewTokenEndpoint(lifetime time.Duration) (*TokenEndpoint, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &TokenEndpoint{key: key, email: "tollgate-test@tollgate-test-project.iam.gserviceaccount.com", lifetime: lifetime}, nil
}

// ServiceAccountJSON is the service-account key file, pointing token_uri at
// tokenURL (where ServeHTTP is mounted).
func (e *TokenEndpoint) ServiceAccountJSON(tokenURL string) []byte {
	e.mu.Lock()
	e.url = tokenURL
	e.mu.Unlock()
	der := x509.MarshalPKCS1PrivateKey(e.key)
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "tollgate-test-project", "private_key_id": "0123456789abcdef",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})),
		"client_email": e.email, "client_id": "100000000000000000001",
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
	if err := e.verify(r.PostForm.Get("assertion")); err != nil {
		tokenError(w, "invalid_grant")
		return
	}
	e.mu.Lock()
	tok := fmt.Sprintf("ya29.fake-access-token-%04d", len(e.issued)+1)
	e.issued = append(e.issued, tok)
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": int(e.lifetime / time.Second), "token_type": "Bearer"})
}

func tokenError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = fmt.Fprintf(w, `{"error":%q,"error_description":"Invalid JWT Signature."}`, code)
}

// verify checks the assertion's RS256 signature and its claims.
func (e *TokenEndpoint) verify(assertion string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&e.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return err
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var c struct {
		Iss, Scope, Aud string
		Exp, Iat        int64
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	e.mu.Lock()
	aud := e.url
	e.mu.Unlock()
	if c.Iss != e.email || c.Aud != aud || !strings.Contains(c.Scope, "https://www.googleapis.com/auth/cloud-platform") || c.Exp <= c.Iat {
		return fmt.Errorf("claims %+v", c)
	}
	return nil
}
