package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/envoy/validate"
)

// shippedBootstraps are the files under envoy/ and the commands that make
// them (run from the repository root). Regenerate with `make envoy`.
var shippedBootstraps = []struct{ file, args string }{
	{"envoy/envoy-ads.yaml", ""},
	{"envoy/envoy.yaml", "--static --config envoy/config/providers.yaml"},
	{"envoy/envoy-tls.yaml", "--static --listen 0.0.0.0:8443 --tls --config envoy/config/providers.yaml"},
	{"envoy/envoy-fallback.yaml", "--static --config envoy/config/providers.yaml --config envoy/config/fallback.yaml"},
}

// TestShippedBootstrapsFresh fails when a file under envoy/ is not what its
// command prints today, and checks every one strictly.
func TestShippedBootstrapsFresh(t *testing.T) {
	t.Chdir("../..")
	for _, s := range shippedBootstraps {
		var out, errb bytes.Buffer
		if code := bootstrapCmd(strings.Fields(s.args), &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", s.file, code, errb.String())
		}
		have, err := os.ReadFile(s.file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, out.Bytes()) {
			t.Errorf("%s is stale: run `make envoy` (tollgate envoy bootstrap %s > %s)", s.file, s.args, s.file)
		}
		if ps := validate.Bootstrap(out.Bytes()); len(ps) > 0 {
			t.Errorf("%s: %v", s.file, ps)
		}
	}
}

func TestBootstrapFlags(t *testing.T) {
	for _, c := range []struct {
		args     string
		code     int
		contains string
	}{
		{"--static", 2, "--static and --config go together"},
		{"--config x.yaml", 2, "--static and --config go together"},
		{"--listen nowhere", 1, "listen address"},
		{"--ext-proc unix:///run/tollgate.sock", 0, `pipe: { path: "/run/tollgate.sock" }`},
		{"--static --config testdata/none.yaml", 1, "none.yaml"},
	} {
		var out, errb bytes.Buffer
		code := bootstrapCmd(strings.Fields(c.args), &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.contains) {
			t.Errorf("%s: exit %d, output %q…; want exit %d containing %q", c.args, code, trunc(out.String()+errb.String()), c.code, c.contains)
		}
		if code == 0 {
			if ps := validate.Bootstrap(out.Bytes()); len(ps) > 0 {
				t.Errorf("%s: %v", c.args, ps)
			}
		}
	}
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:300]
	}
	return s
}
