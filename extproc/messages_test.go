package extproc

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/extproc/internal/jsonscan"
	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/bedrock"
	"github.com/tollgate-ai/tollgate/routing/translate/openai"
	"github.com/tollgate-ai/tollgate/routing/translate/vertex"
	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

// frontStep finds a front step by name, so tests do not depend on the
// order of frontSteps.
func frontStep(name string) headerStep {
	for _, s := range frontSteps {
		if s.name == name {
			return s
		}
	}
	panic("no front step " + name)
}

// onMessages points a step case at the Messages endpoint.
func onMessages(endpoint routing.Endpoint) func(*exchange) {
	return func(x *exchange) {
		x.endpoint, x.path = endpoint, "/v1/messages"
		x.msgs.api = anthropicFormat
	}
}

func TestStepErrorFormat(t *testing.T) {
	for path, want := range map[string]*apiFormat{
		"/v1/messages":              anthropicFormat,
		"/v1/messages/count_tokens": anthropicFormat,
		"/v1/messages?beta=true":    anthropicFormat,
		"/v1/chat/completions":      nil,
		"/v1/nowhere":               nil,
	} {
		runHeaderStep(t, frontStep("error_format"), []stepCase{{name: path, headers: []string{":path", path},
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.msgs.api != want {
					t.Fatalf("format %p, want %p", x.msgs.api, want)
				}
			}}})
	}
	// A refusal in the Anthropic format: the type follows the status, the
	// OpenAI code stays visible in the message.
	b := anthropicFormat.errorBody(oaierror.InvalidAPIKey())
	if gjson.GetBytes(b, "type").Str != "error" || gjson.GetBytes(b, "error.type").Str != "authentication_error" ||
		!strings.Contains(gjson.GetBytes(b, "error.message").Str, "invalid_api_key") {
		t.Fatalf("anthropic refusal %s", b)
	}
	var openAI *apiFormat
	if got := openAI.errorBody(oaierror.InvalidAPIKey()); gjson.GetBytes(got, "error.code").Str != "invalid_api_key" {
		t.Fatalf("openai refusal %s", got)
	}
}

func TestStepReadAnthropicHeaders(t *testing.T) {
	check := func(version, beta string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.msgs.anthropic.version != version || x.msgs.anthropic.beta != beta {
				t.Fatalf("got %+v, want %q %q", x.msgs.anthropic, version, beta)
			}
		}
	}
	runHeaderStep(t, stepReadAnthropicHeaders, []stepCase{
		{name: "defaults", want: check("2023-06-01", "")},
		{name: "version kept", headers: []string{"anthropic-version", "2023-01-01"}, want: check("2023-01-01", "")},
		{name: "vetted betas only", headers: []string{"anthropic-beta", "prompt-caching-2024-07-31, files-api-2025-04-14,interleaved-thinking-2025-05-14"},
			want: check("2023-06-01", "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14")},
		{name: "no vetted beta", headers: []string{"anthropic-beta", "context-1m-2025-08-07"}, want: check("2023-06-01", "")},
	})
}

func TestStepMessagesMaxTokens(t *testing.T) {
	runBodyStep(t, stepMessagesMaxTokens, []stepCase{
		{name: "read", body: `{"max_tokens":300}`, want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.maxOut != 300 {
				t.Fatalf("maxOut %d", x.maxOut)
			}
		}},
		{name: "saturated", body: `{"max_tokens":99999999999}`, want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.maxOut != 1<<31-1 {
				t.Fatalf("maxOut %d", x.maxOut)
			}
		}},
		{name: "missing", body: `{}`, code: "invalid_request_error"},
		{name: "zero", body: `{"max_tokens":0}`, code: "invalid_request_error"},
		{name: "string", body: `{"max_tokens":"5"}`, code: "invalid_request_error"},
	})
}

