package devfront

import (
	"context"
	"io"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// procStream is the ext_proc gRPC stream as Envoy's async client uses it: opening and
// sending never block the exchange (messages queue until the stream is up), the client
// never half-closes, and closing is a reset (cancel) — Envoy ext_proc: one gRPC stream per HTTP request.
type procStream struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	q      []*extprocsvc.ProcessingRequest
	wake   chan struct{}
}

func openProcStream(x *exchange, conn *grpc.ClientConn, initial []*corev3.HeaderValue,
	onMsg func(*extprocsvc.ProcessingResponse), onEnd func(*status.Status)) *procStream {
	ctx, cancel := context.WithCancel(context.Background())
	md := metadata.MD{}
	for _, hv := range initial {
		v := hv.GetValue()
		if len(hv.GetRawValue()) > 0 {
			v = string(hv.GetRawValue())
		}
		md.Append(strings.ToLower(hv.GetKey()), v)
	}
	ctx = metadata.NewOutgoingContext(ctx, md)
	s := &procStream{cancel: cancel, wake: make(chan struct{}, 1)}
	go s.run(ctx, x, conn, onMsg, onEnd)
	return s
}

func (s *procStream) send(m *extprocsvc.ProcessingRequest) {
	s.mu.Lock()
	s.q = append(s.q, m)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *procStream) run(ctx context.Context, x *exchange, conn *grpc.ClientConn,
	onMsg func(*extprocsvc.ProcessingResponse), onEnd func(*status.Status)) {
	cl, err := extprocsvc.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		x.post(func() { onEnd(status.Convert(err)) })
		return
	}
	go func() {
		for {
			m, err := cl.Recv()
			if err != nil {
				st := status.New(codes.OK, "")
				if err != io.EOF {
					st = status.Convert(err)
				}
				x.post(func() { onEnd(st) })
				return
			}
			if !x.post(func() { onMsg(m) }) {
				return
			}
		}
	}()
	for {
		select {
		case <-s.wake:
		case <-ctx.Done():
			return
		}
		for {
			s.mu.Lock()
			if len(s.q) == 0 {
				s.mu.Unlock()
				break
			}
			m := s.q[0]
			s.q = s.q[1:]
			s.mu.Unlock()
			if err := cl.Send(m); err != nil {
				return // the receive side reports the stream's status
			}
		}
	}
}
