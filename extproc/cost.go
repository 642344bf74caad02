package extproc

import (
	"bytes"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// priceKey is the price table key of the request's target: its provider's
// price_as mapping, else the provider's name and the model id.
func (x *exchange) priceKey() pricing.Key { return x.target.Provider.PriceKey(x.target.Model) }

// estimateCost is the request's worst-case cost for admission. A model
// without a price is never silently free: where a budget or cost cap
// applies (budgeted) it is refused with model_unpriced, unless its provider
// says unpriced: allow.
func (x *exchange) estimateCost(budgeted bool) (pricing.Amount, *oaierror.Error) {
	est, ok := x.snap.Prices.Estimate(x.priceKey(), x.promptEst, x.maxOut, x.start)
	if !ok && budgeted && !x.target.Provider.AllowUnpriced {
		x.rec.unpriced = true
		return 0, &oaierror.Error{Status: 400, Type: oaierror.TypeInvalidRequest, Code: "model_unpriced", Param: "model",
			Message: "The model " + x.target.Canonical() + " has no price for this request, and a budget applies to it; the gateway does not serve unpriced models under a budget."}
	}
	return est, nil
}

// estimateUsage is the usage of a response whose final usage never arrived:
// the provider's partial counts where it sent some (Anthropic's
// message_start has exact input counts), the larger of its partial output
// count and an estimate from the completion text received, and a prompt
// estimated from the request size where the provider sent none.
func (x *exchange) estimateUsage() usage.Usage {
	var u usage.Usage
	out := 0
	if x.body != nil {
		u, _ = x.body.partial()
		out = x.body.received()
	}
	if u.PromptTokens == 0 {
		u.PromptTokens = x.promptEst
		if u.PromptTokens == 0 {
			u.PromptTokens = estimateTokens(x.reqBytes)
		}
	}
	u.CompletionTokens = max(u.CompletionTokens, estimateTokens(out))
	u.ReasoningTokens = min(u.ReasoningTokens, u.CompletionTokens)
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// pricingUsage is the part of a usage record that has a price.
func pricingUsage(u usage.Usage) pricing.Usage {
	return pricing.Usage{
		PromptTokens: u.PromptTokens, CachedTokens: u.CachedTokens,
		CacheWrite5mTokens: u.CacheWrite5mTokens, CacheWrite1hTokens: u.CacheWrite1hTokens,
		AudioTokens: u.AudioTokens, CompletionTokens: u.CompletionTokens, AudioMillis: u.AudioMillis,
	}
}

// transcriptionUsage reads a transcription's usage: the JSON body's, or, for
// a streamed transcription (stream=true; the response is read whole, since
// multipart requests are not switched to streaming), the usage of its
// transcript.text.done event. Lines are scanned in place, without a copy.
func transcriptionUsage(body []byte) (usage.Usage, bool) {
	if u, ok := usage.FromTranscription(body); ok {
		return u, true
	}
	for rest := body; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:"))
		if !ok || !bytes.Contains(data, []byte(`"transcript.text.done"`)) {
			continue
		}
		if u, ok := usage.FromTranscription(bytes.TrimLeft(data, " ")); ok {
			return u, true
		}
	}
	return usage.Usage{}, false
}
