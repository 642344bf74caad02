package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
	"github.com/tollgate-ai/tollgate/test/redistest"
)

const (
	cacheKey       = "tg_e2eCacheJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJJ"
	cacheKey2      = "tg_e2eCache2KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK"
	cacheOtherKey  = "tg_e2eCacheOtherLLLLLLLLLLLLLLLLLLLLLLLLLLLLL"
	cacheBudgetKey = "tg_e2eCacheBudgetMMMMMMMMMMMMMMMMMMMMMMMMMMMM"
)

// cacheOptions vary the cache test configuration.
type cacheOptions struct {
	strategy string // hash_strategy; "" is the default
	sizeMB   int    // max_cache_size_mb; 0 is the default
	redis    string // a file holding the URL of a Redis backend; "" is memory
	models   string // the cached app's model allowlist
	noKey    bool   // leave cacheKey out (revoked)
}

// cacheConfig is a second config file: a cache and two tenants whose app
// opts in.
func cacheConfig(o cacheOptions) string {
	backend := "backend: memory"
	if o.redis != "" {
		backend = "backend: redis\n  redis: {url: {file: " + o.redis + "}, admission_timeout: 200ms, max_retries: 0}"
	}
	var extra []string
	if o.strategy != "" {
		extra = append(extra, "  hash_strategy: "+o.strategy)
	}
	if o.sizeMB != 0 {
		extra = append(extra, fmt.Sprintf("  max_cache_size_mb: %d\n  max_entry_kb: 1024", o.sizeMB))
	}
	models := o.models
	if models == "" {
		models = `["*"]`
	}
	key1 := fmt.Sprintf("  - {id: cache-key, sha256: %s, tenant: cachers, app: cached}\n", keys.Hash(cacheKey))
	if o.noKey {
		key1 = ""
	}
	return fmt.Sprintf(`version: 1
cache:
  %s
%s
tenants:
  - name: cachers
    apps:
      - {name: cached, models: %s, cache: {enabled: true}}
  - name: othercache
    apps:
      - {name: cached, cache: {enabled: true}}
keys:
%s  - {id: cache-key-2, sha256: %s, tenant: cachers, app: cached}
  - {id: cache-other, sha256: %s, tenant: othercache, app: cached}
  - {id: cache-budget, sha256: %s, tenant: cachers, app: cached}
limits:
  budgets:
    - {scope: key, match: cache-budget, daily_usd: "0.0002"}
`, backend, strings.Join(extra, "\n"), models, key1, keys.Hash(cacheKey2), keys.Hash(cacheOtherKey), keys.Hash(cacheBudgetKey))
}

// writeExtra replaces the second config file as an editor would.
func (h *harness) writeExtra(text string) {
	h.t.Helper()
	tmp := filepath.Join(h.cfgDir, ".extra.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(h.cfgDir, "extra.yaml")); err != nil {
		h.t.Fatal(err)
	}
}

const cacheBody = `{"model":"smart-default","temperature":0,"messages":[{"role":"user","content":"In one sentence, what does an API gateway do?"}]}`

// cachedChat sends a deterministic chat request and returns the response.
func cachedChat(h *harness, key, body string, hdr ...string) (*http.Response, []byte) {
	h.t.Helper()
	return h.raw("POST", "/v1/chat/completions", key, body, hdr...)
}

func wantCache(t *testing.T, what string, r *http.Response, want string) {
	t.Helper()
	if r.StatusCode != 200 {
		t.Fatalf("%s: status %d", what, r.StatusCode)
	}
	if got := r.Header.Get("x-tollgate-cache"); got != want {
		t.Fatalf("%s: x-tollgate-cache %q, want %q", what, got, want)
	}
}

