package extproc

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/translate/anthropic"
	"github.com/tollgate-ai/tollgate/routing/translate/responses"
)

// The steps of POST /v1/responses (responses.go), each alone.

func responsesFacts(x *exchange) {
	x.endpoint, x.path = routing.EndpointResponses, "/v1/responses"
}

// TestStepResponsesChain: a fallback alias takes what every member can:
// a feature only OpenAI serves is refused when a member is translated; the
// answer's reader waits for the member that answers.
func TestStepResponsesChain(t *testing.T) {
	chain := chainSnapshot(t)
	chainFacts := both(responsesFacts, target("smart"))
	runBodyStep(t, stepResponsesChain, []stepCase{
		{name: "text", snap: chain, facts: chainFacts, body: `{"model":"smart","input":"hi"}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				c, ok := x.respond.(*responsesChain)
				if !ok || c.req == nil {
					t.Fatalf("respond %T", x.respond)
				}
			}},
		{name: "stateful feature, a member translated", snap: chain, facts: chainFacts,
			body: `{"model":"smart","input":"hi","previous_response_id":"resp_1"}`, code: "unsupported_parameter"},
	})
}

// TestResponsesChainReadsTheAnsweringMember: the chain's reader becomes the
// answering member's: native for OpenAI, translated for Anthropic.
func TestResponsesChainReadsTheAnsweringMember(t *testing.T) {
	snap := chainSnapshot(t)
	for _, tc := range []struct {
		member int
		native bool
	}{{0, true}, {1, false}} {
		x := exchangeFor(t, snap)
		responsesFacts(x)
		target("smart")(x)
		req := &upstreamRequest{body: []byte(`{"model":"smart","input":"hi"}`)}
		if err := responsesChainMembers(x, req); err != nil {
			t.Fatal(err)
		}
		x.target = x.target.Chain.Members[tc.member]
		switch s := x.responseSchema().(type) {
		case nativeResponses:
			if !tc.native {
				t.Errorf("member %d read natively", tc.member)
			}
		case *translatedResponses:
			if tc.native || s.Schema != x.target.Provider.Translator {
				t.Errorf("member %d read as translated by %T", tc.member, s.Schema)
			}
		default:
			t.Errorf("member %d: reader %T", tc.member, s)
		}
	}
}

// TestResponsesAttempts: each attempt of a Responses request to a chain is
// native for an OpenAI member (its Responses path, model rewritten, the
// body otherwise as sent) and translated for an Anthropic one (Responses →
// chat → Messages, at its messages path).
func TestResponsesAttempts(t *testing.T) {
	snap := chainSnapshot(t)
	body := `{"model":"smart","stream":true,"instructions":"be brief","input":"hi","max_output_tokens":300}`
	run := func(provider string, n int) (map[string]string, []string, string) {
		first := attemptHeaders(provider, n, true)
		first.MetadataContext.FilterMetadata[metadataNamespace].Fields[metaEndpoint] = structpb.NewStringValue("responses")
		a := &attempt{srv: New(Options{}), snap: snap}
		a.handle(first)
		r, _ := a.handle(reqBody(body))
		c := r.GetRequestBody().GetResponse()
		return setHeaders(c.GetHeaderMutation()), c.GetHeaderMutation().GetRemoveHeaders(), string(c.GetBodyMutation().GetBody())
	}
	set, removed, out := run("openai", 1)
	if set[":path"] != "/v1/responses" || set["authorization"] != "Bearer sk-o" || gjson.Get(out, "model").Str != "gpt-4o-mini" ||
		gjson.Get(out, "instructions").Str != "be brief" || gjson.Get(out, "max_output_tokens").Int() != 300 ||
		gjson.Get(out, "stream_options").Exists() || set["content-length"] != itoa(len(out)) {
		t.Fatalf("openai attempt: %v %s", set, out)
	}
	if !contains(removed, "x-api-key") || contains(removed, "authorization") {
		t.Fatalf("openai attempt removals: %v", removed)
	}
	set, removed, out = run("anthropic", 2)
	if set[":path"] != "/v1/messages" || set["x-api-key"] != "sk-a" || set["anthropic-version"] == "" ||
		gjson.Get(out, "model").Str != "claude-sonnet-4-5" || gjson.Get(out, "system").Str != "be brief" ||
		gjson.Get(out, "max_tokens").Int() != 300 || !gjson.Get(out, "stream").Bool() || set["content-length"] != itoa(len(out)) {
		t.Fatalf("anthropic attempt: %v %s", set, out)
	}
	if !contains(removed, "authorization") {
		t.Fatalf("anthropic attempt removals: %v", removed)
	}
}

func TestStepResponsesOffered(t *testing.T) {
	runBodyStep(t, stepResponsesOffered, []stepCase{
		{name: "openai", facts: both(responsesFacts, target("smart-default"))},
		{name: "anthropic through chat", snap: chainSnapshot(t), facts: both(responsesFacts, member(1))},
		{name: "mock through chat", snap: mockExchange(t).snap, facts: both(responsesFacts, target("demo"))},
	})
}

func TestStepGuardInputResponses(t *testing.T) {
	snap := guardedSnapshot(t)
	app := func(name string) func(*exchange) {
		return func(x *exchange) {
			x.appRequested = name
			if err := selectApp(x, nil); err != nil {
				panic(err)
			}
		}
	}
	step := stepGuardInput(responsesPieces)
	runBodyStep(t, step, []stepCase{
		{name: "instructions", snap: snap, facts: app("blocked"), body: `{"instructions":"forbidden","input":"hi"}`, code: "guardrail_blocked"},
		{name: "input string", snap: snap, facts: app("blocked"), body: `{"input":"forbidden"}`, code: "guardrail_blocked"},
		{name: "input_text part", snap: snap, facts: app("blocked"),
			body: `{"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"forbidden"}]}]}`, code: "guardrail_blocked"},
		{name: "bare message", snap: snap, facts: app("blocked"), body: `{"input":[{"role":"user","content":"forbidden"}]}`, code: "guardrail_blocked"},
		{name: "function call output", snap: snap, facts: app("blocked"),
			body: `{"input":[{"type":"function_call_output","call_id":"c","output":"forbidden"}]}`, code: "guardrail_blocked"},
		{name: "clean", snap: snap, facts: app("blocked"), body: `{"instructions":"be kind","input":[{"role":"user","content":"hi"}]}`},
		{name: "redacted in place", snap: snap, facts: app("redacted"),
			body: `{"input":[{"role":"user","content":[{"type":"input_text","text":"mail a@b.example"}]}]}`,
			want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				b := sent(t, req)
				if strings.Contains(b, "a@b.example") || !gjson.Valid(b) || !strings.HasPrefix(gjson.Get(b, "input.0.content.0.text").Str, "mail ") {
					t.Fatalf("not redacted: %s", b)
				}
			}},
	})
}

// outputPolicies returns a request of each output guardrail policy used by
// the Responses output tests.
func outputPolicies(t testing.TB) func(name string) *guardrails.Request {
	t.Helper()
	gs, err := guardrails.NewSet(guardrails.Config{Policies: []guardrails.PolicyConfig{
		{Name: "block", Output: []guardrails.GuardrailConfig{{Name: "words", Type: "deny_list", Action: guardrails.Block, Terms: []string{"forbidden"}}}},
		{Name: "redact", Output: []guardrails.GuardrailConfig{{Name: "pii", Type: "pii", Action: guardrails.Redact, Entities: []string{"email"}}}},
		{Name: "flag", Output: []guardrails.GuardrailConfig{{Name: "words", Type: "deny_list", Action: guardrails.Flag, Terms: []string{"forbidden"}}}},
		{Name: "in", Input: []guardrails.GuardrailConfig{{Name: "words", Type: "deny_list", Action: guardrails.Block, Terms: []string{"forbidden"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return func(name string) *guardrails.Request {
		pol, ok := gs.Policy(name)
		if !ok {
			t.Fatalf("no policy %q", name)
		}
		return pol.NewRequest()
	}
}

// nativeEvents is a native Responses stream whose message says text, in
// deltas split where the text has a '|'.
func nativeEvents(text string) string {
	full := strings.ReplaceAll(text, "|", "")
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	ev := func(typ, rest string) string {
		return "event: " + typ + "\ndata: {\"type\":\"" + typ + "\"," + rest + "}\n\n"
	}
	msg := func(t string) string {
		return `{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"output_text","text":` + q(t) + `,"annotations":[]}]}`
	}
	out := ev("response.created", `"sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}`) +
		ev("response.output_item.added", `"sequence_number":1,"output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","content":[]}`) +
		ev("response.content_part.added", `"sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}`)
	for _, d := range strings.Split(text, "|") {
		out += ev("response.output_text.delta", `"sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":`+q(d))
	}
	return out + ev("response.output_text.done", `"sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"text":`+q(full)) +
		ev("response.content_part.done", `"sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":`+q(full)+`,"annotations":[]}`) +
		ev("response.output_item.done", `"sequence_number":6,"output_index":0,"item":`+msg(full)) +
		ev("response.completed", `"sequence_number":7,"response":{"id":"resp_1","object":"response","status":"completed","output":[`+msg(full)+`],"usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12}}`)
}

// readResponsesStream reads the client's stream: the concatenated deltas,
// and every full text the done and response.* events repeat.
func readResponsesStream(t *testing.T, out string) (deltas string, fulls []string) {
	t.Helper()
	var sc sse.Scanner
	sc.Feed([]byte(out))
	sc.Finish()
	for {
		ev, more := sc.Next()
		if !more {
			break
		}
		if len(ev.Data) == 0 || ev.Data[0] != '{' {
			continue
		}
		for _, o := range responses.OutputTexts(ev.Data) {
			switch o.Kind {
			case responses.OutputDelta:
				deltas += o.Text
			case responses.OutputFull:
				if o.Text != "" {
					fulls = append(fulls, o.Text)
				}
			}
		}
	}
	return deltas, fulls
}

// TestResponsesOutputGuard: output guardrails on /v1/responses, native and
// translated, streamed and not. A block is a 400 guardrail_blocked (an error
// event ending the stream); a redaction is the same in the deltas and in
// every repeated full text; a flag changes nothing.
func TestResponsesOutputGuard(t *testing.T) {
	policies := outputPolicies(t)
	const text = "write to a@b.ex|ample.com| now"
	for _, tc := range []struct {
		name, policy, text string
		blocked            bool
		want               string // the text the client reads; "" when blocked
	}{
		{name: "redact", policy: "redact", text: text, want: "write to [EMAIL_1] now"},
		{name: "block", policy: "block", text: "this is forb|idden text", blocked: true},
		{name: "flag", policy: "flag", text: "this is forb|idden text", want: "this is forbidden text"},
		{name: "input policy only", policy: "in", text: "forbidden", want: "forbidden"},
	} {
		full := strings.ReplaceAll(tc.text, "|", "")
		t.Run("native body/"+tc.name, func(t *testing.T) {
			body := `{"id":"resp_1","object":"response","status":"completed","output":[{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"output_text","text":` +
				strconvQuote(full) + `}]},{"id":"fc_1","type":"function_call","name":"f","arguments":` + strconvQuote(`{"q":`+strconvQuote(full)+`}`) + `}],"usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12}}`
			x := &exchange{facts: facts{guard: policies(tc.policy)}}
			if err := respondNative(x, nil); err != nil {
				t.Fatal(err)
			}
			out, u, ok, err := x.respond.Response([]byte(body), "m")
			if tc.blocked {
				status, b := errorReply(err)
				if status != 400 || gjson.GetBytes(b, "error.code").Str != guardrails.BlockedCode {
					t.Fatalf("%d %s", status, b)
				}
				return
			}
			if err != nil || !ok || u.CompletionTokens != 7 {
				t.Fatalf("err %v usage %+v %t", err, u, ok)
			}
			o := gjson.ParseBytes(out)
			if got := o.Get("output.0.content.0.text").Str; got != tc.want {
				t.Fatalf("text %q, want %q", got, tc.want)
			}
			if args := gjson.Get(o.Get("output.1.arguments").Str, "q").Str; args != tc.want {
				t.Fatalf("arguments %q, want %q", args, tc.want)
			}
		})
		t.Run("native stream/"+tc.name, func(t *testing.T) {
			x := &exchange{facts: facts{guard: policies(tc.policy)}}
			if err := respondNative(x, nil); err != nil {
				t.Fatal(err)
			}
			r := newStreamReader(nopMeter{}, x.respond, "m", true, newOutputGuard(x.guard))
			in := nativeEvents(tc.text)
			var out []byte
			for i := 0; i < len(in); i += 97 {
				b, _ := r.chunk([]byte(in[i:min(i+97, len(in))]), i+97 >= len(in))
				out = append(out, b...)
			}
			checkGuardedStream(t, string(out), tc.blocked, tc.want, "event: error\n")
		})
		t.Run("translated body/"+tc.name, func(t *testing.T) {
			x := translatedExchange(t, policies(tc.policy), false)
			chat := `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":` + strconvQuote(full) +
				`},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`
			out, _, _, err := x.respond.Response([]byte(chat), "m")
			if tc.blocked {
				status, b := errorReply(err)
				if status != 400 || gjson.GetBytes(b, "error.code").Str != guardrails.BlockedCode {
					t.Fatalf("%d %s", status, b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := gjson.GetBytes(out, "output.0.content.0.text").Str; got != tc.want {
				t.Fatalf("text %q, want %q in %s", got, tc.want, out)
			}
		})
		t.Run("translated stream/"+tc.name, func(t *testing.T) {
			x := translatedExchange(t, policies(tc.policy), true)
			r := newStreamReader(nopMeter{}, x.respond, "m", true, newOutputGuard(x.guard))
			var in string
			for _, d := range strings.Split(tc.text, "|") {
				in += `data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":` + strconvQuote(d) + `},"finish_reason":null}]}` + "\n\n"
			}
			in += `data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n" +
				`data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}` + "\n\ndata: [DONE]\n\n"
			out, _ := r.chunk([]byte(in), true)
			checkGuardedStream(t, string(out), tc.blocked, tc.want, "event: response.failed\n")
		})
	}
}

// checkGuardedStream checks a guarded Responses stream: blocked, it ends
// with end and names the guardrail's code; else the deltas and every full
// text read want.
func checkGuardedStream(t *testing.T, out string, blocked bool, want, end string) {
	t.Helper()
	if blocked {
		i := strings.LastIndex(out, end)
		if i < 0 || !strings.Contains(out[i:], guardrails.BlockedCode) || strings.Contains(out, "forbidden") ||
			strings.Contains(out, "response.completed") {
			t.Fatalf("not blocked:\n%s", out)
		}
		return
	}
	deltas, fulls := readResponsesStream(t, out)
	if deltas != want || len(fulls) == 0 {
		t.Fatalf("deltas %q (want %q), fulls %q\n%s", deltas, want, fulls, out)
	}
	for _, f := range fulls {
		if f != want {
			t.Fatalf("full text %q, want %q\n%s", f, want, out)
		}
	}
	if !strings.Contains(out, "response.completed") {
		t.Fatalf("no response.completed:\n%s", out)
	}
}

// translatedExchange is a Responses request to a chat provider (the
// identity chat schema) with output guardrails g.
func translatedExchange(t *testing.T, g *guardrails.Request, stream bool) *exchange {
	t.Helper()
	x := &exchange{facts: facts{guard: g, target: routing.Target{Provider: &routing.Provider{Name: "p"}, Model: "m"}}}
	body := `{"model":"m","input":"hi"}`
	if stream {
		body = `{"model":"m","input":"hi","stream":true}`
	}
	if err := responsesToChat(x, &upstreamRequest{body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	return x
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// nopMeter meters nothing.
type nopMeter struct{}

func (nopMeter) budgetSpent(int) bool { return false }
func (nopMeter) endComment() []byte   { return nil }

func TestStepResponsesToChat(t *testing.T) {
	chain := chainSnapshot(t)
	runBodyStep(t, stepResponsesToChat, []stepCase{
		{name: "translated", snap: chain, facts: both(responsesFacts, member(1)),
			body: `{"model":"smart","instructions":"be brief","input":"hi","max_output_tokens":50}`,
			want: func(t *testing.T, x *exchange, req *upstreamRequest, _ *mutation) {
				b := gjson.ParseBytes(req.body)
				if !req.bodyChanged || b.Get("messages.0.role").Str != "system" || b.Get("messages.1.content").Str != "hi" ||
					b.Get("max_completion_tokens").Int() != 50 {
					t.Fatalf("chat body %s", req.body)
				}
				if _, ok := x.respond.(*translatedResponses); !ok {
					t.Fatalf("response schema %T", x.respond)
				}
			}},
		{name: "stateful field refused", snap: chain, facts: both(responsesFacts, member(1)),
			body: `{"model":"smart","input":"hi","previous_response_id":"resp_1"}`, code: "unsupported_parameter"},
		{name: "hosted tool refused", snap: chain, facts: both(responsesFacts, member(1)),
			body: `{"model":"smart","input":"hi","tools":[{"type":"web_search"}]}`, code: "unsupported_parameter"},
	})
}

func TestStepRespondNative(t *testing.T) {
	runBodyStep(t, stepRespondNative, []stepCase{{name: "openai", facts: target("smart-default"),
		want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if _, ok := x.responseSchema().(nativeResponses); !ok {
				t.Fatalf("response schema %T", x.responseSchema())
			}
		}}})
}

func TestStepChatPath(t *testing.T) {
	runBodyStep(t, stepChatPath, []stepCase{{name: "anthropic", snap: chainSnapshot(t), facts: both(responsesFacts, member(1)),
		want: func(t *testing.T, _ *exchange, req *upstreamRequest, mu *mutation) {
			if req.path != "/v1/messages" || setHeaders(mu.get())[":path"] != "/v1/messages" {
				t.Fatalf("path %q, set %v", req.path, setHeaders(mu.get()))
			}
		}}})
}

// TestResponsesMock: the whole processor against the mock provider, which
// answers chat: the client gets a response object or a Responses stream.
func TestResponsesMock(t *testing.T) {
	for _, tc := range []struct {
		name, body  string
		contentType string
		want        []string
	}{
		{name: "response object", body: `{"model":"demo","input":"Hello"}`, contentType: "application/json",
			want: []string{`"object":"response"`, `"status":"completed"`, `"type":"output_text"`, `You said: Hello`, `"input_tokens":`}},
		{name: "stream", body: `{"model":"demo","input":"Hi","stream":true}`, contentType: "text/event-stream; charset=utf-8",
			want: []string{"event: response.created\n", "event: response.output_text.delta\n", "event: response.completed\n", "\n: tollgate "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := mockExchange(t)
			if r, _ := x.handle(mockHeaders("/v1/responses")); r.GetRequestHeaders() == nil {
				t.Fatalf("request headers: %v", r)
			}
			r, _ := x.handle(reqBody(tc.body))
			ir := r.GetImmediateResponse()
			if ir == nil || ir.GetStatus().GetCode() != 200 || setHeaders(ir.GetHeaders())["content-type"] != tc.contentType {
				t.Fatalf("answer %v", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(ir.GetBody()), w) {
					t.Errorf("missing %q in\n%s", w, ir.GetBody())
				}
			}
			if u, ok := x.body.usage(); !ok || u.CompletionTokens == 0 {
				t.Fatalf("usage %+v %t", u, ok)
			}
		})
	}
}

func TestNativeResponsesBody(t *testing.T) {
	body, err := os.ReadFile("../test/testdata/fixtures/openai/responses_response.json")
	if err != nil {
		t.Fatal(err)
	}
	out, u, ok, err := nativeResponses{}.Response(body, "m")
	if err != nil || !ok || string(out) != string(body) || u.PromptTokens != 1342 || u.CompletionTokens != 286 {
		t.Fatalf("usage %+v %t err %v", u, ok, err)
	}
}

// TestNativeResponsesStream: events pass byte for byte at every split, usage
// comes from response.completed, and a cut stream ends with an error event.
func TestNativeResponsesStream(t *testing.T) {
	fixture, err := os.ReadFile("../test/testdata/fixtures/openai/responses_stream.sse")
	if err != nil {
		t.Fatal(err)
	}
	run := func(in []byte, split int) (string, *nativeResponsesStream) {
		s := nativeResponses{}.NewStream("m", false).(*nativeResponsesStream)
		var sc sse.Scanner
		var out []byte
		for i := 0; i < len(in); i += split {
			sc.Feed(in[i:min(i+split, len(in))])
			for {
				ev, more := sc.Next()
				if !more {
					break
				}
				out = s.Raw(out, ev.Raw, ev.Data)
			}
		}
		sc.Finish()
		for {
			ev, more := sc.Next()
			if !more {
				break
			}
			out = s.Raw(out, ev.Raw, ev.Data)
		}
		out, _ = s.End(out)
		return string(out), s
	}
	for split := 1; split <= 64; split *= 4 {
		out, s := run(fixture, split)
		if out != string(fixture) {
			t.Fatalf("split %d: changed stream", split)
		}
		done, errored := s.State()
		if u, ok := s.Usage(); !ok || !done || errored || u.PromptTokens != 37 {
			t.Fatalf("split %d: usage %+v %t, done %t errored %t", split, u, ok, done, errored)
		}
	}
	cut := fixture[:strings.Index(string(fixture), "event: response.completed")]
	out, s := run(cut, 7)
	if !strings.HasSuffix(out, string(responsesIncompleteEvent)) {
		t.Fatalf("cut stream ends %q", out[max(0, len(out)-200):])
	}
	if _, ok := s.Usage(); ok {
		t.Fatal("usage from a cut stream")
	}
}

// TestTranslatedResponsesStream: Anthropic's events through its chat
// translator and the Responses stream translator.
func TestTranslatedResponsesStream(t *testing.T) {
	fixture, err := os.ReadFile("../test/testdata/fixtures/anthropic/messages_stream.sse")
	if err != nil {
		t.Fatal(err)
	}
	x := stepExchange(t, stepCase{snap: chainSnapshot(t), facts: both(responsesFacts, member(1))})
	req := &upstreamRequest{body: []byte(`{"model":"smart","input":"hi","stream":true}`)}
	if err := responsesToChat(x, req); err != nil {
		t.Fatal(err)
	}
	st := x.respond.NewStream("claude-sonnet-4-5", false)
	var sc sse.Scanner
	sc.Feed(fixture)
	sc.Finish()
	var out []byte
	for {
		ev, more := sc.Next()
		if !more {
			break
		}
		if ev.Data != nil {
			out = st.Event(out, ev.Name, ev.Data)
		}
	}
	out, complete := st.End(out)
	if !complete || !strings.Contains(string(out), "event: response.completed\n") || strings.Contains(string(out), "[DONE]") {
		t.Fatalf("complete %t:\n%s", complete, out)
	}
	if u, ok := st.Usage(); !ok || u.CompletionTokens == 0 {
		t.Fatalf("usage %+v %t", u, ok)
	}
	if _, ok := x.respond.(*translatedResponses).Schema.(*anthropic.Schema); !ok {
		t.Fatal("not Anthropic's schema underneath")
	}
}

func TestStepClassifyResponses(t *testing.T) {
	is := func(method string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.endpoint != routing.EndpointResponses || x.proc.method != method || x.rec.route != "responses" {
				t.Fatalf("classified %v (method %q)", x.endpoint, x.proc.method)
			}
		}
	}
	runHeaderStep(t, frontStep("classify"), []stepCase{
		{name: "create", headers: []string{":method", "POST", ":path", "/v1/responses"}, want: is("POST")},
		{name: "create by GET", headers: []string{":method", "GET", ":path", "/v1/responses"}, code: "method_not_allowed"},
		{name: "retrieve", headers: []string{":method", "GET", ":path", "/v1/responses/resp_1?include[]=x"}, want: is("")},
		{name: "delete", headers: []string{":method", "DELETE", ":path", "/v1/responses/resp_1"}, want: is("")},
	})
}

func TestStepCheckResponseResource(t *testing.T) {
	at := func(method, path string, body bool) func(*exchange) {
		return func(x *exchange) {
			x.method, x.path, x.noBody = method, path, !body
			x.pathID = strings.TrimPrefix(path, "/v1/responses/") // as classify sets it
		}
	}
	step := responseResourceProcessor(nil).headers[0]
	runHeaderStep(t, step, []stepCase{
		{name: "get", facts: at("GET", "/v1/responses/resp_1", false)},
		{name: "delete", facts: at("DELETE", "/v1/responses/resp_1", false)},
		{name: "input items", facts: at("GET", "/v1/responses/resp_1/input_items", false)},
		{name: "delete input items", facts: at("DELETE", "/v1/responses/resp_1/input_items", false), code: "method_not_allowed"},
		{name: "post", facts: at("POST", "/v1/responses/resp_1", false), code: "method_not_allowed"},
		{name: "other sub-resource", facts: at("GET", "/v1/responses/resp_1/cancel", false), code: "unknown_url"},
		{name: "empty id", facts: at("GET", "/v1/responses/", false), code: "unknown_url"},
		{name: "id with a dot", facts: at("GET", "/v1/responses/..", false), code: "unknown_url"},
		{name: "body", facts: at("GET", "/v1/responses/resp_1", true), code: "unexpected_body"},
	})
}

func TestStepChooseResponsesProvider(t *testing.T) {
	step := responseResourceProcessor(nil).headers[2]
	chose := func(name string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.target.Provider == nil || x.target.Provider.Name != name || x.rec.provider != name {
				t.Fatalf("target %v", x.target)
			}
		}
	}
	only := func(models ...string) func(*exchange) { return func(x *exchange) { x.key.Models = models } }
	runHeaderStep(t, step, []stepCase{
		{name: "one reachable", facts: only("smart-*"), want: chose("openai")},
		{name: "several: ask for the header", code: "missing_required_parameter"},
		{name: "named", headers: []string{providerHeader, "broken"}, want: chose("broken")},
		{name: "named but out of scope", facts: only("smart-*"), headers: []string{providerHeader, "broken"}, code: "provider_not_allowed"},
		{name: "none reachable", facts: only("nothing"), code: "provider_not_allowed"},
	})
}

func TestStepRouteResponseResource(t *testing.T) {
	step := responseResourceProcessor(nil).headers[3]
	runHeaderStep(t, step, []stepCase{
		{name: "forwarded from headers", headers: []string{":path", "/v1/responses/resp_1?include[]=a"},
			facts: func(x *exchange) {
				x.path, x.pathID = "/v1/responses/resp_1", "resp_1"
				x.target = routing.Target{Provider: x.snap.Routes.Provider("openai")}
			},
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, mu *mutation) {
				set := setHeaders(mu.get())
				if set[clusterHeader] != "openai" || set[":path"] != "/v1/responses/resp_1?include[]=a" ||
					set["authorization"] != "Bearer sk-provider-secret" || !x.forwarded {
					t.Fatalf("set %v", set)
				}
				if _, ok := x.responseSchema().(retrievedResponses); !ok {
					t.Fatalf("schema %T", x.responseSchema())
				}
			}},
		{name: "credential unavailable", facts: func(x *exchange) { x.target = routing.Target{Provider: x.snap.Routes.Provider("broken")} },
			code: "provider_unavailable"},
	})
}

// FuzzNativeResponsesStream: whatever a provider sends, the native stream
// passes every complete event through unchanged and never panics.
func FuzzNativeResponsesStream(f *testing.F) {
	if b, err := os.ReadFile("../test/testdata/fixtures/openai/responses_stream.sse"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"code\":\"x\"}\n\n"))
	f.Add([]byte("data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":-1}}}\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &nativeResponsesStream{}
		var sc sse.Scanner
		sc.MaxEventSize = maxEventSize
		sc.Feed(in)
		sc.Finish()
		var raw, out []byte
		for {
			ev, more := sc.Next()
			if !more {
				break
			}
			raw = append(raw, ev.Raw...)
			out = s.Raw(out, ev.Raw, ev.Data)
		}
		if string(out) != string(raw) {
			t.Fatal("an event changed")
		}
		out, complete := s.End(out)
		if done, errored := s.State(); complete != (done && !errored) || (!done && !errored && !strings.HasSuffix(string(out), string(responsesIncompleteEvent))) {
			t.Fatalf("end: complete %t done %t errored %t", complete, done, errored)
		}
	})
}

// FuzzGuardedResponsesStream: however a native stream's text is split into
// deltas, a redacting guard gives the client deltas and repeated full texts
// that agree, and equal the whole text checked at once.
func FuzzGuardedResponsesStream(f *testing.F) {
	f.Add("write to a@b.ex|ample.com| now")
	f.Add("|a@b.example||")
	f.Add("plain")
	policies := outputPolicies(f)
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) {
			t.Skip() // JSON carries text as UTF-8
		}
		whole, err := policies("redact").CheckOutput(guardrails.Content, strings.ReplaceAll(text, "|", ""))
		if err != nil {
			t.Skip()
		}
		x := &exchange{facts: facts{guard: policies("redact")}}
		if err := respondNative(x, nil); err != nil {
			t.Fatal(err)
		}
		r := newStreamReader(nopMeter{}, x.respond, "m", true, nil)
		out, _ := r.chunk([]byte(nativeEvents(text)), true)
		deltas, fulls := readResponsesStream(t, string(out))
		if deltas != whole {
			t.Fatalf("deltas %q, whole %q", deltas, whole)
		}
		for _, f := range fulls {
			if f != whole {
				t.Fatalf("full %q, whole %q", f, whole)
			}
		}
	})
}

// TestResponsesOutputCap: as on chat (TestOutputCap), a Responses request
// without max_output_tokens gets default_max_tokens written upstream when
// its limits depend on output size: in max_output_tokens natively (whatever
// the provider's chat field), in the provider's own field when translated.
func TestResponsesOutputCap(t *testing.T) {
	tpm := &config.Limits{DefaultMaxTokens: 300, RateLimits: []config.RateLimit{{Scope: config.ScopeKey, TokensPerMinute: 100_000}}}
	rpm := &config.Limits{DefaultMaxTokens: 300, RateLimits: []config.RateLimit{{Scope: config.ScopeKey, RequestsPerMinute: 100}}}
	maxCost := &config.Limits{DefaultMaxTokens: 300, Budgets: []config.BudgetRule{{Scope: config.ScopeKey, MaxCostPerRequestUSD: "1"}}}
	tests := []struct {
		name   string
		limits *config.Limits
		body   string
		field  string // where the cap must appear upstream; "" = the body as the client sent it
		want   int64  // the cap upstream (when field is set) and x.maxOut
	}{
		{"omitted, tpm limit", tpm, `{"model":"openai/gpt-4o","input":"hi"}`, "max_output_tokens", 300},
		{"null counts as omitted", tpm, `{"model":"openai/gpt-4o","max_output_tokens":null,"input":"hi"}`, "max_output_tokens", 300},
		{"native whatever the provider's chat field", tpm, `{"model":"local/llama3","input":"hi"}`, "max_output_tokens", 300},
		{"with gateway fields and stream", tpm, `{"tollgate_metadata":{"team":"a"},"model":"openai/gpt-4o","stream":true,"input":"hi"}`, "max_output_tokens", 300},
		{"max cost budget", maxCost, `{"model":"openai/gpt-4o","input":"hi"}`, "max_output_tokens", 300},
		{"anthropic: translated max_tokens is the cap, not its own default", tpm, `{"model":"anthropic/claude-sonnet-4-5","input":"hi"}`, "max_tokens", 300},
		{"client max_output_tokens kept", tpm, `{"model":"openai/gpt-4o","max_output_tokens":50,"input":"hi"}`, "", 50},
		{"client cap kept when translated", tpm, `{"model":"anthropic/claude-sonnet-4-5","max_output_tokens":60,"input":"hi"}`, "max_tokens", 60},
		{"requests-only limit: no cap", rpm, `{"model":"openai/gpt-4o","input":"hi"}`, "", 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := capSnapshot(t, tt.limits)
			srv := New(Options{Snapshot: func() *Snapshot { return snap }, Limiter: limits.NewMemory(nil)})
			x := newExchange(context.Background(), srv, snap)
			if h, _ := x.handle(mockHeaders("/v1/responses")); h.GetRequestHeaders() == nil {
				t.Fatalf("headers refused: %v", h)
			}
			resp, _ := x.handle(reqBody(tt.body))
			common := resp.GetRequestBody().GetResponse()
			if common == nil {
				t.Fatalf("refused: %v", resp)
			}
			upstream := tt.body
			if m := common.GetBodyMutation(); m != nil {
				upstream = string(m.GetBody())
			}
			switch {
			case tt.field == "":
				if gjson.Get(upstream, "max_output_tokens").Raw != gjson.Get(tt.body, "max_output_tokens").Raw {
					t.Errorf("upstream %s; the client sent %s", upstream, tt.body)
				}
			case gjson.Get(upstream, tt.field).Int() != tt.want:
				t.Errorf("upstream %s = %s; want %d (body %s)", tt.field, gjson.Get(upstream, tt.field).Raw, tt.want, upstream)
			}
			for _, f := range []string{"max_completion_tokens", "max_tokens", "max_output_tokens"} {
				if f != tt.field && tt.field != "" && gjson.Get(upstream, f).Exists() && gjson.Get(upstream, f).Type != gjson.Null {
					t.Errorf("upstream has %s too: %s", f, upstream)
				}
			}
			if !json.Valid([]byte(upstream)) || gjson.Get(upstream, "tollgate_metadata").Exists() {
				t.Errorf("upstream body %s: invalid or still has gateway fields", upstream)
			}
			if x.maxOut != tt.want {
				t.Errorf("reserved output %d; want %d", x.maxOut, tt.want)
			}
		})
	}
}

func TestAttemptResponsesPath(t *testing.T) {
	for _, tc := range []struct {
		p    *routing.Provider
		want string
	}{
		{&routing.Provider{Name: "az", Schema: config.SchemaAzureOpenAI, BasePath: "/openai"}, "/openai/v1/responses"},
		{&routing.Provider{Name: "openai", Schema: config.SchemaOpenAI, BasePath: "/v1"}, "/v1/responses"},
	} {
		a := &attempt{member: routing.Target{Provider: tc.p, Model: "dep"}}
		r := &attemptRequest{}
		if err := attemptResponsesPath(a, r); err != nil || r.path != tc.want {
			t.Errorf("%s: path %q (%v), want %q", tc.p.Schema, r.path, err, tc.want)
		}
	}
}
