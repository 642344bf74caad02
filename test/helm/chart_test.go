package helm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-ai/tollgate/internal/gateway"
	"github.com/tollgate-ai/tollgate/internal/xds"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// chartCase is one set of values and what it must produce.
type chartCase struct {
	name   string
	args   []string // helm template arguments
	values string   // extra values file content, applied after args
	// external names the Secrets the release mounts but does not render (the existingSecret values).
	external       []string
	tls            bool
	unix           bool
	devMode        bool
	redis          string // "", "value" or "secret"
	hpa            bool
	serviceMonitor bool
	networkPolicy  bool
	noPolicy       bool   // policy.config unset: no policy ConfigMap
	ledger         string // "", "sqlite" or "postgres"
	adminToken     bool   // admin.existingSecret set: the analytics API is on
	adminService   bool
	// mirrorsShipped: the bootstrap must equal envoy/envoy.yaml (envoy-tls.yaml with TLS) apart from the
	// listener address, the ext_proc address and the health listener (default providers only).
	mirrorsShipped bool
}

var defaultExternal = []string{"tollgate-keys", "tollgate-provider-credentials"}

// noCredentials is a routing config whose provider needs no credential (a local model server).
const noCredentials = `
routing:
  config:
    version: 1
    providers:
      - {name: local, schema: openai, url: 'http://ollama.llm.svc.cluster.local:11434', models: [llama3.2], direct_models: any, unpriced: allow}
    models:
      - {name: local-default, provider: local, model: llama3.2}
`

func chartCases() []chartCase {
	ci := func(name string) string { return filepath.Join(chartDir, "ci", name) }
	return []chartCase{
		{name: "default", external: defaultExternal, unix: true, mirrorsShipped: true},
		{name: "tcp", args: []string{"--set", "tollgate.transport=tcp"}, external: defaultExternal, mirrorsShipped: true},
		{name: "tls", args: []string{"--set", "tls.enabled=true", "--set", "tls.existingSecret=gw-tls"},
			external: append([]string{"gw-tls"}, defaultExternal...), tls: true, unix: true, mirrorsShipped: true},
		{name: "ci/tls-tcp", args: []string{"-f", ci("tls-tcp-values.yaml")},
			external: append([]string{"gw-tls"}, defaultExternal...), tls: true, mirrorsShipped: true},
		{name: "redis-url", args: []string{"--set", "redis.url=redis://redis.cache:6379/0"},
			external: defaultExternal, unix: true, redis: "value", mirrorsShipped: true},
		{name: "redis-secret", args: []string{"--set", "redis.existingSecret=gw-redis"},
			external: append([]string{"gw-redis"}, defaultExternal...), unix: true, redis: "secret", mirrorsShipped: true},
		{name: "hpa", args: []string{"--set", "autoscaling.enabled=true"}, external: defaultExternal, unix: true, hpa: true, mirrorsShipped: true},
		{name: "servicemonitor-networkpolicy", args: []string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true"},
			external: defaultExternal, unix: true, serviceMonitor: true, networkPolicy: true, mirrorsShipped: true},
		{name: "no-credentials", args: []string{"--set", "credentials.enabled=false"}, values: noCredentials,
			external: []string{"tollgate-keys"}, unix: true, mirrorsShipped: true},
		{name: "ci/dev", args: []string{"-f", ci("dev-values.yaml")}, tls: true, unix: true, devMode: true, mirrorsShipped: true},
		{name: "ci/full", args: []string{"-f", ci("full-values.yaml")}, external: append([]string{"gw-redis", "gw-ledger-dsn", "gw-admin", "gw-otlp-headers"}, defaultExternal...),
			unix: true, redis: "secret", hpa: true, serviceMonitor: true, networkPolicy: true, ledger: "postgres", adminToken: true, adminService: true},
		{name: "ledger-sqlite", args: []string{"--set", "ledger.enabled=true", "--set", "replicaCount=1", "--set", "admin.existingSecret=gw-admin",
			"--set", "admin.service.enabled=true"}, external: append([]string{"gw-admin"}, defaultExternal...), unix: true,
			ledger: "sqlite", adminToken: true, adminService: true, mirrorsShipped: true},
		{name: "ledger-sqlite-existing-claim", args: []string{"--set", "ledger.enabled=true", "--set", "replicaCount=1",
			"--set", "ledger.sqlite.existingClaim=usage-db"}, external: defaultExternal, unix: true, ledger: "sqlite", mirrorsShipped: true},
		{name: "admin-token-only", args: []string{"--set", "admin.existingSecret=gw-admin"}, external: append([]string{"gw-admin"}, defaultExternal...),
			unix: true, adminToken: true, mirrorsShipped: true},
		{name: "no-policy", args: []string{"--set", "policy.config=null"}, external: defaultExternal, unix: true, noPolicy: true, mirrorsShipped: true},
	}
}

