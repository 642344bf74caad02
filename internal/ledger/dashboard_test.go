package ledger

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// shown is what the dashboard displays, read from its DOM.
type shown struct {
	Status   string
	Cards    map[string]string
	TopModel [][2]string // group, cost
	TopApp   [][2]string
	TopKey   [][2]string
	Provider [][4]string // group, error rate, p50, p95
	Bars     int
}

const readDashboard = `(() => {
  const cards = {};
  document.querySelectorAll(".card output").forEach((o) => { cards[o.dataset.k] = o.textContent; });
  const top = (id) => [...document.querySelectorAll(id + " tbody tr")].map((tr) => [tr.dataset.group, tr.querySelector('[data-k="cost"]').textContent]);
  return {
    status: document.querySelector("#status").textContent,
    cards,
    topModel: top("#top-model"), topApp: top("#top-app"), topKey: top("#top-key"),
    provider: [...document.querySelectorAll("#providers tbody tr")].map((tr) => [tr.dataset.group,
      tr.querySelector('[data-k="error-rate"]').textContent, tr.querySelector('[data-k="p50"]').textContent, tr.querySelector('[data-k="p95"]').textContent]),
    bars: document.querySelectorAll("#cost-chart svg rect").length,
  };
})()`

// The dashboard loads in headless Chromium without a console error and
// shows exactly the API's figures for seeded traffic.
func TestDashboardChromium(t *testing.T) {
	browser := startChromium(t)
	s := openSQLite(t)
	if err := s.Insert(context.Background(), seed()); err != nil {
		t.Fatal(err)
	}
	srv := apiServer(t, s, nil)

	browser.navigate(srv.URL + "/dashboard/?period=7d#token=" + adminToken)
	browser.waitFor(`document.body.dataset.loaded`)
	var got shown
	browser.eval(readDashboard, &got)
	png := browser.screenshot()
	if err := os.WriteFile(filepath.Join(t.TempDir(), "dashboard.png"), png, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("TOLLGATE_DASHBOARD_SCREENSHOT"); out != "" { // docs/images/dashboard.png, taken by hand
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if errs := browser.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}

	summary := func(groupBy string) []apiStats {
		code, _, body := get(t, srv.URL+"/v1/analytics/summary?period=7d&group_by="+groupBy, adminToken)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var b struct{ Groups []apiStats }
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		return b.Groups
	}
	total := summary("")[0]
	wantCards := map[string]string{
		"requests":   strconv.FormatInt(total.Requests, 10),
		"cost":       total.CostUSD,
		"error-rate": pct(total.ErrorRate),
		"latency":    msStr(total.Latency.Avg) + " / " + msStr(total.Latency.P50) + " / " + msStr(total.Latency.P95),
		"ttfb":       msStr(total.TTFB.P50) + " / " + msStr(total.TTFB.P95),
		"cache-hit":  pct(*total.CacheHit),
	}
	for k, v := range wantCards {
		if got.Cards[k] != v {
			t.Errorf("card %s shows %q, API says %q", k, got.Cards[k], v)
		}
	}
	// Spot-check the seeded figures themselves, not only agreement.
	if got.Cards["requests"] != "6" || got.Cards["cost"] != "9.007751234567" {
		t.Errorf("cards %v", got.Cards)
	}
	for name, tc := range map[string]struct {
		shown   [][2]string
		groupBy string
	}{"models": {got.TopModel, "model"}, "apps": {got.TopApp, "app"}, "keys": {got.TopKey, "key"}} {
		var want [][2]string
		for _, g := range summary(tc.groupBy) {
			if g.Group != "" {
				want = append(want, [2]string{g.Group, g.CostUSD})
			}
		}
		if !equalPairs(tc.shown, want) {
			t.Errorf("top %s shows %q, API says %q", name, tc.shown, want)
		}
	}
	var wantProv [][4]string
	for _, g := range summary("provider") {
		wantProv = append(wantProv, [4]string{g.Group, pct(g.ErrorRate), msStr(g.Latency.P50), msStr(g.Latency.P95)})
	}
	if len(got.Provider) != len(wantProv) {
		t.Fatalf("providers shows %q, API says %q", got.Provider, wantProv)
	}
	for i := range wantProv {
		if got.Provider[i] != wantProv[i] {
			t.Errorf("provider row %d shows %q, API says %q", i, got.Provider[i], wantProv[i])
		}
	}
	if got.Bars != 4 { // hourly buckets holding traffic: t0-2h, t0, t0+1h, t0+25h
		t.Errorf("cost chart has %d bars, want 4", got.Bars)
	}

	// A wrong token shows the API's message, still without console errors
	// beyond the failed fetches the browser logs.
	browser.navigate(srv.URL + "/dashboard/?period=30d#token=wrong") // a new document, not a fragment change
	browser.waitFor(`document.body.dataset.loaded === "error"`)
	var status string
	browser.eval(`document.querySelector("#status").textContent`, &status)
	if !strings.Contains(status, "Bearer") {
		t.Errorf("status with a wrong token = %q", status)
	}
}

type apiStats struct {
	Group     string   `json:"group"`
	Requests  int64    `json:"requests"`
	ErrorRate float64  `json:"error_rate"`
	CostUSD   string   `json:"cost_usd"`
	Latency   Timing   `json:"latency_ms"`
	TTFB      Timing   `json:"ttfb_ms"`
	CacheHit  *float64 `json:"cache_hit_rate"`
}

// pct and msStr format as the page does (one decimal, no trailing zero).
func pct(r float64) string   { return strconv.FormatFloat(math.Round(r*1000)/10, 'f', -1, 64) + "%" }
func msStr(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

func equalPairs(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The dashboard's assets are served with a strict policy and no external
// reference.
func TestDashboardAssets(t *testing.T) {
	srv := apiServer(t, openSQLite(t), nil)
	for _, p := range []string{"/dashboard/", "/dashboard/app.js", "/dashboard/style.css"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s: %d %v", p, res.StatusCode, res.Header)
		}
	}
	for _, f := range []string{"index.html", "app.js", "style.css"} {
		b, err := dashboardFS.ReadFile("dashboard/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "http://") && f != "app.js" || strings.Contains(string(b), "https://") {
			t.Errorf("%s refers to another origin", f)
		}
	}
}
