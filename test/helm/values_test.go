package helm

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestBadValuesRejected: values.schema.json must reject bad values at install time, in helm template and
// helm lint alike. Rules the schema cannot express (arithmetic, cross-references) are `fail` calls in the
// templates: they stop helm template and helm install, while helm lint, which runs templates in lint mode,
// reports them as "[INFO] Fail: ...".
func TestBadValuesRejected(t *testing.T) {
	helm := helmBinary(t)
	cases := []struct {
		name string
		args []string
		want string // substring of helm's error
		// templateCheck: rejected by the chart's fail calls rather than the schema.
		templateCheck bool
	}{
		{"negative replicas", []string{"--set", "replicaCount=-1"}, "at '/replicaCount': minimum", false},
		{"replicas not a number", []string{"--set-string", "replicaCount=two"}, "at '/replicaCount': got string, want integer", false},
		{"unknown top-level key", []string{"--set", "replicas=3"}, "additional properties 'replicas' not allowed", false},
		{"unknown nested key", []string{"--set", "envoy.listenPort=8080"}, "additional properties 'listenPort' not allowed", false},
		{"missing keys Secret", []string{"--set", "keys.existingSecret="}, "at '/keys/existingSecret': minLength", false},
		{"missing credentials Secret", []string{"--set", "credentials.existingSecret="}, "at '/credentials/existingSecret': minLength", false},
		{"TLS without a Secret", []string{"--set", "tls.enabled=true"}, "at '/tls/existingSecret': minLength", false},
		{"bad transport", []string{"--set", "tollgate.transport=pipe"}, "at '/tollgate/transport'", false},
		{"port out of range", []string{"--set", "envoy.port=70000"}, "at '/envoy/port': maximum", false},
		{"duration as number", []string{"--set", "envoy.timeouts.message=10"}, "at '/envoy/timeouts/message': got number, want string", false},
		{"duration without unit", []string{"--set-string", "envoy.timeouts.streamIdle=15m"}, "at '/envoy/timeouts/streamIdle'", false},
		{"buffer over the gRPC limit", []string{"--set", "envoy.bufferLimitBytes=104857600"}, "at '/envoy/bufferLimitBytes': maximum", false},
		{"zero drain timeout", []string{"--set", "tollgate.drainTimeoutSeconds=0"}, "at '/tollgate/drainTimeoutSeconds': minimum", false},
		{"grace period too short", []string{"--set", "terminationGracePeriodSeconds=30"}, "terminationGracePeriodSeconds (30) must be greater", true},
		{"boolean as string", []string{"--set-string", "tls.enabled=yes"}, "at '/tls/enabled': got string, want boolean", false},
		{"config version", []string{"--set", "routing.config.version=2"}, "at '/routing/config/version'", false},
		{"key hashes in the ConfigMap", []string{"--set", "routing.config.keys[0].id=a", "--set", "routing.config.keys[0].sha256=00"}, "at '/routing/config/keys': false schema", false},
		{"key hashes in the policy ConfigMap", []string{"--set", "policy.config.keys[0].id=a"}, "at '/policy/config/keys': false schema", false},
		{"provider without url", []string{"--set", "routing.config.providers[0].name=openai", "--set", "routing.config.providers[0].cluster=azure"}, `provider "openai" needs a url`, true},
		{"provider clusters as values", []string{"--set-json", `envoy.providers=[{"name":"openai","host":"a.example","port":443,"tls":true,"http2":true}]`}, "additional properties 'providers' not allowed", false},
		{"port clash", []string{"--set", "envoy.port=9090"}, "envoy.port and tollgate.adminPort are both port 9090", true},
		{"loopback port clash", []string{"--set", "tollgate.transport=tcp", "--set", "tollgate.grpcPort=9901"}, "envoy.adminPort and tollgate.grpcPort are both port 9901", true},
		{"redis url and Secret", []string{"--set", "redis.url=redis://r:6379", "--set", "redis.existingSecret=r"}, "at '/redis'", false},
		{"redis url scheme", []string{"--set", "redis.url=http://r:6379"}, "at '/redis/url'", false},
		{"both PDB bounds", []string{"--set", "podDisruptionBudget.minAvailable=1"}, "at '/podDisruptionBudget'", false},
		{"dev key without key", []string{"--set", "devMode.enabled=true", "--set", "devMode.keys[0].id=a"}, "missing property 'key'", false},
		{"bad image digest", []string{"--set", "image.digest=latest"}, "at '/image/digest'", false},
		{"bad log level", []string{"--set", "tollgate.logLevel=verbose"}, "at '/tollgate/logLevel'", false},
		{"service type", []string{"--set", "service.type=ExternalName"}, "at '/service/type'", false},
		{"sqlite ledger with two replicas", []string{"--set", "ledger.enabled=true"}, "ledger.backend sqlite keeps the ledger in one file", true},
		{"sqlite ledger with autoscaling", []string{"--set", "ledger.enabled=true", "--set", "replicaCount=1", "--set", "autoscaling.enabled=true"}, "ledger.backend sqlite keeps the ledger in one file", true},
		{"postgres ledger without a DSN Secret", []string{"--set", "ledger.enabled=true", "--set", "ledger.backend=postgres"}, "at '/ledger/postgres/existingSecret': minLength", false},
		{"unknown ledger backend", []string{"--set", "ledger.backend=mysql"}, "at '/ledger/backend'", false},
		{"retention of zero days", []string{"--set", "ledger.retentionDays=0"}, "at '/ledger/retentionDays': minimum", false},
		{"unknown admin key", []string{"--set", "admin.token=x"}, "additional properties 'token' not allowed", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := template(t, helm, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("helm template %v: error %v, want one containing %q", c.args, err, c.want)
			}
			lintArgs := append([]string{"lint", chartDir, "--kube-version", kubeVersion}, c.args...)
			stdout, stderr, err := runHelm(t, helm, lintArgs...)
			switch {
			case c.templateCheck && (!strings.Contains(stderr, "[INFO] Fail: ") || !strings.Contains(stderr, c.want)):
				t.Errorf("helm lint %v does not report the failed check:\n%s%s", c.args, stdout, stderr)
			case !c.templateCheck && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("helm lint %v: error %v, want one containing %q", c.args, err, c.want)
			}
		})
	}
}

