package gateway

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestPprofOptIn: the profiling endpoints are absent from the admin server
// unless the gateway is started with Pprof (tollgate serve --pprof).
func TestPprofOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(minimal), 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := Start(context.Background(), Config{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", ConfigPaths: []string{dir}, Pprof: on})
		if err != nil {
			t.Fatal(err)
		}
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1"} {
			if code, _ := adminGet(t, g, path, ""); code != want {
				t.Errorf("pprof=%v: GET %s = %d, want %d", on, path, code, want)
			}
		}
		g.Shutdown(context.Background())
	}
}
