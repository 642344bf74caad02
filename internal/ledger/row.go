// Package ledger is Tollgate's usage ledger: one database row per finished
// request, written asynchronously in batches so a request never waits for
// the database, kept for a retention period, and summarised for the
// analytics API and the dashboard. SQLite (embedded, one file) and
// PostgreSQL (shared by several replicas) are the backends; both run the same
// queries over integer columns (microseconds, pico-dollars), so every figure
// is computed identically.
package ledger

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/tollgate-ai/tollgate/extproc"
)

// TokenKind names one kind of token count a row keeps. Adding a kind is a
// constant here, an entry in tokenKinds, a line in tokensOf and a migration
// adding its column.
type TokenKind int

// Token kinds. Cached reads are part of prompt tokens and reasoning tokens
// part of completion tokens, as providers report them.
const (
	Prompt TokenKind = iota
	Completion
	CachedRead
	CacheWrite
	Reasoning
	numKinds
)

// tokenKinds gives each kind its API name and column.
var tokenKinds = [numKinds]struct{ name, column string }{
	Prompt:     {"prompt", "prompt_tokens"},
	Completion: {"completion", "completion_tokens"},
	CachedRead: {"cached_read", "cached_read_tokens"},
	CacheWrite: {"cache_write", "cache_write_tokens"},
	Reasoning:  {"reasoning", "reasoning_tokens"},
}

// Name is the kind's name in the API and in metrics.
func (k TokenKind) Name() string { return tokenKinds[k].name }

// Row is one finished request as stored.
type Row struct {
	ID                                       string
	Time                                     time.Time
	Tenant, App, KeyID, AgentID, Tier        string
	Alias, Provider, ProviderModel, Endpoint string
	Status                                   int
	Refusal                                  string
	Stream, UsageKnown, Estimated, CostKnown bool
	Tokens                                   [numKinds]int64
	CostPico                                 int64
	Latency, TTFB, ProcTime                  time.Duration
	CacheHit                                 *bool  // nil: bypass, or the cache was not consulted
	CacheResult                              string // hit, miss, bypass; "" when the cache was not consulted
	CacheSaved                               int64  // total tokens of the stored answer a hit served
	Metadata                                 [][2]string
}

// FromRecord converts the processor's record of a request into a row.
func FromRecord(r *extproc.Record) Row {
	row := Row{
		ID: r.RequestID, Time: r.Start, Tenant: r.Tenant, App: r.App, KeyID: r.KeyID, AgentID: r.AgentID, Tier: r.Tier,
		Alias: r.Alias, Provider: r.Provider, ProviderModel: r.ProviderModel, Endpoint: r.Endpoint,
		Status: r.Status, Refusal: r.Refusal, Stream: r.Stream, UsageKnown: r.UsageKnown, Estimated: r.Estimated,
		CostKnown: r.CostKnown, CostPico: int64(r.Cost), Latency: r.Latency, TTFB: r.TTFB, ProcTime: r.ProcTime,
		Metadata: r.Metadata,
	}
	if !r.CostKnown {
		row.CostPico = 0
	}
	tokensOf(r, &row.Tokens)
	row.CacheResult = r.Cache
	switch r.Cache {
	case "hit":
		hit := true
		row.CacheHit, row.CacheSaved = &hit, r.CacheSaved.TotalTokens
	case "miss":
		hit := false
		row.CacheHit = &hit
	}
	if row.ID == "" {
		row.ID = newID()
	}
	return row
}

// tokensOf reads every token kind the record's usage has.
func tokensOf(r *extproc.Record, t *[numKinds]int64) {
	if !r.UsageKnown && !r.Estimated {
		return
	}
	u := r.Usage
	t[Prompt] = u.PromptTokens
	t[Completion] = u.CompletionTokens
	t[CachedRead] = u.CachedTokens
	t[CacheWrite] = u.CacheWrite5mTokens + u.CacheWrite1hTokens
	t[Reasoning] = u.ReasoningTokens
}

// newID names a row whose request carried no x-request-id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "tg-" + hex.EncodeToString(b[:])
}

// metadataJSON encodes the metadata as a JSON object, keys in arrival order.
func metadataJSON(m [][2]string) string {
	if len(m) == 0 {
		return "{}"
	}
	buf := []byte{'{'}
	for i, kv := range m {
		if i > 0 {
			buf = append(buf, ',')
		}
		k, _ := json.Marshal(kv[0])
		v, _ := json.Marshal(kv[1])
		buf = append(append(append(buf, k...), ':'), v...)
	}
	return string(append(buf, '}'))
}
