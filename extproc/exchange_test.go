package extproc

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

const testKey = "tg_test_key_0123456789"

func testSnapshot(t testing.TB) *Snapshot {
	t.Helper()
	cfg := &config.Config{
		Version: 1,
		Providers: []config.Provider{{
			Name: "openai", Schema: "openai", Cluster: "openai", BasePath: "/v1",
			Credential: &config.Credential{Header: "authorization", Prefix: "Bearer ",
				Source: config.SecretRef{Env: "TEST_OPENAI_KEY"}},
			Models:       []string{"gpt-4o-mini", "text-embedding-3-small"},
			DirectModels: "listed",
		}, {
			Name: "local", Schema: "openai", Cluster: "ollama", BasePath: "/api/v1",
			DirectModels: "any",
		}, {
			Name: "broken", Schema: "openai", Cluster: "broken",
			Credential: &config.Credential{Header: "authorization", Prefix: "Bearer ",
				Source: config.SecretRef{Env: "TEST_MISSING_KEY"}},
		}},
		Models: []config.Model{
			{Name: "smart-default", Provider: "openai", Model: "gpt-4o-mini"},
			{Name: "embed-default", Provider: "openai", Model: "text-embedding-3-small"},
			{Name: "broken-model", Provider: "broken", Model: "x"},
		},
	}
	env := map[string]string{"TEST_OPENAI_KEY": "sk-provider-secret"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	table, _ := routing.New(cfg, lookup)
	tenants, _ := configopts.NewTenancy(cfg, lookup)
	store, err := keys.NewStore([]keys.Entry{{Key: keys.Key{ID: "k1", Tenant: config.DefaultTenant}, SHA256: keys.Hash(testKey)}})
	if err != nil {
		t.Fatal(err)
	}
	return &Snapshot{Routes: table, Keys: store, Tenants: tenants, Metadata: cfg.MetadataLimits(), Prices: pricing.Default(), Limits: &Limits{}}
}

func newTestExchange(t testing.TB) *exchange {
	snap := testSnapshot(t)
	return newExchange(context.Background(), New(Options{Snapshot: func() *Snapshot { return snap }}), snap)
}

func reqHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: hm, EndOfStream: eos}}}
}

func respHeaders(kv ...string) *extprocv3.ProcessingRequest {
	r := reqHeaders(false, kv...)
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: r.GetRequestHeaders()}}
}

func reqBody(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}}
}

func respBody(body string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: eos}}}
}

func chatHeaders(extra ...string) *extprocv3.ProcessingRequest {
	kv := append([]string{":method", "POST", ":path", "/v1/chat/completions", ":authority", "gw",
		"authorization", "Bearer " + testKey, "content-type", "application/json", "x-request-id", "rid-1"}, extra...)
	return reqHeaders(false, kv...)
}

// setHeaders returns the header mutation's sets as a map.
func setHeaders(m *extprocv3.HeaderMutation) map[string]string {
	out := map[string]string{}
	for _, h := range m.GetSetHeaders() {
		out[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
		if h.GetHeader().GetValue() != "" {
			out[h.GetHeader().GetKey()] = "BOTH-VALUE-AND-RAW"
		}
	}
	return out
}

type errBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func immediateError(t *testing.T, r *extprocv3.ProcessingResponse) (int, errBody) {
	t.Helper()
	ir := r.GetImmediateResponse()
	if ir == nil {
		t.Fatalf("want ImmediateResponse, got %v", r)
	}
	if ct := setHeaders(ir.GetHeaders())["content-type"]; ct != "application/json" {
		t.Fatalf("content-type = %q", ct)
	}
	var e errBody
	if err := json.Unmarshal(ir.GetBody(), &e); err != nil {
		t.Fatalf("body %q: %v", ir.GetBody(), err)
	}
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("incomplete error body %s", ir.GetBody())
	}
	return int(ir.GetStatus().GetCode()), e
}

