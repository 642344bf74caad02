package extproc

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate-ai/tollgate/routing/config"
)

// BenchmarkExchange is one non-streaming chat request through the processor
// without gRPC: the request chain and the response side, as Server.Process
// runs them. Each op hands the processor a fresh copy of the client's body,
// as the codec does: the chain edits the body it receives in place.
//
// "bare" is the server BenchmarkFloor runs (Options{}: no logger, metrics or
// ledger); "production" adds what `tollgate serve` configures: the JSON
// access log (written to io.Discard) and the Prometheus metrics.
func BenchmarkExchange(b *testing.B) {
	small := strings.Replace(string(readFixture(b, "openai/chat_request_basic.json")), `"o4-mini"`, `"smart-default"`, 1)
	rh := respHeaders(":status", "200", "content-type", "application/json")
	rb := respBody(string(readFixture(b, "openai/chat_response.json")), true)
	hdrs := chatHeaders()
	for _, w := range []struct{ name, body string }{
		{"chat-small", small},
		{"chat-4KB", string(largeChat(4 << 10))},
	} {
		for _, prod := range []bool{false, true} {
			name := w.name + "/bare"
			if prod {
				name = w.name + "/production"
			}
			b.Run(name, func(b *testing.B) {
				snap := testSnapshot(b)
				o := Options{Snapshot: func() *Snapshot { return snap }}
				if prod {
					productionOptions(&o)
				}
				s := New(o)
				body := reqBody(w.body)
				buf := body.GetRequestBody().Body
				b.ReportAllocs()
				for b.Loop() {
					copy(buf, w.body)
					x := newExchange(context.Background(), s, snap)
					x.handle(hdrs)
					x.handle(body)
					x.handle(rh)
					x.handle(rb)
					x.finish()
					if x.rec.status != 200 || x.rec.refusal != "" {
						b.Fatalf("status %d, refusal %q", x.rec.status, x.rec.refusal)
					}
				}
			})
		}
	}
}

// productionOptions gives o what `tollgate serve` configures on the
// processor (internal/gateway), minus the sinks: the production JSON logger
// at info, writing to io.Discard, and the Prometheus metrics on a registry
// of their own.
func productionOptions(o *Options) {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	o.Logger = zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(io.Discard)), zapcore.InfoLevel), zap.AddCaller())
	o.Metrics = NewMetricsWith(prometheus.NewRegistry(), MetricsOptions{LabelCap: config.MaxMetricLabelValues})
}