// TestRender renders every case and checks the manifests against each other and against the case.
func TestRender(t *testing.T) {
	helm := helmBinary(t)
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.values != "" {
				f := filepath.Join(t.TempDir(), "values.yaml")
				if err := os.WriteFile(f, []byte(c.values), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(slices.Clone(args), "-f", f)
			}
			r := mustRender(t, helm, args...)
			bs := checkBootstrap(t, r, c)
			checkLabels(t, r)
			checkSelectors(t, r)
			checkPorts(t, r)
			checkVolumes(t, r, c)
			checkSecurityContext(t, r)
			checkExtProcTarget(t, r, bs, c)
			checkTermination(t, r)
			checkGatewayConfig(t, r, bs)
			checkOptional(t, r, c)
			checkLedger(t, r, c)
		})
	}
}

func podLabels(r *release) labels.Set { return labels.Set(r.deployment.Spec.Template.Labels) }

// selects reports whether a label selector is non-empty and matches the pod template's labels.
func selects(t *testing.T, sel *metav1.LabelSelector, pod labels.Set) bool {
	t.Helper()
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("bad selector %v: %v", sel, err)
	}
	return s.Matches(pod)
}

func checkLabels(t *testing.T, r *release) {
	t.Helper()
	for _, o := range r.objects {
		l := o.GetLabels()
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if l[k] == "" {
				t.Errorf("%T %s has no %s label", o, o.GetName(), k)
			}
		}
		if o.GetNamespace() != namespace {
			t.Errorf("%T %s namespace = %q, want %q", o, o.GetName(), o.GetNamespace(), namespace)
		}
	}
}

func checkSelectors(t *testing.T, r *release) {
	t.Helper()
	d := r.deployment
	pod := podLabels(r)
	if !selects(t, d.Spec.Selector, pod) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", d.Spec.Selector, pod)
	}
	for name, s := range r.services {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(pod) {
			t.Errorf("Service %s selector %v does not match the pod labels %v", name, s.Spec.Selector, pod)
		}
	}
	if r.pdb != nil && !selects(t, r.pdb.Spec.Selector, pod) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pod labels", r.pdb.Spec.Selector)
	}
	if np := r.networkPolicy; np != nil && !selects(t, &np.Spec.PodSelector, pod) {
		t.Errorf("NetworkPolicy podSelector %v does not match the pod labels", np.Spec.PodSelector)
	}
	if h := r.hpa; h != nil {
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
			t.Errorf("HPA targets %+v, want apps/v1 Deployment %s", ref, d.Name)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment sets replicas %d although an HPA manages it", *d.Spec.Replicas)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HPA min %v > max %d", h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
	} else if d.Spec.Replicas == nil {
		t.Error("Deployment has no replicas and no HPA")
	}
	if sm := r.serviceMonitor; sm != nil {
		var matched []*corev1.Service
		for _, s := range r.services {
			if selects(t, &sm.Spec.Selector, labels.Set(s.Labels)) {
				matched = append(matched, s)
			}
		}
		if len(matched) != 1 {
			t.Fatalf("ServiceMonitor selector %v matches %d Services, want 1", sm.Spec.Selector, len(matched))
		}
		if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, namespace) {
			t.Errorf("ServiceMonitor namespaceSelector %v does not include %s", sm.Spec.NamespaceSelector, namespace)
		}
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(matched[0].Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				t.Errorf("ServiceMonitor endpoint port %q is not a port of Service %s", ep.Port, matched[0].Name)
			}
		}
	}
}