func TestRequestHeaderRefusals(t *testing.T) {
	tests := []struct {
		name   string
		req    *extprocv3.ProcessingRequest
		status int
		code   string
	}{
		{"no key", reqHeaders(false, ":method", "POST", ":path", "/v1/chat/completions"), 401, "invalid_api_key"},
		{"unknown key", reqHeaders(false, ":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer tg_nope"), 401, "invalid_api_key"},
		{"basic scheme", reqHeaders(false, ":method", "POST", ":path", "/v1/chat/completions", "authorization", "Basic "+testKey), 401, "invalid_api_key"},
		{"unknown path", reqHeaders(true, ":method", "GET", ":path", "/v1/files", "authorization", "Bearer "+testKey), 404, "unknown_url"},
		{"wrong method", reqHeaders(true, ":method", "GET", ":path", "/v1/chat/completions", "authorization", "Bearer "+testKey), 405, "method_not_allowed"},
		{"post without body", reqHeaders(true, ":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer "+testKey), 400, "missing_body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newTestExchange(t)
			resp, _ := x.handle(tt.req)
			status, e := immediateError(t, resp)
			if status != tt.status || e.Error.Code == nil || *e.Error.Code != tt.code {
				t.Fatalf("got %d %v, want %d %s", status, e.Error.Code, tt.status, tt.code)
			}
			if !x.done {
				t.Fatal("exchange not marked done after ImmediateResponse")
			}
		})
	}
}

func TestKeyHeaders(t *testing.T) {
	for _, h := range []string{"api-key", "x-api-key"} {
		x := newTestExchange(t)
		resp, _ := x.handle(reqHeaders(false, ":method", "POST", ":path", "/v1/chat/completions", h, testKey))
		if resp.GetRequestHeaders() == nil {
			t.Fatalf("%s: not accepted: %v", h, resp)
		}
		removed := strings.Join(resp.GetRequestHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders(), ",")
		if !strings.Contains(removed, h) {
			t.Fatalf("%s: client credential not removed (removed %s)", h, removed)
		}
	}
}

func TestRequestHeadersSanitize(t *testing.T) {
	x := newTestExchange(t)
	resp, _ := x.handle(chatHeaders("x-tollgate-cluster", "evil", "x-tollgate-anything", "1", "accept-encoding", "gzip", "api-key", "also-a-key"))
	mu := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
	removed := map[string]bool{}
	for _, h := range mu.GetRemoveHeaders() {
		removed[h] = true
	}
	for _, h := range []string{"x-tollgate-cluster", "x-tollgate-anything", "authorization", "api-key", "accept-encoding"} {
		if !removed[h] {
			t.Errorf("%s not removed; removed=%v", h, removed)
		}
	}
	if resp.GetRequestHeaders().GetResponse().GetClearRouteCache() {
		t.Error("headers reply must not clear the route cache: the cluster is chosen in the body reply")
	}
}

