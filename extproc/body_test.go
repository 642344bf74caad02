package extproc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// guardedExchange is a test exchange whose key may act for the app
// "guarded", whose guardrail policy reads every message (flag only, so the
// prompt is forwarded unchanged) or redacts e-mail addresses.
func guardedExchange(t testing.TB) *exchange {
	return exchangeFor(t, guardedSnapshot(t))
}

func exchangeFor(t testing.TB, snap *Snapshot) *exchange {
	return newExchange(t.Context(), New(Options{Snapshot: func() *Snapshot { return snap }}), snap)
}

func guardedSnapshot(t testing.TB) *Snapshot {
	snap := testSnapshot(t)
	gs, err := guardrails.NewSet(guardrails.Config{Policies: []guardrails.PolicyConfig{
		{Name: "flag", Input: []guardrails.GuardrailConfig{{Name: "words", Type: "deny_list", Action: guardrails.Flag, Terms: []string{"secret"}}}},
		{Name: "redact", Input: []guardrails.GuardrailConfig{{Name: "pii", Type: "pii", Action: guardrails.Redact, Entities: []string{"email"}}}},
		{Name: "block", Input: []guardrails.GuardrailConfig{{Name: "words", Type: "deny_list", Action: guardrails.Block, Terms: []string{"forbidden"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tenants, errs := configopts.NewTenancy(&config.Config{Tenants: []config.Tenant{{Name: config.DefaultTenant, Apps: []config.App{
		{Name: "guarded", GuardrailPolicy: "flag"}, {Name: "redacted", GuardrailPolicy: "redact"}, {Name: "blocked", GuardrailPolicy: "block"},
	}}}}, func(string) (string, bool) { return "", false })
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	snap.Tenants, snap.Guardrails = tenants, gs
	return snap
}

// forwarded runs one chat request body through the exchange and returns the
// body that leaves for the provider, or the refusal.
func forwarded(t testing.TB, x *exchange, app, body string) (string, *extprocv3.ImmediateResponse) {
	t.Helper()
	if h, _ := x.handle(chatHeaders("x-tollgate-app-id", app)); h.GetRequestHeaders() == nil {
		t.Fatalf("headers refused: %v", h)
	}
	resp, _ := x.handle(reqBody(body))
	if ir := resp.GetImmediateResponse(); ir != nil {
		return "", ir
	}
	if m := resp.GetRequestBody().GetResponse().GetBodyMutation(); m != nil {
		return string(m.GetBody()), nil
	}
	return body, nil
}

func TestBodyRules(t *testing.T) {
	tests := []struct {
		name  string
		app   string
		body  string
		code  string // refusal code; "" when forwarded
		param string // of the refusal
		want  string // forwarded body
	}{
		{name: "nested duplicate content", app: "blocked",
			body: `{"model":"smart-default","messages":[{"role":"user","content":"hi","content":"forbidden"}]}`,
			code: "duplicate_key", param: "messages[0].content"},
		{name: "escaped duplicate content", app: "blocked",
			body: `{"model":"smart-default","messages":[{"role":"user","content":"hi","c\u006fntent":"forbidden"}]}`,
			code: "duplicate_key", param: "messages[0].content"},
		{name: "duplicate include_usage",
			body: `{"model":"smart-default","stream":true,"stream_options":{"include_usage":false,"include_usage":true}}`,
			code: "duplicate_key", param: "stream_options.include_usage"},
		{name: "duplicate tool arguments",
			body: `{"model":"smart-default","tools":[{"type":"function","function":{"name":"f","arguments":"{}","arguments":"{\"a\":1}"}}]}`,
			code: "duplicate_key", param: "tools[0].function.arguments"},
		{name: "duplicate tool call arguments", app: "blocked",
			body: `{"model":"smart-default","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}","arguments":"forbidden"}}]}]}`,
			code: "duplicate_key", param: "messages[0].tool_calls[0].function.arguments"},
		{name: "duplicate gateway field",
			body: `{"model":"smart-default","tollgate_metadata":{"a":"1","a":"2"}}`, code: "duplicate_key", param: "tollgate_metadata.a"},
		{name: "invalid utf-8",
			body: "{\"model\":\"smart-default\",\"messages\":[{\"role\":\"user\",\"content\":\"forb\xffidden\"}]}",
			code: "invalid_json", param: "messages[0].content"},
		{name: "lone high surrogate",
			body: `{"model":"smart-default","messages":[{"role":"user","content":"a\ud800b"}]}`, code: "invalid_json", param: "messages[0].content"},
		{name: "lone low surrogate",
			body: `{"model":"smart-default","messages":[{"role":"user","content":[{"type":"text","text":"\udfff"}]}]}`,
			code: "invalid_json", param: "messages[0].content[0].text"},
		{name: "escapes forwarded byte for byte", app: "guarded",
			body: `{"model":"smart-default","messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \n"}],"stream":false}`,
			want: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \n"}],"stream":false}`},
		{name: "escaped gateway field stripped",
			body: `{"tollgate\u005fmetadata":{"team":"a"},"model":"smart-default","messages":[],"tollgate_grounding_context":["x"]}`,
			want: `{"model":"gpt-4o-mini","messages":[]}`},
		{name: "only gateway fields after model",
			body: `{"model":"smart-default" , "tollgate_metadata":{"team":"a"} ,"tollgate_app_id":"guarded" }`,
			want: `{"model":"gpt-4o-mini" }`},
		{name: "strip, redact, rewrite and inject in one pass", app: "redacted",
			body: `{"tollgate_metadata":{"team":"a"},"model":"smart-default","stream":true,"messages":[{"role":"user","content":"mail bob@example.com now"}],"stream_options":{}}`,
			want: `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"mail [EMAIL_1] now"}],"stream_options":{"include_usage":true}}`},
		{name: "include_usage false replaced",
			body: `{"model":"smart-default","stream":true,"stream_options":{"include_usage":false}}`,
			want: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ir := forwarded(t, guardedExchange(t), tt.app, tt.body)
			if tt.code == "" {
				if ir != nil {
					t.Fatalf("refused: %s", ir.GetBody())
				}
				if got != tt.want {
					t.Fatalf("forwarded\n got %s\nwant %s", got, tt.want)
				}
				return
			}
			if ir == nil {
				t.Fatalf("forwarded %s", got)
			}
			var e errBody
			if err := json.Unmarshal(ir.GetBody(), &e); err != nil {
				t.Fatal(err)
			}
			if ir.GetStatus().GetCode() != 400 || e.Error.Code == nil || *e.Error.Code != tt.code || e.Error.Param == nil || *e.Error.Param != tt.param {
				t.Fatalf("refusal %d %s, want 400 %s param %s", ir.GetStatus().GetCode(), ir.GetBody(), tt.code, tt.param)
			}
			if tt.code == "invalid_json" && !strings.Contains(e.Error.Message, "(byte ") {
				t.Fatalf("the message must say where: %q", e.Error.Message)
			}
		})
	}
}

func TestSplice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 2000 {
		body := []byte(strings.Repeat("0123456789", 1+r.IntN(6)))
		var edits []splice
		for pos := 0; pos < len(body) && len(edits) < 6; {
			start := pos + r.IntN(len(body)-pos+1)
			end := start + r.IntN(len(body)-start+1)
			edits = append(edits, splice{start, end, bytes.Repeat([]byte{'a' + byte(len(edits))}, r.IntN(15))})
			pos = end + r.IntN(3)
			if r.IntN(4) == 0 {
				pos = end // adjacent edits
			}
		}
		size := len(body)
		for _, e := range edits {
			size += len(e.text) - (e.end - e.start)
		}
		want := string(spliceCopy(body, edits, size))
		inPlace := make([]byte, len(body), max(len(body), size)+r.IntN(4))
		copy(inPlace, body)
		if got := string(spliceInPlace(inPlace, edits, size)); got != want {
			t.Fatalf("case %d: %q %v\n got %q\nwant %q", n, body, edits, got, want)
		}
	}
}

// FuzzRequestBody is the differential proof that the gateway and the
// provider read the same request: for any body, either the gateway refuses
// it, or every value the request steps read (model, stream,
// stream_options.include_usage, message contents, text parts, tool-call
// arguments, tollgate_* fields) equals what encoding/json (last key wins)
// decodes from the body as it left for the provider, and the fields the
// gateway rewrote or removed are rewritten or removed there.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{
		`{"model":"smart-default","messages":[{"role":"user","content":"hi","content":"secret"}]}`,
		`{"model":"smart-default","messages":[{"role":"user","content":"hi","c\u006fntent":"secret"}]}`,
		`{"model":"smart-default","stream":true,"stream_options":{"include_usage":false,"include_usage":true}}`,
		`{"model":"smart-default","stream":true,"stream_options":{"include_obfuscation":false}}`,
		`{"model":"smart-default","stream":true,"stream_options":null,"tollgate_metadata":{"team":"a"}}`,
		`{"mod\u0065l":"smart-default","messages":[{"role":"user","content":[{"type":"text","text":"caf\u00e9 \ud83d\ude00"},{"type":"image_url"}]}]}`,
		`{"model":"smart-default","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1,\"a\":2}"}}]}]}`,
		"{\"model\":\"smart-default\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xffb\"}]}",
		`{"model":"smart-default","messages":[{"role":"user","content":"\ud800"}]}`,
		`{"model":"smart-default","messages":[{"role":"user","content":"\udc00\ud800"}]}`,
		`{"model":"smart-default","max_tokens":1e400,"n":123456789012345678901234567890}`,
		`{"model":"smart-default","x":` + strings.Repeat(`[`, 600) + strings.Repeat(`]`, 600) + `}`,
		`{"model":"local/m","tollgate\u005fapp_id":"guarded","tollgate_grounding_context":["a","b"],"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"smart-default","tollgate_app_id":"guarded","tollgate_app_id":"other"}`,
		` {"model" : "openai/gpt-4o-mini" , "stream" : true } `,
	} {
		f.Add([]byte(s))
	}
	snap := guardedSnapshot(f) // compiling the policies is the slow part
	f.Fuzz(func(t *testing.T, client []byte) {
		x := exchangeFor(t, snap)
		var reads []struct {
			path string
			v    gjson.Result
		}
		x.reads = func(path string, v gjson.Result) {
			v.Str, v.Raw = strings.Clone(v.Str), strings.Clone(v.Raw)
			reads = append(reads, struct {
				path string
				v    gjson.Result
			}{path, v})
		}
		body, ir := forwarded(t, x, "guarded", string(client))
		if ir != nil {
			return // refused: nothing reached the provider
		}
		sent := decodeLastWins(t, []byte(body))
		asked := decodeLastWins(t, client)
		for _, r := range reads {
			src := sent
			if r.path == "model" || strings.HasPrefix(r.path, bodyFieldStart) || r.path == "stream_options.include_usage" {
				src = asked // rewritten, removed or injected on the way: checked below
			}
			if want, ok := lookup(src, r.path); !equalJSON(r.v, want, ok) {
				t.Fatalf("%s: the gateway read %s, encoding/json reads %v (present %v)\nclient:    %q\nforwarded: %q", r.path, r.v.Raw, want, ok, client, body)
			}
		}
		top, _ := sent.(map[string]any)
		if top == nil {
			t.Fatalf("forwarded a non-object %q", body)
		}
		for k := range top {
			if strings.HasPrefix(k, bodyFieldStart) {
				t.Fatalf("gateway field %q forwarded: %q", k, body)
			}
		}
		if m, _ := top["model"].(string); m != x.target.Model {
			t.Fatalf("forwarded model %q, want %q", m, x.target.Model)
		}
		if x.stream {
			u, _ := lookup(sent, "stream_options.include_usage")
			if u != true {
				t.Fatalf("stream forwarded without include_usage: %q", body)
			}
			if cu, _ := lookup(asked, "stream_options.include_usage"); (cu == true) != x.clientUsage {
				t.Fatalf("clientUsage %v, client asked %v", x.clientUsage, cu)
			}
		}
	})
}

// decodeLastWins decodes a body as encoding/json does: last key wins,
// numbers kept as written.
func decodeLastWins(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("encoding/json cannot read %q: %v", b, err)
	}
	return v
}

// lookup follows a gjson path of keys and indexes ("messages.0.content").
func lookup(v any, path string) (any, bool) {
	for _, p := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[p]; !ok {
				return nil, false
			}
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// equalJSON compares a value gjson read with one encoding/json decoded.
func equalJSON(g gjson.Result, want any, present bool) bool {
	if !g.Exists() {
		return !present
	}
	switch w := want.(type) {
	case string:
		return g.Type == gjson.String && g.Str == w
	case bool:
		return (g.Type == gjson.True) == w && (g.Type == gjson.True || g.Type == gjson.False)
	case nil:
		return present && g.Type == gjson.Null
	case json.Number:
		return g.Type == gjson.Number && g.Raw == string(w)
	default: // objects and arrays: compare encoding/json's reading of both
		var got any
		d := json.NewDecoder(strings.NewReader(g.Raw))
		d.UseNumber()
		if d.Decode(&got) != nil {
			return false
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want)
		return bytes.Equal(a, b)
	}
}

// TestEscapedBodyForwardedUnchanged: a well-formed body full of escapes
// that needs no edit leaves byte for byte, without a body mutation (an
// Azure-style path names the model, and the body's model is already the
// provider's).
func TestEscapedBodyForwardedUnchanged(t *testing.T) {
	body := `{ "model" : "gpt-4o-mini", "messages" : [ {"role":"user","content":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \n\t","name":"\u0041"},` +
		` {"role":"user","content":[{"type":"text","text":"\u00fc"}]} ], "temperature" : 1.0e0, "n" : 1 }`
	x := guardedExchange(t)
	if h, _ := x.handle(reqHeaders(false, ":method", "POST", ":path", "/openai/deployments/smart-default/chat/completions",
		"authorization", "Bearer "+testKey, "x-tollgate-app-id", "guarded")); h.GetRequestHeaders() == nil {
		t.Fatalf("headers refused: %v", h)
	}
	resp, _ := x.handle(reqBody(body))
	common := resp.GetRequestBody().GetResponse()
	if common == nil {
		t.Fatalf("refused: %v", resp)
	}
	if m := common.GetBodyMutation(); m != nil {
		t.Fatalf("body changed:\n got %s\nwant %s", m.GetBody(), body)
	}
	if _, ok := setHeaders(common.GetHeaderMutation())["content-length"]; ok {
		t.Fatal("content-length set for an unchanged body")
	}
}
