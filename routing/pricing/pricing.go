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
	"strings"
	"time"
)

// Table is a price table: entry name → entry. The entry name is the provider
// model id unless Entry.Model says otherwise, which lets one model have
// several entries: prompt-size tiers (MinPromptTokens), scheduled price
// changes (EffectiveFrom), and the same model id priced differently by two
// providers. Prices are keyed by [Key]: provider and model together.
type Table struct {
	Models map[string]Entry `json:"models"`
}

// Entry is one price for one provider model. Rates are USD per million
// tokens; nil means not priced.
type Entry struct {
	Provider string `json:"provider"`        // the gateway provider (its configured name) it prices, e.g. "openai"; required
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

	Input        *Rate `json:"input,omitempty"`          // uncached input tokens; required unless PerMinute is set
	CachedInput  *Rate `json:"cached_input,omitempty"`   // cache reads; Input when nil
	Output       *Rate `json:"output,omitempty"`         // output tokens incl. reasoning; nil: the model has no output (embeddings)
	CacheWrite5m *Rate `json:"cache_write_5m,omitempty"` // Anthropic 5-minute cache writes; Input when nil
	CacheWrite1h *Rate `json:"cache_write_1h,omitempty"` // Anthropic 1-hour cache writes; Input when nil
	AudioInput   *Rate `json:"audio_input,omitempty"`    // audio input tokens (transcription, audio chat); Input when nil
	// PerMinute prices models billed by audio duration (whisper-1): USD per
	// minute of input audio, as an exact Amount per minute. A model may have
	// it instead of, or besides, token rates.
	PerMinute *Amount `json:"per_minute,omitempty"`
}

// Key names what a price applies to: a gateway provider (by its configured
// name) and that provider's model id. The same model id may be priced
// differently by two providers (Azure's gpt-4o and OpenAI's).
type Key struct {
	Provider, Model string
}

// String is "provider/model".
func (k Key) String() string { return k.Provider + "/" + k.Model }

// ParseKey splits "provider/model" at the first "/" (provider names have
// none; model ids may: "vllm/meta-llama/Llama-3.1-8B").
func ParseKey(s string) (Key, bool) {
	p, m, ok := strings.Cut(s, "/")
	if !ok || p == "" || m == "" {
		return Key{}, false
	}
	return Key{p, m}, true
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
	// AudioTokens is the audio input tokens within PromptTokens (a
	// transcription's input_token_details.audio_tokens, a chat completion's
	// prompt_tokens_details.audio_tokens).
	AudioTokens int64
	// CompletionTokens is every output token, reasoning included.
	CompletionTokens int64
	// AudioMillis is the duration of input audio of a model billed by
	// duration (a transcription's "usage":{"type":"duration"}).
	AudioMillis int64
}

// Cost is the cost of one request, by kind of token. Total is the sum.
type Cost struct {
	Input       Amount // uncached input
	CachedInput Amount
	CacheWrite  Amount // 5-minute and 1-hour cache writes
	Audio       Amount // audio input tokens and audio duration
	Output      Amount
	Total       Amount
}

// Prices is a validated, compiled price table. It is immutable and safe for
// concurrent use.
type Prices struct {
	models map[Key][]schedule // schedules by ascending from
}

// schedule is the set of tiers that took effect at one time.
type schedule struct {
	from  time.Time // zero: since always
	tiers []tier    // by descending minPrompt; the last has minPrompt 0
}

type tier struct {
	minPrompt                                        int64
	input, cached, write5m, write1h, audioIn, output Rate
	perMinute                                        Amount
	hasInput, hasOutput, hasPerMinute                bool
	maxInput                                         Rate // the highest rate a prompt token can be billed at
}

// New validates t and compiles it. The error is a [yamldoc.Problems].
func New(t Table) (*Prices, error) {
	if ps := t.Validate(); ps != nil {
		return nil, ps
	}
	p := &Prices{models: map[Key][]schedule{}}
	type key struct {
		k    Key
		from time.Time
	}
	groups := map[key][]tier{}
	for name, e := range t.Models {
		from, _ := parseEffective(e.EffectiveFrom)
		k := key{Key{e.Provider, e.model(name)}, from}
		groups[k] = append(groups[k], compileTier(e))
	}
	for k, tiers := range groups {
		sort.Slice(tiers, func(i, j int) bool { return tiers[i].minPrompt > tiers[j].minPrompt })
		p.models[k.k] = append(p.models[k.k], schedule{from: k.from, tiers: tiers})
	}
	for _, s := range p.models {
		sort.Slice(s, func(i, j int) bool { return s[i].from.Before(s[j].from) })
	}
	return p, nil
}

