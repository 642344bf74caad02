package extproc

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	grpcmd "google.golang.org/grpc/metadata"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// Tracing: one span per request, following the OpenTelemetry GenAI semantic
// conventions (docs/observability.md#tracing). Every hook returns at once
// when tracing is off (x.tr == nil), so the off path costs no allocation.
//
// The span is SERVER: it is the inbound side of the application's model
// call (a CLIENT span in the application), the gateway does not host the
// model, and a SERVER span marks the service boundary in trace views.

// tracing is a Server's tracing configuration; nil when off.
type tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	latest bool // OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental
	// inflight maps x-request-id to the span of a request in flight, so a
	// fallback attempt's stream can mark its attempt on it.
	inflight sync.Map
}

func newTracing(o Options) *tracing {
	if o.TracerProvider == nil {
		return nil
	}
	t := &tracing{tracer: o.TracerProvider.Tracer("github.com/tollgate-ai/tollgate/extproc"), prop: o.Propagator, latest: o.LatestGenAI}
	if t.prop == nil {
		t.prop = propagation.TraceContext{}
	}
	return t
}

// spanState is one request's span.
type spanState struct {
	span     trace.Span
	attempts atomic.Int64
	capture  bool // the app records prompts and completions
	input    []message
	output   []message
	streamed strings.Builder      // a captured stream's completion text
	params   []attribute.KeyValue // gen_ai.request.* as the client sent them
	respID   string
	respMod  string
	finish   []string
	sawFirst bool
}

// headerCarrier reads and writes trace context in Envoy request headers.
type headerCarrier struct {
	h   headers
	out map[string]string
}

func (c headerCarrier) Get(k string) string {
	if c.out != nil {
		return c.out[k]
	}
	return c.h.get(k)
}
func (c headerCarrier) Set(k, v string) { c.out[k] = v }
func (c headerCarrier) Keys() []string  { return nil }

// mdCarrier reads trace context from the ext_proc stream's gRPC metadata,
// where Envoy puts its own ext_proc span when its tracing is on.
type mdCarrier grpcmd.MD

func (c mdCarrier) Get(k string) string {
	if v := grpcmd.MD(c).Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c mdCarrier) Set(string, string) {}
func (c mdCarrier) Keys() []string     { return nil }

// startSpan starts the request's span. Its parent is Envoy's ext_proc span
// when Envoy traces (the gRPC stream's metadata carries it), else the
// client's traceparent from the HTTP request.
func (x *exchange) startSpan(h headers) {
	t := x.srv.tracing
	if t == nil {
		return
	}
	ctx := context.Background()
	if md, ok := grpcmd.FromIncomingContext(x.ctx); ok && len(md.Get("traceparent")) > 0 {
		ctx = t.prop.Extract(ctx, mdCarrier(md))
	} else {
		ctx = t.prop.Extract(ctx, headerCarrier{h: h})
	}
	_, span := t.tracer.Start(ctx, "tollgate", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(x.start))
	x.tr = &spanState{span: span}
	if id := h.get("x-request-id"); id != "" {
		// x-request-id is client-settable: a repeated id must not take over
		// another request's fallback-attempt events.
		t.inflight.LoadOrStore(id, x.tr)
	}
}

// traceHeaders forwards the gateway span's context upstream, so the
// provider (or Envoy's router, which re-injects its own span when Envoy
// traces) sees the gateway span as parent.
func (x *exchange) traceHeaders(mu *mutation) {
	if x.tr == nil || !x.tr.span.SpanContext().IsValid() {
		return
	}
	out := map[string]string{}
	x.srv.tracing.prop.Inject(trace.ContextWithSpan(context.Background(), x.tr.span), headerCarrier{out: out})
	for _, k := range [...]string{"traceparent", "tracestate"} {
		if v := out[k]; v != "" {
			mu.set(k, v)
		}
	}
}

