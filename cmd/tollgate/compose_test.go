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
// that exist, and an Envoy command whose extra cluster, merged into the shipped bootstrap,
// is a valid bootstrap pointing at the mock provider tollgate serves.
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

	i := slices.Index(envoy.Command, "--config-yaml")
	if i < 0 || i+1 >= len(envoy.Command) || !slices.Contains(envoy.Command, "/etc/envoy/envoy.yaml") {
		t.Fatalf("envoy command %q", envoy.Command)
	}
	var extra struct {
		StaticResources struct {
			Clusters []map[string]any `json:"clusters"`
		} `json:"static_resources"`
	}
	if err := yaml.Unmarshal([]byte(envoy.Command[i+1]), &extra); err != nil || len(extra.StaticResources.Clusters) != 1 {
		t.Fatalf("--config-yaml %q: %v", envoy.Command[i+1], err)
	}
	if extra.StaticResources.Clusters[0]["name"] != mockCluster {
		t.Errorf("--config-yaml adds %v, want cluster %s", extra.StaticResources.Clusters[0]["name"], mockCluster)
	}
	if !slices.Contains(gw.Command, "--mock-addr=127.0.0.1:10001") || !strings.Contains(envoy.Command[i+1], "port_value: 10001") {
		t.Errorf("the mock cluster and tollgate serve --mock-addr disagree: %q / %q", gw.Command, envoy.Command[i+1])
	}
	// Envoy appends repeated fields of --config-yaml to the file's: do the same and load it.
	boot, err := os.ReadFile(filepath.Join(root, "envoy/envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var bs map[string]any
	if err := yaml.Unmarshal(boot, &bs); err != nil {
		t.Fatal(err)
	}
	sr := bs["static_resources"].(map[string]any)
	for _, cl := range extra.StaticResources.Clusters {
		sr["clusters"] = append(sr["clusters"].([]any), cl)
	}
	merged, err := yaml.Marshal(bs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devfront.RewriteBootstrap(merged, devfront.Rewrite{AdminPort: 1}); err != nil {
		t.Errorf("envoy.yaml with the compose cluster is not a valid bootstrap: %v", err)
	}
}
