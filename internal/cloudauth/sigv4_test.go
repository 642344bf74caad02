package cloudauth

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

const (
	testKeyID  = "AKIDEXAMPLETOLLGATE1"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	testToken  = "session-token-for-tests-only"
	testHost   = "bedrock-runtime.us-east-1.amazonaws.com"
)

// received rebuilds the request a provider would receive from what the
// gateway set.
func received(t *testing.T, path string, body []byte, hs [][2]string) *http.Request {
	t.Helper()
	u, err := url.Parse("http://" + testHost + path)
	if err != nil {
		t.Fatal(err)
	}
	r := &http.Request{Method: "POST", URL: u, Host: testHost, Header: http.Header{}, ContentLength: int64(len(body))}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "envoy") // unsigned headers added on the way do not matter
	for _, h := range hs {
		r.Header.Set(h[0], h[1])
	}
	return r
}

func TestSigV4(t *testing.T) {
	at := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}`)
	path := "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse-stream"
	for _, token := range []string{"", testToken} {
		s := NewSigV4(StaticKeys(testKeyID, testSecret, token), "bedrock", "us-east-1", testHost)
		hs, err := s.Authenticate(context.Background(), Request{Method: "POST", Path: path, Body: body, Time: at})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, h := range hs {
			got[h[0]] = h[1]
		}
		if !strings.HasPrefix(got["authorization"], "AWS4-HMAC-SHA256 Credential="+testKeyID+"/20261202/us-east-1/bedrock/aws4_request") ||
			got["x-amz-date"] != "20261202T130000Z" || got["x-amz-content-sha256"] == "" || (got["x-amz-security-token"] == testToken) != (token != "") {
			t.Fatalf("headers %v", got)
		}
		if strings.Contains(got["authorization"], testSecret) {
			t.Fatal("secret in the authorization header")
		}
		creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: token}
		if err := VerifySigV4(received(t, path, body, hs), body, creds, "bedrock", "us-east-1"); err != nil {
			t.Fatalf("token %q: %v", token, err)
		}
		// Any change after signing breaks the signature.
		changed := bytes.Replace(body, []byte("Hi"), []byte("Ho"), 1)
		if err := VerifySigV4(received(t, path, changed, hs), changed, creds, "bedrock", "us-east-1"); err == nil {
			t.Fatal("a changed body verified")
		}
		if err := VerifySigV4(received(t, path+"x", body, hs), body, creds, "bedrock", "us-east-1"); err == nil {
			t.Fatal("a changed path verified")
		}
		wrong := creds
		wrong.SecretAccessKey = "other"
		if err := VerifySigV4(received(t, path, body, hs), body, wrong, "bedrock", "us-east-1"); err == nil {
			t.Fatal("other credentials verified")
		}
	}
}

type failingCreds struct{}

func (failingCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, context.DeadlineExceeded
}

func TestSigV4CredentialError(t *testing.T) {
	s := NewSigV4(failingCreds{}, "bedrock", "us-east-1", testHost)
	if _, err := s.Authenticate(context.Background(), Request{Method: "POST", Path: "/", Time: time.Now()}); err == nil {
		t.Fatal("no error")
	}
}

// TestDefaultChain: without static keys the SDK's default chain is used; its
// first source is the environment (in Kubernetes, IRSA's web identity comes
// next, then the instance role, which is disabled here to stay on loopback).
func TestDefaultChain(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", testKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	t.Setenv("AWS_SESSION_TOKEN", testToken)
	t.Setenv("AWS_CONFIG_FILE", dir+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	creds, err := DefaultChain(context.Background(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{}`)
	hs, err := NewSigV4(creds, "bedrock", "us-east-1", testHost).Authenticate(context.Background(), Request{Method: "POST", Path: "/model/m/converse", Body: body, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	want := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret, SessionToken: testToken}
	if err := VerifySigV4(received(t, "/model/m/converse", body, hs), body, want, "bedrock", "us-east-1"); err != nil {
		t.Fatal(err)
	}
}
