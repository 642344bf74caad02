package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/tollgate-ai/tollgate/internal/devfront"
)

// TestCompose checks compose.yaml without a Docker engine: pinned images, mounted files
// that exist, and Envoy on the shipped bootstrap unchanged: the example config's mock
// provider is answered by the processor itself, so no extra cluster is needed.
func TestCompose(t *testing.T) {
	const root = "../.."
	data, err := os.ReadFile(filepath.Join(root, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string   `json:"image"`
			Build       string   `json:"build"`
			NetworkMode string   `json:"network_mode"`
			Environment []string `json:"environment"`
			DependsOn   []string `json:"depends_on"`
			Volumes     []string `json:"volumes"`
			Command     []string `json:"command"`
		} `json:"services"`
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	gw, envoy := c.Services["tollgate"], c.Services["envoy"]
	if gw.Build == "" || envoy.Image == "" {
		t.Fatalf("services: %+v", c.Services)
	}
	if _, err := os.Stat(filepath.Join(root, gw.Build, "Dockerfile")); err != nil {
		t.Errorf("tollgate build context: %v", err)
	}
	if !regexp.MustCompile(`^envoyproxy/envoy:v1\.3[3-6]\.\d+$`).MatchString(envoy.Image) {
		t.Errorf("envoy image %q is not a pinned 1.33–1.36 release", envoy.Image)
	}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
	}

	if slices.Contains(envoy.Command, "--config-yaml") || !slices.Contains(envoy.Command, "/etc/envoy/envoy.yaml") {
		t.Errorf("envoy command %q: want the shipped bootstrap as it is", envoy.Command)
	}
	// The ADS bootstrap: the providers of the example config reach Envoy over xDS.
	if !slices.Contains(envoy.Volumes, "./envoy/envoy-ads.yaml:/etc/envoy/envoy.yaml:ro") {
		t.Errorf("envoy volumes %q: want the ADS bootstrap envoy/envoy-ads.yaml", envoy.Volumes)
	}
	boot, err := os.ReadFile(filepath.Join(root, "envoy/envoy-ads.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devfront.RewriteBootstrap(boot, devfront.Rewrite{AdminPort: 1}); err != nil {
		t.Errorf("envoy-ads.yaml is not a valid bootstrap: %v", err)
	}
}
