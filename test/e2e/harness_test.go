package e2e

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate-ai/tollgate/internal/devfront"
	"github.com/tollgate-ai/tollgate/internal/gateway"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

const (
	gatewayKey      = "tg_e2e_Zq8rT2vW9xY4bN6mK1pL3sD5fG7hJ0aC" // tenant acme, tenant-scoped
	chatbotKey1     = "tg_e2eChatbot1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	chatbotKey2     = "tg_e2eChatbot2BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	globexKey       = "tg_e2eGlobexCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
	limitedKey      = "tg_e2eLimitedDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"
	expiredKey      = "tg_e2eExpiredEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE"
	disabledKey     = "tg_e2eDisabledFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
	providerSecret  = "sk-e2e-provider-secret-0123456789"
	acmeSecret      = "sk-e2e-acme-own-openai-key-987654"
	providerEnv     = "E2E_OPENAI_KEY"
	acmeEnv         = "E2E_ACME_OPENAI_KEY"
	anthropicSecret = "sk-ant-e2e-anthropic-secret-42"
	anthropicEnv    = "E2E_ANTHROPIC_KEY"
	agentID         = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
)

// allSecrets is every key and credential the suite uses; none may ever
// appear in a log line.
var allSecrets = []string{gatewayKey, chatbotKey1, chatbotKey2, globexKey, limitedKey, expiredKey, disabledKey, providerSecret, acmeSecret,
	rpmKey, budgetKey, streamKey, anthropicSecret, guardedKey, awsSecretKey, awsSessionToken}

// gatewayConfig is the routing config of every e2e gateway.
func gatewayConfig() string {
	return fmt.Sprintf(`version: 1
providers:
  - name: openai
    schema: openai
    cluster: openai
    base_path: /v1
    credential:
      header: authorization
      prefix: "Bearer "
      source: {env: %s}
    models: [gpt-4o-mini, o4-mini, text-embedding-3-small]
    direct_models: listed
  - name: anthropic
    schema: anthropic
    cluster: anthropic
    default_max_tokens: 1024
    credential:
      header: x-api-key
      source: {env: %s}
    models: [claude-sonnet-4-5]
    direct_models: listed
models:
  - {name: claude-default, provider: anthropic, model: claude-sonnet-4-5}
  - {name: smart-default, provider: openai, model: gpt-4o-mini}
  - {name: reasoning-default, provider: openai, model: o4-mini}
  - {name: embed-default, provider: openai, model: text-embedding-3-small}
tenants:
  - name: acme
    apps:
      - {name: chatbot, models: ["smart-*", embed-default], tier: gold, required_metadata: [workspace_id], require_agent_id: true}
      - {name: batch, models: ["openai/*"]}
    provider_credentials:
      - {provider: openai, source: {env: %s}}
  - name: globex
    apps:
      - {name: research}
keys:
  - {id: e2e-key, sha256: %s, tenant: acme}
  - {id: acme-chatbot-1, sha256: %s, tenant: acme, app: chatbot}
  - {id: acme-chatbot-2, sha256: %s, tenant: acme, app: chatbot}
  - {id: globex-key, sha256: %s, tenant: globex, tier: silver}
  - {id: limited, sha256: %s, tenant: acme, models: ["embed-*"]}
  - {id: expired, sha256: %s, tenant: acme, expires: "2020-01-01T00:00:00Z"}
  - {id: disabled, sha256: %s, tenant: acme, disabled: true}
`, providerEnv, anthropicEnv, acmeEnv, keys.Hash(gatewayKey), keys.Hash(chatbotKey1), keys.Hash(chatbotKey2), keys.Hash(globexKey),
		keys.Hash(limitedKey), keys.Hash(expiredKey), keys.Hash(disabledKey))
}

// logBuffer collects the gateway's JSON log lines and signals each write.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced on every write
}

func newLogBuffer() *logBuffer { return &logBuffer{written: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.written)
	l.written = make(chan struct{})
	return l.buf.Write(p)
}

func (l *logBuffer) next() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written
}

func (l *logBuffer) Sync() error { return nil }

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// seededIntN is a deterministic, goroutine-safe random source for weighted
// pools.
func seededIntN(seed uint64) func(int) int {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed))
	return func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return rng.IntN(n)
	}
}

// front is what the client talks to: the stand-in or a real Envoy.
type front interface {
	URL() string
	Close() error
}