func TestMessagesPieces(t *testing.T) {
	body := `{"system":[{"type":"text","text":"sys"}],"messages":[
		{"role":"user","content":"hello"},
		{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"text","text":"hi"},{"type":"tool_use","id":"a","name":"f","input":{"q":"x"}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"text","text":"42"}]},{"type":"text","text":"and?"}]}]}`
	x := stepExchange(t, stepCase{})
	req := &upstreamRequest{body: []byte(body)}
	var err error
	if req.members, err = jsonscan.Object(req.body, nil); err != nil {
		t.Fatal(err)
	}
	var p inputPieces
	messagesPieces(x, req, &p)
	var got []string
	for _, pc := range p.in.Pieces {
		got = append(got, pc.Role+":"+pc.Text)
	}
	if want := "system:sys user:hello assistant:hi user:and? tool:42"; strings.Join(got, " ") != want {
		t.Fatalf("pieces %q, want %q", strings.Join(got, " "), want)
	}
}

func TestStepMessagesToChat(t *testing.T) {
	runBodyStep(t, stepMessagesToChat, []stepCase{
		{name: "translated", facts: both(onMessages(routing.EndpointMessages), target("smart-default")),
			body: `{"model":"smart-default","max_tokens":10,"system":"s","messages":[{"role":"user","content":"hi"}]}`,
			want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				b := string(req.body)
				if !req.bodyChanged || gjson.Get(b, "model").Str != "gpt-4o-mini" || gjson.Get(b, "messages.0.role").Str != "system" ||
					gjson.Get(b, "max_completion_tokens").Int() != 10 {
					t.Fatalf("chat body %s", b)
				}
			}},
		{name: "top_k refused", facts: both(onMessages(routing.EndpointMessages), target("smart-default")),
			body: `{"model":"smart-default","max_tokens":10,"top_k":3,"messages":[{"role":"user","content":"hi"}]}`, code: "unsupported_parameter"},
	})
}

func TestStepRouteMessages(t *testing.T) {
	snap := chainSnapshot(t)
	route := func(path, header, value string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, _ *exchange, _ *upstreamRequest, mu *mutation) {
			h := setHeaders(mu.get())
			if h[":path"] != path || h[header] != value || h[clusterHeader] == "" {
				t.Fatalf("headers %v", h)
			}
		}
	}
	runBodyStep(t, stepRouteNative, []stepCase{
		{name: "native", snap: snap, facts: both(onMessages(routing.EndpointMessages), member(1)), body: `{}`,
			want: route("/v1/messages", "x-api-key", "sk-a")},
		{name: "count_tokens", snap: snap, facts: both(onMessages(routing.EndpointMessagesCountTokens), member(1)), body: `{}`,
			want: route("/v1/messages/count_tokens", "x-api-key", "sk-a")},
	})
	runBodyStep(t, stepRouteChat, []stepCase{
		{name: "translated", snap: snap, facts: both(onMessages(routing.EndpointMessages), member(0)), body: `{}`,
			want: route("/v1/chat/completions", "authorization", "Bearer sk-o")},
	})
	runBodyStep(t, stepAnthropicHeaders, []stepCase{
		{name: "version and beta", facts: func(x *exchange) { x.msgs.anthropic = anthropicHeaders{"2023-06-01", "prompt-caching-2024-07-31"} },
			want: func(t *testing.T, _ *exchange, _ *upstreamRequest, mu *mutation) {
				if h := setHeaders(mu.get()); h["anthropic-version"] != "2023-06-01" || h["anthropic-beta"] != "prompt-caching-2024-07-31" {
					t.Fatalf("headers %v", h)
				}
			}},
	})
}