// captureInput records the prompt for apps that opted in, after guardInput
// has written its redactions into the body: never the unredacted text.
func captureInput(x *exchange, req *upstreamRequest) *oaierror.Error {
	if x.tr == nil || !x.tr.span.IsRecording() {
		return nil
	}
	x.tr.params = requestParams(req)
	if x.app == nil || !x.app.CaptureContent {
		return nil
	}
	x.tr.capture = true
	// Redactions are queued, not yet written (spliceBody writes them): read
	// the body as it will leave, so the span never holds what the guardrails
	// redacted.
	x.tr.input = readMessages(gjson.GetBytes(req.preview(), "messages"), false)
	return nil
}

// traceBody reads what the client receives (OpenAI's format, after
// translation and the output guard): the response id, model, finish
// reasons, the first byte and, when captured, the completion.
func (x *exchange) traceBody(sent []byte, eos bool) {
	s := x.tr
	if s == nil || !s.span.IsRecording() {
		return
	}
	if !s.sawFirst && len(sent) > 0 {
		s.sawFirst = true
		s.span.AddEvent("tollgate.first_byte", trace.WithTimestamp(x.rec.firstByte))
	}
	if _, buffered := x.body.(*jsonReader); buffered {
		if !eos {
			return
		}
		root := gjson.ParseBytes(sent)
		s.readResponse(root)
		root.Get("choices.#.finish_reason").ForEach(func(_, v gjson.Result) bool {
			if v.Str != "" {
				s.finish = append(s.finish, v.Str)
			}
			return true
		})
		if s.capture && x.rec.status >= 200 && x.rec.status < 300 {
			s.output = readMessages(root.Get("choices"), true)
		}
		return
	}
	for rest := sent; len(rest) > 0; {
		line := rest
		if i := indexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		data, ok := strings.CutPrefix(view(line), "data: ")
		if !ok || !strings.HasPrefix(data, "{") {
			continue
		}
		root := gjson.Parse(data)
		s.readResponse(root)
		if fr := root.Get("choices.0.finish_reason"); fr.Str != "" {
			s.finish = append(s.finish, strings.Clone(fr.Str))
		}
		if s.capture {
			s.streamed.WriteString(root.Get("choices.0.delta.content").Str)
		}
	}
}

func (s *spanState) readResponse(root gjson.Result) {
	if s.respID == "" {
		s.respID = strings.Clone(root.Get("id").Str)
	}
	if s.respMod == "" {
		s.respMod = strings.Clone(root.Get("model").Str)
	}
}

func indexByte(b []byte, c byte) int {
	for i, v := range b {
		if v == c {
			return i
		}
	}
	return -1
}

// traceAttempt marks a fallback attempt on its request's span. Attempts are
// separate ext_proc streams (Envoy's upstream filter); x-request-id ties
// them to the request.
func (s *Server) traceAttempt(reqID, provider string, n int64) {
	if s.tracing == nil || reqID == "" {
		return
	}
	v, ok := s.tracing.inflight.Load(reqID)
	if !ok {
		return
	}
	st := v.(*spanState)
	st.attempts.Add(1)
	st.span.AddEvent("tollgate.fallback_attempt", trace.WithAttributes(
		attribute.Int64("tollgate.fallback.attempt", n), attribute.String("tollgate.fallback.provider", provider)))
}

