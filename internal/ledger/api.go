package ledger

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
)

// API serves the analytics endpoints on the admin server:
//
//	GET /v1/analytics/summary?from&to|period&group_by&tenant&app&format=json|csv
//	GET /v1/analytics/timeseries?…&bucket=hour|day
//
// Every request needs Authorization: Bearer <admin token>. With no token
// configured, or no ledger, the endpoints answer 404 with a JSON body saying
// why.
type API struct {
	// Store is the ledger; nil when the configuration has no ledger.
	Store *Store
	// Token returns the admin token in force: nil when none is configured,
	// an error when it is configured but could not be read.
	Token func() ([]byte, error)
	Now   func() time.Time
	Log   *zap.Logger
}

// maxRange bounds one query: longer ranges are refused rather than left to
// scan without end.
const maxRange = 400 * 24 * time.Hour

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := a.authorize(r); e != nil {
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate-admin"`)
		}
		writeError(w, e)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, &oaierror.Error{Status: 405, Type: oaierror.TypeInvalidRequest, Code: "method_not_allowed", Message: "Use GET."})
		return
	}
	var q Query
	switch r.URL.Path {
	case "/v1/analytics/summary":
	case "/v1/analytics/timeseries":
		q.Bucket = "hour"
	default:
		writeError(w, &oaierror.Error{Status: 404, Type: oaierror.TypeNotFound, Code: "not_found",
			Message: "Unknown analytics endpoint; use /v1/analytics/summary or /v1/analytics/timeseries."})
		return
	}
	q, format, e := a.parse(r, q)
	if e != nil {
		writeError(w, e)
		return
	}
	stats, err := a.Store.Aggregate(r.Context(), q)
	if err != nil {
		a.Log.Error("analytics query failed", zap.Error(err))
		writeError(w, oaierror.Internal(503, "ledger_unavailable", "The usage ledger could not be read."))
		return
	}
	if format == "csv" {
		writeCSV(w, stats)
		return
	}
	body := struct {
		From    time.Time `json:"from"`
		To      time.Time `json:"to"`
		GroupBy string    `json:"group_by"`
		Bucket  string    `json:"bucket,omitempty"`
		Tenant  string    `json:"tenant,omitempty"`
		App     string    `json:"app,omitempty"`
		Groups  []*Stats  `json:"groups"`
	}{q.From, q.To, q.GroupBy, q.Bucket, q.Tenant, q.App, stats}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

// authorize checks the bearer token in constant time: both sides are hashed
// first, so neither the content nor the length of the token leaks through
// timing.
func (a *API) authorize(r *http.Request) *oaierror.Error {
	token, err := a.Token()
	switch {
	case err != nil:
		a.Log.Error("admin token unreadable; analytics refused", zap.Error(err))
		return oaierror.Internal(503, "admin_token_unavailable", "The admin token configured for the analytics API could not be read.")
	case token == nil:
		return &oaierror.Error{Status: 404, Type: oaierror.TypeNotFound, Code: "analytics_disabled",
			Message: "The analytics API is disabled: no admin token is configured (set admin.token in the gateway configuration)."}
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	want := sha256.Sum256(token)
	have := sha256.Sum256([]byte(got))
	if !ok || subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
		return &oaierror.Error{Status: 401, Type: oaierror.TypeAuthentication, Code: "invalid_admin_token",
			Message: "The analytics API needs Authorization: Bearer <admin token>."}
	}
	if a.Store == nil {
		return &oaierror.Error{Status: 404, Type: oaierror.TypeNotFound, Code: "ledger_disabled",
			Message: "The usage ledger is disabled: add a ledger section to the gateway configuration."}
	}
	return nil
}

