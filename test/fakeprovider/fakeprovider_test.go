package fakeprovider

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const testKey = "sk-test-fakeprovider-0123456789"

func startFake(t *testing.T, kind Kind) *Server {
	t.Helper()
	s, err := Start(Options{Kind: kind, Credential: testKey})
	if err != nil {
		t.Fatalf("Start(%v): %v", kind, err)
	}
	t.Cleanup(s.Close)
	return s
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	dir, err := defaultFixturesDir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testCtx bounds every test so that a broken fake fails instead of hanging.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// call is one raw HTTP request.
type call struct {
	method, path string
	header       map[string]string
	body         []byte
}

func (c call) with(header map[string]string, body []byte) call {
	h := map[string]string{}
	for k, v := range c.header {
		h[k] = v
	}
	for k, v := range header {
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	c.header = h
	if body != nil {
		c.body = body
	}
	return c
}

type result struct {
	status int
	header http.Header
	body   []byte
	err    error // transport or body read error
}

func (c call) do(ctx context.Context, base string) result {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, base+c.path, body)
	if err != nil {
		return result{err: err}
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	// A private transport: reset tests kill connections, and no test should
	// reuse another's.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// kindCase describes, per provider, a valid non-streamed and streamed request
// and how to read the error identity (OpenAI/Anthropic error.type, Azure's
// string error.code) from an error body.
type kindCase struct {
	kind         Kind
	plain        call
	plainBody    string // fixture answering plain
	stream       call
	streamBody   string // fixture answering stream
	errIdentity  string // gjson path
	idHeader     string
	streamErrEnd string // last bytes of a StreamError stream
}

func kindCases(t *testing.T) []kindCase {
	openAIErrEvent := `data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}` + "\n\n"
	return []kindCase{
		{
			kind: OpenAI,
			plain: call{method: "POST", path: "/v1/chat/completions",
				header: map[string]string{"Authorization": "Bearer " + testKey, "Content-Type": "application/json"},
				body:   fixture(t, "openai/chat_request_basic.json")},
			plainBody: "openai/chat_response.json",
			stream: call{method: "POST", path: "/v1/chat/completions",
				header: map[string]string{"Authorization": "Bearer " + testKey, "Content-Type": "application/json"},
				body:   fixture(t, "openai/chat_request_stream_include_usage.json")},
			streamBody:   "openai/chat_stream.sse",
			errIdentity:  "error.type",
			idHeader:     "X-Request-Id",
			streamErrEnd: openAIErrEvent,
		},
		{
			kind: Anthropic,
			plain: call{method: "POST", path: "/v1/messages",
				header: map[string]string{"X-Api-Key": testKey, "Anthropic-Version": "2023-06-01", "Content-Type": "application/json"},
				body:   fixture(t, "anthropic/messages_request.json")},
			plainBody: "anthropic/messages_response.json",
			stream: call{method: "POST", path: "/v1/messages",
				header: map[string]string{"X-Api-Key": testKey, "Anthropic-Version": "2023-06-01", "Content-Type": "application/json"},
				body:   fixture(t, "anthropic/messages_request_tools.json")},
			streamBody:   "anthropic/messages_stream_tool_use.sse",
			errIdentity:  "error.type",
			idHeader:     "Request-Id",
			streamErrEnd: "event: error\n" + `data: {"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CVx4hP9nQwK2eT7sLmB3a"}` + "\n\n",
		},
		{
			kind: Azure,
			plain: call{method: "POST", path: "/openai/deployments/gw-mini/chat/completions?api-version=2024-10-21",
				header: map[string]string{"Api-Key": testKey, "Content-Type": "application/json"},
				body:   fixture(t, "openai/chat_request_basic.json")},
			plainBody: "azure_openai/chat_response.json",
			stream: call{method: "POST", path: "/openai/v1/chat/completions",
				header: map[string]string{"Authorization": "Bearer " + testKey, "Content-Type": "application/json"},
				body:   fixture(t, "openai/chat_request_stream_include_usage.json")},
			streamBody:   "azure_openai/chat_stream.sse",
			errIdentity:  "error.code",
			idHeader:     "Apim-Request-Id",
			streamErrEnd: openAIErrEvent,
		},
	}
}

func caseFor(t *testing.T, k Kind) kindCase {
	for _, kc := range kindCases(t) {
		if kc.kind == k {
			return kc
		}
	}
	t.Fatalf("no case for %v", k)
	return kindCase{}
}

func TestNormalAnswersAreFixtureBytes(t *testing.T) {
	for _, kc := range kindCases(t) {
		t.Run(kc.kind.String(), func(t *testing.T) {
			s := startFake(t, kc.kind)
			ctx := testCtx(t)
			for _, tc := range []struct {
				name, fixture, contentType string
				c                          call
			}{
				{"plain", kc.plainBody, "application/json", kc.plain},
				{"stream", kc.streamBody, "text/event-stream; charset=utf-8", kc.stream},
			} {
				r := tc.c.do(ctx, s.URL())
				if r.err != nil || r.status != http.StatusOK {
					t.Fatalf("%s: status %d, err %v, body %s", tc.name, r.status, r.err, r.body)
				}
				if want := fixture(t, tc.fixture); !bytes.Equal(r.body, want) {
					t.Errorf("%s: body differs from %s:\n got %q\nwant %q", tc.name, tc.fixture, r.body, want)
				}
				if got := r.header.Get("Content-Type"); got != tc.contentType {
					t.Errorf("%s: content-type %q, want %q", tc.name, got, tc.contentType)
				}
				if r.header.Get(kc.idHeader) == "" {
					t.Errorf("%s: no %s header", tc.name, kc.idHeader)
				}
			}
		})
	}
}

func TestOpenAIHeadersFromFixture(t *testing.T) {
	s := startFake(t, OpenAI)
	kc := caseFor(t, OpenAI)
	r := kc.plain.do(testCtx(t), s.URL())
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("status %d, err %v", r.status, r.err)
	}
	for name, want := range map[string]string{
		"openai-processing-ms":           "214",
		"x-ratelimit-limit-requests":     "5000",
		"x-ratelimit-limit-tokens":       "4000000",
		"x-ratelimit-remaining-requests": "4999",
		"x-ratelimit-remaining-tokens":   "3999945",
		"x-ratelimit-reset-requests":     "12ms",
		"x-ratelimit-reset-tokens":       "0s",
		"x-request-id":                   "req_00000000000000000000000000000001",
		"content-length":                 strconv.Itoa(len(fixture(t, "openai/chat_response.json"))),
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := r.header.Get("Date"); got == "Sat, 21 Nov 2026 09:14:02 GMT" {
		t.Errorf("Date copied from the fixture instead of the real clock")
	}
}

func TestOpenAIStreamSelection(t *testing.T) {
	s := startFake(t, OpenAI)
	ctx := testCtx(t)
	kc := caseFor(t, OpenAI)
	tools := fixture(t, "openai/chat_request_tools.json")
	withStream := func(body []byte, includeUsage bool) []byte {
		body = bytes.TrimSpace(body)
		extra := `,"stream":true}`
		if includeUsage {
			extra = `,"stream":true,"stream_options":{"include_usage":true}}`
		}
		return append(append([]byte(nil), body[:len(body)-1]...), extra...)
	}
	toolsNoUsage := fixture(t, "openai/chat_stream_tool_calls.sse")
	toolsNoUsage = bytes.ReplaceAll(toolsNoUsage, []byte(`"usage":null,`), nil)
	events := splitEvents(toolsNoUsage)
	// Drop the usage chunk, the one before [DONE].
	toolsNoUsage = bytes.Join(append(events[:len(events)-2:len(events)-2], events[len(events)-1]), nil)

	for _, tc := range []struct {
		name string
		body []byte
		want []byte
	}{
		{"no stream_options", fixture(t, "openai/chat_request_stream.json"), fixture(t, "openai/chat_stream_no_usage.sse")},
		{"include_usage", fixture(t, "openai/chat_request_stream_include_usage.json"), fixture(t, "openai/chat_stream.sse")},
		{"include_usage false", bytes.Replace(fixture(t, "openai/chat_request_stream_include_usage.json"), []byte(`"include_usage": true`), []byte(`"include_usage": false`), 1), fixture(t, "openai/chat_stream_no_usage.sse")},
		{"tools with include_usage", withStream(tools, true), fixture(t, "openai/chat_stream_tool_calls.sse")},
		{"tools without include_usage", withStream(tools, false), toolsNoUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kc.plain.with(nil, tc.body).do(ctx, s.URL())
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("status %d, err %v, body %s", r.status, r.err, r.body)
			}
			if !bytes.Equal(r.body, tc.want) {
				t.Errorf("body:\n got %s\nwant %s", r.body, tc.want)
			}
		})
	}
}

// The derived no-usage stream must be exactly what OpenAI sends without
// include_usage: the two captures of the plain stream pin that down.
func TestStripUsageMatchesCapture(t *testing.T) {
	got, err := stripUsage(splitEvents(fixture(t, "openai/chat_stream.sse")))
	if err != nil {
		t.Fatal(err)
	}
	if want := fixture(t, "openai/chat_stream_no_usage.sse"); !bytes.Equal(bytes.Join(got, nil), want) {
		t.Errorf("stripUsage(chat_stream.sse):\n got %s\nwant %s", bytes.Join(got, nil), want)
	}
	// Azure's first chunk has "choices":[] but no usage: it must survive.
	az, err := stripUsage(splitEvents(fixture(t, "azure_openai/chat_stream.sse")))
	if err != nil {
		t.Fatal(err)
	}
	joined := bytes.Join(az, nil)
	if !bytes.Contains(joined, []byte(`"prompt_filter_results"`)) || bytes.Contains(joined, []byte(`"usage"`)) || !bytes.HasSuffix(joined, []byte("data: [DONE]\n\n")) {
		t.Errorf("azure stream without usage:\n%s", joined)
	}
	if len(az) != len(splitEvents(fixture(t, "azure_openai/chat_stream.sse")))-1 {
		t.Errorf("azure: %d events, want one fewer than the capture", len(az))
	}
}

func TestOpenAIEmbeddingsAndModels(t *testing.T) {
	s := startFake(t, OpenAI)
	ctx := testCtx(t)
	auth := map[string]string{"Authorization": "Bearer " + testKey}
	embed := call{method: "POST", path: "/v1/embeddings", header: auth, body: fixture(t, "openai/embeddings_request.json")}

	r := embed.do(ctx, s.URL())
	if r.status != http.StatusOK || !bytes.Equal(r.body, fixture(t, "openai/embeddings_response.json")) {
		t.Fatalf("float embeddings: status %d body %s", r.status, r.body)
	}

	r = embed.with(nil, []byte(`{"model":"text-embedding-3-small","input":["a","b"],"encoding_format":"base64"}`)).do(ctx, s.URL())
	if r.status != http.StatusOK {
		t.Fatalf("base64 embeddings: status %d body %s", r.status, r.body)
	}
	want := gjson.GetBytes(fixture(t, "openai/embeddings_response.json"), "data.#.embedding").Array()
	got := gjson.GetBytes(r.body, "data.#.embedding").Array()
	if len(got) != 2 || len(want) != 2 {
		t.Fatalf("got %d embeddings, want 2", len(got))
	}
	for i := range got {
		raw, err := base64.StdEncoding.DecodeString(got[i].Str)
		if err != nil {
			t.Fatalf("embedding %d: %v", i, err)
		}
		values := want[i].Array()
		if len(raw) != 4*len(values) {
			t.Fatalf("embedding %d: %d bytes, want %d", i, len(raw), 4*len(values))
		}
		for j, v := range values {
			if f := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:])); f != float32(v.Float()) {
				t.Errorf("embedding %d[%d] = %v, want %v", i, j, f, float32(v.Float()))
			}
		}
	}
	if u := gjson.GetBytes(r.body, "usage.total_tokens").Int(); u != 12 {
		t.Errorf("usage.total_tokens = %d, want 12", u)
	}

	r = call{method: "GET", path: "/v1/models", header: auth}.do(ctx, s.URL())
	if r.status != http.StatusOK || !bytes.Equal(r.body, fixture(t, "openai/models_response.json")) {
		t.Fatalf("models: status %d body %s", r.status, r.body)
	}
}