// containerPort resolves a probe or Service target port against a container's ports.
func containerPort(c *corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

func checkPorts(t *testing.T, r *release) {
	t.Helper()
	pod := &r.deployment.Spec.Template.Spec
	seen := map[string]bool{}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		for _, cp := range c.Ports {
			key := fmt.Sprintf("%s/%d", cp.Protocol, cp.ContainerPort)
			if seen[key] || seen[cp.Name] {
				t.Errorf("container port %s (%s) declared twice in the pod", key, cp.Name)
			}
			seen[key], seen[cp.Name] = true, true
		}
		for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
			if p == nil {
				if kind != "startup" {
					t.Errorf("container %s has no %s probe", c.Name, kind)
				}
				continue
			}
			var port *intstr.IntOrString
			switch {
			case p.HTTPGet != nil:
				port = &p.HTTPGet.Port
			case p.TCPSocket != nil:
				port = &p.TCPSocket.Port
			case p.GRPC != nil:
				port = &intstr.IntOrString{Type: intstr.Int, IntVal: p.GRPC.Port}
			case p.Exec != nil:
				if len(p.Exec.Command) == 0 || !path.IsAbs(p.Exec.Command[0]) {
					t.Errorf("container %s %s exec probe %q: want an absolute command path", c.Name, kind, p.Exec.Command)
				}
			default:
				t.Errorf("container %s %s probe has no handler", c.Name, kind)
			}
			if port != nil {
				if _, ok := containerPort(c, *port); !ok {
					t.Errorf("container %s %s probe port %s is not one of its ports %v", c.Name, kind, port.String(), c.Ports)
				}
			}
		}
	}
	for name, s := range r.services {
		for _, sp := range s.Spec.Ports {
			found := false
			for i := range pod.Containers {
				if cp, ok := containerPort(&pod.Containers[i], sp.TargetPort); ok && cp.Protocol == sp.Protocol {
					found = true
				}
			}
			if !found {
				t.Errorf("Service %s port %s targets %s, which no container exposes", name, sp.Name, sp.TargetPort.String())
			}
		}
	}
	if np := r.networkPolicy; np != nil {
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				found := false
				for i := range pod.Containers {
					if _, ok := containerPort(&pod.Containers[i], *p.Port); ok {
						found = true
					}
				}
				if !found {
					t.Errorf("NetworkPolicy allows port %s, which no container exposes", p.Port.String())
				}
			}
		}
	}
}

func checkVolumes(t *testing.T, r *release, c chartCase) {
	t.Helper()
	pod := &r.deployment.Spec.Template.Spec
	used := map[string]bool{}
	for _, ctr := range pod.Containers {
		for _, m := range ctr.VolumeMounts {
			if r.volume(m.Name) == nil {
				t.Errorf("container %s mounts volume %q, which the pod does not define", ctr.Name, m.Name)
			}
			used[m.Name] = true
		}
	}
	secretOK := func(name, where string) {
		if r.secrets[name] == nil && !slices.Contains(c.external, name) {
			t.Errorf("%s references Secret %q, which is neither rendered nor an expected existingSecret %v", where, name, c.external)
		}
	}
	referenced := map[string]bool{}
	for _, v := range pod.Volumes {
		if !used[v.Name] {
			t.Errorf("volume %q is mounted by no container", v.Name)
		}
		switch {
		case v.ConfigMap != nil:
			referenced["cm/"+v.ConfigMap.Name] = true
			if r.configMaps[v.ConfigMap.Name] == nil {
				t.Errorf("volume %q references ConfigMap %q, which is not rendered", v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			referenced["secret/"+v.Secret.SecretName] = true
			secretOK(v.Secret.SecretName, "volume "+v.Name)
		}
	}
	for _, ctr := range pod.Containers {
		for _, e := range ctr.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				referenced["secret/"+e.ValueFrom.SecretKeyRef.Name] = true
				secretOK(e.ValueFrom.SecretKeyRef.Name, "env "+e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				t.Errorf("env %s references a ConfigMap key; the chart renders none for env", e.Name)
			}
		}
	}
	for name := range r.configMaps {
		if !referenced["cm/"+name] {
			t.Errorf("ConfigMap %s is rendered but not used by the Deployment", name)
		}
	}
	for name := range r.secrets {
		if !referenced["secret/"+name] {
			t.Errorf("Secret %s is rendered but not used by the Deployment", name)
		}
	}
	for _, ext := range c.external {
		if !referenced["secret/"+ext] {
			t.Errorf("expected existing Secret %s is not referenced", ext)
		}
	}
}

func checkSecurityContext(t *testing.T, r *release) {
	t.Helper()
	spec := &r.deployment.Spec.Template.Spec
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		t.Error("pod runs as uid 0")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("pod uses host namespaces")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("pod mounts a service account token it does not need")
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s has no securityContext", c.Name)
			continue
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s capabilities = %+v, want drop [ALL] and nothing added", c.Name, sc.Capabilities)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("container %s runs as uid 0", c.Name)
		}
		if sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s seccompProfile = %v", c.Name, sc.SeccompProfile.Type)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("container %s has no CPU/memory requests (the HPA needs them)", c.Name)
		}
	}
}

