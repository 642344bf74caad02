package ledger

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

const adminToken = "adm_test_token_0123456789"

// apiServer serves the API over a store seeded with seed(), with "now" two
// days after t0 so that period=48h covers the seeded traffic.
func apiServer(t *testing.T, s *Store, token func() ([]byte, error)) *httptest.Server {
	t.Helper()
	if token == nil {
		token = func() ([]byte, error) { return []byte(adminToken), nil }
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/analytics/", &API{Store: s, Token: token, Now: func() time.Time { return t0.Add(48 * time.Hour) }, Log: nopLog()})
	mux.Handle("/dashboard/", http.StripPrefix("/dashboard", Dashboard()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, token string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

type apiBody struct {
	From, To time.Time
	GroupBy  string `json:"group_by"`
	Groups   []json.RawMessage
}

func TestAPI(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			if err := s.Insert(context.Background(), seed()); err != nil {
				t.Fatal(err)
			}
			srv := apiServer(t, s, nil)
			for _, tt := range []struct {
				path string
				q    Query
			}{
				{"/v1/analytics/summary?period=48h", Query{}},
				{"/v1/analytics/summary?from=2026-03-01T10:00:00Z&to=2026-03-03T10:00:00Z&group_by=provider", Query{GroupBy: "provider"}},
				{"/v1/analytics/summary?period=2d&group_by=app&tenant=acme", Query{GroupBy: "app", Tenant: "acme"}},
				{"/v1/analytics/summary?period=48h&group_by=key&tenant=acme&app=web", Query{GroupBy: "key", Tenant: "acme", App: "web"}},
				{"/v1/analytics/timeseries?period=48h", Query{Bucket: "hour"}},
				{"/v1/analytics/timeseries?period=48h&bucket=day&group_by=model", Query{Bucket: "day", GroupBy: "model"}},
				{"/v1/analytics/summary?period=48h&group_by=provider&percentiles=false", Query{GroupBy: "provider", NoPercentiles: true}},
			} {
				code, h, body := get(t, srv.URL+tt.path, adminToken)
				if code != 200 || h.Get("Content-Type") != "application/json" {
					t.Fatalf("%s: %d %s", tt.path, code, body)
				}
				var got apiBody
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				tt.q.From, tt.q.To = t0, t0.Add(48*time.Hour)
				want := aggregate(t, s, tt.q)
				if js(got.Groups) != js(want) || !got.From.Equal(t0) || got.GroupBy != tt.q.GroupBy {
					t.Errorf("%s:\n got  %s\n want %s", tt.path, body, js(want))
				}
			}

			code, h, body := get(t, srv.URL+"/v1/analytics/summary?period=48h&group_by=provider&format=csv", adminToken)
			if code != 200 || h.Get("Content-Type") != "text/csv; charset=utf-8" {
				t.Fatalf("csv: %d %s", code, body)
			}
			recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 4 || strings.Join(recs[0], ",") != strings.Join(CSVHeader(), ",") {
				t.Fatalf("csv = %q", recs)
			}
			row := map[string]string{}
			for i, col := range recs[0] {
				row[col] = recs[1][i]
			}
			for col, want := range map[string]string{"group": "openai", "requests": "3", "errors_5xx": "1", "cost_usd": "0.00775",
				"cost_pico_usd": "7750000000", "tokens_prompt": "1010", "latency_p50_ms": "100", "latency_p95_ms": "300", "cache_hit_rate": "0.5"} {
				if row[col] != want {
					t.Errorf("csv %s = %q, want %q", col, row[col], want)
				}
			}
		})
	}
}

func TestAPIRefusals(t *testing.T) {
	s := openSQLite(t)
	srv := apiServer(t, s, nil)
	for _, tt := range []struct {
		name, path, token string
		code              int
		errCode           string
	}{
		{"no token", "/v1/analytics/summary", "", 401, "invalid_admin_token"},
		{"wrong token", "/v1/analytics/summary", "adm_test_token_012345678X", 401, "invalid_admin_token"},
		{"token prefix", "/v1/analytics/summary", "adm_test", 401, "invalid_admin_token"},
		{"unknown endpoint", "/v1/analytics/nope", adminToken, 404, "not_found"},
		{"bad group", "/v1/analytics/summary?group_by=colour", adminToken, 400, "invalid_parameter"},
		{"bad bucket", "/v1/analytics/timeseries?bucket=week", adminToken, 400, "invalid_parameter"},
		{"bad from", "/v1/analytics/summary?from=yesterday", adminToken, 400, "invalid_parameter"},
		{"from after to", "/v1/analytics/summary?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", adminToken, 400, "invalid_parameter"},
		{"range too long", "/v1/analytics/summary?period=401d", adminToken, 400, "invalid_parameter"},
		{"bad period", "/v1/analytics/summary?period=-1h", adminToken, 400, "invalid_parameter"},
		{"bad format", "/v1/analytics/summary?format=xml", adminToken, 400, "invalid_parameter"},
		{"bad percentiles", "/v1/analytics/summary?percentiles=no", adminToken, 400, "invalid_parameter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := get(t, srv.URL+tt.path, tt.token)
			if code != tt.code || errCode(t, body) != tt.errCode || h.Get("Content-Type") != "application/json" {
				t.Errorf("%d %s, want %d %s", code, body, tt.code, tt.errCode)
			}
			if code == 401 && h.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	off := apiServer(t, s, func() ([]byte, error) { return nil, nil })
	code, _, body := get(t, off.URL+"/v1/analytics/summary", adminToken)
	if code != 404 || errCode(t, body) != "analytics_disabled" || !strings.Contains(string(body), "admin.token") {
		t.Errorf("no token configured: %d %s", code, body)
	}
	broken := apiServer(t, s, func() ([]byte, error) { return nil, errors.New("secret file: missing") })
	if code, _, body = get(t, broken.URL+"/v1/analytics/summary", adminToken); code != 503 || errCode(t, body) != "admin_token_unavailable" {
		t.Errorf("unreadable token: %d %s", code, body)
	}
	noLedger := apiServer(t, nil, nil)
	if code, _, body = get(t, noLedger.URL+"/v1/analytics/summary", adminToken); code != 404 || errCode(t, body) != "ledger_disabled" {
		t.Errorf("no ledger: %d %s", code, body)
	}
	// Without the token, a disabled ledger is not even revealed.
	if code, _, _ = get(t, noLedger.URL+"/v1/analytics/summary", ""); code != 401 {
		t.Errorf("no ledger, no token: %d", code)
	}
}

func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code string }
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an error body: %s", body)
	}
	return e.Error.Code
}

func TestCSVSafe(t *testing.T) {
	for in, want := range map[string]string{"=cmd()": "'=cmd()", "+1": "'+1", "-x": "'-x", "@a": "'@a", "key-1": "key-1", "": ""} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func nopLog() *zap.Logger { return zap.NewNop() }