func TestCacheHit(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: cacheConfig(cacheOptions{})})
	r1, b1 := cachedChat(h, cacheKey, cacheBody)
	wantCache(t, "first", r1, "miss")
	// Key order and whitespace do not matter; another key of the tenant hits.
	r2, b2 := cachedChat(h, cacheKey2, `{"messages":[{"content":"In one sentence, what does an API gateway do?", "role":"user"}],  "temperature":0.0,"model":"smart-default"}`)
	wantCache(t, "second", r2, "hit")
	if string(b1) != string(b2) {
		t.Errorf("hit body differs:\n%s\n%s", b1, b2)
	}
	if r2.Header.Get("age") == "" || r2.Header.Get("x-tollgate-request-id") == "" {
		t.Errorf("hit headers: %v", r2.Header)
	}
	if n := len(h.openai.Requests()); n != 1 {
		t.Errorf("provider got %d requests, want 1", n)
	}
	logs := h.waitRequestLogs(2)
	if !strings.Contains(logs[1], `"cache":"hit"`) || !strings.Contains(logs[1], `"cache_saved_tokens":`) || !strings.Contains(logs[1], `"total_tokens":0`) {
		t.Errorf("hit log line: %s", logs[1])
	}

	// Streaming: the stored answer replayed as SSE, parsed by openai-go.
	var resp *http.Response
	c := h.newClient(cacheKey, option.WithResponseInto(&resp))
	p := openai.ChatCompletionNewParams{Model: "smart-default", Temperature: openai.Float(0),
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("In one sentence, what does an API gateway do?")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
	acc := streamChat(t, c, p)
	if got := resp.Header.Get("x-tollgate-cache"); got != "hit" {
		t.Errorf("stream: x-tollgate-cache %q", got)
	}
	var whole openai.ChatCompletion
	if err := whole.UnmarshalJSON(b1); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != whole.Choices[0].Message.Content || acc.Usage.TotalTokens != whole.Usage.TotalTokens {
		t.Errorf("stream replay %q (usage %d), want %q (%d)", acc.Choices[0].Message.Content, acc.Usage.TotalTokens,
			whole.Choices[0].Message.Content, whole.Usage.TotalTokens)
	}
	if n := len(h.openai.Requests()); n != 1 {
		t.Errorf("provider got %d requests, want 1", n)
	}

	// Another tenant never shares the entry.
	r3, _ := cachedChat(h, cacheOtherKey, cacheBody)
	wantCache(t, "other tenant", r3, "miss")

	// Opt-outs and non-deterministic requests bypass.
	for _, c := range []struct {
		name, body string
		hdr        []string
	}{
		{"no-cache", cacheBody, []string{"Cache-Control", "no-cache"}},
		{"no-store", cacheBody, []string{"Cache-Control", "max-age=0, No-Store"}},
		{"tollgate_cache", strings.Replace(cacheBody, `"temperature":0`, `"temperature":0,"tollgate_cache":false`, 1), nil},
		{"temperature", strings.Replace(cacheBody, `"temperature":0`, `"temperature":0.7`, 1), nil},
	} {
		r, _ := cachedChat(h, cacheKey, c.body, c.hdr...)
		wantCache(t, c.name, r, "bypass")
	}
	if n := len(h.openai.Requests()); n != 6 {
		t.Errorf("provider got %d requests, want 6", n)
	}
	if hits, misses, bypasses := cacheMetric(t, h, "hit"), cacheMetric(t, h, "miss"), cacheMetric(t, h, "bypass"); hits != 2 || misses != 2 || bypasses != 4 {
		t.Errorf("cache metric: hit %v miss %v bypass %v", hits, misses, bypasses)
	}
}

// TestCacheStreamedMiss: a streamed answer fills the cache; the next
// non-streamed request is answered from it.
func TestCacheStreamedMiss(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: cacheConfig(cacheOptions{})})
	c := h.newClient(cacheKey)
	p := openai.ChatCompletionNewParams{Model: "smart-default", Temperature: openai.Float(0),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("In one sentence, what does an API gateway do?")}}
	acc := streamChat(t, c, p)
	r, b := cachedChat(h, cacheKey, cacheBody)
	wantCache(t, "after stream", r, "hit")
	var whole openai.ChatCompletion
	if err := whole.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if whole.Choices[0].Message.Content != acc.Choices[0].Message.Content || whole.Usage.TotalTokens == 0 {
		t.Errorf("stored stream %q usage %d, want %q", whole.Choices[0].Message.Content, whole.Usage.TotalTokens, acc.Choices[0].Message.Content)
	}
	if n := len(h.openai.Requests()); n != 1 {
		t.Errorf("provider got %d requests, want 1", n)
	}
}

// TestCacheRefusalsFirst: a would-be hit still meets every refusal.
func TestCacheRefusalsFirst(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: cacheConfig(cacheOptions{})})
	r, _ := cachedChat(h, cacheBudgetKey, cacheBody)
	wantCache(t, "fill", r, "miss")
	h.waitRequestLogs(1) // charged when the request ends
	// The budget is spent: the stored answer is not served.
	if r, b := cachedChat(h, cacheBudgetKey, cacheBody); r.StatusCode != 429 || r.Header.Get("x-tollgate-cache") != "" {
		t.Fatalf("exhausted budget: %d %s", r.StatusCode, b)
	}
	r, _ = cachedChat(h, cacheKey, cacheBody)
	wantCache(t, "hit", r, "hit")

	// An allowlist change.
	h.writeExtra(cacheConfig(cacheOptions{models: `["embed-*"]`}))
	h.waitReload(false)
	if r, b := cachedChat(h, cacheKey, cacheBody); r.StatusCode != 403 {
		t.Fatalf("allowlist change: %d %s", r.StatusCode, b)
	}
	// A revoked key.
	h.writeExtra(cacheConfig(cacheOptions{noKey: true}))
	h.waitReload(false)
	if r, b := cachedChat(h, cacheKey, cacheBody); r.StatusCode != 401 {
		t.Fatalf("revoked key: %d %s", r.StatusCode, b)
	}
	r, _ = cachedChat(h, cacheKey2, cacheBody)
	wantCache(t, "after reload", r, "hit")
	if n := len(h.openai.Requests()); n != 1 {
		t.Errorf("provider got %d requests, want 1", n)
	}
}