// parse reads the query parameters. from and to are RFC 3339 times; period
// (a Go duration such as 24h, or a number of days such as 30d) counts back
// from to; the default is the last 24 hours.
func (a *API) parse(r *http.Request, q Query) (Query, string, *oaierror.Error) {
	v := r.URL.Query()
	bad := func(param, msg string) *oaierror.Error {
		return &oaierror.Error{Status: 400, Type: oaierror.TypeInvalidRequest, Code: "invalid_parameter", Param: param, Message: msg}
	}
	q.To = a.Now()
	if s := v.Get("to"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, "", bad("to", "to must be an RFC 3339 time such as 2026-03-01T00:00:00Z.")
		}
		q.To = t
	}
	q.From = q.To.Add(-24 * time.Hour)
	if s := v.Get("period"); s != "" {
		d, err := parsePeriod(s)
		if err != nil {
			return q, "", bad("period", "period must be a duration such as 24h or a number of days such as 30d.")
		}
		q.From = q.To.Add(-d)
	}
	if s := v.Get("from"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, "", bad("from", "from must be an RFC 3339 time such as 2026-03-01T00:00:00Z.")
		}
		q.From = t
	}
	if !q.From.Before(q.To) {
		return q, "", bad("from", "from must be before to.")
	}
	if q.To.Sub(q.From) > maxRange {
		return q, "", bad("from", "The range may span at most 400 days.")
	}
	q.GroupBy = v.Get("group_by")
	if _, ok := groupExprs[q.GroupBy]; !ok {
		return q, "", bad("group_by", "group_by must be one of provider, model, tenant, app, key, alias.")
	}
	if q.Bucket != "" {
		if b := v.Get("bucket"); b != "" {
			q.Bucket = b
		}
		if _, ok := bucketWidths[q.Bucket]; !ok {
			return q, "", bad("bucket", "bucket must be hour or day.")
		}
	}
	q.Tenant, q.App = v.Get("tenant"), v.Get("app")
	switch v.Get("percentiles") {
	case "", "true":
	case "false":
		q.NoPercentiles = true
	default:
		return q, "", bad("percentiles", "percentiles must be true or false.")
	}
	format := v.Get("format")
	if format != "" && format != "json" && format != "csv" {
		return q, "", bad("format", "format must be json or csv.")
	}
	return q, format, nil
}

func parsePeriod(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 400 {
			return 0, errors.New("bad days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errors.New("bad duration")
	}
	return d, nil
}

func writeError(w http.ResponseWriter, e *oaierror.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_, _ = w.Write(e.Body())
}

// CSVHeader is the first line of a CSV export.
func CSVHeader() []string {
	h := []string{"bucket", "group", "requests", "errors", "error_rate", "errors_4xx", "errors_5xx", "no_response", "estimated_requests"}
	for _, k := range tokenKinds {
		h = append(h, "tokens_"+k.name)
	}
	return append(h, "cost_usd", "cost_pico_usd", "latency_avg_ms", "latency_p50_ms", "latency_p95_ms",
		"ttfb_avg_ms", "ttfb_p50_ms", "ttfb_p95_ms", "cache_hit_rate")
}

func writeCSV(w http.ResponseWriter, stats []*Stats) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="tollgate-usage.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	_ = cw.Write(CSVHeader())
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, s := range stats {
		bucket := ""
		if s.Bucket != nil {
			bucket = s.Bucket.Format(time.RFC3339)
		}
		rec := []string{bucket, csvSafe(s.Group), i(s.Requests), i(s.Errors), f(s.ErrorRate), i(s.ByClass["4xx"]), i(s.ByClass["5xx"]),
			i(s.ByClass["no_response"]), i(s.Estimated)}
		for _, k := range tokenKinds {
			rec = append(rec, i(s.Tokens[k.name]))
		}
		hit := ""
		if s.CacheHit != nil {
			hit = f(*s.CacheHit)
		}
		rec = append(rec, s.CostUSD, i(s.CostPico), f(s.Latency.Avg), f(s.Latency.P50), f(s.Latency.P95),
			f(s.TTFB.Avg), f(s.TTFB.P50), f(s.TTFB.P95), hit)
		_ = cw.Write(rec)
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from reading a group name (a key id, an alias:
// operator-chosen text) as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
