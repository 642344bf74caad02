package helm

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-ai/tollgate/envoy/validate"
	"github.com/tollgate-ai/tollgate/internal/xds"
)

// parseBootstrap decodes a bootstrap the way envoy/validate does. Importing validate links in the
// extension types, so the typed_config Anys resolve.
func parseBootstrap(t *testing.T, data []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatalf("bootstrap YAML: %v", err)
	}
	bs := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, bs); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return bs
}

func findCluster(t *testing.T, bs *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	t.Helper()
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	t.Fatalf("Envoy bootstrap has no cluster %q", name)
	return nil
}

func findListener(t *testing.T, bs *bootstrapv3.Bootstrap, name string) *listenerv3.Listener {
	t.Helper()
	for _, l := range bs.GetStaticResources().GetListeners() {
		if l.GetName() == name {
			return l
		}
	}
	t.Fatalf("Envoy bootstrap has no listener %q", name)
	return nil
}

// checkBootstrap validates the rendered bootstrap strictly, compares it with the shipped one, and checks
// it against the Envoy container: ports, admin address, TLS files.
func checkBootstrap(t *testing.T, r *release, c chartCase) *bootstrapv3.Bootstrap {
	t.Helper()
	cm := r.configMaps[fullname+"-envoy"]
	if cm == nil {
		t.Fatalf("ConfigMap %s-envoy not rendered", fullname)
	}
	data := []byte(cm.Data["envoy.yaml"])
	for _, p := range validate.Bootstrap(data) {
		t.Errorf("rendered Envoy bootstrap: %s", p)
	}
	bs := parseBootstrap(t, data)
	envoy := r.container(t, "envoy")

	if got := flagValue(t, envoy.Args, "--config-path"); path.Base(got) != "envoy.yaml" || mountContaining(envoy, got) == nil {
		t.Errorf("envoy --config-path %s is not the mounted bootstrap", got)
	} else if v := r.volume(mountContaining(envoy, got).Name); v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Errorf("envoy --config-path %s is not from ConfigMap %s", got, cm.Name)
	}

	admin := bs.GetAdmin().GetAddress().GetSocketAddress()
	if ip := net.ParseIP(admin.GetAddress()); ip == nil || !ip.IsLoopback() {
		t.Errorf("Envoy admin bound to %q, want loopback", admin.GetAddress())
	}
	for _, p := range envoy.Ports {
		if p.ContainerPort == int32(admin.GetPortValue()) {
			t.Errorf("Envoy admin port %d is exposed as a container port", p.ContainerPort)
		}
	}

	portNamed := func(name string) int32 {
		for _, p := range envoy.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
		t.Fatalf("envoy container has no port %q", name)
		return 0
	}
	gw := findListener(t, bs, "tollgate")
	listenerPort := map[bool]string{true: "https", false: "http"}[c.tls]
	if got, want := int32(gw.GetAddress().GetSocketAddress().GetPortValue()), portNamed(listenerPort); got != want {
		t.Errorf("gateway listener port %d, container port %s = %d", got, listenerPort, want)
	}
	health := findListener(t, bs, "health")
	if got, want := int32(health.GetAddress().GetSocketAddress().GetPortValue()), portNamed("envoy-health"); got != want {
		t.Errorf("health listener port %d, container port envoy-health = %d", got, want)
	}
	checkHealthListener(t, bs, health, admin.GetPortValue())
	if p := envoy.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.StrVal != "envoy-health" {
		t.Errorf("envoy readiness probe %+v, want GET /ready on envoy-health", p)
	}

	checkListenerTLS(t, r, gw, c.tls)
	if c.mirrorsShipped {
		compareWithShipped(t, bs, c)
	}
	return bs
}

// checkHealthListener: the health listener forwards only /ready and /stats/prometheus, to the admin.
func checkHealthListener(t *testing.T, bs *bootstrapv3.Bootstrap, l *listenerv3.Listener, adminPort uint32) {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{}
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatalf("health listener: %v", err)
	}
	if n := len(hcm.GetHttpFilters()); n != 1 {
		t.Errorf("health listener has %d HTTP filters, want only the router (no ext_proc)", n)
	}
	paths := map[string]bool{}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			if cl := rt.GetRoute().GetCluster(); cl != "" {
				if cl != "envoy_admin" || rt.GetMatch().GetPath() == "" {
					t.Errorf("health route %s: exact path %q to %q, want an exact path to envoy_admin", rt.GetName(), rt.GetMatch().GetPath(), cl)
				}
				paths[rt.GetMatch().GetPath()] = true
			} else if rt.GetDirectResponse().GetStatus() != 404 {
				t.Errorf("health route %s neither forwards to the admin nor answers 404", rt.GetName())
			}
		}
	}
	if len(paths) != 2 || !paths["/ready"] || !paths["/stats/prometheus"] {
		t.Errorf("health listener forwards %v, want exactly /ready and /stats/prometheus", paths)
	}
	sa := findCluster(t, bs, "envoy_admin").GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != adminPort {
		t.Errorf("envoy_admin cluster targets %s:%d, want the admin 127.0.0.1:%d", sa.GetAddress(), sa.GetPortValue(), adminPort)
	}
}

