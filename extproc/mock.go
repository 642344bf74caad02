package extproc

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"slices"

	"github.com/tollgate-ai/tollgate/internal/mockprovider"
)

// answerMockChat and answerMockEmbeddings answer a request routed to a
// schema mock provider themselves, with an ImmediateResponse: there is no
// cluster and no upstream call. They run after every policy step (keys,
// allowlists, guardrails, limits, budgets) and after spliceBody, so the mock
// reads the body exactly as a provider would get it. Config validation keeps
// mock providers out of fallback chains, whose attempts only Envoy's
// upstream filter sends.
func answerMockChat(x *exchange, req *upstreamRequest) error {
	// Always generate the usage chunk: the stream reader drops it again
	// when the gateway, not the client, asked for it (injectStreamUsage).
	x.answer = x.mockResponse(mockprovider.Chat(req.body, true))
	return nil
}

func answerMockEmbeddings(x *exchange, req *upstreamRequest) error {
	x.answer = x.mockResponse(mockprovider.Embeddings(req.body))
	return nil
}

// mockResponse turns the mock's reply into the client's response. The reply
// goes through the same body readers as a provider's response, so usage,
// cost, output guardrails, the usage chunk the client did not ask for, and
// the metering headers or SSE comment are handled exactly as for a real
// provider; the exchange is recorded as an answer that arrived at once.
func (x *exchange) mockResponse(r mockprovider.Reply) *extprocv3.ProcessingResponse {
	now := x.srv.now()
	x.forwarded, x.forwardedAt = true, now
	x.rec.upstreamHeaders, x.rec.firstByte = now, now
	x.rec.status = r.Status
	var mu mutation
	var body []byte
	if r.Stream {
		sr := x.newStreamReader(x.msgs.api.schema(x, x.responseSchema()))
		x.body = sr
		mu.set("content-type", "text/event-stream; charset=utf-8")
		mu.set("cache-control", "no-cache")
		var st [64]byte
		mu.setBytes("server-timing", x.appendServerTiming(st[:0]))
		body, _ = sr.chunk(slices.Concat(r.Body, []byte(mockprovider.Done)), true)
	} else {
		jr := x.newJSONReader(x.msgs.api.schema(x, x.responseSchema()))
		x.body = jr
		body, _ = jr.chunk(r.Body, true) // an output guardrail may change status and body
		mu.set("content-type", "application/json")
		x.endResponse()
		x.meteringHeaders(&mu)
	}
	x.endResponse()
	x.traceBody(body, true)
	x.cacheBody(body, true)
	x.done = true
	if x.rec.requestID != "" {
		mu.set("x-request-id", x.rec.requestID)
		mu.set("x-tollgate-request-id", x.rec.requestID)
	}
	x.rateLimitHeaders(&mu)
	if r.RetryAfter != "" {
		mu.set("retry-after", r.RetryAfter)
	}
	x.cacheHeader(&mu)
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(x.rec.status)},
			Headers: mu.get(),
			Body:    body,
			Details: "tollgate_mock",
		},
	}, DynamicMetadata: x.replyMetadata()}
}

// replyMetadata is the routing decision for the access log of a request
// the gateway answers itself, with the gateway-reply mark that keeps
// local_reply_config away from the body (see immediate).
func (x *exchange) replyMetadata() *structpb.Struct {
	md := x.metadata()
	md.Fields[metadataNamespace].GetStructValue().Fields[metaGatewayReply] = structpb.NewBoolValue(true)
	return md
}
