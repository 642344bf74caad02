package extproc

import (
	"context"
	"strconv"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/internal/cache"
	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// The response cache (docs/cache.md): lookup_cache answers a repeated
// request from the store after every step that could refuse it; a miss is
// stored when its answer ended complete and unchanged by output guardrails.

// CacheStore is where answers are kept (internal/cache's Memory or Redis).
type CacheStore interface {
	Get(ctx context.Context, key string) (cache.Entry, bool, error)
	Put(ctx context.Context, key string, e cache.Entry) error
}

// CacheSettings is the cache part of a snapshot; nil turns the cache off.
type CacheSettings struct {
	Strategy cache.Strategy
	// Scopes maps a guardrail policy name to its identity in keys: the name
	// and a fingerprint of its configuration, so a changed policy never
	// serves answers judged by the old one. Apps without a policy share "".
	Scopes map[string]string
}

// Cache results: the x-tollgate-cache header, the record and the metric.
const (
	cacheHit    = "hit"
	cacheMiss   = "miss"
	cacheBypass = "bypass"
	cacheError  = "error" // metric only: the store failed; the client sees a miss
)

// cacheState is one request's use of the cache.
type cacheState struct {
	result string // "" when the cache is off for the request
	key    string // set when the answer may be stored
	saved  usage.Usage
	// A streamed miss is rebuilt from the events the client received.
	acc  cache.Accumulator
	scan sse.Scanner
}

var stepLookupCache = bodyStep{"lookup_cache", lookupCache}

// readCacheControl keeps the client's Cache-Control for lookup_cache.
var stepReadCacheControl = headerStep{"read_cache_control", func(x *exchange, h headers, _ *mutation) error {
	x.cacheControl = h.get("cache-control")
	return nil
}}

// lookupCache answers the request from the cache when it holds the answer.
// It runs after admit: a hit never skips a refusal the request would meet.
func lookupCache(x *exchange, req *upstreamRequest) error {
	set := x.snap.Cache
	if x.srv.cache == nil || set == nil {
		return nil
	}
	x.cache.result = cacheBypass
	if x.app == nil || !x.app.Cache || x.target.Chain != nil || x.target.Provider == nil {
		// Not opted in; or a fallback chain, whose answering member is
		// unknown until Envoy picks it.
		x.srv.metrics.cacheResult(cacheBypass)
		return nil
	}
	if cache.Bypass(x.cacheControl, req.body, x.app.CacheAnyTemperature) != "" {
		x.srv.metrics.cacheResult(cacheBypass)
		return nil
	}
	// req.body is still the client's own bytes: every edit so far (input
	// redaction, the output cap) is only queued, so a redacted request is
	// keyed on what the client sent.
	key, err := cache.Key(cache.KeyInput{
		Tenant: x.key.Tenant, Scope: set.Scopes[x.app.GuardrailPolicy], Endpoint: x.endpoint.String(),
		Provider: x.target.Provider.Name, ProviderModel: x.target.Model, Model: x.rec.model,
		Strategy: set.Strategy, Body: req.body,
	})
	if err != nil {
		return err // the body was validated: this cannot happen
	}
	x.cache.key, x.cache.result = key, cacheMiss
	e, ok, err := x.srv.cache.Get(x.ctx, key)
	if err != nil {
		x.log().Warn("cache lookup failed", zap.Error(err))
		x.srv.metrics.cacheResult(cacheError)
		return nil
	}
	if !ok {
		x.srv.metrics.cacheResult(cacheMiss)
		return nil
	}
	x.cache.result, x.cache.key = cacheHit, ""
	x.srv.metrics.cacheResult(cacheHit)
	x.answer = x.cachedResponse(e)
	return nil
}

// cachedResponse answers with a stored entry. The hit is metered as no
// usage (nothing reached a provider, so admit's reservation reconciles to
// zero tokens and no cost); the tokens it saved go to the record.
func (x *exchange) cachedResponse(e cache.Entry) *extprocv3.ProcessingResponse {
	now := x.srv.now()
	x.done = true
	x.rec.status = 200
	x.rec.upstreamHeaders, x.rec.firstByte = now, now
	x.cache.saved, _ = usage.FromOpenAI(e.Body)
	var mu mutation
	body := e.Body
	if x.stream {
		body = cache.Replay(e.Body, x.clientUsage)
		mu.set("content-type", "text/event-stream; charset=utf-8")
		mu.set("cache-control", "no-cache")
	} else {
		mu.set("content-type", "application/json")
	}
	x.endResponse()
	x.traceBody(body, true)
	mu.set("x-tollgate-cache", cacheHit)
	mu.set("age", strconv.FormatInt(e.Age(now), 10))
	if x.rec.provider != "" {
		mu.set("x-tollgate-provider", x.rec.provider)
		mu.set("x-tollgate-model", x.rec.providerModel)
	}
	if x.rec.requestID != "" {
		mu.set("x-request-id", x.rec.requestID)
		mu.set("x-tollgate-request-id", x.rec.requestID)
	}
	x.rateLimitHeaders(&mu)
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(200)},
			Headers: mu.get(),
			Body:    body,
			Details: "tollgate_cache_hit",
		},
	}, DynamicMetadata: x.replyMetadata()}
}

