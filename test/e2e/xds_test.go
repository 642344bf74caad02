package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/devfront"
	"github.com/tollgate-ai/tollgate/internal/xds"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

// config turns a routing config of the suite into the one the harness
// runs: with ads, the providers are declared by url (the fakes' loopback
// addresses) instead of naming the static bootstrap's clusters.
func (h *harness) config(text string) string {
	if !h.ads {
		return text
	}
	for name, s := range map[string]*fakeprovider.Server{"openai": h.openai, "anthropic": h.anthropic} {
		text = strings.ReplaceAll(text, "    cluster: "+name+"\n", "    url: http://"+s.Addr()+"\n")
	}
	return text
}

// startADSFront runs the stand-in from the minimal ADS bootstrap, aimed at
// the gateway's gRPC address, and waits until the gateway's first snapshot
// is in force: no cluster address is overridden, they all come over ADS.
func (h *harness) startADSFront(o harnessOptions) {
	t := h.t
	bootstrap, err := xds.Bootstrap(xds.BootstrapOptions{ExtProc: h.gw.GRPCAddr(), Command: "e2e harness"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := devfront.Start(context.Background(), devfront.Options{Bootstrap: bootstrap, ResponseChunks: o.chunks, NewTimer: h.newTimer})
	if err != nil {
		t.Fatal(err)
	}
	h.front, h.standin, h.envoyLog = e, e, e.Log
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	h.waitXDSVersion()
}

// waitXDSVersion waits until the stand-in has applied the gateway's current
// snapshot, for both CDS and RDS, and returns its version.
func (h *harness) waitXDSVersion() string {
	h.t.Helper()
	_, version := h.gw.XDS().Current()
	if version == "" {
		h.t.Fatal("the gateway published no xDS snapshot")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a failure guard
	defer cancel()
	if err := h.standin.WaitApplied(ctx, version, version); err != nil {
		h.t.Fatalf("snapshot %s not applied by the stand-in: %v (status %+v)", version, err, h.standin.XDS())
	}
	return version
}

// TestXdsAddProviderWhileStreaming: a provider and an alias added to the
// config file serve through the stand-in without a restart, over a new
// CDS/RDS version on the same ADS stream, while a stream that started
// before the edit completes untouched.
func TestXdsAddProviderWhileStreaming(t *testing.T) {
	h := newHarness(t, harnessOptions{ads: true})
	local, err := fakeprovider.Start(fakeprovider.Options{Kind: fakeprovider.OpenAI, Credential: providerSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(local.Close)
	before := h.standin.XDS()
	want := streamText(t, fixture(t, "openai/chat_stream.sse"))

	release := holdNextResponse(t, h)
	result := streamInBackground(h, "smart-default")
	waitProviderRequests(t, h, 1)

	cfg := strings.Replace(h.config(gatewayConfig()), "\nmodels:\n", `
  - name: local
    schema: openai
    url: http://`+local.Addr()+`
    base_path: /v1
    credential: {header: authorization, prefix: "Bearer ", source: {env: `+providerEnv+`}}
    models: [llama-3]
    unpriced: allow
models:
  - {name: local-default, provider: local, model: llama-3}
`, 1)
	cfg = strings.Replace(cfg, `models: ["smart-*", embed-default]`, `models: ["smart-*", embed-default, local-default]`, 1)
	h.writeConfig(cfg)
	h.waitReload(false)
	r, _ := h.gw.XDS().Current()
	if !slices.Contains(r.ClusterNames(), "local") {
		t.Fatalf("clusters after the edit: %v", r.ClusterNames())
	}
	version := h.waitXDSVersion()
	if version == before.CDS.Applied || version == before.RDS.Applied {
		t.Fatalf("no new xDS version: %s before and after", version)
	}

	// The new alias serves while the old stream is still held open.
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("local-default")); err != nil {
		t.Fatalf("new alias through the stand-in: %v", err)
	}
	if n := len(local.Requests()); n != 1 {
		t.Fatalf("%d requests at the new provider, want 1", n)
	}
	if got := lastRequest(t, local); got.Path != "/v1/chat/completions" || gjson.GetBytes(got.Body, "model").Str != "llama-3" ||
		got.Header.Get("Authorization") != "Bearer "+providerSecret {
		t.Errorf("request at the new provider: %s %s", got.Path, got.Body)
	}

	close(release)
	if res := <-result; res.err != nil || res.text != want {
		t.Fatalf("in-flight stream across the xDS update: %v, text %q", res.err, res.text)
	}
	after := h.standin.XDS()
	if after.Streams != 1 || after.CDS.Nacks != 0 || after.RDS.Nacks != 0 || after.CDS.Updates <= before.CDS.Updates || after.RDS.Updates <= before.RDS.Updates {
		t.Errorf("xDS before %+v, after %+v: want one stream, no NACK, new CDS and RDS versions", before, after)
	}
}

// TestXdsRemoveProvider: once a provider (and its alias) leave the config,
// its cluster leaves CDS and new requests for it get the gateway's 404
// model_not_found in OpenAI's error format.
func TestXdsRemoveProvider(t *testing.T) {
	h := newHarness(t, harnessOptions{ads: true})
	if _, err := h.client.Chat.Completions.New(context.Background(), claudeParams()); err != nil {
		t.Fatalf("before the removal: %v", err)
	}
	var cfg strings.Builder
	skip := false
	for _, line := range strings.SplitAfter(h.config(gatewayConfig()), "\n") {
		switch {
		case strings.HasPrefix(line, "  - name: anthropic"):
			skip = true
		case skip && !strings.HasPrefix(line, "    "):
			skip = false
		}
		if !skip && !strings.Contains(line, "provider: anthropic") {
			cfg.WriteString(line)
		}
	}
	h.writeConfig(cfg.String())
	h.waitReload(false)
	h.waitXDSVersion()
	if r, _ := h.gw.XDS().Current(); slices.Contains(r.ClusterNames(), "anthropic") {
		t.Fatalf("the removed provider's cluster is still served: %v", r.ClusterNames())
	}

	for _, model := range []string{"claude-default", "anthropic/claude-sonnet-4-5"} {
		p := claudeParams()
		p.Model = model
		var apiErr *openai.Error
		_, err := h.client.Chat.Completions.New(context.Background(), p)
		if !asAPIError(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
			t.Errorf("%s after its provider was removed: %v", model, err)
		}
	}
	if n := len(h.anthropic.Requests()); n != 1 {
		t.Errorf("%d requests reached the removed provider, want the 1 before the removal", n)
	}
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
		t.Fatalf("the remaining provider: %v", err)
	}
}

// TestXdsInvalidConfig: a config that fails validation, in the routing
// config or only in the generated Envoy resources, changes nothing: the
// gateway publishes no version, the stand-in applies none, and requests
// are still served. The proof that nothing was sent is ordering: the next
// good config is the very next update the stand-in applies.
func TestXdsInvalidConfig(t *testing.T) {
	bad := map[string]func(h *harness) string{
		"unknown field": func(h *harness) string {
			return strings.Replace(h.config(gatewayConfig()), "    schema: openai\n", "    schema: openai\n    surprise: true\n", 1)
		},
		"bad url": func(h *harness) string {
			return strings.Replace(h.config(gatewayConfig()), "url: http://"+h.openai.Addr(), "url: ftp://"+h.openai.Addr(), 1)
		},
		// Valid routing, but no chain cluster can be generated: its members
		// speak different HTTP versions.
		"chain of mixed HTTP versions": func(h *harness) string {
			cfg := strings.Replace(h.config(gatewayConfig()), "    schema: anthropic\n", "    schema: anthropic\n    http_version: \"2\"\n", 1)
			return strings.Replace(cfg, "\nmodels:\n", `
models:
  - name: resilient
    fallback:
      targets:
        - {provider: openai, model: gpt-4o-mini}
        - {provider: anthropic, model: claude-sonnet-4-5}
`, 1)
		},
	}
	for name, config := range bad {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{ads: true})
			_, v1 := h.gw.XDS().Current()
			before := h.standin.XDS()

			h.writeConfig(config(h))
			if err := h.waitReload(true); err == nil {
				t.Fatal("the invalid config was accepted")
			}
			if _, v := h.gw.XDS().Current(); v != v1 {
				t.Fatalf("xDS version %s → %s after an invalid config", v1, v)
			}
			if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
				t.Fatalf("served after an invalid config: %v", err)
			}

			// A good edit of a cluster is the next version the stand-in applies.
			h.writeConfig(strings.Replace(h.config(gatewayConfig()), "    schema: openai\n", "    schema: openai\n    connect_timeout: 7s\n", 1))
			h.waitReload(false)
			v2 := h.waitXDSVersion()
			after := h.standin.XDS()
			if v2 == v1 || after.CDS.Updates != before.CDS.Updates+1 || after.RDS.Updates != before.RDS.Updates+1 ||
				after.CDS.Nacks != 0 || after.RDS.Nacks != 0 {
				t.Fatalf("xDS before %+v, after %+v: want exactly one new version, no NACK", before, after)
			}
		})
	}
}

