package extproc

import (
	"context"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// exchange is the state of one HTTP request as seen by the processor.
type exchange struct {
	srv   *Server
	snap  *Snapshot
	ctx   context.Context // the gRPC stream's
	start time.Time
	end   time.Time // set by finish, for the log line

	facts // written by the request chain, read-only after it (facts.go)

	meter // admission, budgets, timers; settles usage and cost once

	// response side
	body      bodyReader
	done      bool                          // an ImmediateResponse was sent
	answer    *extprocv3.ProcessingResponse // a request step's own answer (answerMock)
	respEnded bool                          // the response's end of stream was processed

	cache cacheState // the response cache's part in the request (cache.go)

	rec record

	// reads, when set (tests only), is told every value the request steps
	// read from the client's JSON body, by gjson path.
	reads readHook

	tr *spanState // the request's span; nil when tracing is off

	// The access log line's field and cost text, here because the
	// logger's interfaces would move them to the heap: the exchange
	// (1,600 bytes) has room in its size class.
	logField [1]zap.Field
	costText [24]byte
}

// record is what the request's log line and metrics say.
type record struct {
	requestID, keyID, route, model, provider, providerModel, refusal string
	refusalStep                                                      string // the request step that refused
	tenant, app, tier, agentID                                       string
	agentInvalid, byok                                               bool
	metadata                                                         metadata
	status                                                           int
	stream                                                           bool
	usage                                                            usage.Usage
	usageKnown, estimated, costKnown                                 bool
	unpriced                                                         bool   // refused, or served without a price
	outcome                                                          string // how the exchange ended for the client
	cost                                                             pricing.Amount
	firstByte, upstreamHeaders                                       time.Time
}

func newExchange(ctx context.Context, s *Server, snap *Snapshot) *exchange {
	return &exchange{srv: s, snap: snap, ctx: ctx, start: s.now(), rec: record{route: "unknown"}}
}

// handle answers one ProcessingRequest. Every message gets exactly one reply
// of the matching type, or an ImmediateResponse (Envoy ext_proc API: ProcessingResponse).
func (x *exchange) handle(req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, string) {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return x.onRequestHeaders(r.RequestHeaders), "request_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return x.onRequestBody(r.RequestBody), "request_body"
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		x.answeredBy(req)
		return x.onResponseHeaders(r.ResponseHeaders), "response_headers"
	case *extprocv3.ProcessingRequest_ResponseBody:
		return x.onResponseBody(r.ResponseBody), "response_body"
	case *extprocv3.ProcessingRequest_RequestTrailers:
		// Trailer modes are SKIP in our config; answer correctly anyway.
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
			RequestTrailers: &extprocv3.TrailersResponse{}}}, "request_trailers"
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
			ResponseTrailers: &extprocv3.TrailersResponse{}}}, "response_trailers"
	}
	return nil, "unknown"
}

// refuse ends the request with an OpenAI-format error.
func (x *exchange) refuse(e *oaierror.Error) *extprocv3.ProcessingResponse {
	x.rec.refusal = e.Code
	return x.immediate(e.Status, x.msgs.api.errorBody(e), "tollgate_"+e.Code)
}

// immediate answers the client directly (Envoy ext_proc API: ImmediateResponse). content-type is set
// explicitly: Envoy's local-reply default for a body is text/plain.
// x-request-id carries Envoy's request id, which the OpenAI SDKs report as
// the error's request_id; it also marks the reply as the gateway's own, so
// the bootstraps' local_reply_config leaves its body alone.
func (x *exchange) immediate(status int, body []byte, details string) *extprocv3.ProcessingResponse {
	x.done = true
	x.rec.status = status
	mu := mutation{}
	mu.set("content-type", "application/json")
	if x.rec.requestID != "" {
		mu.set("x-request-id", x.rec.requestID)
		mu.set("x-tollgate-request-id", x.rec.requestID)
	}
	x.rateLimitHeaders(&mu)
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: mu.get(),
			Body:    body,
			Details: details,
		},
	}, DynamicMetadata: gatewayReplyMark()}
}

// metaGatewayReply marks the stream's dynamic metadata when the gateway
// answers itself. Envoy applies an ImmediateResponse's dynamic_metadata before
// it sends the local reply, and runs the HCM's local_reply_config mappers on
// that reply too; their metadata_filter skips marked replies, so the mappers
// rewrite only Envoy's own errors and never a gateway body (envoy/envoy.yaml).
const metaGatewayReply = "gateway_reply"

func gatewayReplyMark() *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		metadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			metaGatewayReply: structpb.NewBoolValue(true),
		}}),
	}}
}

// streamingMode is the processing mode for a streamed response. Every field
// is explicit so Envoy 1.33 (override replaces the mode) and 1.34+ (DEFAULT
// keeps the configured value) agree, and it equals the single entry of
// allowed_override_modes in envoy/envoy.yaml (Envoy ext_proc API: ProcessingResponse.mode_override).
var streamingMode = &extprocfilterv3.ProcessingMode{
	RequestHeaderMode:   extprocfilterv3.ProcessingMode_SEND,
	RequestBodyMode:     extprocfilterv3.ProcessingMode_BUFFERED,
	RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP,
	ResponseHeaderMode:  extprocfilterv3.ProcessingMode_SEND,
	ResponseBodyMode:    extprocfilterv3.ProcessingMode_STREAMED,
	ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
}