// vertexSnapshot has a Vertex AI provider serving Claude and Gemini. Its
// service account's token endpoint is never called (no step here mints).
func vertexSnapshot(t *testing.T) *Snapshot {
	t.Helper()
	ep, err := fakeprovider.NewTokenEndpoint(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sa := string(ep.ServiceAccountJSON("http://127.0.0.1:1/token"))
	cfg := &config.Config{
		Version: 1,
		Providers: []config.Provider{{Name: "vertex", Schema: config.SchemaVertexAI, Cluster: "vertex", DefaultMaxTokens: 256,
			BasePath: "/v1/projects/p/locations/l", Vertex: &config.Vertex{Project: "p", Location: "l", ServiceAccount: config.SecretRef{Env: "SA"}},
			Models: []string{"claude-sonnet-4-5@20250929", "google/gemini-2.5-flash"}}},
		Models: []config.Model{
			{Name: "vertex-claude", Provider: "vertex", Model: "claude-sonnet-4-5@20250929"},
			{Name: "vertex-gemini", Provider: "vertex", Model: "google/gemini-2.5-flash"},
		},
	}
	lookup := func(k string) (string, bool) { return sa, k == "SA" }
	table, warns := routing.New(cfg, lookup)
	if len(warns) > 0 {
		t.Fatal(warns)
	}
	tenants, _ := configopts.NewTenancy(cfg, lookup)
	store, _ := keys.NewStore([]keys.Entry{{Key: keys.Key{ID: "k1", Tenant: config.DefaultTenant}, SHA256: keys.Hash(testKey)}})
	return &Snapshot{Routes: table, Keys: store, Tenants: tenants, Metadata: cfg.MetadataLimits(), Limits: &Limits{}}
}

func TestStepMessagesForProvider(t *testing.T) {
	vertexSnap := vertexSnapshot(t)
	const body = `{"model":"m","max_tokens":10,"stream":true,"system":"s","messages":[{"role":"user","content":"hi"}]}`
	streaming := func(x *exchange) { x.stream = true }
	bodyIs := func(check func(b string) bool) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
			if b := sent(t, req); !check(b) {
				t.Fatalf("body %s", b)
			}
		}
	}
	runBodyStep(t, stepMessagesForProvider, []stepCase{
		{name: "anthropic: the model rewritten", snap: chainSnapshot(t), facts: both(onMessages(routing.EndpointMessages), member(1)), body: body,
			want: bodyIs(func(b string) bool {
				return gjson.Get(b, "model").Str == "claude-sonnet-4-5" && gjson.Get(b, "system").Str == "s" && !gjson.Get(b, "anthropic_version").Exists()
			})},
		{name: "vertex claude: the model in the path, the version in the body", snap: vertexSnap,
			facts: both(onMessages(routing.EndpointMessages), target("vertex-claude")), body: body,
			want: bodyIs(func(b string) bool {
				return !gjson.Get(b, "model").Exists() && gjson.Get(b, "anthropic_version").Str == "vertex-2023-10-16" &&
					gjson.Get(b, "system").Str == "s" && gjson.Get(b, "max_tokens").Int() == 10 && gjson.Get(b, "stream").Bool()
			})},
		{name: "vertex gemini: chat completions, usage asked", snap: vertexSnap,
			facts: both(onMessages(routing.EndpointMessages), target("vertex-gemini"), streaming), body: body,
			want: bodyIs(func(b string) bool {
				return gjson.Get(b, "model").Str == "google/gemini-2.5-flash" && gjson.Get(b, "messages.0.role").Str == "system" &&
					gjson.Get(b, "max_completion_tokens").Int() == 10 && gjson.Get(b, "stream_options.include_usage").Bool()
			})},
		{name: "bedrock: chat, then converse", snap: bedrockSnapshot(t),
			facts: both(onMessages(routing.EndpointMessages), target("bedrock-default"), streaming), body: body,
			want: bodyIs(func(b string) bool {
				return !gjson.Get(b, "model").Exists() && gjson.Get(b, "system.0.text").Str == "s" &&
					gjson.Get(b, "messages.0.content.0.text").Str == "hi" && gjson.Get(b, "inferenceConfig.maxTokens").Int() == 10
			})},
		{name: "bedrock: a field Messages cannot take to chat", snap: bedrockSnapshot(t),
			facts: both(onMessages(routing.EndpointMessages), target("bedrock-default")),
			body:  `{"model":"m","max_tokens":10,"top_k":3,"messages":[{"role":"user","content":"hi"}]}`, code: "unsupported_parameter"},
		// Thinking is translated for Claude on Bedrock, but not with a
		// budget above max_tokens: the second translator's refusal surfaces.
		{name: "bedrock: a chat value Bedrock's translator refuses", snap: bedrockSnapshot(t),
			facts: both(onMessages(routing.EndpointMessages), target("bedrock-default")),
			body:  `{"model":"m","max_tokens":10,"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"hi"}]}`,
			code:  "invalid_value"},
	})
	plain := `{"model":"smart","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	runBodyStep(t, stepCheckMessagesMembers, []stepCase{
		{name: "every member takes it", snap: chainSnapshot(t), facts: both(onMessages(routing.EndpointMessages), target("smart")), body: plain},
		{name: "the chat member cannot take top_k", snap: chainSnapshot(t), facts: both(onMessages(routing.EndpointMessages), target("smart")),
			body: `{"model":"smart","max_tokens":10,"top_k":3,"messages":[{"role":"user","content":"hi"}]}`, code: "unsupported_parameter"},
		{name: "the bedrock member cannot think within max_tokens", snap: bedrockSnapshot(t), facts: both(onMessages(routing.EndpointMessages), target("smart")),
			body: `{"model":"smart","max_tokens":10,"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"hi"}]}`,
			code: "invalid_value"},
	})
}