// TestRejections covers routing, authentication and validation: provider
// status and error identity, and that none of them consumes a queued failure.
func TestRejections(t *testing.T) {
	kcs := kindCases(t)
	oai, ant, az := kcs[0], kcs[1], kcs[2]
	embed := call{method: "POST", path: "/v1/embeddings", header: map[string]string{"Authorization": "Bearer " + testKey}, body: fixture(t, "openai/embeddings_request.json")}
	for _, tc := range []struct {
		name       string
		kind       Kind
		c          call
		wantStatus int
		path, want string // gjson path into the error body and its value
		wantBody   string // fixture the body must equal, if any
	}{
		{"openai no key", OpenAI, oai.plain.with(map[string]string{"Authorization": ""}, nil), 401, "error.code", "invalid_api_key", "openai/error_401.json"},
		{"openai wrong key", OpenAI, oai.plain.with(map[string]string{"Authorization": "Bearer sk-other"}, nil), 401, "error.code", "invalid_api_key", "openai/error_401.json"},
		{"openai unknown path", OpenAI, call{method: "POST", path: "/v1/completions", header: oai.plain.header, body: oai.plain.body}, 404, "error.message", "Invalid URL (POST /v1/completions)", ""},
		{"openai wrong method", OpenAI, call{method: "GET", path: "/v1/chat/completions", header: oai.plain.header}, 404, "error.type", "invalid_request_error", ""},
		{"openai invalid json", OpenAI, oai.plain.with(nil, []byte(`{"model":`)), 400, "error.type", "invalid_request_error", ""},
		{"openai json array", OpenAI, oai.plain.with(nil, []byte(`[]`)), 400, "error.type", "invalid_request_error", ""},
		{"openai no model", OpenAI, oai.plain.with(nil, []byte(`{"messages":[{"role":"user","content":"hi"}]}`)), 400, "error.message", "you must provide a model parameter", ""},
		{"openai no messages", OpenAI, oai.plain.with(nil, []byte(`{"model":"gpt-4o-mini"}`)), 400, "error.param", "messages", ""},
		{"openai embeddings no input", OpenAI, embed.with(nil, []byte(`{"model":"text-embedding-3-small"}`)), 400, "error.code", "missing_required_parameter", ""},
		{"openai embeddings bad format", OpenAI, embed.with(nil, []byte(`{"model":"text-embedding-3-small","input":"a","encoding_format":"int8"}`)), 400, "error.param", "encoding_format", ""},
		{"anthropic no key", Anthropic, ant.plain.with(map[string]string{"X-Api-Key": ""}, nil), 401, "error.type", "authentication_error", "anthropic/error_401.json"},
		{"anthropic bearer instead of key", Anthropic, ant.plain.with(map[string]string{"X-Api-Key": "", "Authorization": "Bearer " + testKey}, nil), 401, "error.type", "authentication_error", "anthropic/error_401.json"},
		{"anthropic no version", Anthropic, ant.plain.with(map[string]string{"Anthropic-Version": ""}, nil), 400, "error.message", "anthropic-version: header is required", ""},
		{"anthropic no max_tokens", Anthropic, ant.plain.with(nil, []byte(`{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`)), 400, "error.message", "max_tokens: Field required", ""},
		{"anthropic invalid json", Anthropic, ant.plain.with(nil, []byte(`{`)), 400, "error.type", "invalid_request_error", ""},
		{"anthropic unknown path", Anthropic, call{method: "POST", path: "/v1/complete", header: ant.plain.header, body: ant.plain.body}, 404, "error.type", "not_found_error", ""},
		{"azure no api-version", Azure, call{method: "POST", path: "/openai/deployments/gw-mini/chat/completions", header: az.plain.header, body: az.plain.body}, 404, "error.message", "Resource not found", ""},
		{"azure wrong key", Azure, az.plain.with(map[string]string{"Api-Key": "nope"}, nil), 401, "error.code", "401", ""},
		{"azure unknown path", Azure, call{method: "POST", path: "/openai/chat/completions?api-version=2024-10-21", header: az.plain.header, body: az.plain.body}, 404, "error.code", "404", ""},
		{"azure v1 no model", Azure, az.stream.with(nil, []byte(`{"messages":[{"role":"user","content":"hi"}]}`)), 400, "error.message", "you must provide a model parameter", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startFake(t, tc.kind)
			s.Fail(Status(http.StatusInternalServerError, ""))
			r := tc.c.do(testCtx(t), s.URL())
			if r.err != nil || r.status != tc.wantStatus {
				t.Fatalf("status %d (err %v), want %d; body %s", r.status, r.err, tc.wantStatus, r.body)
			}
			if got := gjson.GetBytes(r.body, tc.path).String(); got != tc.want {
				t.Errorf("%s = %q, want %q (body %s)", tc.path, got, tc.want, r.body)
			}
			if tc.wantBody != "" && !bytes.Equal(r.body, fixture(t, tc.wantBody)) {
				t.Errorf("body %s, want %s", r.body, tc.wantBody)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Errorf("content-type %q", r.header.Get("Content-Type"))
			}
			// The queued failure is still there for the next good request.
			kc := caseFor(t, tc.kind)
			if r := kc.plain.do(testCtx(t), s.URL()); r.status != http.StatusInternalServerError {
				t.Errorf("next valid request: status %d, want the queued 500", r.status)
			}
			if n := len(s.Requests()); n != 2 {
				t.Errorf("recorded %d requests, want 2", n)
			}
		})
	}
}