func TestModelsList(t *testing.T) {
	x := newTestExchange(t)
	resp, _ := x.handle(reqHeaders(true, ":method", "GET", ":path", "/v1/models", "authorization", "Bearer "+testKey))
	ir := resp.GetImmediateResponse()
	if ir.GetStatus().GetCode() != 200 {
		t.Fatalf("status %v", ir.GetStatus())
	}
	var raw struct {
		Object string           `json:"object"`
		Data   []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(ir.GetBody(), &raw); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range raw.Data {
		ids = append(ids, m["id"].(string))
		if m["object"] != "model" || m["owned_by"] == "" {
			t.Errorf("bad entry %v", m)
		}
	}
	want := "broken-model,embed-default,openai/gpt-4o-mini,openai/text-embedding-3-small,smart-default"
	if raw.Object != "list" || strings.Join(ids, ",") != want {
		t.Fatalf("got %s %v, want %s", raw.Object, ids, want)
	}
}

func TestRequestBody(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		body     string
		status   int    // 0: forwarded
		code     string // refusal code
		wantBody string // upstream body when forwarded ("" = unchanged)
		cluster  string
		upPath   string
		injected bool
	}{
		{name: "alias rewritten", body: `{"model":"smart-default","messages":[]}`,
			wantBody: `{"model":"gpt-4o-mini","messages":[]}`, cluster: "openai", upPath: "/v1/chat/completions"},
		{name: "provider/model", body: `{"model":"openai/gpt-4o-mini","messages":[],"x_unknown":{"a":1}}`,
			wantBody: `{"model":"gpt-4o-mini","messages":[],"x_unknown":{"a":1}}`, cluster: "openai", upPath: "/v1/chat/completions"},
		{name: "any model on open provider", body: `{"model":"local/llama3.2:1b","messages":[]}`,
			wantBody: `{"model":"llama3.2:1b","messages":[]}`, cluster: "ollama", upPath: "/api/v1/chat/completions"},
		{name: "stream gets include_usage", body: `{"model":"smart-default","stream":true}`,
			wantBody: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}`, cluster: "openai", upPath: "/v1/chat/completions", injected: true},
		{name: "stream_options kept", body: `{"model":"smart-default","stream":true,"stream_options":{"include_obfuscation":false}}`,
			wantBody: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true}}`, cluster: "openai", upPath: "/v1/chat/completions", injected: true},
		{name: "stream_options null", body: `{"model":"smart-default","stream":true,"stream_options":null}`,
			wantBody: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}`, cluster: "openai", upPath: "/v1/chat/completions", injected: true},
		{name: "client asked for usage", body: `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true}}`,
			wantBody: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}`, cluster: "openai", upPath: "/v1/chat/completions"},
		{name: "embeddings", path: "/v1/embeddings", body: `{"model":"embed-default","input":"hi"}`,
			wantBody: `{"model":"text-embedding-3-small","input":"hi"}`, cluster: "openai", upPath: "/v1/embeddings"},
		{name: "invalid json", body: `{"model":"smart-default",`, status: 400, code: "invalid_json"},
		{name: "not an object", body: `["model"]`, status: 400, code: "invalid_json"},
		{name: "empty body", body: ``, status: 400, code: "invalid_json"},
		{name: "missing model", body: `{"messages":[]}`, status: 400, code: "missing_required_parameter"},
		{name: "empty model", body: `{"model":""}`, status: 400, code: "missing_required_parameter"},
		{name: "model not a string", body: `{"model":42}`, status: 400, code: "invalid_type"},
		{name: "duplicate key", body: `{"model":"smart-default","model":"openai/gpt-4o-mini"}`, status: 400, code: "duplicate_key"},
		{name: "duplicate escaped key", body: `{"model":"smart-default","mod\u0065l":"x"}`, status: 400, code: "duplicate_key"},
		{name: "stream not bool", body: `{"model":"smart-default","stream":"yes"}`, status: 400, code: "invalid_type"},
		{name: "unknown model", body: `{"model":"gpt-5-ultra"}`, status: 404, code: "model_not_found"},
		{name: "unlisted provider model", body: `{"model":"openai/gpt-4o"}`, status: 404, code: "model_not_found"},
		{name: "credential unavailable", body: `{"model":"broken-model"}`, status: 503, code: "provider_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newTestExchange(t)
			path := tt.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			h, _ := x.handle(reqHeaders(false, ":method", "POST", ":path", path, "authorization", "Bearer "+testKey))
			if h.GetRequestHeaders() == nil {
				t.Fatalf("headers refused: %v", h)
			}
			resp, _ := x.handle(reqBody(tt.body))
			if tt.status != 0 {
				status, e := immediateError(t, resp)
				if status != tt.status || e.Error.Code == nil || *e.Error.Code != tt.code {
					t.Fatalf("got %d %v (%s), want %d %s", status, e.Error.Code, e.Error.Message, tt.status, tt.code)
				}
				return
			}
			common := resp.GetRequestBody().GetResponse()
			if common == nil {
				t.Fatalf("want body reply, got %v", resp)
			}
			if !common.GetClearRouteCache() || common.GetHeaderMutation() == nil {
				t.Fatal("body reply must clear the route cache together with a header mutation (Envoy ext_proc API: CommonResponse.clear_route_cache)")
			}
			set := setHeaders(common.GetHeaderMutation())
			if set[clusterHeader] != tt.cluster || set[":path"] != tt.upPath {
				t.Fatalf("routing headers %v", set)
			}
			body := tt.body
			if m := common.GetBodyMutation(); m != nil {
				body = string(m.GetBody())
				if set["content-length"] != strconv.Itoa(len(body)) {
					t.Fatalf("content-length %q for %d-byte body", set["content-length"], len(body))
				}
			} else if _, ok := set["content-length"]; ok {
				t.Fatal("content-length set without a body change")
			}
			if body != tt.wantBody {
				t.Fatalf("upstream body\n got %s\nwant %s", body, tt.wantBody)
			}
			if x.injectedUsage != tt.injected {
				t.Fatalf("injectedUsage = %v", x.injectedUsage)
			}
			if tt.cluster == "openai" && set["authorization"] != "Bearer sk-provider-secret" {
				t.Fatalf("provider credential not injected: %q", set["authorization"])
			}
			if tt.cluster == "ollama" {
				if _, ok := set["authorization"]; ok {
					t.Fatal("credential set for a provider without one")
				}
			}
		})
	}
}

