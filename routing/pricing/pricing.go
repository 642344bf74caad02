// Package pricing holds the model price table and computes the cost of a
// request from its token usage, exactly, in integer pico-dollars ([Amount]).
//
// A [Table] is the configuration form (the "models" mapping of pricing.yaml,
// see [Parse]); [New] validates it and compiles it into [Prices], which
// answers [Prices.Cost] for a finished request and [Prices.Estimate] for
// admission control. Prices are never held in floating point: they are
// parsed from the decimal text of the configuration.
package pricing

import (
	_ "embed"
	"fmt"
	"sort"
	"time"
)

// Table is a price table: entry name → entry. The entry name is the provider
// model id unless Entry.Model says otherwise, which lets one model have
// several entries: prompt-size tiers (MinPromptTokens) and scheduled price
// changes (EffectiveFrom).
type Table struct {
	Models map[string]Entry `json:"models"`
}

// Entry is one price for one provider model. Rates are USD per million
// tokens; nil means not priced.
type Entry struct {
	Provider string `json:"provider"`        // provider family, e.g. "openai"; required
	Model    string `json:"model,omitempty"` // provider model id; the entry name when empty
	// EffectiveFrom is when this price starts to apply: an RFC 3339 date-time
	// ("2026-03-01T00:00:00Z") or full date ("2026-03-01", midnight UTC).
	// Empty means since always. Of a model's entries, those with the latest
	// EffectiveFrom not after the request time apply; they replace all
	// earlier entries, tiers included.
	EffectiveFrom string `json:"effective_from,omitempty"`
	// MinPromptTokens makes this entry a prompt-size tier: it applies when the
	// request's prompt has at least this many tokens (and no tier with a
	// higher minimum applies). Every model needs a tier starting at 0.
	MinPromptTokens int64 `json:"min_prompt_tokens,omitempty"`

	Input        *Rate `json:"input"`                    // uncached input tokens; required
	CachedInput  *Rate `json:"cached_input,omitempty"`   // cache reads; Input when nil
	Output       *Rate `json:"output,omitempty"`         // output tokens incl. reasoning; nil: the model has no output (embeddings)
	CacheWrite5m *Rate `json:"cache_write_5m,omitempty"` // Anthropic 5-minute cache writes; Input when nil
	CacheWrite1h *Rate `json:"cache_write_1h,omitempty"` // Anthropic 1-hour cache writes; Input when nil
}

// Usage is the token usage of one request, in the OpenAI convention: the
// prompt count includes its cached and cache-write parts.
type Usage struct {
	// PromptTokens is every input token: uncached, cache reads and cache
	// writes. For Anthropic that is input_tokens + cache_read_input_tokens +
	// cache_creation_input_tokens.
	PromptTokens int64
	// CachedTokens is the cache reads within PromptTokens (OpenAI
	// prompt_tokens_details.cached_tokens, Anthropic cache_read_input_tokens).
	CachedTokens int64
	// CacheWrite5mTokens and CacheWrite1hTokens are Anthropic's cache writes
	// within PromptTokens (cache_creation.ephemeral_5m_input_tokens and
	// ephemeral_1h_input_tokens).
	CacheWrite5mTokens int64
	CacheWrite1hTokens int64
	// CompletionTokens is every output token, reasoning included.
	CompletionTokens int64
}

// Cost is the cost of one request, by kind of token. Total is the sum.
type Cost struct {
	Input       Amount // uncached input
	CachedInput Amount
	CacheWrite  Amount // 5-minute and 1-hour cache writes
	Output      Amount
	Total       Amount
}

// Prices is a validated, compiled price table. It is immutable and safe for
// concurrent use.
type Prices struct {
	models map[string][]schedule // model → schedules by ascending from
}

// schedule is the set of tiers that took effect at one time.
type schedule struct {
	from  time.Time // zero: since always
	tiers []tier    // by descending minPrompt; the last has minPrompt 0
}

type tier struct {
	minPrompt                               int64
	input, cached, write5m, write1h, output Rate
	hasOutput                               bool
	maxInput                                Rate // the highest rate a prompt token can be billed at
}

// New validates t and compiles it. The error is a [Problems].
func New(t Table) (*Prices, error) {
	if ps := t.Validate(); ps != nil {
		return nil, ps
	}
	p := &Prices{models: map[string][]schedule{}}
	type key struct {
		model string
		from  time.Time
	}
	groups := map[key][]tier{}
	for name, e := range t.Models {
		from, _ := parseEffective(e.EffectiveFrom)
		k := key{e.model(name), from}
		groups[k] = append(groups[k], compileTier(e))
	}
	for k, tiers := range groups {
		sort.Slice(tiers, func(i, j int) bool { return tiers[i].minPrompt > tiers[j].minPrompt })
		p.models[k.model] = append(p.models[k.model], schedule{from: k.from, tiers: tiers})
	}
	for _, s := range p.models {
		sort.Slice(s, func(i, j int) bool { return s[i].from.Before(s[j].from) })
	}
	return p, nil
}