// checkListenerTLS: with TLS the certificate files come from the mounted TLS Secret, under the names the
// Secret volume gives its tls.crt and tls.key.
func checkListenerTLS(t *testing.T, r *release, l *listenerv3.Listener, want bool) {
	t.Helper()
	ts := l.GetFilterChains()[0].GetTransportSocket()
	if (ts != nil) != want {
		t.Fatalf("gateway listener TLS = %v, want %v", ts != nil, want)
	}
	if !want {
		return
	}
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		t.Fatalf("listener transport socket: %v", err)
	}
	certs := ctx.GetCommonTlsContext().GetTlsCertificates()
	if len(certs) != 1 {
		t.Fatalf("listener has %d certificates, want 1", len(certs))
	}
	envoy := r.container(t, "envoy")
	for secretKey, file := range map[string]string{"tls.crt": certs[0].GetCertificateChain().GetFilename(), "tls.key": certs[0].GetPrivateKey().GetFilename()} {
		m := mountContaining(envoy, file)
		if m == nil {
			t.Errorf("TLS file %s is in no mounted volume", file)
			continue
		}
		v := r.volume(m.Name)
		if v.Secret == nil {
			t.Errorf("TLS file %s is not from a Secret", file)
			continue
		}
		found := false
		for _, it := range v.Secret.Items {
			found = found || (it.Key == secretKey && it.Path == path.Base(file))
		}
		if !found {
			t.Errorf("TLS Secret volume does not map %s to %s", secretKey, path.Base(file))
		}
		if s := r.secrets[v.Secret.SecretName]; s != nil && (s.Type != "kubernetes.io/tls" || len(s.Data[secretKey]) == 0) {
			t.Errorf("rendered TLS Secret %s: type %s, %s %d bytes", s.Name, s.Type, secretKey, len(s.Data[secretKey]))
		}
	}
}

// compareWithShipped: the rendered bootstrap is what `tollgate envoy bootstrap` prints (xds.Bootstrap, the
// code behind envoy/envoy-ads.yaml; with TLS, --tls) plus the health listener and envoy_admin cluster; only
// the listener address and the ext_proc and xDS addresses may differ, and those are checked elsewhere.
func compareWithShipped(t *testing.T, rendered *bootstrapv3.Bootstrap, c chartCase) {
	t.Helper()
	opts := xds.BootstrapOptions{Command: "tollgate envoy bootstrap"}
	if c.tls {
		opts.TLS = &xds.ListenerTLS{Cert: xds.DefaultTLSCert, Key: xds.DefaultTLSKey}
	}
	data, err := xds.Bootstrap(opts)
	if err != nil {
		t.Fatal(err)
	}
	shipped := parseBootstrap(t, data)
	got := proto.Clone(rendered).(*bootstrapv3.Bootstrap)

	sr := got.GetStaticResources()
	sr.Listeners = filterOut(sr.Listeners, func(l *listenerv3.Listener) bool { return l.GetName() == "health" })
	sr.Clusters = filterOut(sr.Clusters, func(c *clusterv3.Cluster) bool { return c.GetName() == "envoy_admin" })
	if len(sr.Listeners) != 1 {
		t.Fatalf("rendered bootstrap has listeners %v besides health", sr.Listeners)
	}
	sr.Listeners[0].Address = shipped.GetStaticResources().GetListeners()[0].GetAddress()
	for _, name := range []string{"tollgate_ext_proc", "tollgate_xds"} {
		findCluster(t, got, name).LoadAssignment = findCluster(t, shipped, name).GetLoadAssignment()
	}

	if !proto.Equal(got, shipped) {
		t.Errorf("rendered bootstrap differs from `tollgate envoy bootstrap` beyond the listener, ext_proc and xDS addresses:\n%s",
			lineDiff(protojson.Format(shipped), protojson.Format(got)))
	}
}

func filterOut[T any](s []T, drop func(T) bool) []T {
	var out []T
	for _, v := range s {
		if !drop(v) {
			out = append(out, v)
		}
	}
	return out
}