func TestStreamOverride(t *testing.T) {
	tests := []struct {
		name       string
		stream     bool
		status, ct string
		override   bool
	}{
		{"stream 200 sse", true, "200", "text/event-stream; charset=utf-8", true},
		{"stream 429 json", true, "429", "application/json", false},
		{"stream 200 json", true, "200", "application/json", false},
		{"non-stream 200", false, "200", "application/json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newTestExchange(t)
			x.handle(chatHeaders())
			body := `{"model":"smart-default"}`
			if tt.stream {
				body = `{"model":"smart-default","stream":true}`
			}
			x.handle(reqBody(body))
			resp, _ := x.handle(respHeaders(":status", tt.status, "content-type", tt.ct, "content-length", "10"))
			got := resp.GetModeOverride()
			if (got != nil) != tt.override {
				t.Fatalf("mode override = %v", got)
			}
			if got == nil {
				return
			}
			if got.GetResponseBodyMode() != extprocfilterv3.ProcessingMode_STREAMED ||
				got.GetRequestBodyMode() != extprocfilterv3.ProcessingMode_BUFFERED {
				t.Fatalf("override %v: both body modes must be explicit (Envoy ext_proc API: ProcessingResponse.mode_override)", got)
			}
			rm := resp.GetResponseHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders()
			if len(rm) != 1 || rm[0] != "content-length" {
				t.Fatalf("content-length must be removed with the override (Envoy ext_proc: content-length after a body mutation), removed %v", rm)
			}
		})
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../test/testdata/fixtures/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runStream feeds an SSE body through a streaming exchange in chunks of size
// n and returns what the client receives.
func runStream(t *testing.T, reqJSON string, stream []byte, n int) (string, *exchange) {
	t.Helper()
	x := newTestExchange(t)
	x.handle(chatHeaders())
	x.handle(reqBody(reqJSON))
	x.handle(respHeaders(":status", "200", "content-type", "text/event-stream"))
	var out strings.Builder
	for i := 0; i <= len(stream); i += n {
		end := min(i+n, len(stream))
		chunk := stream[i:end]
		resp, _ := x.handle(respBody(string(chunk), end == len(stream)))
		if m := resp.GetResponseBody().GetResponse().GetBodyMutation(); m != nil {
			out.Write(m.GetBody())
		} else {
			out.Write(chunk)
		}
		if end == len(stream) {
			break
		}
	}
	return out.String(), x
}

// cutComment removes the metering comment from a client stream, checking
// that there is exactly one and that it comes just before data: [DONE].
func cutComment(t *testing.T, got string) (stream, comment string) {
	t.Helper()
	i := strings.Index(got, ": tollgate ")
	if i < 0 || strings.Count(got, ": tollgate ") != 1 {
		t.Fatalf("want one metering comment in the stream:\n%s", got)
	}
	end := strings.Index(got[i:], "\n\n") + i + 2
	comment = got[i:end]
	if !strings.HasPrefix(got[end:], "data: [DONE]") {
		t.Fatalf("metering comment not just before [DONE]: %q", got[end:min(len(got), end+20)])
	}
	return got[:i] + got[end:], comment
}

func TestStreamPassThrough(t *testing.T) {
	stream := readFixture(t, "openai/chat_stream.sse")
	for _, n := range []int{1, 7, 64, len(stream)} {
		got, x := runStream(t, `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true}}`, stream, n)
		got, comment := cutComment(t, got)
		if got != string(stream) {
			t.Fatalf("chunk %d: client stream differs from provider stream", n)
		}
		for _, want := range []string{"request_id=rid-1", "provider=openai", "model=gpt-4o-mini", "prompt_tokens=", "usage=provider", "cost_usd=0.", "upstream_ms="} {
			if !strings.Contains(comment, want) {
				t.Fatalf("comment %q lacks %q", comment, want)
			}
		}
		u, ok := x.body.usage()
		if !ok || u.PromptTokens == 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Fatalf("chunk %d: usage %+v %v", n, u, ok)
		}
	}
}