func compileTier(e Entry) tier {
	t := tier{minPrompt: e.MinPromptTokens, input: *e.Input}
	t.cached, t.write5m, t.write1h = t.input, t.input, t.input
	if e.CachedInput != nil {
		t.cached = *e.CachedInput
	}
	if e.CacheWrite5m != nil {
		t.write5m = *e.CacheWrite5m
	}
	if e.CacheWrite1h != nil {
		t.write1h = *e.CacheWrite1h
	}
	if e.Output != nil {
		t.output, t.hasOutput = *e.Output, true
	}
	t.maxInput = max(t.input, t.cached, t.write5m, t.write1h)
	return t
}

// find returns the tier that prices a request for model at time at with
// promptTokens prompt tokens.
func (p *Prices) find(model string, at time.Time, promptTokens int64) (tier, bool) {
	s := p.models[model]
	i := sort.Search(len(s), func(i int) bool { return s[i].from.After(at) })
	if i == 0 {
		return tier{}, false // unknown model, or every price starts later
	}
	for _, t := range s[i-1].tiers {
		if promptTokens >= t.minPrompt {
			return t, true
		}
	}
	return tier{}, false // unreachable: validation requires a tier at 0
}

// Cost prices u for model (the provider model id) at time at, the time of
// the request. It reports false when the model has no price at that time,
// when a count is negative, or when output tokens are reported for a model
// priced without output.
//
// Uncached input is PromptTokens minus the cached and cache-write tokens
// (0 if those exceed the prompt, which a consistent provider never reports).
// Cache reads and writes without their own rate are billed at the input
// rate. Amounts saturate at MaxAmount.
func (p *Prices) Cost(model string, u Usage, at time.Time) (Cost, bool) {
	if u.PromptTokens < 0 || u.CachedTokens < 0 || u.CacheWrite5mTokens < 0 || u.CacheWrite1hTokens < 0 || u.CompletionTokens < 0 {
		return Cost{}, false
	}
	t, ok := p.find(model, at, u.PromptTokens)
	if !ok || u.CompletionTokens > 0 && !t.hasOutput {
		return Cost{}, false
	}
	uncached := u.PromptTokens
	for _, part := range []int64{u.CachedTokens, u.CacheWrite5mTokens, u.CacheWrite1hTokens} {
		uncached = max(uncached-part, 0)
	}
	c := Cost{
		Input:       t.input.times(uncached),
		CachedInput: t.cached.times(u.CachedTokens),
		CacheWrite:  add(t.write5m.times(u.CacheWrite5mTokens), t.write1h.times(u.CacheWrite1hTokens)),
		Output:      t.output.times(u.CompletionTokens),
	}
	c.Total = add(add(c.Input, c.CachedInput), add(c.CacheWrite, c.Output))
	return c, true
}

// Estimate is the worst-case cost of a request to model at time at with
// promptTokens (an estimate of the prompt size) and at most maxOutputTokens
// output tokens: every prompt token at the highest input-side rate of the
// tier (cache writes cost more than plain input), every output token at the
// output rate: at least the Cost of any usage within those counts that the
// same tier prices. It reports false when Cost would: no price, a negative count,
// or output requested from a model priced without output.
func (p *Prices) Estimate(model string, promptTokens, maxOutputTokens int64, at time.Time) (Amount, bool) {
	if promptTokens < 0 || maxOutputTokens < 0 {
		return 0, false
	}
	t, ok := p.find(model, at, promptTokens)
	if !ok || maxOutputTokens > 0 && !t.hasOutput {
		return 0, false
	}
	return add(t.maxInput.times(promptTokens), t.output.times(maxOutputTokens)), true
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultTable returns the built-in price table (default.yaml, list prices
// with their sources). Each call returns a fresh copy the caller may change,
// e.g. to merge an operator's overrides before calling New.
func DefaultTable() Table {
	t, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic(fmt.Sprintf("pricing: embedded default.yaml: %v", err)) // caught by the package tests
	}
	return t
}

// Default returns the built-in price table, compiled.
func Default() *Prices {
	p, err := New(DefaultTable())
	if err != nil {
		panic(fmt.Sprintf("pricing: embedded default.yaml: %v", err))
	}
	return p
}
