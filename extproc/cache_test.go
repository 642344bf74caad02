package extproc

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/internal/cache"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/policy/tenancy"
)

// failingStore is a cache backend that is down.
type failingStore struct{}

func (failingStore) Get(context.Context, string) (cache.Entry, bool, error) {
	return cache.Entry{}, false, errors.New("down")
}
func (failingStore) Put(context.Context, string, cache.Entry) error { return errors.New("down") }

const cachedAnswer = `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`

// cacheFacts is an exchange whose app opted in, with a store holding the
// answer to deterministicBody under the default settings.
func cacheFacts(store CacheStore, app *tenancy.App) func(*exchange) {
	return func(x *exchange) {
		target("smart-default")(x)
		x.snap.Cache = &CacheSettings{Strategy: cache.Content, Scopes: map[string]string{}}
		x.srv.cache = store
		x.app = app
	}
}

const deterministicBody = `{"model":"smart-default","temperature":0,"messages":[{"role":"user","content":"hi"}]}`

func filledStore(t *testing.T) *cache.Memory {
	m := cache.NewMemory(1<<20, 1<<20, time.Hour, nil)
	key, err := cache.Key(cache.KeyInput{Tenant: "default", Endpoint: "chat", Provider: "openai", ProviderModel: "gpt-4o-mini",
		Model: "smart-default", Strategy: cache.Content, Body: []byte(deterministicBody)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Put(context.Background(), key, cache.Entry{Body: []byte(cachedAnswer), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStepLookupCache(t *testing.T) {
	optedIn := &tenancy.App{Tenant: "default", Name: "a", Cache: true}
	result := func(want string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.cache.result != want {
				t.Errorf("cache result %q, want %q", x.cache.result, want)
			}
			if (x.answer != nil) != (want == cacheHit) {
				t.Errorf("answered %v for %s", x.answer != nil, want)
			}
		}
	}
	store := filledStore(t)
	runBodyStep(t, stepLookupCache, []stepCase{
		{name: "hit", body: deterministicBody, facts: cacheFacts(store, optedIn), want: func(t *testing.T, x *exchange, req *upstreamRequest, mu *mutation) {
			result(cacheHit)(t, x, req, mu)
			ir := x.answer.GetImmediateResponse()
			if string(ir.GetBody()) != cachedAnswer || ir.GetStatus().GetCode() != 200 {
				t.Errorf("hit answer %d %s", ir.GetStatus().GetCode(), ir.GetBody())
			}
			if x.forwarded || x.rec.usage.TotalTokens != 0 || x.cache.saved.TotalTokens != 10 {
				t.Errorf("hit metered as upstream use: forwarded %v usage %+v saved %+v", x.forwarded, x.rec.usage, x.cache.saved)
			}
		}},
		{name: "stream hit replays", body: deterministicBody, facts: both(cacheFacts(store, optedIn), func(x *exchange) { x.stream = true }),
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				b := string(x.answer.GetImmediateResponse().GetBody())
				if !strings.HasPrefix(b, "data: {") || !strings.HasSuffix(b, "data: [DONE]\n\n") || strings.Contains(b, `"usage":{`) {
					t.Errorf("replay without include_usage: %s", b)
				}
			}},
		{name: "another tenant misses", body: deterministicBody, facts: both(cacheFacts(store, optedIn), func(x *exchange) { x.key.Tenant = "other" }),
			want: result(cacheMiss)},
		{name: "another guardrail scope misses", body: deterministicBody,
			facts: both(cacheFacts(store, &tenancy.App{Name: "g", Cache: true, GuardrailPolicy: "p"}), func(x *exchange) {
				x.snap.Cache.Scopes["p"] = "p@0011"
			}), want: result(cacheMiss)},
		{name: "not opted in", body: deterministicBody, facts: cacheFacts(store, &tenancy.App{Name: "b"}), want: result(cacheBypass)},
		{name: "no app", body: deterministicBody, facts: cacheFacts(store, nil), want: result(cacheBypass)},
		{name: "nondeterministic", body: `{"model":"smart-default","messages":[{"role":"user","content":"hi"}]}`,
			facts: cacheFacts(store, optedIn), want: result(cacheBypass)},
		{name: "any temperature", body: `{"model":"smart-default","temperature":1,"messages":[{"role":"user","content":"hello"}]}`,
			facts: cacheFacts(store, &tenancy.App{Name: "c", Cache: true, CacheAnyTemperature: true}), want: result(cacheMiss)},
		{name: "cache-control", body: deterministicBody, facts: both(cacheFacts(store, optedIn), func(x *exchange) { x.cacheControl = "no-store" }),
			want: result(cacheBypass)},
		{name: "tollgate_cache false", body: `{"model":"smart-default","temperature":0,"tollgate_cache":false,"messages":[{"role":"user","content":"hi"}]}`,
			facts: cacheFacts(store, optedIn), want: result(cacheBypass)},
		{name: "store down is a miss", body: deterministicBody, facts: cacheFacts(failingStore{}, optedIn), want: result(cacheMiss)},
		{name: "cache off", body: deterministicBody, facts: func(x *exchange) { target("smart-default")(x); x.app = optedIn },
			want: result("")},
	})
}

// TestLookupCacheAfterRefusals: lookup_cache comes after every step that
// can refuse a chat request.
func TestLookupCacheAfterRefusals(t *testing.T) {
	var names []string
	for _, s := range chatProcessor(nil).body {
		names = append(names, s.Name())
	}
	at := slices.Index(names, "lookup_cache")
	for _, refuser := range []string{"parse_json", "select_app", "check_agent", "check_metadata", "resolve_model", "check_offered", "confine", "guard_input", "admit"} {
		if i := slices.Index(names, refuser); i < 0 || i > at {
			t.Errorf("%s at %d, lookup_cache at %d: %v", refuser, i, at, names)
		}
	}
}

// TestCacheStoresOnlyCompleteAnswers: a miss is stored only when its
// answer is a complete 200.
func TestCacheStoresOnlyCompleteAnswers(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		stored bool
	}{
		{"200", 200, cachedAnswer, true},
		{"error", 500, `{"error":{"message":"x"}}`, false},
		{"no usage", 200, `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := cache.NewMemory(1<<20, 1<<20, time.Hour, nil)
			x := exchangeFor(t, testSnapshot(t))
			x.srv.cache = store
			x.cache.key, x.rec.status = "k", c.status
			x.body = x.newJSONReader(nil)
			x.cacheBody([]byte(c.body), true)
			if got := store.Len() == 1; got != c.stored {
				t.Errorf("stored %v, want %v", got, c.stored)
			}
		})
	}
}

// TestCacheSkipsGuardedAnswers: an answer an output guardrail redacted is
// never stored; one it only flagged is.
func TestCacheSkipsGuardedAnswers(t *testing.T) {
	for _, c := range []struct {
		action guardrails.Action
		stored bool
	}{{guardrails.Redact, false}, {guardrails.Flag, true}} {
		t.Run(string(c.action), func(t *testing.T) {
			gs, err := guardrails.NewSet(guardrails.Config{Policies: []guardrails.PolicyConfig{{Name: "p",
				Output: []guardrails.GuardrailConfig{{Name: "pii", Type: "pii", Action: c.action, Entities: []string{"email"}}}}}})
			if err != nil {
				t.Fatal(err)
			}
			pol, _ := gs.Policy("p")
			store := cache.NewMemory(1<<20, 1<<20, time.Hour, nil)
			x := exchangeFor(t, testSnapshot(t))
			x.srv.cache, x.guard = store, pol.NewRequest()
			if _, err := x.guard.CheckOutput(guardrails.Content, "write to a@example.com"); err != nil {
				t.Fatal(err)
			}
			x.cache.key, x.rec.status = "k", 200
			x.store([]byte(cachedAnswer))
			if got := store.Len() == 1; got != c.stored {
				t.Errorf("stored %v, want %v", got, c.stored)
			}
		})
	}
}