func TestStreamInjectedUsageRemoved(t *testing.T) {
	stream := readFixture(t, "openai/chat_stream.sse")
	// What the client would have received without include_usage: no usage
	// chunk, no "usage" key.
	var want strings.Builder
	for _, ev := range strings.SplitAfter(string(stream), "\n\n") {
		if ev == "" {
			continue
		}
		if strings.Contains(ev, `"choices":[]`) {
			continue
		}
		want.WriteString(strings.Replace(ev, `,"usage":null`, "", 1))
	}
	for _, n := range []int{1, 7, 100, len(stream)} {
		got, x := runStream(t, `{"model":"smart-default","stream":true}`, stream, n)
		got, _ = cutComment(t, got)
		if got != want.String() {
			t.Fatalf("chunk %d:\n got %q\nwant %q", n, got, want.String())
		}
		if _, ok := x.body.usage(); !ok {
			t.Fatalf("chunk %d: usage not recorded", n)
		}
	}
}

func TestBufferedUsage(t *testing.T) {
	x := newTestExchange(t)
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"smart-default"}`))
	x.handle(respHeaders(":status", "200", "content-type", "application/json"))
	body := readFixture(t, "openai/chat_response.json")
	resp, _ := x.handle(respBody(string(body), true))
	if resp.GetResponseBody().GetResponse().GetBodyMutation() != nil {
		t.Fatal("JSON response body must pass unchanged")
	}
	u, ok := x.body.usage()
	if !ok || u.PromptTokens != 1342 || u.CompletionTokens != 286 || u.CachedTokens != 1152 || u.ReasoningTokens != 192 {
		t.Fatalf("usage %+v %v", u, ok)
	}
}

func TestErrorBodyPassesThrough(t *testing.T) {
	x := newTestExchange(t)
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"smart-default","stream":true}`))
	resp, _ := x.handle(respHeaders(":status", "429", "content-type", "application/json"))
	if resp.GetModeOverride() != nil {
		t.Fatal("error responses stay buffered")
	}
	body := readFixture(t, "openai/error_429.json")
	resp, _ = x.handle(respBody(string(body), true))
	if resp.GetResponseBody().GetResponse().GetBodyMutation() != nil {
		t.Fatal("provider error body must reach the client unchanged")
	}
	if x.rec.status != 429 {
		t.Fatalf("status %d", x.rec.status)
	}
}

func TestNoSnapshot(t *testing.T) {
	x := newExchange(context.Background(), New(Options{Snapshot: func() *Snapshot { return nil }}), nil)
	resp, _ := x.handle(chatHeaders())
	if status, _ := immediateError(t, resp); status != 503 {
		t.Fatalf("status %d", status)
	}
}

func TestDynamicMetadata(t *testing.T) {
	x := newTestExchange(t)
	x.handle(chatHeaders())
	resp, _ := x.handle(reqBody(`{"model":"smart-default"}`))
	md := resp.GetDynamicMetadata().GetFields()[metadataNamespace].GetStructValue().GetFields()
	if md["model"].GetStringValue() != "smart-default" || md["provider"].GetStringValue() != "openai" ||
		md["provider_model"].GetStringValue() != "gpt-4o-mini" || md["key_id"].GetStringValue() != "k1" {
		t.Fatalf("metadata %v", md)
	}
}

