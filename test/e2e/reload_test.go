package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

// streamResult is a streaming chat call run in the background.
type streamResult struct {
	text string
	err  error
}

func streamInBackground(h *harness, model string) <-chan streamResult {
	out := make(chan streamResult, 1)
	go func() {
		stream := h.client.Chat.Completions.NewStreaming(context.Background(), chatParams(model))
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		r := streamResult{err: stream.Err()}
		if len(acc.Choices) > 0 {
			r.text = acc.Choices[0].Message.Content
		}
		out <- r
	}()
	return out
}

// holdNextResponse makes the provider hold its next response until release
// is closed, and waits until the request has reached it.
func holdNextResponse(t *testing.T, h *harness) chan struct{} {
	t.Helper()
	release := make(chan struct{})
	h.openai.Fail(fakeprovider.SlowFirstByte(release))
	return release
}

func waitProviderRequests(t *testing.T, h *harness, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10e9)
	defer cancel()
	if _, err := h.openai.WaitRequests(ctx, n); err != nil {
		t.Fatalf("provider did not receive %d requests: %v", n, err)
	}
}

func configWith(old, alias string) string {
	return strings.Replace(old, "\nmodels:\n", "\nmodels:\n  - {name: "+alias+", provider: openai, model: gpt-4o-mini}\n", 1)
}

func configWithout(old, alias string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(old, "\n") {
		if !strings.Contains(line, "{name: "+alias+",") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func TestHotReload(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("brand-new")); err == nil {
		t.Fatal("alias exists before it was configured")
	}

	h.writeConfig(configWith(gatewayConfig(), "brand-new"))
	h.waitReload(false)
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("brand-new")); err != nil {
		t.Fatalf("new alias after reload: %v", err)
	}

	// An invalid config is refused; the last good one stays in force.
	h.writeConfig("version: 1\nproviders:\n  - name: openai\n    schema: openai\n    cluster: openai\n    surprise: true\n")
	h.waitReload(true)
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("brand-new")); err != nil {
		t.Fatalf("last good config lost after an invalid edit: %v", err)
	}
	errors := counterValue(t, h, "tollgate_config_reload_total", "result", "error")
	if errors < 1 {
		t.Fatalf("invalid reload not counted: %v", errors)
	}
	if !strings.Contains(h.logs.String(), `surprise`) {
		t.Fatal("the rejected config's problem was not logged")
	}
}

func counterValue(t *testing.T, h *harness, name, label, value string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestKubeletSwapWhileStreaming reproduces the kubelet's ConfigMap update on
// disk while a stream is in flight: the stream finishes untouched under the
// snapshot it started with, and the next request sees the new routing.
func TestKubeletSwapWhileStreaming(t *testing.T) {
	h := newHarness(t, harnessOptions{kubelet: true})
	want := streamText(t, fixture(t, "openai/chat_stream.sse"))

	release := holdNextResponse(t, h)
	result := streamInBackground(h, "smart-default")
	waitProviderRequests(t, h, 1)

	h.kubeletUpdate(configWith(configWithout(gatewayConfig(), "smart-default"), "renamed-default"))
	h.waitReload(false)
	close(release)

	r := <-result
	if r.err != nil || r.text != want {
		t.Fatalf("in-flight stream across a reload: %v, text %q", r.err, r.text)
	}
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("renamed-default")); err != nil {
		t.Fatalf("new alias after the swap: %v", err)
	}
	var apiErr *openai.Error
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default")); !asAPIError(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("removed alias still routed: %v", err)
	}

	// A second swap, to be sure the watch survived the first one.
	h.kubeletUpdate(gatewayConfig())
	h.waitReload(false)
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
		t.Fatalf("after the second swap: %v", err)
	}
}

// TestDrain: on shutdown the gateway stops being ready, and a stream in
// flight still finishes.
func TestDrain(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	want := streamText(t, fixture(t, "openai/chat_stream.sse"))
	release := holdNextResponse(t, h)
	result := streamInBackground(h, "smart-default")
	waitProviderRequests(t, h, 1)

	admin := "http://" + h.gw.AdminAddr()
	done := make(chan struct{})
	go func() {
		h.gw.Shutdown(context.Background())
		close(done)
	}()
	<-h.gw.Draining()
	resp, err := http.Get(admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %d", resp.StatusCode)
	}
	close(release)
	if r := <-result; r.err != nil || r.text != want {
		t.Fatalf("in-flight stream during drain: %v, %q", r.err, r.text)
	}
	<-done
}

func TestAdminEndpoints(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	if _, err := h.client.Chat.Completions.New(context.Background(), chatParams("smart-default")); err != nil {
		t.Fatal(err)
	}
	h.waitRequestLogs(1)
	admin := "http://" + h.gw.AdminAddr()
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": `tollgate_requests_total{provider="openai",route="chat",status="200"} 1`,
	} {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = ioCopy(&b, resp)
		if resp.StatusCode != 200 || !strings.Contains(b.String(), want) {
			t.Errorf("%s: %d, want %q in\n%s", path, resp.StatusCode, want, b.String())
		}
	}
	for _, metric := range []string{"tollgate_extproc_processing_seconds_bucket", "tollgate_tokens_total", `tollgate_config_reload_total{result="success"}`} {
		resp, _ := http.Get(admin + "/metrics")
		var b strings.Builder
		_, _ = ioCopy(&b, resp)
		if !strings.Contains(b.String(), metric) {
			t.Errorf("metric %s missing", metric)
		}
	}
}
