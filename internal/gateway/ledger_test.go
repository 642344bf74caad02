package gateway

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/routing/config"
)

func startAdmin(t *testing.T, cfg string, env map[string]string) *Gateway {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), Config{
		GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", ConfigPaths: []string{dir},
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	return g
}

func adminGet(t *testing.T, g *Gateway, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+g.AdminAddr()+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

const minimal = "version: 1\nproviders:\n  - {name: openai, schema: openai, cluster: openai}\nmodels:\n  - {name: m, provider: openai, model: gpt-4o}\n"

func TestAnalyticsWiring(t *testing.T) {
	// No admin token: the API says it is off; the page is still served.
	g := startAdmin(t, minimal, nil)
	if code, body := adminGet(t, g, "/v1/analytics/summary", "x"); code != 404 || !strings.Contains(body, `"code":"analytics_disabled"`) {
		t.Errorf("no token: %d %s", code, body)
	}
	if code, _ := adminGet(t, g, "/dashboard", ""); code != http.StatusMovedPermanently {
		t.Errorf("/dashboard: %d, want a redirect to /dashboard/", code)
	}
	if code, body := adminGet(t, g, "/dashboard/", ""); code != 200 || !strings.Contains(body, "<title>Tollgate usage</title>") {
		t.Errorf("/dashboard/: %d", code)
	}

	// A token but no ledger.
	g = startAdmin(t, minimal+"admin: {token: {env: ADMIN}}\n", map[string]string{"ADMIN": "s3cr3t-admin"})
	if code, body := adminGet(t, g, "/v1/analytics/summary", "s3cr3t-admin"); code != 404 || !strings.Contains(body, `"code":"ledger_disabled"`) {
		t.Errorf("no ledger: %d %s", code, body)
	}

	// A token that cannot be read refuses rather than opening the API.
	g = startAdmin(t, minimal+"admin: {token: {env: MISSING}}\n", nil)
	if code, body := adminGet(t, g, "/v1/analytics/summary", ""); code != 503 || !strings.Contains(body, "admin_token_unavailable") {
		t.Errorf("unreadable token: %d %s", code, body)
	}

	// A SQLite ledger: the API answers, empty.
	db := filepath.Join(t.TempDir(), "l.db")
	g = startAdmin(t, minimal+"admin: {token: {env: ADMIN}}\nledger: {sqlite: {path: "+db+"}}\n", map[string]string{"ADMIN": "s3cr3t-admin"})
	if code, body := adminGet(t, g, "/v1/analytics/summary?group_by=provider", "s3cr3t-admin"); code != 200 || !strings.Contains(body, `"groups":[]`) {
		t.Errorf("ledger: %d %s", code, body)
	}
	if code, _ := adminGet(t, g, "/v1/analytics/summary", "wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
}

func TestLedgerOpenFails(t *testing.T) {
	dir := t.TempDir()
	cfg := minimal + "ledger: {sqlite: {path: " + filepath.Join(dir, "missing-dir", "l.db") + "}}\n"
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), Config{GRPCAddr: "127.0.0.1:0", ConfigPaths: []string{dir}}); err == nil {
		t.Fatal("started with a ledger it cannot open")
	}
}

func TestSameLedger(t *testing.T) {
	sq := func(p string) *config.Ledger {
		return &config.Ledger{Backend: "sqlite", SQLite: &config.SQLiteLedger{Path: p}, RetentionDays: 90}
	}
	pg := func(env string) *config.Ledger {
		return &config.Ledger{Backend: "postgres", Postgres: &config.PostgresLedger{DSN: config.SecretRef{Env: env}}, RetentionDays: 90}
	}
	for _, tt := range []struct {
		a, b *config.Ledger
		want bool
	}{
		{nil, nil, true},
		{nil, sq("a"), false},
		{sq("a"), sq("a"), true},
		{sq("a"), sq("b"), false},
		{pg("A"), pg("A"), true},
		{pg("A"), pg("B"), false},
		{sq("a"), pg("A"), false},
	} {
		if got := sameLedger(tt.a, tt.b); got != tt.want {
			t.Errorf("sameLedger(%+v, %+v) = %v", tt.a, tt.b, got)
		}
	}
}