// lineDiff shows the first lines where want and got differ, for failure messages.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  shipped:  %s\n  rendered: %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// TestRenderedBootstrapFollowsValues: timeouts, buffer limits and ports come from values; provider
// clusters do not exist in the bootstrap at all, they come over ADS.
func TestRenderedBootstrapFollowsValues(t *testing.T) {
	helm := helmBinary(t)
	r := mustRender(t, helm,
		"--set", "envoy.timeouts.message=12s", "--set", "envoy.timeouts.maxMessage=90s",
		"--set", "envoy.timeouts.streamIdle=1200s", "--set", "envoy.bufferLimitBytes=10485760",
		"--set", "envoy.port=10000", "--set", "envoy.adminPort=19000", "--set", "envoy.healthPort=19001",
		"--set", "tollgate.transport=tcp", "--set", "tollgate.grpcPort=50099",
		"-f", filepath.Join(chartDir, "ci", "full-values.yaml"),
	)
	c := chartCase{unix: false}
	bs := checkBootstrap(t, r, c)
	checkExtProcTarget(t, r, bs, c)
	raw := r.configMaps[fullname+"-envoy"].Data["envoy.yaml"]
	for _, want := range []string{"message_timeout: 12s", "max_message_timeout: 90s", "stream_idle_timeout: 1200s",
		"per_connection_buffer_limit_bytes: 10485760", "port_value: 19000", "port_value: 50099"} {
		if !strings.Contains(raw, want) {
			t.Errorf("rendered bootstrap lacks %q", want)
		}
	}
	if strings.Contains(raw, "52428800") {
		t.Error("rendered bootstrap still has the default buffer limit")
	}
	var names []string
	for _, cl := range bs.GetStaticResources().GetClusters() {
		names = append(names, cl.GetName())
	}
	if strings.Join(names, ",") != "tollgate_ext_proc,envoy_admin,tollgate_xds" {
		t.Errorf("static clusters %v, want only the chart's own (providers come over ADS)", names)
	}
	if bs.GetDynamicResources().GetCdsConfig().GetAds() == nil || bs.GetDynamicResources().GetAdsConfig() == nil {
		t.Error("the rendered bootstrap does not take clusters over ADS")
	}
}

// TestEnvoyPreStop runs the rendered preStop script against a fake Envoy admin: it must POST
// /drain_listeners?graceful&skip_exit, then poll the gateway's active requests until they reach 0.
func TestEnvoyPreStop(t *testing.T) {
	helm := helmBinary(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found")
	}
	r := mustRender(t, helm)
	script := filepath.Join(t.TempDir(), "prestop.sh")
	if err := os.WriteFile(script, []byte(r.configMaps[fullname+"-envoy"].Data["prestop.sh"]), 0o600); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var calls []string
	active := 2 // in-flight requests, one fewer per stats poll after the drain
	drained := false
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, req.Method+" "+req.URL.RequestURI())
		switch {
		case req.Method == http.MethodPost && req.URL.Path == "/drain_listeners":
			drained = true
			fmt.Fprintln(w, "OK")
		case req.Method == http.MethodGet && req.URL.Path == "/stats":
			fmt.Fprintf(w, "http.health.downstream_rq_active: 1\nhttp.tollgate.downstream_rq_active: %d\nhttp.tollgate.downstream_rq_total: 7\n", active)
			if drained && active > 0 {
				active--
			}
		default:
			http.NotFound(w, req)
		}
	}))
	defer admin.Close()
	_, port, _ := net.SplitHostPort(admin.Listener.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bash, script, port, "0", "20").CombinedOutput()
	if err != nil {
		t.Fatalf("prestop.sh: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 2 || calls[0] != "POST /drain_listeners?graceful&skip_exit" {
		t.Fatalf("admin calls %q, want POST /drain_listeners?graceful&skip_exit first", calls)
	}
	polls := 0
	for _, c := range calls[1:] {
		if strings.HasPrefix(c, "GET /stats?") {
			polls++
		}
	}
	if active != 0 || polls != 3 {
		t.Errorf("script stopped after %d stats polls with %d requests active, want 3 polls ending at 0", polls, active)
	}
	if !strings.Contains(string(out), "no requests in flight") {
		t.Errorf("script output %q does not report the finished drain", out)
	}
}

// TestShippedScriptsAreExecutableText guards the preStop script against CRLF line endings and a missing
// shebang, which would break it inside the Envoy image.
func TestShippedScriptsAreExecutableText(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "files", "envoy-prestop.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "#!/bin/bash\n") || strings.Contains(string(data), "\r") {
		t.Error("files/envoy-prestop.sh must start with #!/bin/bash and use LF line endings")
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), "curl") && !strings.HasPrefix(strings.TrimSpace(sc.Text()), "#") {
			t.Errorf("line %d uses curl, which the Envoy image does not have", n)
		}
	}
}