func compileTier(e Entry) tier {
	t := tier{minPrompt: e.MinPromptTokens}
	if e.Input != nil {
		t.input, t.hasInput = *e.Input, true
	}
	t.cached, t.write5m, t.write1h, t.audioIn = t.input, t.input, t.input, t.input
	if e.CachedInput != nil {
		t.cached = *e.CachedInput
	}
	if e.CacheWrite5m != nil {
		t.write5m = *e.CacheWrite5m
	}
	if e.CacheWrite1h != nil {
		t.write1h = *e.CacheWrite1h
	}
	if e.AudioInput != nil {
		t.audioIn = *e.AudioInput
	}
	if e.Output != nil {
		t.output, t.hasOutput = *e.Output, true
	}
	if e.PerMinute != nil {
		t.perMinute, t.hasPerMinute = *e.PerMinute, true
	}
	t.maxInput = max(t.input, t.cached, t.write5m, t.write1h, t.audioIn)
	return t
}

// WithAliases returns prices in which each key of aliases is priced exactly
// as the key it maps to (an Azure deployment priced as the model it runs).
// An alias replaces any price of its own. It fails, naming them, when a
// target has no price at all.
func (p *Prices) WithAliases(aliases map[Key]Key) (*Prices, error) {
	q := &Prices{models: make(map[Key][]schedule, len(p.models)+len(aliases))}
	for k, s := range p.models {
		q.models[k] = s
	}
	var missing []string
	for from, to := range aliases {
		s, ok := p.models[to]
		if !ok {
			missing = append(missing, from.String()+" → "+to.String())
			continue
		}
		q.models[from] = s // schedules are never modified: sharing is safe
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("pricing: no price for %s", strings.Join(missing, ", "))
	}
	return q, nil
}

// Has reports whether k has a price at time at (for some prompt size).
func (p *Prices) Has(k Key, at time.Time) bool {
	_, ok := p.find(k, at, 0)
	return ok
}

// find returns the tier that prices a request for model at time at with
// promptTokens prompt tokens.
func (p *Prices) find(k Key, at time.Time, promptTokens int64) (tier, bool) {
	if p == nil {
		return tier{}, false
	}
	s := p.models[k]
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

// Cost prices u for k at time at, the time of the request. It reports false
// when k has no price at that time, when a count is negative, or when u has
// a part its price does not cover: output tokens on a model priced without
// output, tokens on a model priced only per minute, audio duration on a
// model priced only per token.
//
// Uncached input is PromptTokens minus the cached, cache-write and audio
// tokens (0 if those exceed the prompt, which a consistent provider never
// reports). Cache reads and writes and audio tokens without their own rate
// are billed at the input rate. Audio duration is billed per millisecond at
// PerMinute/60000, rounded up to the next pico-dollar. Amounts saturate at
// MaxAmount.
func (p *Prices) Cost(k Key, u Usage, at time.Time) (Cost, bool) {
	if u.PromptTokens < 0 || u.CachedTokens < 0 || u.CacheWrite5mTokens < 0 || u.CacheWrite1hTokens < 0 ||
		u.AudioTokens < 0 || u.CompletionTokens < 0 || u.AudioMillis < 0 {
		return Cost{}, false
	}
	t, ok := p.find(k, at, u.PromptTokens)
	switch {
	case !ok,
		u.CompletionTokens > 0 && !t.hasOutput,
		u.PromptTokens > 0 && !t.hasInput,
		u.AudioMillis > 0 && !t.hasPerMinute:
		return Cost{}, false
	}
	uncached := u.PromptTokens
	for _, part := range []int64{u.CachedTokens, u.CacheWrite5mTokens, u.CacheWrite1hTokens, u.AudioTokens} {
		uncached = max(uncached-part, 0)
	}
	c := Cost{
		Input:       t.input.times(uncached),
		CachedInput: t.cached.times(u.CachedTokens),
		CacheWrite:  add(t.write5m.times(u.CacheWrite5mTokens), t.write1h.times(u.CacheWrite1hTokens)),
		Audio:       add(t.audioIn.times(u.AudioTokens), t.perMinute.forMillis(u.AudioMillis)),
		Output:      t.output.times(u.CompletionTokens),
	}
	c.Total = add(add(add(c.Input, c.CachedInput), add(c.CacheWrite, c.Output)), c.Audio)
	return c, true
}

// Estimate is the worst-case cost of a request to model at time at with
// promptTokens (an estimate of the prompt size) and at most maxOutputTokens
// output tokens: every prompt token at the highest input-side rate of the
// tier (cache writes cost more than plain input), every output token at the
// output rate: at least the Cost of any usage within those counts that the
// same tier prices. It reports false when Cost would: no price, a negative count,
// or output requested from a model priced without output.
func (p *Prices) Estimate(k Key, promptTokens, maxOutputTokens int64, at time.Time) (Amount, bool) {
	if promptTokens < 0 || maxOutputTokens < 0 {
		return 0, false
	}
	t, ok := p.find(k, at, promptTokens)
	if !ok || maxOutputTokens > 0 && !t.hasOutput || promptTokens > 0 && !t.hasInput {
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
