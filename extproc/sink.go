package extproc

import (
	"time"

	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// RecordSink receives the record of every finished request, after its log
// line is written. Record runs on the request's goroutine when the stream
// ends, so it must not block: a usage ledger queues the record and writes it
// later. The sink owns r after the call.
type RecordSink interface {
	Record(r *Record)
}

// Record is what one finished request leaves behind: the fields of its log
// line, plus the timings a ledger keeps.
type Record struct {
	Start         time.Time // when the request's stream began
	RequestID     string    // x-request-id, as Envoy set it
	KeyID         string
	Tenant, App   string
	Tier          string
	AgentID       string
	Endpoint      string // chat, embeddings, transcriptions, models, unknown
	Alias         string // the model name the client sent
	Provider      string
	ProviderModel string
	Status        int    // HTTP status the client received; 0 when none was
	Refusal       string // the gateway's error code when it refused the request
	Stream        bool
	Usage         usage.Usage
	UsageKnown    bool // the provider reported usage
	Estimated     bool // usage was estimated (stream cut before usage arrived)
	Cost          pricing.Amount
	CostKnown     bool
	Latency       time.Duration // start to end of stream
	TTFB          time.Duration // start to the first response byte; 0 when none came
	ProcTime      time.Duration // time the processor spent on this request's messages
	// Cache is the response cache's result (hit, miss, bypass; "" when the
	// cache was not consulted); CacheSaved the stored answer's usage a hit
	// did not spend at the provider.
	Cache      string
	CacheSaved usage.Usage
	// Metadata is the request metadata (tollgate_metadata), in arrival order.
	Metadata [][2]string
}

// ttfb is the time from the start of the request to the first response
// body byte, or to the response headers when no body came; 0 without a
// response.
func (x *exchange) ttfb() time.Duration {
	switch r := &x.rec; {
	case !r.firstByte.IsZero():
		return r.firstByte.Sub(x.start)
	case !r.upstreamHeaders.IsZero():
		return r.upstreamHeaders.Sub(x.start)
	}
	return 0
}

// export copies the exchange's record for a sink.
func (x *exchange) export(end time.Time) *Record {
	r := &x.rec
	out := &Record{
		Start: x.start, RequestID: r.requestID, KeyID: r.keyID, Tenant: r.tenant, App: r.app, Tier: r.tier,
		AgentID: r.agentID, Endpoint: r.route, Alias: r.model, Provider: r.provider, ProviderModel: r.providerModel,
		Status: r.status, Refusal: r.refusal, Stream: r.stream, Usage: r.usage, UsageKnown: r.usageKnown,
		Estimated: r.estimated, Cost: r.cost, CostKnown: r.costKnown, Latency: end.Sub(x.start), TTFB: x.ttfb(),
		ProcTime: x.procTime, Cache: x.cache.result, CacheSaved: x.cache.saved,
	}
	if len(r.metadata) > 0 {
		out.Metadata = make([][2]string, len(r.metadata))
		for i, e := range r.metadata {
			out.Metadata[i] = [2]string{e.k, e.v}
		}
	}
	return out
}