// finish writes the request's single log line and its metrics, and hands
// its record to the sink (the usage ledger) when there is one.
func (x *exchange) finish() {
	r := &x.rec
	x.settle() // a no-op unless the response never reached its end
	x.settleOutcome()
	x.reconcile()
	x.logDecisions()
	end := x.srv.now()
	x.end = end // the log line's latency
	if x.cache.result == cacheHit {
		x.srv.metrics.cacheSavedTokens(x.cache.saved.TotalTokens)
	}
	x.srv.metrics.finished(r, end.Sub(x.start), x.ttfb(), x.procTime)
	// The caller is this Check's line for every request (Server.access):
	// the first line captures it, later ones reuse it.
	log, c := x.srv.log, x.srv.accessCaller.Load()
	if c != nil && c.reuse {
		log = x.srv.access
	}
	if ce := log.Check(zap.InfoLevel, "request"); ce != nil {
		switch {
		case c == nil:
			// A stack trace (AddStacktrace at info) is captured anyway,
			// from the same walk: then nothing is saved by reusing.
			x.srv.accessCaller.Store(&accessCaller{caller: ce.Caller, reuse: ce.Stack == ""})
		case c.reuse:
			ce.Caller = c.caller
		}
		x.logField[0] = zap.Inline((*accessLine)(x))
		ce.Write(x.logField[:]...)
	}
	if x.srv.sink != nil {
		x.srv.sink.Record(x.export(end))
	}
	x.endSpan(end)
}

// accessCaller is the access log line's caller, captured by zap for the
// first line; reuse is false when zap walks the stack for every line anyway.
type accessCaller struct {
	caller zapcore.EntryCaller
	reuse  bool
}

// accessLine is the request's log line. It writes its fields straight into
// the encoder: no []zap.Field to grow, no reflection, nothing boxed; the
// pointer conversion makes zap.Inline allocation-free.
type accessLine exchange

func (l *accessLine) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	x := (*exchange)(l)
	r := &x.rec
	enc.AddString("request_id", r.requestID)
	enc.AddString("key_id", r.keyID)
	enc.AddString("tenant", r.tenant)
	enc.AddString("app", r.app)
	enc.AddString("tier", r.tier)
	enc.AddString("agent_id", r.agentID)
	enc.AddString("route", r.route)
	enc.AddString("model", r.model)
	enc.AddString("provider", r.provider)
	enc.AddString("provider_model", r.providerModel)
	enc.AddInt64("status", int64(r.status))
	enc.AddString("outcome", r.outcome)
	enc.AddBool("stream", r.stream)
	enc.AddInt64("prompt_tokens", r.usage.PromptTokens)
	enc.AddInt64("completion_tokens", r.usage.CompletionTokens)
	enc.AddInt64("total_tokens", r.usage.TotalTokens)
	enc.AddInt64("cached_tokens", r.usage.CachedTokens)
	enc.AddInt64("cache_write_5m_tokens", r.usage.CacheWrite5mTokens)
	enc.AddInt64("cache_write_1h_tokens", r.usage.CacheWrite1hTokens)
	enc.AddInt64("reasoning_tokens", r.usage.ReasoningTokens)
	enc.AddInt64("audio_tokens", r.usage.AudioTokens)
	enc.AddBool("usage_from_provider", r.usageKnown)
	enc.AddBool("usage_estimated", r.estimated)
	enc.AddDuration("latency", x.end.Sub(x.start))
	if r.stream && !r.firstByte.IsZero() {
		enc.AddDuration("ttfb", r.firstByte.Sub(x.start))
	}
	if r.usage.AudioMillis > 0 {
		enc.AddInt64("audio_ms", r.usage.AudioMillis)
	}
	if r.costKnown {
		enc.AddByteString("cost_usd", r.cost.Append(x.costText[:0]))
	} else if r.unpriced || r.usageKnown || r.estimated || x.forwarded && r.status >= 200 && r.status < 300 {
		// Never silently free: a served request without a cost says so
		// (no price, or no usage to price, e.g. a transcription as text).
		enc.AddBool("unpriced", true)
	}
	if r.agentInvalid {
		enc.AddBool("agent_id_invalid", true)
	}
	if len(r.metadata) > 0 {
		if err := enc.AddObject("metadata", r.metadata); err != nil {
			return err
		}
	}
	if r.byok {
		enc.AddBool("byok", true)
	}
	if r.refusal != "" {
		enc.AddString("refusal", r.refusal)
	}
	if r.refusalStep != "" {
		enc.AddString("refusal_step", r.refusalStep)
	}
	if x.cache.result != "" {
		enc.AddString("cache", x.cache.result)
	}
	if x.cache.result == cacheHit {
		enc.AddInt64("cache_saved_tokens", x.cache.saved.TotalTokens)
	}
	return nil
}