// cacheHeader adds x-tollgate-cache to a response the provider answers.
func (x *exchange) cacheHeader(mu *mutation) {
	if x.cache.result != "" {
		mu.set("x-tollgate-cache", x.cache.result)
	}
}

// cacheBody sees every response body chunk as the client gets it and, at
// the end of a storable answer, stores it.
func (x *exchange) cacheBody(out []byte, eos bool) {
	if x.cache.key == "" {
		return
	}
	if x.rec.status != 200 {
		x.cache.key = ""
		return
	}
	if _, streaming := x.body.(*streamReader); streaming {
		if x.cache.scan.MaxEventSize == 0 {
			x.cache.scan.MaxEventSize = maxEventSize
		}
		x.cache.scan.Feed(out)
		if eos {
			x.cache.scan.Finish()
		}
		for {
			ev, more := x.cache.scan.Next()
			if !more {
				break
			}
			if len(ev.Data) > 0 && ev.Data[0] == '{' {
				x.cache.acc.Add(ev.Data)
			}
		}
		if !eos {
			return
		}
		if x.body.outcome() != "" {
			return
		}
		if u, ok := x.body.usage(); ok {
			// The gateway may have removed the usage chunk the client did
			// not ask for; the stored answer carries it anyway.
			x.cache.acc.SetUsage(usageJSON(u))
		}
		body, ok := x.cache.acc.Body()
		if !ok {
			return
		}
		out = body
	} else if !eos {
		return // Envoy buffers a JSON answer: its one chunk is the whole body
	}
	x.store(out)
}

// store keeps a complete answer unless an output guardrail changed or
// blocked it. Store errors cost the entry, never the request.
func (x *exchange) store(body []byte) {
	key := x.cache.key
	x.cache.key = ""
	if x.guard != nil {
		for _, d := range x.guard.Decisions() {
			if d.Stage == guardrails.StageOutput && d.Action != guardrails.Flag {
				return
			}
		}
	}
	if _, ok := usage.FromOpenAI(body); !ok {
		return // no usage: an answer that cannot be metered as saved
	}
	e := cache.Entry{Body: append([]byte(nil), body...), Created: x.srv.now()}
	if err := x.srv.cache.Put(context.WithoutCancel(x.ctx), key, e); err != nil && err != cache.ErrTooLarge {
		x.log().Warn("cache store failed", zap.Error(err))
		x.srv.metrics.cacheResult(cacheError)
	}
}

// usageJSON is OpenAI's usage object for u.
func usageJSON(u usage.Usage) []byte {
	b := []byte(`{"prompt_tokens":`)
	b = strconv.AppendInt(b, u.PromptTokens, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, u.CompletionTokens, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, u.TotalTokens, 10)
	if u.CachedTokens > 0 {
		b = append(b, `,"prompt_tokens_details":{"cached_tokens":`...)
		b = strconv.AppendInt(b, u.CachedTokens, 10)
		b = append(b, '}')
	}
	return append(b, '}')
}
