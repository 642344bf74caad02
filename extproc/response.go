package extproc

import (
	"strconv"
	"unsafe"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/openai"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// bodyReader consumes a response body, chunk by chunk, and may rewrite it.
type bodyReader interface {
	// chunk returns the bytes to send in place of p, and whether they differ
	// from p (if not, the reply carries no body mutation).
	chunk(p []byte, eos bool) (out []byte, changed bool)
	// usage is the response's final usage, when the provider reported it.
	usage() (usage.Usage, bool)
	// partial is whatever usage arrived, final or not, for an estimate.
	partial() (usage.Usage, bool)
	// received is how many bytes of completion text arrived, for an
	// estimate when the provider's usage never did.
	received() int
	// outcome says how a body that reached its end ended for the client:
	// "" when complete, outcomeIncomplete when the provider's stream ended
	// without its end marker or with an error event, outcomeTerminated
	// when the gateway ended it (guardrail, budget).
	outcome() string
}

// schemaOf is the response schema of a provider: its translator, or the
// identity one for providers that speak OpenAI's API themselves (routing
// leaves Translator nil for those, and the request side forwards their
// bodies with in-place edits rather than through a translator).
func schemaOf(p *routing.Provider) translate.Schema {
	if p != nil && p.Translator != nil {
		return p.Translator
	}
	return openai.Passthrough{}
}

func (x *exchange) onResponseHeaders(m *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	h := headersOf(m.GetHeaders())
	x.rec.upstreamHeaders = x.srv.now()
	x.rec.status, _ = strconv.Atoi(h.get(":status"))
	// One object for the reply's four messages, each used in place, and
	// its header mutation's first chunk.
	r := &struct {
		resp    extprocv3.ProcessingResponse
		oneof   extprocv3.ProcessingResponse_ResponseHeaders
		hr      extprocv3.HeadersResponse
		common  extprocv3.CommonResponse
		headers firstChunk
	}{}
	reply := &r.resp
	mu := mutation{room: &r.headers}
	removeMatching(h, &mu, strippedDownstream)
	mu.set("x-tollgate-request-id", x.rec.requestID)
	x.rateLimitHeaders(&mu)
	s := x.msgs.api.schema(x, x.responseSchema())
	x.cacheHeader(&mu)
	if x.stream && x.rec.status == 200 && isStreamBody(s, h.get("content-type")) {
		// Stream SSE through as it comes (Envoy ext_proc API: ProcessingResponse.mode_override). content-length was not
		// removed by Envoy at header time because the configured mode was
		// BUFFERED, so remove it here (Envoy ext_proc: content-length after a body mutation). The headers leave now, so
		// usage and cost travel in an SSE comment at the end instead.
		reply.ModeOverride = streamingMode
		mu.remove("content-length")
		var st [64]byte
		mu.setBytes("server-timing", x.appendServerTiming(st[:0]))
		if !translate.IsVerbatim(s) {
			mu.set("content-type", "text/event-stream; charset=utf-8")
		}
		x.body = x.newStreamReader(s)
	} else {
		// Buffered (Envoy ext_proc: processing_mode message order): the headers are held until the body reply,
		// which adds the metering headers.
		x.body = x.newJSONReader(s)
	}
	if m.GetEndOfStream() {
		x.endResponse()
		x.meteringHeaders(&mu)
	}
	r.common.HeaderMutation = mu.m
	r.hr.Response = &r.common
	r.oneof.ResponseHeaders = &r.hr
	reply.Response = &r.oneof
	return reply
}

func (x *exchange) onResponseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if x.rec.firstByte.IsZero() {
		x.rec.firstByte = x.srv.now()
	}
	var out []byte
	changed := false
	if x.body != nil {
		if out, changed = x.body.chunk(b.GetBody(), b.GetEndOfStream()); !changed {
			out = b.GetBody()
		}
		x.traceBody(out, b.GetEndOfStream())
		x.cacheBody(out, b.GetEndOfStream())
	}
	if b.GetEndOfStream() {
		x.endResponse()
	}
	if sr, streamed := x.body.(*streamReader); streamed {
		return sr.reply(out, changed) // no headers: they left with the response headers
	}
	r := newResponseBodyReply()
	if changed {
		r.bodyMu.Body = out
		r.bm.Mutation = &r.bodyMu
		r.common.BodyMutation = &r.bm
	}
	if jr, buffered := x.body.(*jsonReader); buffered && b.GetEndOfStream() {
		// Header mutations in a BUFFERED body reply still apply: the
		// response headers are held until this reply (Envoy ext_proc API: HeaderMutation).
		x.meteringHeaders(&jr.headers)
		r.common.HeaderMutation = jr.headers.m
	}
	return &r.resp
}

// responseBodyReply is the messages of a buffered response body reply,
// allocated together as requestBodyReply's are.
type responseBodyReply struct {
	resp   extprocv3.ProcessingResponse
	oneof  extprocv3.ProcessingResponse_ResponseBody
	br     extprocv3.BodyResponse
	common extprocv3.CommonResponse
	bm     extprocv3.BodyMutation
	bodyMu extprocv3.BodyMutation_Body
}

func newResponseBodyReply() *responseBodyReply {
	r := &responseBodyReply{}
	r.br.Response = &r.common
	r.oneof.ResponseBody = &r.br
	r.resp.Response = &r.oneof
	return r
}

// statusCell is the response status as a reader sees it: the client's
// status, which a reader changes when it maps a provider error or a
// guardrail refuses the answer. The exchange's record holds it.
type statusCell interface {
	status() int
	setStatus(int)
}

func (x *exchange) status() int        { return x.rec.status }
func (x *exchange) setStatus(code int) { x.rec.status = code }

