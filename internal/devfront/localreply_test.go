package devfront

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"
)

// localReplyEnv runs the product bootstrap (with its local_reply_config) with a processor
// that answers the request headers with reply (nil: continue) and routes every body to
// cluster.
func localReplyEnv(t *testing.T, cluster string, reply func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse) *env {
	t.Helper()
	b, err := os.ReadFile(productBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{timers: newFakeTimers()}
	e.proc = startProcessor(t, replier(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		if m.GetRequestHeaders() != nil && reply != nil {
			return reply(m)
		}
		if m.GetRequestBody() != nil {
			return cont(m, &extprocsvc.CommonResponse{HeaderMutation: setHeaders("x-tollgate-cluster", cluster), ClearRouteCache: true})
		}
		return nil
	}))
	e.up = startUpstream(t, nil)
	e.envoy, err = Start(context.Background(), Options{Bootstrap: b, NewTimer: e.timers.NewTimer,
		Clusters: map[string]string{"tollgate_ext_proc": e.proc.addr, "openai": e.up.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.envoy.Close() })
	e.client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: testTimeout}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

func errorCode(t *testing.T, r result) string {
	t.Helper()
	var b struct {
		Error struct{ Code, Type, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &b); err != nil || b.Error.Message == "" || b.Error.Type == "" {
		t.Fatalf("body %q is not an OpenAI error (%v)", r.body, err)
	}
	return b.Error.Code
}

const gatewayBody = `{"error":{"message":"no such model","type":"invalid_request_error","param":"model","code":"model_not_found"}}`

func gatewayRefusal(marked bool) func(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
	return func(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		r := immediate(404, gatewayBody, setHeaders("content-type", "application/json", "x-request-id", "rid-gw"))
		if marked {
			r.DynamicMetadata = mustStruct(map[string]any{"tollgate": map[string]any{"gateway_reply": true}})
		}
		return r
	}
}

// The bootstrap's local_reply_config rewrites Envoy's own replies into OpenAI errors and
// leaves the gateway's (marked) ImmediateResponses alone.
func TestLocalReplyConfig(t *testing.T) {
	t.Run("gateway refusal keeps its body", func(t *testing.T) {
		e := localReplyEnv(t, "openai", gatewayRefusal(true))
		r := e.post(t, "/v1/chat/completions", `{}`)
		wantStatus(t, r, 404)
		if r.body != gatewayBody || r.header.Get("Content-Type") != "application/json" || r.header.Get("X-Request-Id") != "rid-gw" {
			t.Fatalf("gateway reply rewritten: %v %q", r.header, r.body)
		}
	})
	t.Run("an unmarked ImmediateResponse is mapped like any local reply", func(t *testing.T) {
		e := localReplyEnv(t, "openai", gatewayRefusal(false))
		r := e.post(t, "/v1/chat/completions", `{}`)
		wantStatus(t, r, 404)
		if c := errorCode(t, r); c != "envoy_no_route" {
			t.Fatalf("code %q", c)
		}
	})
	t.Run("processor timeout 504", func(t *testing.T) {
		never := make(chan struct{})
		t.Cleanup(func() { close(never) })
		e := localReplyEnv(t, "openai", func(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			<-never // no answer; the fake message timer fires instead
			return nil
		})
		done := make(chan result, 1)
		go func() { done <- e.post(t, "/v1/chat/completions", `{}`) }()
		e.timers.fire(t, MessageTimeout)
		r := <-done
		wantStatus(t, r, 504)
		if c := errorCode(t, r); c != "envoy_timeout" || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("code %q, headers %v", c, r.header)
		}
		if id := r.header.Get("X-Request-Id"); id == "" || id != e.lastLog(t).RequestID {
			t.Fatalf("x-request-id %q, log %q", id, e.lastLog(t).RequestID)
		}
	})
	t.Run("unknown cluster 503", func(t *testing.T) {
		e := localReplyEnv(t, "nowhere", nil)
		r := e.post(t, "/v1/chat/completions", `{}`)
		wantStatus(t, r, 503)
		if c := errorCode(t, r); c != "envoy_upstream_unavailable" {
			t.Fatalf("code %q", c)
		}
	})
}

// The mapper filters evaluate as Envoy's AccessLogFilters do.
func TestLocalReplyFilters(t *testing.T) {
	marked := map[string]*structpb.Struct{"tollgate": mustStruct(map[string]any{"gateway_reply": true})}
	other := map[string]*structpb.Struct{"tollgate": mustStruct(map[string]any{"model": "m"})}
	const notMarked = `metadata_filter: { matcher: { filter: tollgate, path: [{ key: gateway_reply }], value: { bool_match: false } } }`
	tests := []struct {
		name, filter string
		code         int
		meta         map[string]*structpb.Struct
		want         bool
	}{
		{"status EQ", `status_code_filter: { comparison: { op: EQ, value: { default_value: 413, runtime_key: k } } }`, 413, nil, true},
		{"status EQ other", `status_code_filter: { comparison: { op: EQ, value: { default_value: 413, runtime_key: k } } }`, 414, nil, false},
		{"status GE", `status_code_filter: { comparison: { op: GE, value: { default_value: 400, runtime_key: k } } }`, 503, nil, true},
		{"status GE below", `status_code_filter: { comparison: { op: GE, value: { default_value: 400, runtime_key: k } } }`, 200, nil, false},
		{"metadata key absent", notMarked, 500, nil, true},
		{"metadata namespace without the key", notMarked, 500, other, true},
		{"metadata key present", notMarked, 500, marked, false},
		{"metadata absent, match_if_key_not_found false", `metadata_filter: { matcher: { filter: tollgate, path: [{ key: gateway_reply }], value: { bool_match: true } }, match_if_key_not_found: false }`, 500, nil, false},
		{"and", `and_filter: { filters: [{ status_code_filter: { comparison: { op: EQ, value: { default_value: 404, runtime_key: k } } } }, { ` + notMarked + ` }] }`, 404, marked, false},
		{"or", `or_filter: { filters: [{ status_code_filter: { comparison: { op: EQ, value: { default_value: 404, runtime_key: k } } } }, { ` + notMarked + ` }] }`, 404, marked, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &accesslogv3.AccessLogFilter{}
			js, err := yaml.YAMLToJSON([]byte(tt.filter))
			if err != nil {
				t.Fatal(err)
			}
			if err := protojson.Unmarshal(js, f); err != nil {
				t.Fatal(err)
			}
			rf, err := loadReplyFilter(f)
			if err != nil {
				t.Fatal(err)
			}
			if got := rf(tt.code, tt.meta); got != tt.want {
				t.Fatalf("filter(%d, %v) = %v, want %v", tt.code, tt.meta, got, tt.want)
			}
		})
	}
}