// runMessagesAttempt runs one upstream attempt of a /v1/messages request
// through a fallback chain.
func runMessagesAttempt(t *testing.T, snap *Snapshot, provider string, stream bool, body string) (map[string]string, string) {
	t.Helper()
	first := attemptHeaders(provider, 1, stream)
	md := first.GetMetadataContext().GetFilterMetadata()[metadataNamespace].GetFields()
	md[metaEndpoint] = structpb.NewStringValue(routing.EndpointMessages.String())
	a := &attempt{srv: New(Options{}), snap: snap}
	a.handle(first)
	r, _ := a.handle(reqBody(body))
	c := r.GetRequestBody().GetResponse()
	return setHeaders(c.GetHeaderMutation()), string(c.GetBodyMutation().GetBody())
}

// A Messages request through a fallback chain: each attempt writes its
// member's body, natively for Anthropic, as chat completions (then through
// the provider's chat translator) for the rest.
func TestMessagesAttempts(t *testing.T) {
	body := `{"model":"smart","max_tokens":10,"stream":true,"system":"be brief","messages":[{"role":"user","content":"hi"}]}`
	set, out := runMessagesAttempt(t, chainSnapshot(t), "openai", true, body)
	if set[":path"] != "/v1/chat/completions" || set["authorization"] != "Bearer sk-o" || gjson.Get(out, "model").Str != "gpt-4o-mini" ||
		gjson.Get(out, "messages.0.role").Str != "system" || !gjson.Get(out, "stream_options.include_usage").Bool() || set["content-length"] != itoa(len(out)) {
		t.Fatalf("openai attempt: %v %s", set, out)
	}
	set, out = runMessagesAttempt(t, chainSnapshot(t), "anthropic", true, body)
	if set[":path"] != "/v1/messages" || set["x-api-key"] != "sk-a" || set["anthropic-version"] != "2023-06-01" ||
		gjson.Get(out, "model").Str != "claude-sonnet-4-5" || gjson.Get(out, "system").Str != "be brief" || gjson.Get(out, "max_tokens").Int() != 10 {
		t.Fatalf("anthropic attempt: %v %s", set, out)
	}
	set, out = runMessagesAttempt(t, bedrockSnapshot(t), "bedrock", false, body)
	if set[":path"] != "/model/"+bedrockID+"/converse" || !strings.HasPrefix(set["authorization"], "AWS4-HMAC-SHA256 ") ||
		gjson.Get(out, "system.0.text").Str != "be brief" || gjson.Get(out, "inferenceConfig.maxTokens").Int() != 10 {
		t.Fatalf("bedrock attempt: %v %s", set, out)
	}
}