// newJSONReader returns the reader of a buffered response.
func (x *exchange) newJSONReader(s translate.Schema) *jsonReader {
	r := &jsonReader{x: x, schema: s, model: x.target.Model, endpoint: x.endpoint, guard: newOutputGuard(x.guard), owner: x}
	r.headers.large = &r.headersRoom
	return r
}

// credentialRejected logs a provider's 401: the gateway's (or the tenant's
// own) provider credential was refused, which the operators must see and
// the client must not.
func (x *exchange) credentialRejected(body []byte) {
	const max = 512
	x.log().Warn("provider rejected the gateway's credential", zap.String("provider", x.rec.provider),
		zap.Bool("byok", x.rec.byok), zap.ByteString("provider_error", body[:min(len(body), max)]))
}

// jsonReader reads usage from a buffered JSON response. Envoy sends the whole
// body in one message (BUFFERED); chunks are still accumulated in case a
// future mode splits it.
type jsonReader struct {
	x        statusCell
	schema   translate.Schema // nil: the identity schema
	model    string           // reported when the provider's body names none
	endpoint routing.Endpoint
	guard    *outputGuard
	buf      []byte
	u        usage.Usage
	ok       bool
	text     int
	headers  mutation // set by a translation, applied with the body reply

	errorBody          func(*oaierror.Error) []byte // the endpoint's error format
	credentialRejected func(providerBody []byte)    // logs a provider's 401
	// headersRoom is headers' first chunk: the metering headers that every
	// buffered response's body reply sets (meteringHeaders).
	headersRoom largeChunk

	// owner, when set, is the exchange whose errorBody and
	// credentialRejected these are: its method values, made only for a
	// 401, where storing them would cost two objects per response.
	owner *exchange
}

// errProviderAuth answers a provider's 401. The client's gateway key was
// accepted; the provider refused the credential the gateway sent, so the
// client gets a gateway error (never the provider's 401, which SDKs read as
// "your key is wrong" and whose message can show part of the platform's
// key).
var errProviderAuth = oaierror.Internal(502, "provider_auth_failed",
	"The provider rejected the gateway's credential for this model. The gateway's operators can see why in its log.")

func (r *jsonReader) chunk(p []byte, eos bool) ([]byte, bool) {
	data := p
	if len(r.buf) > 0 || !eos {
		r.buf = append(r.buf, p...)
		data = r.buf
	}
	if !eos {
		return nil, false
	}
	r.buf = nil
	changed := false
	status := r.x.status()
	if status == 401 && (r.errorBody != nil || r.owner != nil) {
		errorBody, rejected := r.errorBody, r.credentialRejected
		if r.owner != nil {
			errorBody, rejected = r.owner.msgs.api.errorBody, r.owner.credentialRejected
		}
		rejected(data)
		out := errorBody(errProviderAuth)
		r.x.setStatus(errProviderAuth.Status)
		r.headers.set(":status", strconv.Itoa(errProviderAuth.Status))
		r.headers.set("content-type", "application/json")
		r.headers.setContentLength(len(out))
		return out, true
	}
	switch {
	case r.endpoint == routing.EndpointTranscriptions:
		r.u, r.ok = transcriptionUsage(data)
	case status == 0:
		r.u, r.ok = usage.FromOpenAI(data)
		r.readText(data)
	default:
		data, changed = r.translate(data)
	}
	if status = r.x.status(); r.guard != nil && status >= 200 && status < 300 {
		out, err := r.guard.response(data)
		if err != nil {
			e := guardError(err)
			out = e.Body()
			r.headers.set(":status", strconv.Itoa(e.Status))
			r.x.setStatus(e.Status)
		}
		r.headers.set("content-type", "application/json")
		r.headers.setContentLength(len(out))
		return out, true
	}
	return data, changed
}

// readText counts the completion text of a response without usage, for an
// estimate.
func (r *jsonReader) readText(data []byte) {
	if !r.ok {
		r.text = len(gjson.Get(view(data), "choices.0.message.content").Str)
	}
}

// translate turns a provider's whole response into OpenAI's format. A
// verbatim schema's body goes on as it came. Otherwise the body changes
// length, and in BUFFERED mode Envoy kept content-length, so the reply sets
// the exact new one (Envoy ext_proc: content-length after a body mutation); an error's status is mapped too (a :status
// mutation is allowed on responses, Envoy ext_proc API: HeaderMutation).
func (r *jsonReader) translate(data []byte) ([]byte, bool) {
	tr := r.schema
	if tr == nil {
		tr = openai.Passthrough{}
	}
	was := r.x.status()
	status := was
	var out []byte
	if status >= 200 && status < 300 {
		var err error
		out, r.u, r.ok, err = tr.Response(data, r.model)
		if err != nil {
			status, out = errorReply(err)
		}
	} else {
		status, out = tr.Error(status, data)
	}
	r.readText(out)
	if translate.IsVerbatim(tr) && status == was {
		return out, false
	}
	if status != was {
		r.headers.set(":status", strconv.Itoa(status))
		r.x.setStatus(status)
	}
	r.headers.set("content-type", "application/json")
	r.headers.setContentLength(len(out))
	return out, true
}

func (r *jsonReader) usage() (usage.Usage, bool)   { return r.u, r.ok }
func (r *jsonReader) partial() (usage.Usage, bool) { return r.u, r.ok }
func (r *jsonReader) received() int                { return r.text }
func (r *jsonReader) outcome() string              { return "" }

// view reads b as a string without copying it. gjson.GetBytes copies its
// results to keep them valid; results here are used only while the event's
// bytes are alive, so the copy per chunk is avoidable.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