// TestXdsFallbackChain: a fallback chain declared only in the gateway
// config, its members by url, gets its generated cluster and route over ADS
// and falls back to the second member when the first answers 5xx.
func TestXdsFallbackChain(t *testing.T) {
	const chain = `version: 1
models:
  - name: resilient
    fallback:
      targets:
        - {provider: openai, model: gpt-4o-mini}
        - {provider: anthropic, model: claude-sonnet-4-5}
`
	claude := gjson.GetBytes(fixture(t, "anthropic/messages_response.json"), "content.0.text").Str
	h := newHarness(t, harnessOptions{ads: true, extra: chain})
	r, _ := h.gw.XDS().Current()
	if !slices.Contains(r.ClusterNames(), "chain_resilient") {
		t.Fatalf("generated clusters %v", r.ClusterNames())
	}

	// The first member answers: the chain serves like a provider.
	resp, err := h.client.Chat.Completions.New(context.Background(), resilientParams())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content == claude || len(h.openai.Requests()) != 1 {
		t.Fatalf("healthy chain: answer %q, %d requests at the primary", resp.Choices[0].Message.Content, len(h.openai.Requests()))
	}

	// The first member fails with a 500: Envoy retries on the next priority.
	h.openai.Fail(fakeprovider.Status(500, ""))
	resp, err = h.client.Chat.Completions.New(context.Background(), resilientParams())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != claude {
		t.Fatalf("answer %q, want Anthropic's", resp.Choices[0].Message.Content)
	}
	if n := len(h.openai.Requests()); n != 2 {
		t.Fatalf("%d requests at the primary, want 2", n)
	}
	got := lastRequest(t, h.anthropic)
	if got.Path != "/v1/messages" || got.Header.Get("X-Api-Key") != anthropicSecret || got.Header.Get("Authorization") != "" ||
		gjson.GetBytes(got.Body, "model").Str != "claude-sonnet-4-5" {
		t.Errorf("fallback attempt: %s %s", got.Path, got.Body)
	}
	line := h.waitRequestLogs(2)[1]
	if gjson.Get(line, "provider").Str != "anthropic" || gjson.Get(line, "model").Str != "resilient" {
		t.Errorf("log %s", line)
	}
}