type harness struct {
	t         *testing.T
	gw        *gateway.Gateway
	reg       *prometheus.Registry
	front     front
	openai    *fakeprovider.Server
	anthropic *fakeprovider.Server
	azure     *fakeprovider.Server
	bedrock   *fakeprovider.Server
	vertex    *fakeprovider.Server
	logs      *logBuffer
	cfgDir    string
	client    openai.Client
	basePath  string                         // the gateway's base_path; raw and the client's base URL go under it
	envoyLog  func() []devfront.AccessRecord // nil for real Envoy
	reloads   chan error                     // results of file-triggered reloads
	idle      chan time.Time                 // fires the stand-in's per-try idle timers
	edge      edgeTimers                     // stream idle and message timers of edge_test.go
	kubelet   int                            // generation of the kubelet-style volume, 0 if plain files
	ads       bool                           // providers by url, the stand-in on the ADS bootstrap
	standin   *devfront.Envoy                // the stand-in, nil for real Envoy
}

type harnessOptions struct {
	chunks   devfront.Chunker // response body chunking in the stand-in
	realPath string           // run real Envoy from this binary instead of the stand-in
	kubelet  bool             // lay the config directory out as a kubelet ConfigMap volume
	anyCred  bool             // the fake provider accepts any credential (BYOK tests inspect it)
	extra    string           // a second config file merged with the first (limits, more tenants)
	fallback bool             // run envoy/envoy-fallback.yaml and route its chain cluster to the fakes
	// ads declares the providers by url (the fakes' loopback addresses) and runs the stand-in
	// from the ADS bootstrap xds.Bootstrap renders, so clusters and routes come from the
	// gateway over ADS. The other Envoy options (fallback, azure, bedrock, vertex, edge) need
	// the static bootstraps and are ignored.
	ads     bool
	azure   bool        // add an Azure cluster (a copy of openai's) pointed at a fake Azure OpenAI
	edge    edgeOptions // Envoy failure cases (edge_test.go)
	bedrock bool        // add a Bedrock cluster (a copy of openai's) pointed at a fake Bedrock checking SigV4
	// vertex adds a Vertex AI cluster pointed at a fake Vertex that accepts this endpoint's access tokens.
	vertex *fakeprovider.TokenEndpoint

	// basePath sets the gateway's base_path and runs Envoy with the routes
	// internal/xds generates for it; the client's base URL goes under it.
	basePath string

	tracer trace.TracerProvider // the gateway's tracing; nil is off
	latest bool                 // OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, logs: newLogBuffer(), reg: prometheus.NewRegistry(), reloads: make(chan error, 64), idle: make(chan time.Time, 1)}
	var err error
	cred := providerSecret
	if o.anyCred {
		cred = ""
	}
	h.openai, err = fakeprovider.Start(fakeprovider.Options{Kind: fakeprovider.OpenAI, Credential: cred})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.openai.Close)
	h.anthropic, err = fakeprovider.Start(fakeprovider.Options{Kind: fakeprovider.Anthropic, Credential: anthropicSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.anthropic.Close)
	if o.azure {
		if h.azure, err = fakeprovider.Start(fakeprovider.Options{Kind: fakeprovider.Azure, Credential: providerSecret}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.azure.Close)
	}
	if o.bedrock {
		if h.bedrock, err = fakeprovider.Start(fakeprovider.Options{Kind: fakeprovider.Bedrock, AWS: e2eAWS}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.bedrock.Close)
	}
	if o.vertex != nil {
		if h.vertex, err = fakeprovider.Start(fakeprovider.Options{Kind: fakeprovider.Vertex, Tokens: o.vertex}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.vertex.Close)
	}

	h.cfgDir = t.TempDir()
	h.basePath = o.basePath
	h.ads = o.ads
	cfgText := h.config(gatewayConfig())
	if o.basePath != "" {
		cfgText += "base_path: " + o.basePath + "\n"
	}
	if o.kubelet {
		h.kubeletUpdate(cfgText)
	} else {
		h.writeConfig(cfgText)
	}
	if o.extra != "" {
		if err := os.WriteFile(filepath.Join(h.cfgDir, "extra.yaml"), []byte(o.extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), h.logs, zapcore.DebugLevel))
	h.gw, err = gateway.Start(context.Background(), gateway.Config{
		GRPCAddr:     "127.0.0.1:0",
		AdminAddr:    "127.0.0.1:0",
		ConfigPaths:  []string{h.cfgDir},
		DrainTimeout: 10 * time.Second,
		Logger:       log,
		LookupEnv: func(k string) (string, bool) {
			v, ok := map[string]string{providerEnv: providerSecret, acmeEnv: acmeSecret, anthropicEnv: anthropicSecret,
				awsKeyIDEnv: e2eAWS.AccessKeyID, awsSecretEnv: awsSecretKey, awsTokenEnv: awsSessionToken}[k]
			return v, ok
		},
		Registry: h.reg,
		OnReload: func(err error) { h.reloads <- err },
		IntN:     seededIntN(20261121),

		TracerProvider: o.tracer,
		LatestGenAI:    o.latest,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.gw.Shutdown(context.Background()) })
	t.Cleanup(h.scanLogs)

	if o.ads {
		h.startADSFront(o)
		h.client = h.newClient(gatewayKey)
		return h
	}
	file := "../../envoy/envoy.yaml"
	if o.fallback {
		file = "../../envoy/envoy-fallback.yaml"
	}
	bootstrap, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	clusters := map[string]string{"tollgate_ext_proc": h.gw.GRPCAddr(), "openai": h.openai.Addr(), "anthropic": h.anthropic.Addr()}
	if o.azure {
		bootstrap = withCluster(t, bootstrap, "openai", "azure_eastus", "tollgate-e2e.openai.azure.com")
		clusters["azure_eastus"] = h.azure.Addr()
	}
	if o.bedrock {
		bootstrap = withCluster(t, bootstrap, "openai", "bedrock", bedrockHost)
		clusters["bedrock"] = h.bedrock.Addr()
	}
	if o.vertex != nil {
		bootstrap = withCluster(t, bootstrap, "openai", "vertex", vertexHost)
		clusters["vertex"] = h.vertex.Addr()
	}
	if o.fallback {
		clusters["chain_smart_default/api.openai.com"] = h.openai.Addr()
		if o.bedrock { // the chain falls back to Bedrock instead of Anthropic
			bootstrap = withChainFallback(t, bootstrap, bedrockHost, "bedrock")
			clusters["chain_smart_default/"+bedrockHost] = h.bedrock.Addr()
		} else {
			clusters["chain_smart_default/api.anthropic.com"] = h.anthropic.Addr()
		}
	}
	if o.basePath != "" {
		bootstrap = withBasePathRoutes(t, bootstrap, o.basePath)
	}
	bootstrap = h.applyEdge(o.edge, bootstrap, clusters)
	if o.realPath != "" {
		h.front = startRealEnvoy(t, o.realPath, bootstrap, clusters)
	} else {
		e, err := devfront.Start(context.Background(), devfront.Options{
			Bootstrap: bootstrap, Clusters: clusters, ResponseChunks: o.chunks, NewTimer: h.newTimer,
		})
		if err != nil {
			t.Fatal(err)
		}
		h.front = e
		h.standin = e
		h.envoyLog = e.Log
	}
	t.Cleanup(func() {
		if err := h.front.Close(); err != nil {
			t.Error(err) // the stand-in reports its recovered handler panics here
		}
	})
	h.client = h.newClient(gatewayKey)
	return h
}

