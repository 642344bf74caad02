package cloudauth_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/internal/cloudauth"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

func TestGoogleToken(t *testing.T) {
	tests := []struct {
		name       string
		lifetime   time.Duration
		wantTokens int // minted for three requests
	}{
		{"reused until close to expiry", time.Hour, 1},
		// A token that expires within oauth2's early-expiry margin (10 s) is
		// refreshed on every use.
		{"refreshed when about to expire", 5 * time.Second, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := fakeprovider.NewTokenEndpoint(tc.lifetime)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(ep)
			defer srv.Close()
			g, err := cloudauth.NewGoogleToken(ep.ServiceAccountJSON(srv.URL+"/token"), srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				hs, err := g.Authenticate(context.Background(), cloudauth.Request{})
				if err != nil {
					t.Fatal(err)
				}
				tok, ok := strings.CutPrefix(hs[0][1], "Bearer ")
				if hs[0][0] != "authorization" || !ok || !ep.Valid(tok) {
					t.Fatalf("header %v", hs)
				}
			}
			if n := len(ep.Issued()); n != tc.wantTokens {
				t.Fatalf("%d tokens minted, want %d", n, tc.wantTokens)
			}
		})
	}
}

func TestGoogleTokenErrors(t *testing.T) {
	if _, err := cloudauth.NewGoogleToken([]byte(`{"type":"authorized_user","private_key":"SECRET"}`), nil); err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("err %v", err)
	}
	ep, err := fakeprovider.NewTokenEndpoint(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := fakeprovider.NewTokenEndpoint(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	// A key the endpoint does not know: refused, and the error says only the status.
	g, err := cloudauth.NewGoogleToken(other.ServiceAccountJSON(srv.URL+"/token"), srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Authenticate(context.Background(), cloudauth.Request{})
	if err == nil || !strings.Contains(err.Error(), "400") || strings.Contains(err.Error(), "PRIVATE") {
		t.Fatalf("err %v", err)
	}
}
