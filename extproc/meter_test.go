package extproc

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// TestSettleOnce: usage and cost are settled at the response's end and
// never again, whoever reads them after.
func TestSettleOnce(t *testing.T) {
	first := usage.Usage{PromptTokens: 3, CompletionTokens: 1, TotalTokens: 4}
	tests := []struct {
		name string
		end  func(x *exchange)
	}{
		{"buffered body end", func(x *exchange) { x.endResponse() }},
		{"stream end marker", func(x *exchange) { x.endComment() }},
		{"exchange end without the response's", func(x *exchange) { x.settle() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newTestExchange(t)
			x.rec.status = 200
			jr := &jsonReader{x: x, u: first, ok: true}
			x.body = jr
			tt.end(x)
			jr.u = usage.Usage{PromptTokens: 100, TotalTokens: 100} // too late to count
			var mu mutation
			x.meteringHeaders(&mu)
			comment := string(x.meterComment())
			x.finish()
			if x.rec.usage != first || !x.rec.usageKnown || x.rec.estimated {
				t.Fatalf("record usage %+v known %v", x.rec.usage, x.rec.usageKnown)
			}
			if setHeaders(mu.m)["x-tollgate-total-tokens"] != "4" || !strings.Contains(comment, " total_tokens=4 ") {
				t.Fatalf("reported figures changed after settling: %v %q", setHeaders(mu.m), comment)
			}
		})
	}
}

// TestSettleEstimates: a forwarded chat whose usage never came is settled
// as an estimate from the request size and the text received.
func TestSettleEstimates(t *testing.T) {
	x := newTestExchange(t)
	x.forwarded, x.rec.status, x.reqBytes, x.endpoint = true, 200, 40, routing.EndpointChat
	x.body = &jsonReader{x: x, text: 8}
	comment := string(x.endComment())
	want := usage.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12}
	if !x.rec.estimated || x.rec.usage != want || !strings.Contains(comment, " usage=estimated ") {
		t.Fatalf("usage %+v estimated %v; comment %q", x.rec.usage, x.rec.estimated, comment)
	}
}

// ctxLimiter records the context Reconcile was called with.
type ctxLimiter struct {
	limits.Limiter
	ctx  context.Context
	used limits.Usage
}

func (l *ctxLimiter) Reconcile(ctx context.Context, _ limits.Reservation, u limits.Usage) error {
	l.ctx, l.used = ctx, u
	return nil
}

// TestReconcileOutlivesTheRequest: a request whose client is gone is still
// charged, with the request's context values but not its cancellation.
func TestReconcileOutlivesTheRequest(t *testing.T) {
	type key struct{}
	snap := testSnapshot(t)
	l := &ctxLimiter{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	cancel()
	x := newExchange(ctx, New(Options{Snapshot: func() *Snapshot { return snap }, Limiter: l}), snap)
	x.reservation = &limits.Reservation{}
	x.rec.status = 200
	x.body = &jsonReader{x: x, u: usage.Usage{TotalTokens: 9}, ok: true}
	x.finish()
	if l.ctx == nil || l.ctx.Err() != nil || l.ctx.Value(key{}) != "v" || l.used.Tokens != 9 {
		t.Fatalf("reconciled with ctx %v (err %v), usage %+v", l.ctx, l.ctx.Err(), l.used)
	}
}

// scriptedHandler answers messages from a script and counts them.
type scriptedHandler struct {
	replies int
	overAt  int // handled reports the stream over at this message (1-based); 0 never
	nilAt   int // handle answers nil at this message
	total   time.Duration
}

func (h *scriptedHandler) handle(*extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, string) {
	h.replies++
	if h.replies == h.nilAt {
		return nil, "none"
	}
	return &extprocv3.ProcessingResponse{}, "phase"
}

func (h *scriptedHandler) handled(d time.Duration) bool {
	h.total += d
	return h.replies == h.overAt
}

// fakeStream is an ext_proc stream with n requests to receive.
type fakeStream struct {
	grpc.ServerStream
	left    int
	sent    int
	sendErr error
	endErr  error
}

func (s *fakeStream) Context() context.Context { return context.Background() }
func (s *fakeStream) Send(*extprocv3.ProcessingResponse) error {
	s.sent++
	return s.sendErr
}
func (s *fakeStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if s.left == 0 {
		return nil, s.endErr
	}
	s.left--
	return &extprocv3.ProcessingRequest{}, nil
}

// TestServe: one loop serves exchanges and attempts; it answers every
// message, stops after a reply that ends the stream, and maps the ways
// Envoy ends a stream.
func TestServe(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		more     int // messages after the first
		h        scriptedHandler
		sendErr  error
		endErr   error
		wantSent int
		wantErr  error
	}{
		{name: "until Envoy half-closes", more: 3, endErr: io.EOF, wantSent: 4},
		{name: "stops after an immediate response", more: 3, h: scriptedHandler{overAt: 2}, endErr: io.EOF, wantSent: 2},
		{name: "a nil reply ends the stream unanswered", more: 3, h: scriptedHandler{nilAt: 2}, wantSent: 1},
		{name: "a send error ends it", more: 3, sendErr: boom, wantSent: 1, wantErr: boom},
		{name: "a receive error is returned", more: 1, endErr: boom, wantSent: 2, wantErr: boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			st := &fakeStream{left: tt.more, sendErr: tt.sendErr, endErr: tt.endErr}
			h := tt.h
			err := s.serve(st, &extprocv3.ProcessingRequest{}, &h)
			if !errors.Is(err, tt.wantErr) || st.sent != tt.wantSent {
				t.Fatalf("err %v sent %d; want %v %d", err, st.sent, tt.wantErr, tt.wantSent)
			}
		})
	}
}