func (h *harness) newClient(key string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(h.front.URL() + h.basePath + "/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(30 * time.Second),
	}, opts...)...)
}

// writeConfig replaces the routing config the way an editor or a ConfigMap
// update would: a new file renamed over the old one.
func (h *harness) writeConfig(text string) {
	h.t.Helper()
	tmp := filepath.Join(h.cfgDir, ".tollgate.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(h.cfgDir, "tollgate.yaml")); err != nil {
		h.t.Fatal(err)
	}
}

// kubeletUpdate writes a new version of the config exactly as the kubelet
// updates a ConfigMap volume: the files go into a new hidden timestamped
// directory, a ..data_tmp symlink to it is renamed over ..data (the atomic
// step), the old directory is removed, and the visible name is a symlink
// into ..data that never changes itself.
func (h *harness) kubeletUpdate(text string) {
	h.t.Helper()
	h.kubelet++
	dir := fmt.Sprintf("..2026_11_21_10_00_%02d.%09d", h.kubelet, h.kubelet)
	must := func(err error) {
		h.t.Helper()
		if err != nil {
			h.t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(h.cfgDir, dir), 0o755))
	must(os.WriteFile(filepath.Join(h.cfgDir, dir, "tollgate.yaml"), []byte(text), 0o644))
	old, _ := os.Readlink(filepath.Join(h.cfgDir, "..data"))
	must(os.Symlink(dir, filepath.Join(h.cfgDir, "..data_tmp")))
	must(os.Rename(filepath.Join(h.cfgDir, "..data_tmp"), filepath.Join(h.cfgDir, "..data")))
	if h.kubelet == 1 {
		must(os.Symlink(filepath.Join("..data", "tollgate.yaml"), filepath.Join(h.cfgDir, "tollgate.yaml")))
	}
	if old != "" {
		must(os.RemoveAll(filepath.Join(h.cfgDir, old)))
	}
}

// waitReload waits for a file-triggered reload and returns its result.
// Editors and the kubelet may cause several events; wantErr selects which
// outcome to wait for.
func (h *harness) waitReload(wantErr bool) error {
	h.t.Helper()
	timeout := time.After(30 * time.Second) // a failure guard, not a synchronisation
	for {
		select {
		case err := <-h.reloads:
			if (err != nil) == wantErr {
				return err
			}
		case <-timeout:
			h.t.Fatalf("no reload with error=%v", wantErr)
		}
	}
}