// TestCacheStrategies: what each hash_strategy tells apart.
func TestCacheStrategies(t *testing.T) {
	other := strings.Replace(cacheBody, `"temperature":0`, `"temperature":0,"max_tokens":50`, 1)
	alias := strings.Replace(cacheBody, `smart-default`, `openai/gpt-4o-mini`, 1)
	for _, c := range []struct {
		strategy             string
		otherHits, aliasHits bool
	}{
		{"content", true, true},
		{"content+model", true, false},
		{"full_request", false, false},
	} {
		t.Run(c.strategy, func(t *testing.T) {
			h := newHarness(t, harnessOptions{extra: cacheConfig(cacheOptions{strategy: c.strategy})})
			r, _ := cachedChat(h, cacheKey, cacheBody)
			wantCache(t, "fill", r, "miss")
			want := func(b bool) string {
				if b {
					return "hit"
				}
				return "miss"
			}
			r, _ = cachedChat(h, cacheKey, other)
			wantCache(t, "max_tokens", r, want(c.otherHits))
			r, _ = cachedChat(h, cacheKey, alias)
			wantCache(t, "provider/model", r, want(c.aliasHits))
			// Volatile fields never matter.
			r, _ = cachedChat(h, cacheKey, strings.Replace(cacheBody, `"temperature":0`, `"temperature":0,"user":"u-1","tollgate_metadata":{"a":"b"}`, 1))
			wantCache(t, "volatile", r, "hit")
		})
	}
}

// TestCacheEviction: the memory store stays within max_cache_size_mb,
// dropping the least recently used answer. The provider echoes each prompt,
// so four answers of 300 KiB overflow 1 MiB.
func TestCacheEviction(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: cacheConfig(cacheOptions{sizeMB: 1})})
	body := func(i int) string {
		return strings.Replace(cacheBody, "In one sentence, what does an API gateway do?", strings.Repeat(string(rune('a'+i)), 300<<10), 1)
	}
	for i := range 4 {
		h.openai.Fail(fakeprovider.Echo())
		r, _ := cachedChat(h, cacheKey, body(i))
		wantCache(t, fmt.Sprint("fill ", i), r, "miss")
	}
	r, _ := cachedChat(h, cacheKey, body(3))
	wantCache(t, "newest", r, "hit")
	r, _ = cachedChat(h, cacheKey, body(0))
	wantCache(t, "oldest", r, "miss")
}

// TestCacheRedisOutage: with Redis down every request is a miss and still
// served; when it is back, hits return.
func TestCacheRedisOutage(t *testing.T) {
	rs := redistest.Start(t)
	url := filepath.Join(t.TempDir(), "redis-url")
	if err := os.WriteFile(url, []byte("redis://"+rs.Addr()), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{extra: cacheConfig(cacheOptions{redis: url})})
	r, _ := cachedChat(h, cacheKey, cacheBody)
	wantCache(t, "fill", r, "miss")
	r, _ = cachedChat(h, cacheKey, cacheBody)
	wantCache(t, "hit", r, "hit")
	rs.Stop()
	r, _ = cachedChat(h, cacheKey, cacheBody)
	wantCache(t, "outage", r, "miss")
	if n := cacheMetric(t, h, "error"); n < 1 {
		t.Errorf("cache errors counted: %v", n)
	}
	rs.Start()
	r, _ = cachedChat(h, cacheKey, strings.Replace(cacheBody, "API", "HTTP", 1))
	wantCache(t, "back, new", r, "miss")
	r, _ = cachedChat(h, cacheKey, strings.Replace(cacheBody, "API", "HTTP", 1))
	wantCache(t, "back, hit", r, "hit")
}

// cacheMetric reads tollgate_cache_requests_total{result}.
func cacheMetric(t *testing.T, h *harness, result string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tollgate_cache_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