func TestFailureStatus(t *testing.T) {
	for _, tc := range []struct {
		kind       Kind
		status     int
		retryAfter string
		identity   string
		wantBody   string
	}{
		{OpenAI, 429, "7", "tokens", "openai/error_429.json"},
		{OpenAI, 500, "", "server_error", "openai/error_500.json"},
		{OpenAI, 503, "", "server_error", ""},
		{Anthropic, 429, "7", "rate_limit_error", "anthropic/error_429.json"},
		{Anthropic, 529, "", "overloaded_error", "anthropic/error_529_overloaded.json"},
		{Anthropic, 500, "", "api_error", ""},
		{Azure, 429, "7", "429", ""},
		{Azure, 500, "", "500", ""},
	} {
		t.Run(tc.kind.String()+"/"+http.StatusText(tc.status), func(t *testing.T) {
			kc := caseFor(t, tc.kind)
			s := startFake(t, tc.kind)
			ctx := testCtx(t)
			s.Fail(Status(tc.status, tc.retryAfter))
			r := kc.plain.do(ctx, s.URL())
			if r.err != nil || r.status != tc.status {
				t.Fatalf("status %d (err %v), want %d", r.status, r.err, tc.status)
			}
			if got := r.header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if got := gjson.GetBytes(r.body, kc.errIdentity).String(); got != tc.identity {
				t.Errorf("%s = %q, want %q (body %s)", kc.errIdentity, got, tc.identity, r.body)
			}
			if tc.wantBody != "" && !bytes.Equal(r.body, fixture(t, tc.wantBody)) {
				t.Errorf("body %s, want fixture %s", r.body, tc.wantBody)
			}
			if tc.kind == Azure && tc.status == 429 && !strings.Contains(gjson.GetBytes(r.body, "error.message").Str, "retry after 7 seconds") {
				t.Errorf("azure 429 message lacks the retry hint: %s", r.body)
			}
			if tc.kind == Anthropic && gjson.GetBytes(r.body, "request_id").Str != r.header.Get("Request-Id") {
				t.Errorf("request-id header %q differs from body %s", r.header.Get("Request-Id"), r.body)
			}
			// Consumed: the next request succeeds.
			if r := kc.plain.do(ctx, s.URL()); r.status != http.StatusOK {
				t.Errorf("second request: status %d, want 200", r.status)
			}
		})
	}
}

