package routing

import (
	"fmt"
	"sort"
	"time"

	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
)

// priceAs compiles a provider's price_as mapping; validation already
// checked every value.
func priceAs(m map[string]string) map[string]pricing.Key {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]pricing.Key, len(m))
	for model, v := range m {
		if k, ok := pricing.ParseKey(v); ok {
			out[model] = k
		}
	}
	return out
}

// PriceAliases returns every price_as mapping of cfg as price keys: the
// provider's model → the entry it is priced as.
func PriceAliases(cfg *config.Config) map[pricing.Key]pricing.Key {
	out := map[pricing.Key]pricing.Key{}
	for _, pc := range cfg.Providers {
		for model, k := range priceAs(pc.PriceAs) {
			out[pricing.Key{Provider: pc.Name, Model: model}] = k
		}
	}
	return out
}

// route is one (provider, model) the configuration can send a request to,
// and where the configuration says so.
type route struct {
	path     string // e.g. "models[smart-default].targets[1]" or "providers[azure].models[gpt-4o-prod]"
	alias    string // the client-facing name
	provider config.Provider
	model    string
}

// routes lists every (provider, model) cfg can route to by name: aliases,
// pool and chain members, and the listed models of providers that let
// clients name them (direct_models listed or any). Models a direct_models:
// any provider passes through unlisted cannot be known in advance; the
// request-time rule (unpriced) covers them.
func routes(cfg *config.Config) []route {
	providers := make(map[string]config.Provider, len(cfg.Providers))
	for _, p := range cfg.Providers {
		providers[p.Name] = p
	}
	var out []route
	add := func(path, alias, provider, model string) {
		if p, ok := providers[provider]; ok {
			out = append(out, route{path, alias, p, model})
		}
	}
	for _, m := range cfg.Models {
		switch {
		case m.Fallback != nil:
			for i, t := range m.Fallback.Targets {
				add(fmt.Sprintf("models[%s].fallback.targets[%d]", m.Name, i), m.Name, t.Provider, t.Model)
			}
		case len(m.Targets) > 0:
			for i, t := range m.Targets {
				add(fmt.Sprintf("models[%s].targets[%d]", m.Name, i), m.Name, t.Provider, t.Model)
			}
		default:
			add(fmt.Sprintf("models[%s]", m.Name), m.Name, m.Provider, m.Model)
		}
	}
	for _, p := range cfg.Providers {
		if p.DirectModels != config.DirectListed && p.DirectModels != config.DirectAny {
			continue
		}
		for _, model := range p.Models {
			add(fmt.Sprintf("providers[%s].models[%s]", p.Name, model), p.Name+"/"+model, p.Name, model)
		}
	}
	return out
}

// CheckPrices reports every model cfg can route to that prices cannot price
// at time at, naming the alias (or provider/model name) and the provider,
// unless the provider says unpriced: allow. A model is never silently free:
// either it has a price, or its provider explicitly allows it to have none.
func CheckPrices(cfg *config.Config, prices *pricing.Prices, at time.Time) config.Problems {
	var ps config.Problems
	seen := map[string]bool{}
	for _, r := range routes(cfg) {
		if r.provider.Unpriced == config.UnpricedAllow || seen[r.path] {
			continue
		}
		seen[r.path] = true
		k := pricing.Key{Provider: r.provider.Name, Model: r.model}
		if pk, ok := priceAs(r.provider.PriceAs)[r.model]; ok {
			k = pk
		}
		if prices.Has(k, at) {
			continue
		}
		msg := fmt.Sprintf("%q routes to model %q of provider %q, which has no price (no pricing entry for provider %q, model %q)",
			r.alias, r.model, r.provider.Name, k.Provider, k.Model)
		if k.Provider == r.provider.Name {
			msg += fmt.Sprintf("; add one under pricing.models, map it with providers[%s].price_as (e.g. %s: openai/gpt-4o), or set providers[%s].unpriced: allow",
				r.provider.Name, r.model, r.provider.Name)
		}
		ps = append(ps, config.Problem{Path: r.path, Message: msg})
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Path < ps[j].Path })
	return ps
}
