package pricing

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tollgate-ai/tollgate/internal/yamldoc"
)

// entryPath is the path of an entry; names may contain dots ("gpt-4.1"), so
// they go in brackets.
func entryPath(name string) string { return "models[" + name + "]" }

// model returns the provider model id the entry prices.
func (e Entry) model(name string) string {
	if e.Model != "" {
		return e.Model
	}
	return name
}

// parseEffective parses an EffectiveFrom value; empty is the zero time.
func parseEffective(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil // one instant, one map key, however it is spelled
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 date-time (2026-03-01T00:00:00Z) or date (2026-03-01)", s)
	}
	return t, nil
}

// MaxPerMinute is the highest accepted price per minute of audio, 1,000,000 USD.
const MaxPerMinute = 1_000_000 * USD

// Validate checks t strictly and returns every problem, ordered by entry
// name, or nil. A valid table prices every (provider, model) for every
// prompt size from its earliest EffectiveFrom on, without ambiguity.
func (t Table) Validate() yamldoc.Problems {
	var ps yamldoc.Problems
	addf := func(path, format string, args ...any) {
		ps = append(ps, yamldoc.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	names := make([]string, 0, len(t.Models))
	for name := range t.Models {
		names = append(names, name)
	}
	sort.Strings(names)

	type group struct {
		key  Key
		from time.Time
	}
	tiers := map[group]map[int64]string{} // min_prompt_tokens → entry name
	var groups []group                    // in first-seen order, for stable output
	groupEntry := map[group]string{}      // the first entry of each group

	for _, name := range names {
		e := t.Models[name]
		p := entryPath(name)
		if strings.TrimSpace(name) == "" {
			addf(p, "entry name must not be empty")
		}
		switch {
		case e.Provider == "":
			addf(p+".provider", "required")
		case strings.TrimSpace(e.Provider) != e.Provider || strings.ContainsAny(e.Provider, "/\x00\n\r\t"):
			addf(p+".provider", "must name a gateway provider: no \"/\", whitespace or control characters")
		}
		model := e.model(name)
		if strings.TrimSpace(model) != model || strings.ContainsAny(model, "\x00\n\r\t") {
			addf(p+".model", "must not contain whitespace at either end or control characters")
		}
		from, err := parseEffective(e.EffectiveFrom)
		if err != nil {
			addf(p+".effective_from", "%v", err)
		}
		if e.MinPromptTokens < 0 {
			addf(p+".min_prompt_tokens", "must not be negative")
		}
		if e.Input == nil && e.PerMinute == nil {
			addf(p+".input", "required (or per_minute, for a model billed by audio duration)")
		}
		for _, r := range []struct {
			field string
			rate  *Rate
		}{{"input", e.Input}, {"cached_input", e.CachedInput}, {"output", e.Output}, {"cache_write_5m", e.CacheWrite5m}, {"cache_write_1h", e.CacheWrite1h}, {"audio_input", e.AudioInput}} {
			if r.rate != nil && (*r.rate < 0 || *r.rate > MaxRate) {
				addf(p+"."+r.field, "must be between 0 and %s USD per million tokens", MaxRate)
			}
		}
		if e.PerMinute != nil && (*e.PerMinute < 0 || *e.PerMinute > MaxPerMinute) {
			addf(p+".per_minute", "must be between 0 and %s USD per minute", MaxPerMinute)
		}
		if err != nil || e.MinPromptTokens < 0 {
			continue
		}
		g := group{Key{e.Provider, model}, from}
		if tiers[g] == nil {
			tiers[g] = map[int64]string{}
			groups = append(groups, g)
			groupEntry[g] = name
		}
		if other, ok := tiers[g][e.MinPromptTokens]; ok {
			addf(p, "duplicates entry %q: same provider %q, model %q, effective_from and min_prompt_tokens", other, e.Provider, model)
			continue
		}
		tiers[g][e.MinPromptTokens] = name
	}
	for _, g := range groups {
		if _, ok := tiers[g][0]; !ok {
			when := "with no effective_from"
			if !g.from.IsZero() {
				when = "effective from " + g.from.Format(time.RFC3339)
			}
			addf(entryPath(groupEntry[g])+".min_prompt_tokens", "model %q of provider %q %s has no tier for prompts from 0 tokens (an entry without min_prompt_tokens)", g.key.Model, g.key.Provider, when)
		}
	}
	return ps
}