func TestFailureOrderOnePerRequest(t *testing.T) {
	kc := caseFor(t, OpenAI)
	s := startFake(t, OpenAI)
	ctx := testCtx(t)
	s.Fail(Status(429, ""), Status(500, ""))
	var got []int
	for range 3 {
		got = append(got, kc.plain.do(ctx, s.URL()).status)
	}
	if want := []int{429, 500, 200}; !equalInts(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFailureSlowFirstByte(t *testing.T) {
	for _, kc := range kindCases(t) {
		t.Run(kc.kind.String(), func(t *testing.T) {
			s := startFake(t, kc.kind)
			ctx := testCtx(t)
			release := make(chan struct{})
			s.Fail(SlowFirstByte(release))

			var firstByte atomic.Bool
			traced := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				GotFirstResponseByte: func() { firstByte.Store(true) },
			})
			held := make(chan result, 1)
			go func() { held <- kc.stream.do(traced, s.URL()) }()
			if _, err := s.WaitRequests(ctx, 1); err != nil {
				t.Fatal(err)
			}
			// The held request has taken the failure; a later one is answered.
			if r := kc.plain.do(ctx, s.URL()); r.status != http.StatusOK {
				t.Fatalf("request while another is held: status %d err %v", r.status, r.err)
			}
			select {
			case r := <-held:
				t.Fatalf("held response arrived before release: status %d err %v", r.status, r.err)
			default:
			}
			if firstByte.Load() {
				t.Fatal("a response byte arrived before release")
			}
			close(release)
			r := <-held
			if r.err != nil || r.status != http.StatusOK || !bytes.Equal(r.body, fixture(t, kc.streamBody)) {
				t.Fatalf("after release: status %d err %v body %q", r.status, r.err, r.body)
			}
		})
	}
}