// TestStreamUsageEveryOffset splits each OpenAI-format stream fixture into
// two chunks at each offset of splitOffsets (every one for a small fixture):
// the usage read and the client's bytes must not depend on where Envoy cut
// the stream. FuzzStreamSplit searches the other offsets.
func TestStreamUsageEveryOffset(t *testing.T) {
	for _, name := range splitFixtures {
		stream := readFixture(t, name)
		var want string
		var wantUsage usage.Usage
		for _, i := range splitOffsets(stream) {
			x := newTestExchange(t)
			x.handle(chatHeaders())
			x.handle(reqBody(`{"model":"smart-default","stream":true,"stream_options":{"include_usage":true}}`))
			x.handle(respHeaders(":status", "200", "content-type", "text/event-stream"))
			var out strings.Builder
			for _, c := range []struct {
				b   []byte
				eos bool
			}{{stream[:i], false}, {stream[i:], true}} {
				resp, _ := x.handle(respBody(string(c.b), c.eos))
				out.Write(clientBytes(resp, c.b))
			}
			u, ok := x.body.usage()
			if !ok {
				t.Fatalf("%s split at %d: no usage", name, i)
			}
			got, _ := cutComment(t, out.String()) // its timings differ run to run
			if i == 0 {
				want, wantUsage = got, u
				continue
			}
			if u != wantUsage {
				t.Fatalf("%s split at %d: usage %+v, want %+v", name, i, u, wantUsage)
			}
			if got != want {
				t.Fatalf("%s split at %d: client bytes differ", name, i)
			}
		}
		if wantUsage.PromptTokens == 0 || wantUsage.TotalTokens != wantUsage.PromptTokens+wantUsage.CompletionTokens {
			t.Fatalf("%s: usage %+v", name, wantUsage)
		}
	}
}

// TestStreamEndedWithoutDone: a provider stream that ends without [DONE]
// must end, for the client, with an error event, never cleanly; one that
// carried the provider's own error event gets no second one.
func TestStreamEndedWithoutDone(t *testing.T) {
	full := string(readFixture(t, "openai/chat_stream.sse"))
	cut := full[:strings.Index(full, "data: [DONE]")]
	errored := cut + `data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}` + "\n\n"
	for _, tc := range []struct {
		name, stream string
		wantEvent    bool
	}{
		{"complete", full, false},
		{"cut before [DONE]", cut, true},
		{"provider error event", errored, false},
	} {
		got, _ := runStream(t, `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true}}`, []byte(tc.stream), 64)
		if has := strings.HasSuffix(got, string(incompleteEvent)); has != tc.wantEvent {
			t.Errorf("%s: ends with the incomplete event = %v, want %v", tc.name, has, tc.wantEvent)
		}
	}
}

// Header rules, both directions (docs/architecture.md, "Headers").
func TestHeaderRules(t *testing.T) {
	tests := []struct {
		name     string
		up, down bool // stripped upstream (client request) / downstream (provider response)
	}{
		{"authorization", true, false},
		{"api-key", true, false},
		{"x-api-key", true, false},
		{"accept-encoding", true, false},
		{"x-agent-id", true, false},
		{"x-tollgate-app-id", true, true},
		{"x-tollgate-metadata-workspace_id", true, true},
		{"x-tollgate-cost-usd", true, true},
		{"openai-organization", true, true},
		{"openai-project", true, true},
		{"openai-beta", true, false},
		{"x-amz-security-token", true, false},
		{"x-goog-user-project", true, false},
		{"anthropic-version", true, false},
		{"anthropic-beta", true, false},
		{"anthropic-organization-id", true, true},
		{"anthropic-ratelimit-tokens-remaining", true, true},
		{"x-ratelimit-remaining-tokens", false, true},
		{"x-ratelimit-limit-tokens_usage_based", false, true},
		{"x-ms-region", false, true},
		{"x-ms-deployment-name", false, true},
		{"azureml-model-session", false, true},
		// Pass through: the documented list.
		{"content-type", false, false},
		{"accept", false, false},
		{"user-agent", false, false},
		{"x-stainless-retry-count", false, false},
		{"idempotency-key", false, false},
		{"traceparent", false, false},
		{"x-request-id", false, false},
		{"retry-after", false, false},
		{"retry-after-ms", false, false},
		{"x-should-retry", false, false},
		{"openai-processing-ms", true, false},
		{"request-id", false, false},
		{"apim-request-id", false, false},
	}
	for _, tt := range tests {
		if got := strippedUpstream(tt.name); got != tt.up {
			t.Errorf("strippedUpstream(%q) = %v, want %v", tt.name, got, tt.up)
		}
		if got := strippedDownstream(tt.name); got != tt.down {
			t.Errorf("strippedDownstream(%q) = %v, want %v", tt.name, got, tt.down)
		}
	}
}

