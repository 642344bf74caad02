package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// received is what a loopback OTLP receiver got: span names and the
// authorization header of the exports.
type received struct {
	mu    sync.Mutex
	names []string
	auth  string
}

func (r *received) add(req *collectortracepb.ExportTraceServiceRequest, auth string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.auth = auth
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.names = append(r.names, s.GetName())
			}
		}
	}
}

type grpcReceiver struct {
	collectortracepb.UnimplementedTraceServiceServer
	r *received
}

func (g grpcReceiver) Export(ctx context.Context, req *collectortracepb.ExportTraceServiceRequest) (*collectortracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := ""
	if v := md.Get("authorization"); len(v) > 0 {
		auth = v[0]
	}
	g.r.add(req, auth)
	return &collectortracepb.ExportTraceServiceResponse{}, nil
}

// startReceiver serves OTLP traces over grpc or http/protobuf on loopback
// and returns the endpoint URL.
func startReceiver(t *testing.T, protocol string, r *received) string {
	t.Helper()
	if protocol == "grpc" {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer()
		collectortracepb.RegisterTraceServiceServer(gs, grpcReceiver{r: r})
		go func() { _ = gs.Serve(lis) }()
		t.Cleanup(gs.Stop)
		return "http://" + lis.Addr().String()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var msg collectortracepb.ExportTraceServiceRequest
		if err != nil || req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &msg) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		r.add(&msg, req.Header.Get("Authorization"))
		out, _ := proto.Marshal(&collectortracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFromEnvExports: the standard variables alone configure the exporter
// (endpoint, protocol, headers) and the sampler; Shutdown flushes.
func TestFromEnvExports(t *testing.T) {
	for _, tc := range []struct {
		protocol, sampler string
		want              int
	}{
		{"grpc", "", 1},
		{"http/protobuf", "", 1},
		{"http/protobuf", "always_off", 0},
	} {
		t.Run(tc.protocol+" "+tc.sampler, func(t *testing.T) {
			r := &received{}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", startReceiver(t, tc.protocol, r))
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.protocol)
			t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Basic%20cGs6c2s=")
			t.Setenv("OTEL_TRACES_SAMPLER", tc.sampler)
			s, err := FromEnv(context.Background(), os.LookupEnv)
			if err != nil {
				t.Fatal(err)
			}
			_, span := s.Provider.Tracer("test").Start(context.Background(), "chat smart-default")
			span.End()
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.names) != tc.want || (tc.want > 0 && (r.names[0] != "chat smart-default" || r.auth != "Basic cGs6c2s=")) {
				t.Fatalf("received %v with authorization %q", r.names, r.auth)
			}
		})
	}
}