func TestFailureSlowFirstByteEndsWithClient(t *testing.T) {
	kc := caseFor(t, OpenAI)
	s := startFake(t, OpenAI)
	s.Fail(SlowFirstByte(nil)) // never released
	ctx, cancel := context.WithCancel(testCtx(t))
	held := make(chan result, 1)
	go func() { held <- kc.plain.do(ctx, s.URL()) }()
	if _, err := s.WaitRequests(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if r := <-held; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("held request: err %v, want context.Canceled", r.err)
	}
	// The handler gave up; the server still answers.
	if r := kc.plain.do(testCtx(t), s.URL()); r.status != http.StatusOK {
		t.Fatalf("next request: status %d", r.status)
	}
}

func TestCloseReleasesHeldResponses(t *testing.T) {
	kc := caseFor(t, OpenAI)
	s, err := Start(Options{Kind: OpenAI, Credential: testKey})
	if err != nil {
		t.Fatal(err)
	}
	s.Fail(SlowFirstByte(nil))
	held := make(chan result, 1)
	go func() { held <- kc.plain.do(testCtx(t), s.URL()) }()
	if _, err := s.WaitRequests(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	s.Close() // must not wait for a release that never comes
	s.Close()
	if r := <-held; r.err == nil {
		t.Fatalf("held request succeeded after Close: status %d", r.status)
	}
	if _, err := s.WaitRequests(testCtx(t), 2); err == nil {
		t.Fatal("WaitRequests on a closed server returned no error")
	}
}

func TestFailureResetAfter(t *testing.T) {
	for _, kc := range kindCases(t) {
		for _, streamed := range []bool{false, true} {
			name := kc.kind.String() + "/plain"
			c, fx := kc.plain, kc.plainBody
			if streamed {
				name, c, fx = kc.kind.String()+"/stream", kc.stream, kc.streamBody
			}
			t.Run(name, func(t *testing.T) {
				s := startFake(t, kc.kind)
				full := fixture(t, fx)
				// Mid-body; for streams, past the first event and inside the second.
				n := len(full) / 3
				if streamed {
					n = len(splitEvents(full)[0]) + 10
				}
				s.Fail(ResetAfter(n))
				r := c.do(testCtx(t), s.URL())
				if r.status != http.StatusOK {
					t.Fatalf("status %d err %v, want 200 then a broken body", r.status, r.err)
				}
				if r.err == nil {
					t.Fatalf("body read without error (%d bytes)", len(r.body))
				}
				if !bytes.Equal(r.body, full[:n]) {
					t.Errorf("got %d bytes %q, want the first %d bytes of %s", len(r.body), r.body, n, fx)
				}
				if !streamed && r.header.Get("Content-Length") == "" {
					t.Error("non-streamed reset answer lacks Content-Length")
				}
				// The server keeps serving.
				if r := kc.plain.do(testCtx(t), s.URL()); r.status != http.StatusOK || r.err != nil {
					t.Errorf("next request: status %d err %v", r.status, r.err)
				}
			})
		}
	}
}

func TestFailureStreamError(t *testing.T) {
	for _, kc := range kindCases(t) {
		t.Run(kc.kind.String(), func(t *testing.T) {
			s := startFake(t, kc.kind)
			ctx := testCtx(t)
			s.Fail(StreamError(), StreamError())
			r := kc.stream.do(ctx, s.URL())
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("status %d err %v", r.status, r.err)
			}
			if !bytes.HasSuffix(r.body, []byte(kc.streamErrEnd)) {
				t.Errorf("stream does not end with the error event:\n%s", r.body)
			}
			if bytes.Contains(r.body, []byte("[DONE]")) || bytes.Contains(r.body, []byte("message_stop")) {
				t.Errorf("stream has a normal end after the error:\n%s", r.body)
			}
			switch kc.kind {
			case Anthropic:
				if !bytes.Equal(r.body, fixture(t, "anthropic/messages_stream_error.sse")) {
					t.Errorf("body differs from messages_stream_error.sse:\n%s", r.body)
				}
			default:
				prefix := bytes.TrimSuffix(r.body, []byte(kc.streamErrEnd))
				if !bytes.HasPrefix(fixture(t, kc.streamBody), prefix) || len(splitEvents(prefix)) < 2 {
					t.Errorf("events before the error are not the stream's first half:\n%s", prefix)
				}
			}
			// Non-streamed: the provider's overload status.
			r = kc.plain.do(ctx, s.URL())
			want := map[Kind]int{OpenAI: 500, Anthropic: 529, Azure: 500}[kc.kind]
			if r.status != want {
				t.Errorf("non-streamed StreamError: status %d, want %d", r.status, want)
			}
		})
	}
}