// endSpan names the span, sets its attributes from the request's record and
// ends it.
func (x *exchange) endSpan(end time.Time) {
	s := x.tr
	if s == nil {
		return
	}
	t := x.srv.tracing
	if x.rec.requestID != "" {
		// Only this request's entry: a client-chosen x-request-id may repeat.
		t.inflight.CompareAndDelete(x.rec.requestID, s)
	}
	defer s.span.End(trace.WithTimestamp(end))
	if !s.span.IsRecording() {
		return
	}
	r := &x.rec
	op := operationName(x.endpoint)
	a := make([]attribute.KeyValue, 0, 32)
	switch {
	case op == "": // refused before its endpoint was known (a bad key)
		s.span.SetName("tollgate")
	case r.model != "":
		s.span.SetName(op + " " + r.model)
	default:
		s.span.SetName(op)
	}
	if op != "" {
		a = append(a, attribute.String("gen_ai.operation.name", op))
	}
	if p := x.target.Provider; p != nil {
		if t.latest {
			a = append(a, attribute.String("gen_ai.provider.name", providerName(p, true)))
		} else {
			a = append(a, attribute.String("gen_ai.system", providerName(p, false)))
		}
	}
	str := func(k, v string) {
		if v != "" {
			a = append(a, attribute.String(k, v))
		}
	}
	str("gen_ai.request.model", r.model)
	a = append(a, s.params...)
	if p := x.target.Provider; p != nil && p.Address != "" {
		// A provider behind an external cluster has no address the
		// processor knows (Envoy resolves it): both are then left out.
		a = append(a, attribute.String("server.address", p.Address), attribute.Int("server.port", p.Port))
	}
	str("gen_ai.response.model", s.respMod)
	str("gen_ai.response.id", s.respID)
	if len(s.finish) > 0 {
		a = append(a, attribute.StringSlice("gen_ai.response.finish_reasons", s.finish))
	}
	if r.usageKnown || r.estimated {
		a = append(a, attribute.Int64("gen_ai.usage.input_tokens", r.usage.PromptTokens),
			attribute.Int64("gen_ai.usage.output_tokens", r.usage.CompletionTokens))
		writes := r.usage.CacheWrite5mTokens + r.usage.CacheWrite1hTokens // parts of input_tokens, as the conventions ask
		if t.latest {
			a = append(a, attribute.Int64("gen_ai.usage.cache_read.input_tokens", r.usage.CachedTokens),
				attribute.Int64("gen_ai.usage.cache_creation.input_tokens", writes))
		}
		a = append(a, attribute.Bool("tollgate.usage.estimated", r.estimated),
			attribute.Int64("tollgate.usage.cached_tokens", r.usage.CachedTokens),
			attribute.Int64("tollgate.usage.cache_write_tokens", writes))
	}
	if r.status != 0 {
		a = append(a, attribute.Int("http.response.status_code", r.status))
	}
	str("tollgate.request_id", r.requestID)
	str("tollgate.tenant", r.tenant)
	str("tollgate.app", r.app)
	str("tollgate.key_id", r.keyID)
	str("tollgate.alias", r.model)
	str("tollgate.provider", r.provider)
	str("tollgate.provider_model", r.providerModel)
	str("tollgate.refusal", r.refusal)
	if r.costKnown {
		c, _ := strconv.ParseFloat(r.cost.String(), 64)
		// Langfuse reads cost from its own attribute (it would otherwise
		// infer one from its price list); the exact figure is the gateway's.
		a = append(a, attribute.Float64("tollgate.cost_usd", c),
			attribute.String("langfuse.observation.cost_details", `{"total":`+r.cost.String()+`}`))
	}
	if n := s.attempts.Load(); n > 0 {
		a = append(a, attribute.Int64("tollgate.fallback.attempts", n))
	}
	if x.reservation != nil || x.quota.Reason != "" {
		d := "allowed"
		if !x.quota.Allowed {
			d = string(x.quota.Reason)
		}
		a = append(a, attribute.String("tollgate.limit.decision", d))
	}
	if x.guard != nil {
		var ds []string
		for _, d := range x.guard.Decisions() {
			ds = append(ds, d.Guardrail+":"+string(d.Stage)+":"+string(d.Action))
		}
		if len(ds) > 0 {
			a = append(a, attribute.StringSlice("tollgate.guardrail.decisions", ds))
		}
	}
	if s.capture {
		if s.streamed.Len() > 0 {
			fr := ""
			if len(s.finish) > 0 {
				fr = s.finish[len(s.finish)-1]
			}
			s.output = []message{{Role: "assistant", Parts: []msgPart{{Type: "text", Content: s.streamed.String()}}, FinishReason: fr}}
		}
		system := ""
		if p := x.target.Provider; p != nil {
			system = providerName(p, false)
		}
		a = append(a, s.recordContent(t.latest, system)...)
	}
	if et := x.errorType(); et != "" {
		a = append(a, attribute.String("error.type", et))
		s.span.SetStatus(codes.Error, et)
	}
	s.span.SetAttributes(a...)
}

