package extproc

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/extproc/internal/jsonscan"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/openai"
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

func TestStepRequireNative(t *testing.T) {
	runBodyStep(t, stepRequireNative, []stepCase{
		{name: "anthropic", snap: chainSnapshot(t), facts: member(1)},
		{name: "bedrock", snap: bedrockSnapshot(t), facts: target("bedrock-default"), code: "unsupported_endpoint"},
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
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, st := range []translate.Stream{nativeMessagesSchema{}.NewStream("m", false), chatToMessages{}.NewStream("m", false)} {
			out := st.Event(nil, nil, data)
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