func TestRequestsRecordsEverything(t *testing.T) {
	s := startFake(t, Azure)
	ctx := testCtx(t)
	kc := caseFor(t, Azure)
	bad := kc.plain.with(map[string]string{"Api-Key": "wrong", "X-Trace": "t1"}, nil)
	bad.do(ctx, s.URL())
	kc.stream.do(ctx, s.URL())

	got := s.Requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	first := got[0]
	if first.Method != "POST" || first.Path != "/openai/deployments/gw-mini/chat/completions" || first.RawQuery != "api-version=2024-10-21" {
		t.Errorf("first request line: %s %s ? %s", first.Method, first.Path, first.RawQuery)
	}
	if first.Host != s.Addr() {
		t.Errorf("Host %q, want %q", first.Host, s.Addr())
	}
	if first.Header.Get("Api-Key") != "wrong" || first.Header.Get("X-Trace") != "t1" {
		t.Errorf("headers not recorded: %v", first.Header)
	}
	if !bytes.Equal(first.Body, kc.plain.body) || first.ContentLength != int64(len(kc.plain.body)) {
		t.Errorf("body/content-length not recorded: %d bytes, content-length %d", len(first.Body), first.ContentLength)
	}
	if got[1].Path != "/openai/v1/chat/completions" || got[1].Header.Get("Authorization") != "Bearer "+testKey {
		t.Errorf("second request: %s %v", got[1].Path, got[1].Header)
	}
	// Copies: mutating them does not touch the server's record.
	got[0].Body[0] = 'X'
	got[0].Header.Set("Api-Key", "changed")
	again := s.Requests()[0]
	if again.Body[0] == 'X' || again.Header.Get("Api-Key") != "wrong" {
		t.Error("Requests returned shared storage")
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(Options{}); err == nil {
		t.Error("Start without a kind succeeded")
	}
	if _, err := Start(Options{Kind: OpenAI, FixturesDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "chat_response.json") && !strings.Contains(err.Error(), "headers_response.txt") {
		t.Errorf("Start with an empty fixtures dir: %v", err)
	}
	s, err := Start(Options{Kind: Anthropic}) // no credential: any key passes
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kc := caseFor(t, Anthropic)
	if r := kc.plain.with(map[string]string{"X-Api-Key": ""}, nil).do(testCtx(t), s.URL()); r.status != http.StatusOK {
		t.Errorf("no credential configured: status %d", r.status)
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || s.URL() != "http://"+s.Addr() {
		t.Errorf("URL %q Addr %q", s.URL(), s.Addr())
	}
}

// FuzzRequestBody feeds arbitrary bodies to every provider's handler: it must
// answer 200 or a 400 in the provider's error shape, never panic.
func FuzzRequestBody(f *testing.F) {
	for _, name := range []string{
		"openai/chat_request_basic.json", "openai/chat_request_stream.json",
		"openai/chat_request_stream_include_usage.json", "openai/chat_request_tools.json",
		"openai/embeddings_request.json", "anthropic/messages_request.json", "anthropic/messages_request_tools.json",
	} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"model":1,"messages":{},"stream":"true","tools":null}`))
	f.Add([]byte(`{"model":"m","messages":[1],"max_tokens":1,"stream":true,"tools":[{}]}`))
	f.Add([]byte("\xff{"))
	dir, err := defaultFixturesDir()
	if err != nil {
		f.Fatal(err)
	}
	var providers []provider
	for _, k := range []Kind{OpenAI, Anthropic, Azure} {
		fs := &fixtureSet{dir: dir}
		switch k {
		case OpenAI:
			providers = append(providers, newOpenAI(fs, ""))
		case Anthropic:
			providers = append(providers, newAnthropic(fs, ""))
		case Azure:
			providers = append(providers, newAzure(fs, ""))
		}
		if fs.err != nil {
			f.Fatal(fs.err)
		}
	}
	paths := []string{"/v1/chat/completions", "/v1/messages", "/openai/v1/chat/completions"}
	f.Fuzz(func(t *testing.T, body []byte) {
		for i, p := range providers {
			for _, path := range append(paths[i:i+1], "/v1/embeddings") {
				r, err := http.NewRequest("POST", "http://fake"+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				r.Header.Set("Anthropic-Version", "2023-06-01")
				rep, ok := p.handle(r, body, "id")
				if ok != (rep.status == http.StatusOK) {
					t.Fatalf("%T %s: ok=%v with status %d", p, path, ok, rep.status)
				}
				if rep.status != http.StatusOK && rep.status != http.StatusBadRequest && rep.status != http.StatusNotFound {
					t.Fatalf("%T %s: status %d", p, path, rep.status)
				}
				if !ok && !gjson.ValidBytes(bytes.Join(rep.chunks, nil)) {
					t.Fatalf("%T %s: error body is not JSON: %q", p, path, rep.chunks)
				}
			}
		}
	})
}

// TestTranscriptionUsageShapes: whisper-1 answers with duration usage, the
// gpt-4o transcription models with token usage, each as its fixture has it.
func TestTranscriptionUsageShapes(t *testing.T) {
	s := startFake(t, OpenAI)
	for _, tc := range []struct{ model, fixture string }{
		{"whisper-1", "openai/transcription_response_duration.json"},
		{"gpt-4o-transcribe", "openai/transcription_response_tokens.json"},
		{"gpt-4o-mini-transcribe", "openai/transcription_response_tokens.json"},
	} {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		fw, _ := w.CreateFormFile("file", "a.wav")
		fw.Write([]byte("RIFF"))
		w.WriteField("model", tc.model)
		w.Close()
		r := call{method: "POST", path: "/v1/audio/transcriptions", header: map[string]string{
			"Authorization": "Bearer " + testKey, "Content-Type": w.FormDataContentType()}, body: b.Bytes()}.do(testCtx(t), s.URL())
		if r.err != nil || r.status != 200 {
			t.Fatalf("%s: %d %v %s", tc.model, r.status, r.err, r.body)
		}
		if got, want := gjson.GetBytes(r.body, "usage").Raw, gjson.GetBytes(fixture(t, tc.fixture), "usage").Raw; got != want {
			t.Errorf("%s: usage %s, want %s", tc.model, got, want)
		}
		if got := gjson.GetBytes(r.body, "text").Str; got != "transcribed by "+tc.model {
			t.Errorf("%s: text %q", tc.model, got)
		}
	}
}