// errorType is error.type: the refusal's code, a stream that failed or was
// cut short, or the HTTP status of a failed response.
func (x *exchange) errorType() string {
	if x.rec.refusal != "" {
		return x.rec.refusal
	}
	if r, ok := x.body.(*streamReader); ok {
		if et := r.streamError(); et != "" {
			return et
		}
	}
	if x.rec.status >= 400 {
		return strconv.Itoa(x.rec.status)
	}
	if x.forwarded && x.rec.status == 0 {
		return "no_response"
	}
	return ""
}

// requestParams reads the GenAI conventions' request attributes from the
// client's top-level members, in one pass over the members parseJSON found.
// Values of the wrong type are left out: the provider refuses those.
func requestParams(req *upstreamRequest) []attribute.KeyValue {
	var a []attribute.KeyValue
	maxTokens, haveMax := int64(0), false
	for _, m := range req.members {
		v := gjson.Parse(view(req.body[m.ValueStart:m.ValueEnd]))
		num := func(k string) {
			if v.Type == gjson.Number {
				a = append(a, attribute.Float64(k, v.Num))
			}
		}
		switch {
		case m.Is("max_completion_tokens"), m.Is("max_tokens") && !haveMax:
			// max_completion_tokens supersedes max_tokens in OpenAI's API.
			if v.Type == gjson.Number {
				maxTokens, haveMax = v.Int(), true
			}
		case m.Is("temperature"):
			num("gen_ai.request.temperature")
		case m.Is("top_p"):
			num("gen_ai.request.top_p")
		case m.Is("frequency_penalty"):
			num("gen_ai.request.frequency_penalty")
		case m.Is("presence_penalty"):
			num("gen_ai.request.presence_penalty")
		case m.Is("seed"):
			if v.Type == gjson.Number {
				a = append(a, attribute.Int64("gen_ai.request.seed", v.Int()))
			}
		case m.Is("n"):
			if v.Type == gjson.Number && v.Int() != 1 { // the conventions ask for it only when not 1
				a = append(a, attribute.Int64("gen_ai.request.choice.count", v.Int()))
			}
		case m.Is("stop"):
			if ss := strings1(v); ss != nil {
				a = append(a, attribute.StringSlice("gen_ai.request.stop_sequences", ss))
			}
		case m.Is("encoding_format"):
			if v.Type == gjson.String {
				a = append(a, attribute.StringSlice("gen_ai.request.encoding_formats", []string{strings.Clone(v.Str)}))
			}
		case m.Is("response_format"):
			switch v.Get("type").Str {
			case "text":
				a = append(a, attribute.String("gen_ai.output.type", "text"))
			case "json_object", "json_schema":
				a = append(a, attribute.String("gen_ai.output.type", "json"))
			}
		}
	}
	if haveMax {
		a = append(a, attribute.Int64("gen_ai.request.max_tokens", maxTokens))
	}
	return a
}

// strings1 reads OpenAI's stop: one string or an array of strings.
func strings1(v gjson.Result) []string {
	switch {
	case v.Type == gjson.String:
		return []string{strings.Clone(v.Str)}
	case v.IsArray():
		var ss []string
		for _, e := range v.Array() {
			if e.Type == gjson.String {
				ss = append(ss, strings.Clone(e.Str))
			}
		}
		return ss
	}
	return nil
}

func operationName(e routing.Endpoint) string {
	switch e {
	case routing.EndpointChat:
		return "chat"
	case routing.EndpointEmbeddings:
		return "embeddings"
	case routing.EndpointTranscriptions:
		return "transcription"
	case routing.EndpointModels:
		return "models"
	case routing.EndpointMessages: // a chat in Anthropic's API
		return "chat"
	}
	return ""
}

// providerName is gen_ai.provider.name (latest) or gen_ai.system (v1.36.0)
// from the provider's wire schema: the conventions name the API flavour,
// so any OpenAI-compatible provider is "openai".
func providerName(p *routing.Provider, latest bool) string {
	switch p.Schema {
	case config.SchemaAnthropic:
		return "anthropic"
	case config.SchemaAzureOpenAI:
		if latest {
			return "azure.ai.openai"
		}
		return "az.ai.openai"
	}
	return "openai"
}
