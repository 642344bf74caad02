package ledger

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed dashboard
var dashboardFS embed.FS

// Dashboard serves the usage dashboard: a static page whose script reads
// the analytics API with the admin token the operator enters (or passes in
// the URL fragment, #token=…, which browsers never send to the server). The
// page holds no data itself, so it is served without the token; every
// figure comes from the authenticated API.
func Dashboard() http.Handler {
	sub, err := fs.Sub(dashboardFS, "dashboard")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
