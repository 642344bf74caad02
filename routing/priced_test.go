package routing

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// TestCheckPrices: every (provider, model) a configuration can route to by
// name must be priced, unless its provider allows unpriced models; the
// problem names where the route is, the alias and the provider.
func TestCheckPrices(t *testing.T) {
	prices, err := pricing.Default().WithAliases(map[pricing.Key]pricing.Key{{Provider: "azure", Model: "gpt-4o-prod"}: {Provider: "openai", Model: "gpt-4o"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Providers: []config.Provider{
			{Name: "openai", Models: []string{"gpt-4o", "ft-1"}, DirectModels: config.DirectListed},
			{Name: "azure", Models: []string{"gpt-4o-prod", "gpt-4o"}, DirectModels: config.DirectNone},
			{Name: "hidden", Models: []string{"never-routed"}, DirectModels: config.DirectNone},
			{Name: "local", Models: []string{"llama3"}, DirectModels: config.DirectAny, Unpriced: config.UnpricedAllow},
		},
		Models: []config.Model{
			{Name: "ok", Provider: "azure", Model: "gpt-4o-prod"},
			{Name: "guess", Provider: "azure", Model: "gpt-4o"},
			{Name: "pool", Targets: []config.PoolTarget{{Provider: "openai", Model: "gpt-4o"}, {Provider: "azure", Model: "gpt-4o"}}},
			{Name: "chain", Fallback: &config.Fallback{Targets: []config.ChainTarget{{Provider: "local", Model: "x"}, {Provider: "openai", Model: "ft-2"}}}},
			{Name: "local", Provider: "local", Model: "llama3"},
		},
	}
	var got []string
	for _, p := range CheckPrices(cfg, prices, time.Now()) {
		got = append(got, p.Path)
		if !strings.Contains(p.Message, "provider \"") || !strings.Contains(p.Message, "has no price") {
			t.Errorf("%s: %s", p.Path, p.Message)
		}
	}
	want := []string{"models[chain].fallback.targets[1]", "models[guess]", "models[pool].targets[1]", "providers[openai].models[ft-1]"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("problems at %v, want %v", got, want)
	}
	// A price not yet in effect is no price.
	if ps := CheckPrices(&config.Config{Providers: []config.Provider{{Name: "openai"}}, Models: []config.Model{{Name: "a", Provider: "openai", Model: "gpt-4o"}}},
		prices, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)); len(ps) != 0 {
		t.Errorf("gpt-4o has a price since always: %v", ps)
	}
	if k := (&Provider{Name: "azure", priceAs: priceAs(map[string]string{"gpt-4o-prod": "openai/gpt-4o"})}).PriceKey("gpt-4o-prod"); k != (pricing.Key{Provider: "openai", Model: "gpt-4o"}) {
		t.Errorf("PriceKey: %v", k)
	}
	if k := (&Provider{Name: "azure"}).PriceKey("gpt-4o"); k != (pricing.Key{Provider: "azure", Model: "gpt-4o"}) {
		t.Errorf("PriceKey without price_as: %v", k)
	}
}