// TestRoutingEditsDoNotRollPods: tollgate hot-reloads the routing and policy ConfigMaps and the Secrets, so
// changing them must leave the pod template alone; Envoy reads its bootstrap once, so changing it must
// change the pod template (its checksum annotation) and roll the pods.
func TestRoutingEditsDoNotRollPods(t *testing.T) {
	helm := helmBinary(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	routingEdit := write("routing.yaml", `
routing:
  config:
    version: 1
    providers:
      - name: openai
        schema: openai
        url: https://api.openai.com
        credential:
          header: authorization
          prefix: "Bearer "
          source: {file: /etc/tollgate/credentials/OPENAI_API_KEY}
        models: [gpt-4.1]
        direct_models: any
    models:
      - {name: smart-default, provider: openai, model: gpt-4.1}
`)
	dev := filepath.Join(chartDir, "ci", "dev-values.yaml")

	base := mustRender(t, helm)
	edited := mustRender(t, helm, "-f", routingEdit)
	if reflect.DeepEqual(base.configMaps[fullname+"-routing"].Data, edited.configMaps[fullname+"-routing"].Data) {
		t.Fatal("the routing edit did not change the routing ConfigMap")
	}
	if !reflect.DeepEqual(base.deployment.Spec.Template, edited.deployment.Spec.Template) {
		t.Error("a routing ConfigMap edit changes the pod template: pods would restart instead of hot-reloading")
	}

	devEdited := mustRender(t, helm, "-f", dev, "--set", "devMode.keys[0].id=other", "--set", "devMode.keys[0].key=tg_other",
		"--set", "devMode.credentials.OPENAI_API_KEY=sk-rotated", "--set", "tls.existingSecret=gw-tls")
	// The TLS Secret is only swapped to keep the self-signed certificate (random per render) out of the way.
	devBaseTLS := mustRender(t, helm, "-f", dev, "--set", "tls.existingSecret=gw-tls")
	if !reflect.DeepEqual(devBaseTLS.deployment.Spec.Template, devEdited.deployment.Spec.Template) {
		t.Error("a key or credential change changes the pod template: pods would restart instead of hot-reloading")
	}

	envoyEdit := mustRender(t, helm, "--set", "envoy.timeouts.message=11s")
	const sum = "checksum/envoy-bootstrap"
	if base.deployment.Spec.Template.Annotations[sum] == "" {
		t.Fatalf("pod template has no %s annotation", sum)
	}
	if base.deployment.Spec.Template.Annotations[sum] == envoyEdit.deployment.Spec.Template.Annotations[sum] {
		t.Error("an Envoy bootstrap change does not change the pod template's checksum: Envoy would keep the old bootstrap")
	}
	for k := range base.deployment.Spec.Template.Annotations {
		if strings.HasPrefix(k, "checksum/") && k != sum {
			t.Errorf("unexpected checksum annotation %s: only the Envoy bootstrap needs a restart", k)
		}
	}
}

// TestConfigMapsAreEditable: kubectl edit shows ConfigMap data as block text only when no line ends in
// blanks; otherwise it falls back to one long quoted string.
func TestConfigMapsAreEditable(t *testing.T) {
	helm := helmBinary(t)
	for _, args := range [][]string{nil, {"-f", filepath.Join(chartDir, "ci", "full-values.yaml")}} {
		r := mustRender(t, helm, args...)
		for name, cm := range r.configMaps {
			for key, val := range cm.Data {
				for i, line := range strings.Split(val, "\n") {
					if strings.TrimRight(line, " \t") != line {
						t.Errorf("ConfigMap %s key %s line %d ends in blanks: %q", name, key, i+1, line)
					}
				}
			}
		}
	}
}

// TestNotes: devMode must print a loud warning; production installs list the Secrets to create and how to
// edit the routing. helm template does not render NOTES.txt (and helm install --dry-run needs a cluster),
// so a copy of the chart renders it into a ConfigMap.
func TestNotes(t *testing.T) {
	helm := helmBinary(t)
	chart := chartRenderingNotes(t)
	notes := func(args ...string) string {
		t.Helper()
		base := []string{"template", releaseName, chart, "--namespace", namespace, "--kube-version", kubeVersion, "--show-only", "templates/zz-notes.yaml"}
		out, _, err := runHelm(t, helm, append(base, args...)...)
		if err != nil {
			t.Fatalf("render notes: %v", err)
		}
		var cm struct {
			Data map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal([]byte(out), &cm); err != nil {
			t.Fatalf("notes ConfigMap: %v", err)
		}
		return cm.Data["notes"]
	}
	dev := notes("-f", filepath.Join(chartDir, "ci", "dev-values.yaml"))
	if !strings.Contains(dev, "WARNING: devMode IS ENABLED") || !strings.Contains(dev, "self-signed") {
		t.Errorf("devMode notes lack the warning:\n%s", dev)
	}
	prod := notes()
	if strings.Contains(prod, "WARNING") {
		t.Error("default notes carry the devMode warning")
	}
	for _, want := range []string{"create secret generic tollgate-keys", "create secret generic tollgate-provider-credentials",
		"edit configmap gw-tollgate-routing", `tollgate_config_reload_total{result="success"|"error"}`} {
		if !strings.Contains(prod, want) {
			t.Errorf("default notes lack %q:\n%s", want, prod)
		}
	}
}

// chartRenderingNotes copies the chart to a temp dir and adds templates/zz-notes.yaml, a ConfigMap whose
// data.notes is NOTES.txt rendered with the same values.
func chartRenderingNotes(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "tollgate")
	if err := os.CopyFS(dst, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(chartDir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := `{{- define "test.notes" -}}` + string(notes) + `{{- end -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: |
{{ include "test.notes" . | indent 4 }}
`
	if err := os.WriteFile(filepath.Join(dst, "templates", "zz-notes.yaml"), []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}