func TestStepRouteMessagesProviders(t *testing.T) {
	vertexSnap := vertexSnapshot(t)
	route := func(path string, headers map[string]string, absent ...string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, _ *exchange, _ *upstreamRequest, mu *mutation) {
			h := setHeaders(mu.get())
			if path != "" && (h[":path"] != path || h[clusterHeader] == "") {
				t.Fatalf("path %q cluster %q", h[":path"], h[clusterHeader])
			}
			for k, v := range headers {
				if h[k] != v {
					t.Fatalf("%s: %q, want %q (%v)", k, h[k], v, h)
				}
			}
			for _, k := range absent {
				if _, ok := h[k]; ok {
					t.Fatalf("%s must not be sent: %v", k, h)
				}
			}
		}
	}
	streaming := func(x *exchange) { x.stream = true }
	betas := func(x *exchange) { x.msgs.anthropic = anthropicHeaders{"2023-06-01", "prompt-caching-2024-07-31"} }
	msgs := onMessages(routing.EndpointMessages)
	runBodyStep(t, stepRouteMessages, []stepCase{
		{name: "anthropic", snap: chainSnapshot(t), facts: both(msgs, member(1)), body: `{}`, want: route("/v1/messages", map[string]string{"x-api-key": "sk-a"})},
		{name: "vertex claude", snap: vertexSnap, facts: both(msgs, target("vertex-claude")), body: `{}`,
			want: route("/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict", nil)},
		{name: "vertex claude stream", snap: vertexSnap, facts: both(msgs, target("vertex-claude"), streaming), body: `{}`,
			want: route("/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict", nil)},
		{name: "vertex gemini", snap: vertexSnap, facts: both(msgs, target("vertex-gemini")), body: `{}`,
			want: route("/v1/projects/p/locations/l/endpoints/openapi/chat/completions", nil)},
		{name: "bedrock stream", snap: bedrockSnapshot(t), facts: both(msgs, target("bedrock-default"), streaming), body: `{}`,
			want: route("/model/"+bedrockID+"/converse-stream", nil)},
	})
	runBodyStep(t, stepMessagesHeaders, []stepCase{
		{name: "anthropic", snap: chainSnapshot(t), facts: both(msgs, member(1), betas),
			want: route("", map[string]string{"anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31"})},
		{name: "vertex claude: betas, the version is in the body", snap: vertexSnap, facts: both(msgs, target("vertex-claude"), betas),
			want: route("", map[string]string{"anthropic-beta": "prompt-caching-2024-07-31"}, "anthropic-version")},
		{name: "bedrock: its translator's headers", snap: bedrockSnapshot(t), facts: both(msgs, target("bedrock-default"), betas),
			want: route("", map[string]string{"content-type": "application/json"}, "anthropic-version", "anthropic-beta")},
	})
}

func TestStepEstimateTokens(t *testing.T) {
	runBodyStep(t, stepEstimateTokens, []stepCase{
		{name: "estimate", facts: onMessages(routing.EndpointMessagesCountTokens),
			body: `{"model":"m","messages":[{"role":"user","content":"hello there"}]}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				ir := x.answer.GetImmediateResponse()
				if ir.GetStatus().GetCode() != 200 || setHeaders(ir.GetHeaders())[estimatedHeader] != "true" ||
					gjson.GetBytes(ir.GetBody(), "input_tokens").Int() <= 0 {
					t.Fatalf("answer %v", ir)
				}
			}},
		{name: "no messages", facts: onMessages(routing.EndpointMessagesCountTokens), body: `{"model":"m"}`, code: "invalid_request"},
	})
	runBodyStep(t, stepEstimateUnlessNative, []stepCase{
		{name: "anthropic counts itself", snap: chainSnapshot(t), facts: member(1), body: `{"messages":[]}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.answer != nil {
					t.Fatal("answered a native target")
				}
			}},
	})
}