// raw sends a request with net/http, for what an SDK would never send.
func (h *harness) raw(method, path, key, body string, hdr ...string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.front.URL()+h.basePath+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		h.t.Fatal(err)
	}
	return resp, b.Bytes()
}

// waitRequestLogs waits until the gateway has logged n finished requests: a
// request's line is written when Envoy ends its ext_proc stream, which can be
// after the client has read the last byte.
func (h *harness) waitRequestLogs(n int) []string {
	h.t.Helper()
	timeout := time.After(30 * time.Second) // a failure guard, not a synchronisation
	for {
		next := h.logs.next()
		if logs := h.requestLogs(); len(logs) >= n {
			return logs
		}
		select {
		case <-next:
		case <-timeout:
			h.t.Fatalf("want %d request log lines, got %d", n, len(h.requestLogs()))
		}
	}
}

// requestLogs returns the gateway's per-request log lines in the order the
// requests started. A line is written when Envoy ends the request's ext_proc
// stream, which can come after the client has already sent its next
// request, so the order of writing is not the order of the requests: sort by
// start (the line's time minus its latency, both in seconds).
func (h *harness) requestLogs() []string {
	var out []string
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"request"`) {
			out = append(out, line)
		}
	}
	start := func(line string) float64 {
		r := gjson.GetMany(line, "ts", "latency")
		return r[0].Float() - r[1].Float()
	}
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(start(a), start(b)) })
	return out
}

// newTimer drives the stand-in's timers: retry backoffs fire at once (their
// lengths are the stand-in's own tests' business), per-try idle timeouts
// fire only when a test calls fireIdleTimeout, and the rest are real.
func (h *harness) newTimer(kind devfront.TimerKind, d time.Duration) (<-chan time.Time, func() bool) {
	switch kind {
	case devfront.RetryBackoff:
		c := make(chan time.Time, 1)
		c <- time.Now()
		return c, func() bool { return true }
	case devfront.PerTryIdleTimeout:
		return h.idle, func() bool { return true }
	}
	if c, ok := h.edge.timer(kind); ok {
		return c, func() bool { return true }
	}
	tm := time.NewTimer(d)
	return tm.C, tm.Stop
}

// fireIdleTimeout expires the per-try idle timeout of the attempt waiting.
func (h *harness) fireIdleTimeout() { h.idle <- time.Now() }

// keyMaterial matches anything shaped like a gateway key.
var keyMaterial = regexp.MustCompile(`tg_[A-Za-z0-9]{16,}`)

// scanLogs fails the test if any key or credential, or anything shaped like
// a gateway key, reached the gateway's logs.
func (h *harness) scanLogs() {
	logs := h.logs.String()
	for _, s := range allSecrets {
		if strings.Contains(logs, s) {
			h.t.Errorf("secret material %q… in the gateway logs", s[:6])
		}
	}
	if m := keyMaterial.FindString(logs); m != "" {
		h.t.Errorf("key-shaped string %q… in the gateway logs", m[:6])
	}
}

// fronts runs fn against the stand-in and, when an envoy binary is on PATH,
// against real Envoy too.
func fronts(t *testing.T, o harnessOptions, fn func(t *testing.T, h *harness)) {
	t.Run("standin", func(t *testing.T) { fn(t, newHarness(t, o)) })
	t.Run("envoy", func(t *testing.T) {
		path, err := exec.LookPath("envoy")
		if err != nil {
			t.Skip("no envoy binary on PATH: the real-Envoy part of the e2e suite was skipped")
		}
		ro := o
		ro.realPath = path
		fn(t, newHarness(t, ro))
	})
}

// realEnvoy is a running envoy process.
type realEnvoy struct {
	url string
	cmd *exec.Cmd
}

func (r *realEnvoy) URL() string { return r.url }

func (r *realEnvoy) Close() error {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	return nil
}

func startRealEnvoy(t *testing.T, bin string, bootstrap []byte, clusters map[string]string) *realEnvoy {
	t.Helper()
	port := freePort(t)
	out, err := devfront.RewriteBootstrap(bootstrap, devfront.Rewrite{ListenerPort: port, Clusters: clusters, UpstreamHTTP1: true})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", file, "--base-id", fmt.Sprint(port), "-l", "warning")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &realEnvoy{url: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	// Wait for the listener: an external process gives no other signal. The
	// loop is bounded; each attempt is a real connection.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range 200 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return r
		}
		<-tick.C
	}
	r.Close()
	t.Fatal("envoy did not start listening")
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