// checkExtProcTarget: Envoy's tollgate_ext_proc cluster must point at the address tollgate serves on, and
// the readiness probe must check that same address.
func checkExtProcTarget(t *testing.T, r *release, bs *bootstrapv3.Bootstrap, c chartCase) {
	t.Helper()
	tg, envoy := r.container(t, "tollgate"), r.container(t, "envoy")
	grpcAddr := flagValue(t, tg.Args, "--grpc-addr")
	eps := findCluster(t, bs, "tollgate_ext_proc").GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		t.Fatalf("tollgate_ext_proc: want exactly one endpoint, got %v", eps)
	}
	addr := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
	if pipe := addr.GetPipe(); pipe != nil {
		if !c.unix {
			t.Errorf("ext_proc over a Unix socket, want TCP")
		}
		if want := "unix://" + pipe.GetPath(); grpcAddr != want {
			t.Errorf("tollgate --grpc-addr %q, Envoy connects to %q", grpcAddr, want)
		}
		dir := path.Dir(pipe.GetPath())
		em, tm := mountAt(envoy, dir), mountAt(tg, dir)
		if em == nil || tm == nil || em.Name != tm.Name {
			t.Fatalf("socket directory %s is not one volume shared by both containers (envoy %v, tollgate %v)", dir, em, tm)
		}
		if v := r.volume(em.Name); v == nil || v.EmptyDir == nil || em.ReadOnly || tm.ReadOnly {
			t.Errorf("socket volume %q must be a writable emptyDir in both containers", em.Name)
		}
	} else {
		if c.unix {
			t.Errorf("ext_proc over TCP, want a Unix socket")
		}
		sa := addr.GetSocketAddress()
		if ip := net.ParseIP(sa.GetAddress()); ip == nil || !ip.IsLoopback() {
			t.Errorf("ext_proc address %q is not loopback", sa.GetAddress())
		}
		if want := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))); grpcAddr != want {
			t.Errorf("tollgate --grpc-addr %q, Envoy connects to %q", grpcAddr, want)
		}
		for _, p := range tg.Ports {
			if p.ContainerPort == int32(sa.GetPortValue()) {
				t.Errorf("the loopback ext_proc port %d is declared as a container port", p.ContainerPort)
			}
		}
	}
	probe := tg.ReadinessProbe
	if probe == nil || probe.Exec == nil || flagValue(t, probe.Exec.Command, "--grpc-addr") != grpcAddr || !slices.Contains(probe.Exec.Command, "health") {
		t.Errorf("tollgate readiness probe %v does not run `tollgate health --grpc-addr %s`", probe, grpcAddr)
	}
}