// The response schemas: a native stream passes byte for byte and is
// metered from its usage; a translated answer's errors become Anthropic's.
func TestMessagesResponseSchemas(t *testing.T) {
	var s translate.Schema = nativeMessagesSchema{}
	st := s.NewStream("m", false).(translate.RawStream)
	events := []string{
		`{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}`,
		`{"type":"message_stop"}`,
	}
	var out []byte
	for _, e := range events {
		raw := "event: x\ndata: " + e + "\n\n"
		out = st.Raw(out, []byte(raw), []byte(e))
	}
	if done, errored := st.State(); !done || errored {
		t.Fatalf("state %t %t", done, errored)
	}
	if u, ok := st.Usage(); !ok || u.PromptTokens != 15 || u.CachedTokens != 5 || u.CompletionTokens != 7 {
		t.Fatalf("usage %+v %t", u, ok)
	}
	if !strings.HasPrefix(string(out), "event: x\ndata: {\"type\":\"message_start\"") {
		t.Fatalf("not passed through: %s", out)
	}
	if _, body := s.Error(529, []byte(`{"type":"error"}`)); string(body) != `{"type":"error"}` {
		t.Fatal("a native error must pass unchanged")
	}

	tr := chatToMessages{}
	status, body := tr.Error(429, []byte(`{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}`))
	if status != 429 || gjson.GetBytes(body, "error.type").Str != "rate_limit_error" {
		t.Fatalf("translated error %d %s", status, body)
	}

	// A budget that runs out mid-stream ends it in the stream's own format.
	for _, st := range []translate.Stream{nativeMessagesSchema{}.NewStream("m", false), tr.NewStream("m", false)} {
		if ev := string(budgetEvent(st)); !strings.HasPrefix(ev, "event: error\ndata: ") || !strings.Contains(ev, `"billing_error"`) {
			t.Fatalf("budget event %q", ev)
		}
	}
	if string(budgetEvent(openai.Passthrough{}.NewStream("m", false))) != string(budgetErrorEvent) {
		t.Fatal("chat streams keep OpenAI's budget event")
	}
}