func TestRequestHeadersStripScopeAndIdentity(t *testing.T) {
	x := newTestExchange(t)
	resp, _ := x.handle(chatHeaders("x-agent-id", "3b241101-e2bb-4255-8caf-4136c566a962",
		"openai-organization", "org-client", "openai-project", "proj_client", "openai-beta", "assistants=v2",
		"anthropic-beta", "context-1m-2025-08-07", "x-tollgate-metadata-workspace_id", "w1",
		"x-stainless-retry-count", "0", "openai-organization", "org-again"))
	removed := resp.GetRequestHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders()
	want := []string{"authorization", "x-agent-id", "openai-organization", "openai-project", "openai-beta",
		"anthropic-beta", "x-tollgate-metadata-workspace_id"}
	for _, h := range want {
		if !contains(removed, h) {
			t.Errorf("%s not removed; removed=%v", h, removed)
		}
	}
	if len(removed) != len(want) {
		t.Errorf("removed %v, want exactly %v (each once; the rest passes)", removed, want)
	}
}

func TestResponseHeadersStripProviderAccount(t *testing.T) {
	x := newTestExchange(t)
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"smart-default","messages":[]}`))
	resp, _ := x.handle(respHeaders(":status", "429", "content-type", "application/json",
		"openai-organization", "user-abc", "openai-project", "proj_abc", "openai-processing-ms", "12",
		"x-ratelimit-limit-requests", "5000", "x-ratelimit-remaining-tokens", "3999945",
		"x-request-id", "req_provider", "retry-after", "7", "x-ms-region", "East US"))
	mu := resp.GetResponseHeaders().GetResponse().GetHeaderMutation()
	for _, h := range []string{"openai-organization", "openai-project", "x-ratelimit-limit-requests", "x-ratelimit-remaining-tokens", "x-ms-region"} {
		if !contains(mu.GetRemoveHeaders(), h) {
			t.Errorf("%s not removed; removed=%v", h, mu.GetRemoveHeaders())
		}
	}
	for _, h := range []string{"openai-processing-ms", "x-request-id", "retry-after"} {
		if contains(mu.GetRemoveHeaders(), h) {
			t.Errorf("%s removed", h)
		}
	}
	if got := setHeaders(mu)["x-tollgate-request-id"]; got != "rid-1" {
		t.Errorf("x-tollgate-request-id = %q", got)
	}
}

// Every response the gateway generates carries Envoy's request id, and the
// dynamic-metadata mark that keeps local_reply_config off its body.
func TestImmediateResponsesCarryRequestID(t *testing.T) {
	for name, req := range map[string]*extprocv3.ProcessingRequest{
		"refusal": reqHeaders(false, ":method", "POST", ":path", "/v1/chat/completions", "x-request-id", "rid-9"),
		"models":  reqHeaders(true, ":method", "GET", ":path", "/v1/models", "authorization", "Bearer "+testKey, "x-request-id", "rid-9"),
	} {
		x := newTestExchange(t)
		resp, _ := x.handle(req)
		ir := resp.GetImmediateResponse()
		if ir == nil {
			t.Fatalf("%s: no ImmediateResponse: %v", name, resp)
		}
		if got := setHeaders(ir.GetHeaders())["x-request-id"]; got != "rid-9" {
			t.Errorf("%s: x-request-id = %q", name, got)
		}
		mark := resp.GetDynamicMetadata().GetFields()[metadataNamespace].GetStructValue().GetFields()[metaGatewayReply]
		if !mark.GetBoolValue() {
			t.Errorf("%s: dynamic metadata %v lacks the gateway-reply mark", name, resp.GetDynamicMetadata())
		}
	}
}