// mountAt returns the container's volume mount at exactly mountPath.
func mountAt(c *corev1.Container, mountPath string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if path.Clean(c.VolumeMounts[i].MountPath) == path.Clean(mountPath) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// mountContaining returns the container's volume mount that contains file.
func mountContaining(c *corev1.Container, file string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if path.Dir(path.Clean(file)) == path.Clean(c.VolumeMounts[i].MountPath) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// checkTermination: the grace period covers the preStop delay and tollgate's drain, and Envoy's drain
// settings agree with tollgate's.
func checkTermination(t *testing.T, r *release) {
	t.Helper()
	spec := r.deployment.Spec.Template.Spec
	tg, envoy := r.container(t, "tollgate"), r.container(t, "envoy")
	drain, err := time.ParseDuration(flagValue(t, tg.Args, "--drain-timeout"))
	if err != nil || drain <= 0 {
		t.Fatalf("tollgate --drain-timeout: %v (%v)", drain, err)
	}
	var delay time.Duration
	if tg.Lifecycle != nil && tg.Lifecycle.PreStop != nil {
		if tg.Lifecycle.PreStop.Sleep == nil {
			t.Fatalf("tollgate preStop is not a sleep action: %+v", tg.Lifecycle.PreStop)
		}
		delay = time.Duration(tg.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= drain+delay {
		t.Errorf("terminationGracePeriodSeconds %v <= preStop delay %v + drain timeout %v", grace, delay, drain)
	}

	if got := flagValue(t, envoy.Args, "--drain-time-s"); got != strconv.Itoa(int(drain.Seconds())) {
		t.Errorf("envoy --drain-time-s %s, tollgate --drain-timeout %v", got, drain)
	}
	if envoy.Lifecycle == nil || envoy.Lifecycle.PreStop == nil || envoy.Lifecycle.PreStop.Exec == nil {
		t.Fatal("envoy has no preStop exec hook")
	}
	cmd := envoy.Lifecycle.PreStop.Exec.Command
	if len(cmd) != 5 || cmd[0] != "/bin/bash" {
		t.Fatalf("envoy preStop = %q, want /bin/bash SCRIPT ADMIN_PORT DELAY DRAIN", cmd)
	}
	if cmd[3] != strconv.Itoa(int(delay.Seconds())) || cmd[4] != strconv.Itoa(int(drain.Seconds())) {
		t.Errorf("envoy preStop delay/drain %s/%s, tollgate preStop sleep %v and drain %v", cmd[3], cmd[4], delay, drain)
	}
	m := mountContaining(envoy, cmd[1])
	if m == nil {
		t.Fatalf("envoy preStop script %s is in no mounted volume", cmd[1])
	}
	if v := r.volume(m.Name); v == nil || v.ConfigMap == nil || r.configMaps[v.ConfigMap.Name].Data[path.Base(cmd[1])] == "" {
		t.Errorf("envoy preStop script %s is not in a rendered ConfigMap", cmd[1])
	}
}

// configDirs rebuilds every --config directory of the tollgate container in a temp dir from the rendered
// ConfigMap or Secret mounted there (an existing keys Secret becomes an empty key list).
func configDirs(t *testing.T, r *release) []string {
	t.Helper()
	tg := r.container(t, "tollgate")
	tmp := t.TempDir()
	var dirs []string
	for i, p := range flagValues(tg.Args, "--config") {
		m := mountAt(tg, p)
		if m == nil {
			t.Fatalf("--config %s is not a volume mount", p)
		}
		files := map[string]string{}
		switch v := r.volume(m.Name); {
		case v.ConfigMap != nil:
			maps.Copy(files, r.configMaps[v.ConfigMap.Name].Data)
		case v.Secret != nil && r.secrets[v.Secret.SecretName] != nil:
			s := r.secrets[v.Secret.SecretName]
			for k, b := range s.Data {
				files[k] = string(b)
			}
			maps.Copy(files, s.StringData)
		case v.Secret != nil:
			files["keys.yaml"] = "version: 1\nkeys: []\n" // stand-in for the operator's keys Secret
		default:
			t.Fatalf("--config %s: volume %s is neither a ConfigMap nor a Secret", p, m.Name)
		}
		dir := filepath.Join(tmp, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

// checkGatewayConfig loads the gateway configuration exactly as the pod would see it, with the same
// loader as `tollgate check`: every --config directory is rebuilt in a temp dir from the rendered
// ConfigMap or Secret mounted there (an existing keys Secret becomes an empty key list).
func checkGatewayConfig(t *testing.T, r *release, bs *bootstrapv3.Bootstrap) {
	t.Helper()
	tg := r.container(t, "tollgate")
	dirs := configDirs(t, r)
	cfg, err := config.Load(dirs...)
	var probs config.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			t.Errorf("gateway config: %s", p)
		}
		t.FailNow()
	} else if err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	if len(cfg.Providers) == 0 || len(cfg.Models) == 0 {
		t.Errorf("gateway config has %d providers and %d models", len(cfg.Providers), len(cfg.Models))
	}
	// What serve runs on top of loading (keys, prices for every routable model, limits, guardrails): a
	// configuration that loads but would not start must fail here, as `tollgate check` fails it.
	if err := gateway.Check(cfg, time.Now()); err != nil {
		t.Errorf("gateway config refused by serve: %v", err)
	}
	// Every cluster the routes name is served over ADS (none is externally managed: the chart's Envoy has
	// no other source), and the generated resources pass Envoy's strict validation.
	res, err := xds.Generate(cfg)
	if err != nil {
		t.Fatalf("generating the Envoy resources: %v", err)
	}
	for _, p := range xds.Validate(res) {
		t.Errorf("generated Envoy resources: %s", p)
	}
	if missing, err := xds.MissingClusters(res, []byte(r.configMaps[fullname+"-envoy"].Data["envoy.yaml"])); err != nil || len(missing) > 0 {
		t.Errorf("clusters neither in the bootstrap nor served over ADS: %v (%v)", missing, err)
	}
	for _, p := range cfg.Providers {
		if p.Credential != nil && p.Credential.Source.Env != "" {
			env := p.Credential.Source.Env
			if !slices.ContainsFunc(tg.Env, func(e corev1.EnvVar) bool { return e.Name == env }) && len(tg.EnvFrom) == 0 {
				t.Errorf("provider %s reads env %s, which the container does not set", p.Name, env)
			}
		}
	}
	// Every secret file the configuration names (provider and tenant credentials) is in a mounted Secret,
	// and, when the chart renders that Secret (devMode), is one of its keys.
	for _, f := range cfg.SecretFiles() {
		m := mountContaining(tg, f)
		if m == nil {
			t.Errorf("secret file %s is not in a mounted volume", f)
			continue
		}
		v := r.volume(m.Name)
		if v.Secret == nil {
			t.Errorf("secret file %s is not in a Secret volume", f)
		} else if s := r.secrets[v.Secret.SecretName]; s != nil {
			if _, ok := s.StringData[path.Base(f)]; !ok {
				t.Errorf("secret file %s: rendered Secret %s has no key %s", f, s.Name, path.Base(f))
			}
		}
	}
}

// checkOptional checks the case's switches took effect.
func checkOptional(t *testing.T, r *release, c chartCase) {
	t.Helper()
	present := func(what string, got, want bool) {
		t.Helper()
		if got != want {
			t.Errorf("%s rendered = %v, want %v", what, got, want)
		}
	}
	present("HorizontalPodAutoscaler", r.hpa != nil, c.hpa)
	present("ServiceMonitor", r.serviceMonitor != nil, c.serviceMonitor)
	present("metrics Service", r.services[fullname+"-metrics"] != nil, c.serviceMonitor)
	present("NetworkPolicy", r.networkPolicy != nil, c.networkPolicy)
	present("policy ConfigMap", r.configMaps[fullname+"-policy"] != nil, !c.noPolicy)
	present("PodDisruptionBudget", r.pdb != nil, true)
	present("ServiceAccount", r.serviceAccount != nil, true)
	present("dev keys Secret", r.secrets[fullname+"-dev-keys"] != nil, c.devMode)

	if svc := r.services[fullname]; svc == nil {
		t.Error("gateway Service not rendered")
	} else if want := map[bool]string{true: "https", false: "http"}[c.tls]; len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != want {
		t.Errorf("gateway Service ports %v, want one named %s", svc.Spec.Ports, want)
	}

	tg := r.container(t, "tollgate")
	var redis *corev1.EnvVar
	for i := range tg.Env {
		if tg.Env[i].Name == "TOLLGATE_REDIS_URL" {
			redis = &tg.Env[i]
		}
	}
	switch {
	case c.redis == "" && redis != nil:
		t.Errorf("TOLLGATE_REDIS_URL set: %+v", redis)
	case c.redis == "value" && (redis == nil || redis.Value == "" || redis.ValueFrom != nil):
		t.Errorf("TOLLGATE_REDIS_URL = %+v, want a plain value", redis)
	case c.redis == "secret" && (redis == nil || redis.ValueFrom == nil || redis.ValueFrom.SecretKeyRef == nil):
		t.Errorf("TOLLGATE_REDIS_URL = %+v, want a secretKeyRef", redis)
	}

	if c.devMode {
		s := r.secrets[fullname+"-dev-keys"]
		var keys struct {
			Version int `json:"version"`
			Keys    []struct {
				ID     string `json:"id"`
				SHA256 string `json:"sha256"`
				Tenant string `json:"tenant"`
			} `json:"keys"`
		}
		if err := yaml.UnmarshalStrict([]byte(s.StringData["keys.yaml"]), &keys); err != nil || keys.Version != 1 {
			t.Fatalf("dev keys.yaml (version %d): %v", keys.Version, err)
		}
		sum := sha256.Sum256([]byte("tg_dev_0123456789abcdefghijklmnopqrstuvwxyz"))
		if len(keys.Keys) != 1 || keys.Keys[0].SHA256 != hex.EncodeToString(sum[:]) || keys.Keys[0].Tenant != "default" {
			t.Errorf("dev keys = %+v, want the SHA-256 of the ci/dev-values.yaml key", keys.Keys)
		}
		if strings.Contains(s.StringData["keys.yaml"], "tg_dev_") {
			t.Error("dev keys Secret contains the clear-text key")
		}
		if c.tls && r.secrets[fullname+"-dev-tls"] == nil {
			t.Error("devMode with TLS and no tls.existingSecret must render a self-signed certificate Secret")
		}
	}
}

// checkLedger checks the ledger and admin values: the rendered configuration, the volumes, the SQLite claim,
// the update strategy and the admin Service.
func checkLedger(t *testing.T, r *release, c chartCase) {
	t.Helper()
	cm := r.configMaps[fullname+"-ledger"]
	if (cm != nil) != (c.ledger != "" || c.adminToken) {
		t.Fatalf("ledger ConfigMap rendered = %v, want %v", cm != nil, c.ledger != "" || c.adminToken)
	}
	var cfg struct {
		Ledger *struct {
			Backend       string `json:"backend"`
			RetentionDays int    `json:"retention_days"`
			SQLite        *struct {
				Path string `json:"path"`
			} `json:"sqlite"`
			Postgres *struct {
				DSN struct {
					File string `json:"file"`
				} `json:"dsn"`
			} `json:"postgres"`
		} `json:"ledger"`
		Admin *struct {
			Token struct {
				File string `json:"file"`
			} `json:"token"`
		} `json:"admin"`
		Version int `json:"version"`
	}
	if cm != nil {
		if err := yaml.UnmarshalStrict([]byte(cm.Data["ledger.yaml"]), &cfg); err != nil {
			t.Fatalf("ledger.yaml: %v", err)
		}
	}
	tg := r.container(t, "tollgate")
	switch c.ledger {
	case "":
		if cfg.Ledger != nil {
			t.Errorf("ledger configured: %+v", cfg.Ledger)
		}
	case "sqlite":
		if cfg.Ledger == nil || cfg.Ledger.Backend != "sqlite" || cfg.Ledger.SQLite == nil || cfg.Ledger.RetentionDays != 90 {
			t.Fatalf("ledger = %+v", cfg.Ledger)
		}
		m := mountContaining(tg, cfg.Ledger.SQLite.Path)
		if m == nil || m.ReadOnly {
			t.Fatalf("SQLite file %s is not on a writable mount", cfg.Ledger.SQLite.Path)
		}
		v := r.volume(m.Name)
		if v.PersistentVolumeClaim == nil {
			t.Fatalf("SQLite file %s is not on a PersistentVolumeClaim", cfg.Ledger.SQLite.Path)
		}
		claim := v.PersistentVolumeClaim.ClaimName
		if rendered := r.pvcs[claim] != nil; rendered == strings.Contains(strings.Join(c.args, " "), "existingClaim") {
			t.Errorf("claim %s rendered = %v", claim, rendered)
		}
		if r.deployment.Spec.Strategy.Type != "Recreate" {
			t.Errorf("SQLite ledger with strategy %q, want Recreate (one pod owns the volume)", r.deployment.Spec.Strategy.Type)
		}
	case "postgres":
		if cfg.Ledger == nil || cfg.Ledger.Backend != "postgres" || cfg.Ledger.Postgres == nil {
			t.Fatalf("ledger = %+v", cfg.Ledger)
		}
		if len(r.pvcs) != 0 {
			t.Error("a PostgreSQL ledger needs no claim")
		}
		for _, e := range tg.Env {
			if strings.Contains(strings.ToLower(e.Name), "dsn") {
				t.Errorf("the DSN must be a mounted file, not env %s", e.Name)
			}
		}
	}
	if c.adminToken != (cfg.Admin != nil) {
		t.Errorf("admin token configured = %v, want %v", cfg.Admin != nil, c.adminToken)
	}
	svc := r.services[fullname+"-admin"]
	if (svc != nil) != c.adminService {
		t.Fatalf("admin Service rendered = %v, want %v", svc != nil, c.adminService)
	}
	if svc != nil {
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.StrVal != "admin" || svc.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("admin Service %+v, want one ClusterIP port targeting admin", svc.Spec)
		}
		if gw := r.services[fullname]; gw != nil && slices.ContainsFunc(gw.Spec.Ports, func(p corev1.ServicePort) bool { return p.TargetPort.StrVal == "admin" }) {
			t.Error("the public Service exposes the admin port")
		}
	}
}
