package helm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// chartDir is the chart under test, relative to this package.
	chartDir = "../../helm/tollgate"
	// releaseName and namespace are used for every render.
	releaseName = "gw"
	namespace   = "gateway"
	// fullname is the resource name prefix for releaseName ("<release>-tollgate").
	fullname = releaseName + "-tollgate"

	helmInstall = "go install helm.sh/helm/v3/cmd/helm@v3.22.0"

	// kubeVersion is the cluster version renders assume. A go-installed helm defaults to Kubernetes
	// v1.20, below the chart's kubeVersion constraint.
	kubeVersion = "1.34.0"
)

// helmBinary finds the helm CLI on PATH or in $(go env GOPATH)/bin. Without it the test is skipped, or fails
// when CI=true, so CI cannot silently skip the chart tests.
func helmBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "helm")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	msg := "helm CLI not found on PATH or in $(go env GOPATH)/bin; install it with: " + helmInstall
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runHelm runs helm with args and returns its stdout and stderr; a non-zero exit is an error that
// includes both.
func runHelm(t *testing.T, helm string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helm, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// A private, empty helm home: no repositories, plugins or cache of the machine leak into the test.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = errors.New(strings.TrimSpace(errOut.String() + "\n" + out.String()))
		}
		return out.String(), errOut.String(), err
	}
	return out.String(), errOut.String(), nil
}

// template renders the chart with extra helm arguments (--set, -f ...).
func template(t *testing.T, helm string, args ...string) (string, error) {
	t.Helper()
	base := []string{"template", releaseName, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}
	out, _, err := runHelm(t, helm, append(base, args...)...)
	return out, err
}

// mustRender renders the chart and decodes it, failing the test on any error.
func mustRender(t *testing.T, helm string, args ...string) *release {
	t.Helper()
	out, err := template(t, helm, args...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	rel, err := decodeRelease(out)
	if err != nil {
		t.Fatalf("decode rendered manifests (%v): %v", args, err)
	}
	return rel
}

// ciValueFiles are the chart's ci/*-values.yaml files (chart-testing convention).
func ciValueFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci/*-values.yaml files in %s (%v)", chartDir, err)
	}
	return files
}

func TestLint(t *testing.T) {
	helm := helmBinary(t)
	runs := [][]string{{"lint", chartDir}, {"lint", "--strict", chartDir, "--kube-version", kubeVersion}}
	for _, f := range ciValueFiles(t) {
		runs = append(runs, []string{"lint", "--strict", chartDir, "--kube-version", kubeVersion, "-f", f})
	}
	for _, args := range runs {
		t.Run(strings.Join(args[1:], " "), func(t *testing.T) {
			out, _, err := runHelm(t, helm, args...)
			if err != nil {
				t.Fatalf("helm %v failed: %v", args, err)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("helm %v: unexpected output:\n%s", args, out)
			}
		})
	}
}
