// Package cloudauth mints the credentials of cloud providers whose requests
// cannot carry a pasted key: AWS SigV4 signatures over the final request, and
// Google OAuth access tokens from a service account. Nothing here logs, and
// no error message carries a secret.
package cloudauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Request is the part of an outgoing request that credentials cover: exactly
// what will leave Envoy, after every body and header mutation.
type Request struct {
	Method string
	Path   string // :path as sent, escaped
	Body   []byte
	Time   time.Time
}

// SigV4 signs requests for one AWS service in one region with the SDK's own
// signer.
type SigV4 struct {
	creds   aws.CredentialsProvider
	signer  *v4.Signer
	service string
	region  string
	host    string // the Host Envoy sends: the cluster endpoint's hostname
}

// StaticKeys returns a credentials provider of fixed keys (sessionToken may
// be empty).
func StaticKeys(accessKeyID, secretAccessKey, sessionToken string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, sessionToken)
}

// DefaultChain returns the standard AWS credential chain (environment, web
// identity / IRSA, shared config, container and instance roles), cached and
// refreshed before expiry by the SDK. It does not reach the network until
// the first signature.
func DefaultChain(ctx context.Context, region string) (aws.CredentialsProvider, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("aws default credential chain: %w", err)
	}
	return cfg.Credentials, nil
}

// NewSigV4 returns a signer; creds is usually wrapped in aws.CredentialsCache
// by the caller or the SDK already.
func NewSigV4(creds aws.CredentialsProvider, service, region, host string) *SigV4 {
	if _, cached := creds.(*aws.CredentialsCache); !cached {
		creds = aws.NewCredentialsCache(creds)
	}
	return &SigV4{creds: creds, signer: v4.NewSigner(), service: service, region: region, host: host}
}

// signedBy are the headers a signature covers besides host and
// content-length: all of them are set by the gateway itself, so no client
// header can break a signature.
var signedBy = [...]string{"X-Amz-Content-Sha256", "X-Amz-Date", "X-Amz-Security-Token"}

// Authenticate returns the headers that authenticate r: authorization, x-amz-date,
// x-amz-content-sha256 and, for session credentials, x-amz-security-token.
// It must run after the last change to the body, path or signed headers.
func (s *SigV4) Authenticate(ctx context.Context, r Request) ([][2]string, error) {
	creds, err := s.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws credentials: %w", err) // SDK errors name the source, never the keys
	}
	req, err := s.httpRequest(r)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(r.Body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := s.signer.SignHTTP(ctx, creds, req, hash, s.service, s.region, r.Time.UTC()); err != nil {
		return nil, fmt.Errorf("sigv4: %w", err)
	}
	out := make([][2]string, 0, 4)
	out = append(out, [2]string{"authorization", req.Header.Get("Authorization")})
	for _, h := range signedBy {
		if v := req.Header.Get(h); v != "" {
			out = append(out, [2]string{strings.ToLower(h), v})
		}
	}
	return out, nil
}

func (s *SigV4) httpRequest(r Request) (*http.Request, error) {
	u, err := url.Parse("https://" + s.host + r.Path)
	if err != nil {
		return nil, fmt.Errorf("sigv4: request path: %w", err)
	}
	req := &http.Request{Method: r.Method, URL: u, Host: s.host, Header: http.Header{},
		ContentLength: int64(len(r.Body)), Body: http.NoBody}
	return req, nil
}

// VerifySigV4 checks a received request's SigV4 signature by signing the
// same request again with the SDK and the same credentials, at the time in
// its X-Amz-Date, over exactly the headers it says it signed. It is for
// fake providers in tests.
func VerifySigV4(r *http.Request, body []byte, creds aws.Credentials, service, region string) error {
	got := r.Header.Get("Authorization")
	if got == "" {
		return fmt.Errorf("no Authorization header")
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("x-amz-date: %w", err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != hash {
		return fmt.Errorf("x-amz-content-sha256 does not match the body")
	}
	u := *r.URL
	u.Scheme, u.Host = "https", r.Host
	again := &http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: http.Header{},
		ContentLength: int64(len(body)), Body: http.NoBody}
	signed := signedHeaders(got)
	for k, v := range r.Header {
		if signed[strings.ToLower(k)] && strings.ToLower(k) != "host" && strings.ToLower(k) != "content-length" {
			again.Header[k] = v
		}
	}
	if !signed["content-length"] {
		again.ContentLength = 0
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hash, service, region, at); err != nil {
		return err
	}
	if want := again.Header.Get("Authorization"); want != got {
		return fmt.Errorf("signature mismatch")
	}
	return nil
}

// signedHeaders parses SignedHeaders=a;b;c out of an Authorization header.
func signedHeaders(auth string) map[string]bool {
	out := map[string]bool{}
	_, rest, ok := strings.Cut(auth, "SignedHeaders=")
	if !ok {
		return out
	}
	rest, _, _ = strings.Cut(rest, ",")
	for _, h := range strings.Split(rest, ";") {
		out[h] = true
	}
	return out
}

// CredentialsProvider is where AWS credentials come from.
type CredentialsProvider = aws.CredentialsProvider