// FuzzMessagesStreams feeds arbitrary provider events to both Messages
// stream readers: they must never panic, whatever the provider sends.
func FuzzMessagesStreams(f *testing.F) {
	f.Add([]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}`))
	f.Add([]byte(`{"type":"message_delta","usage":{"output_tokens":"x"}}`))
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}`))
	f.Add([]byte(`[DONE]`))
	f.Add([]byte(`{"contentBlockIndex":0,"delta":{"text":"a"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, st := range []translate.Stream{nativeMessagesSchema{}.NewStream("m", false), chatToMessages{}.NewStream("m", false),
			chatToMessages{chat: &vertex.Schema{}}.NewStream("google/gemini-2.5-flash", false),
			chatToMessages{chat: &bedrock.Schema{}}.NewStream("anthropic.claude", false)} {
			out := st.Event(nil, []byte("contentBlockDelta"), data)
			out, _ = st.End(out)
			_, _ = st.Usage()
			_ = out
		}
	})
}

// A native Messages stream counts toward the mid-stream budget check as a
// chat stream does: the meter is asked with the completion text received so
// far, so the stream's own output can spend the budget, and a spent budget
// ends the stream with Anthropic's error event.
func TestNativeMessagesStreamBudget(t *testing.T) {
	body := readFixture(t, "anthropic/messages_stream.sse")
	want := 0
	for _, part := range []string{"An API gateway", " is the single entry point that", " authenticates, rate-limits and routes", " client requests to the right backend."} {
		want += len(part)
	}
	half := bytes.Index(body, []byte("event: content_block_stop"))
	tests := []struct {
		name    string
		left    int // completion bytes the budget still pays for
		outcome string
	}{
		{name: "within the budget", left: want},
		{name: "its own output spends the budget", left: want - 1, outcome: outcomeTerminated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &spendingMeter{left: tt.left}
			r := newStreamReader(m, nativeMessagesSchema{}, "m", true, nil)
			first, _ := r.chunk(body[:half], false)
			first = bytes.Clone(first) // the reader reuses its buffer
			second, _ := r.chunk(body[half:], true)
			if !slices.Equal(m.asked, []int{0, want}) || r.received() != want {
				t.Fatalf("budget asked with %v, received %d; want [0 %d]", m.asked, r.received(), want)
			}
			if r.outcome() != tt.outcome {
				t.Fatalf("outcome %q, want %q", r.outcome(), tt.outcome)
			}
			if !bytes.Equal(first, body[:half]) {
				t.Fatalf("first chunk changed:\n%s", first)
			}
			if tt.outcome == outcomeTerminated && string(second) != string(anthropicBudgetEvent) {
				t.Fatalf("a spent budget must end the stream with Anthropic's error event, got:\n%s", second)
			}
		})
	}
}

// spendingMeter is a streamMeter whose budget pays for left bytes of
// completion text.
type spendingMeter struct {
	left  int
	asked []int
}

func (m *spendingMeter) budgetSpent(received int) bool {
	m.asked = append(m.asked, received)
	return received > m.left
}
func (m *spendingMeter) endComment() []byte { return nil }

// A translated Messages stream counts the provider's chat text toward the
// budget, as chat to the same provider does, and a provider chat translator
// (Gemini on Vertex AI here) composes with the Messages stream: Anthropic's
// events out, the chat stream's usage metered.
func TestTranslatedMessagesStream(t *testing.T) {
	body := readFixture(t, "openai/chat_stream.sse")
	want, text := 0, ""
	for _, line := range strings.Split(string(body), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			c := gjson.Get(d, "choices.0.delta.content").Str
			want, text = want+len(c), text+c
		}
	}
	for _, tt := range []struct {
		name   string
		schema translate.Schema
		model  string
	}{
		{"openai", chatToMessages{}, "gpt-4o-mini"},
		{"vertex gemini", chatToMessages{chat: &vertex.Schema{}}, "google/gemini-2.5-flash"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := &spendingMeter{left: 1 << 20}
			r := newStreamReader(m, tt.schema, tt.model, true, nil)
			var out []byte
			for _, part := range [][]byte{body[:len(body)/2], body[len(body)/2:]} {
				o, _ := r.chunk(part, false)
				out = append(out, o...)
			}
			o, _ := r.chunk(nil, true)
			out = append(out, o...)
			if r.received() != want || len(m.asked) != 3 || m.asked[2] != want {
				t.Fatalf("received %d, budget asked with %v; want %d", r.received(), m.asked, want)
			}
			got := ""
			for _, line := range strings.Split(string(out), "\n") {
				if d, ok := strings.CutPrefix(line, "data: "); ok && gjson.Get(d, "type").Str == "content_block_delta" {
					got += gjson.Get(d, "delta.text").Str
				}
			}
			if got != text || !strings.Contains(string(out), "event: message_stop") || r.outcome() != "" {
				t.Fatalf("text %q, want %q; outcome %q:\n%s", got, text, r.outcome(), out)
			}
			if u, ok := r.usage(); !ok || u.CompletionTokens == 0 {
				t.Fatalf("usage %+v %t", u, ok)
			}
		})
	}
}

// Errors reach a Messages client in Anthropic's format whichever format
// the provider answered in: Anthropic's passes, Google's (Vertex AI) and
// OpenAI's are converted.
func TestMessagesProviderErrors(t *testing.T) {
	const google = `[{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com","status":"RESOURCE_EXHAUSTED"}}]`
	anthropicErr := `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`
	for _, tt := range []struct {
		name     string
		schema   translate.Schema
		status   int
		body     string
		wantType string
	}{
		{"anthropic passes", nativeMessagesSchema{}, 529, anthropicErr, "overloaded_error"},
		{"vertex claude, anthropic's own", nativeMessagesSchema{errs: &vertex.Schema{}}, 529, anthropicErr, "overloaded_error"},
		{"vertex claude, google's", nativeMessagesSchema{errs: &vertex.Schema{}}, 429, google, "rate_limit_error"},
		{"vertex gemini, google's", chatToMessages{chat: &vertex.Schema{}}, 429, google, "rate_limit_error"},
		{"openai", chatToMessages{}, 400, `{"error":{"message":"bad","type":"invalid_request_error"}}`, "invalid_request_error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := tt.schema.Error(tt.status, []byte(tt.body))
			if status != tt.status || gjson.GetBytes(body, "type").Str != "error" || gjson.GetBytes(body, "error.type").Str != tt.wantType ||
				gjson.GetBytes(body, "error.message").Str == "" {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
}
