package extproc

import (
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/translate/openai"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

// fakeMeter is a streamMeter that records what the reader asked.
type fakeMeter struct {
	spent    bool // budgetSpent's answer
	asked    []int
	comments int
}

func (m *fakeMeter) budgetSpent(received int) bool {
	m.asked = append(m.asked, received)
	return m.spent
}
func (m *fakeMeter) endComment() []byte { m.comments++; return []byte(": meter\n\n") }

// upperStream is a translating Stream: each event's data becomes one
// OpenAI-style data line, "stop" ends the stream with [DONE].
type upperStream struct{ done bool }

func (s *upperStream) Event(out []byte, name, data []byte) []byte {
	if string(name) == "stop" {
		s.done = true
		return append(out, "data: [DONE]\n\n"...)
	}
	return append(append(append(out, "data: "...), strings.ToUpper(string(data))...), "\n\n"...)
}

func (s *upperStream) End(out []byte) ([]byte, bool) {
	if !s.done {
		return append(out, "data: cut\n\n"...), false
	}
	return out, true
}
func (s *upperStream) Usage() (usage.Usage, bool)   { return usage.Usage{}, false }
func (s *upperStream) Partial() (usage.Usage, bool) { return usage.Usage{}, false }

type upperSchema struct{ openai.Schema }

func (upperSchema) NewStream(string, bool) translate.Stream { return &upperStream{} }

func TestStreamReader(t *testing.T) {
	const (
		chunk = `data: {"choices":[{"delta":{"content":"hi"}}]}` + "\n\n"
		done  = "data: [DONE]\n\n"
	)
	tests := []struct {
		name         string
		schema       translate.Schema
		includeUsage bool
		spent        bool
		chunks       []string
		want         string // every reply, concatenated
		outcome      string
		received     int
	}{
		{name: "passthrough: comment before [DONE]", schema: openai.Passthrough{}, includeUsage: true,
			chunks: []string{chunk + "da", "ta: [DONE]\n\n"}, want: chunk + ": meter\n\n" + done, received: 2},
		{name: "passthrough: framing kept byte for byte", schema: openai.Passthrough{}, includeUsage: true,
			chunks: []string{"id: 7\r\ndata:{\"choices\":[]}\r\n\r\n: ping\r\n\r\n", "data:[DONE]\r\n\r\n"},
			want:   "id: 7\r\ndata:{\"choices\":[]}\r\n\r\n: ping\r\n\r\n: meter\n\ndata:[DONE]\r\n\r\n"},
		{name: "passthrough: cut short ends with an error event", schema: openai.Passthrough{}, includeUsage: true,
			chunks: []string{chunk}, want: chunk + ": meter\n\n" + string(incompleteEvent), outcome: outcomeIncomplete, received: 2},
		{name: "passthrough: the provider's error event is the end", schema: openai.Passthrough{}, includeUsage: true,
			chunks: []string{`data: {"error":{"message":"x"}}` + "\n\n"}, want: `data: {"error":{"message":"x"}}` + "\n\n: meter\n\n", outcome: outcomeIncomplete},
		{name: "passthrough: usage the client did not ask for is removed", schema: openai.Passthrough{},
			chunks: []string{`data: {"choices":[{"delta":{}}],"usage":null}` + "\n\n" + `data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}` + "\n\n" + done},
			want:   `data: {"choices":[{"delta":{}}]}` + "\n\n: meter\n\n" + done},
		{name: "passthrough: a spent budget ends the stream", schema: openai.Passthrough{}, includeUsage: true, spent: true,
			chunks: []string{chunk, done}, want: string(budgetErrorEvent), outcome: outcomeTerminated},
		{name: "translated: comment before the translator's [DONE]", schema: upperSchema{},
			chunks: []string{": ping\n\ndata: a\n\n", "event: stop\ndata: {}\n\n"}, want: "data: A\n\n: meter\n\n" + done},
		{name: "translated: cut short", schema: upperSchema{},
			chunks: []string{"data: a\n\ndata: b"}, want: "data: A\n\n: meter\n\ndata: cut\n\n", outcome: outcomeIncomplete},
		{name: "translated: a spent budget ends the stream", schema: upperSchema{}, spent: true,
			chunks: []string{"data: a\n\n", "data: b\n\n"}, want: string(budgetErrorEvent), outcome: outcomeTerminated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeMeter{spent: tt.spent}
			r := newStreamReader(m, tt.schema, "m", tt.includeUsage, nil)
			var got strings.Builder
			for i, c := range tt.chunks {
				out, changed := r.chunk([]byte(c), i == len(tt.chunks)-1)
				if !changed {
					out = []byte(c)
				}
				got.Write(out)
			}
			if got.String() != tt.want {
				t.Fatalf("client got\n%q\nwant\n%q", got.String(), tt.want)
			}
			if r.outcome() != tt.outcome || r.received() != tt.received {
				t.Fatalf("outcome %q received %d; want %q %d", r.outcome(), r.received(), tt.outcome, tt.received)
			}
			if wantComments := map[bool]int{false: 1, true: 0}[tt.spent]; m.comments != wantComments {
				t.Fatalf("%d metering comments, want %d", m.comments, wantComments)
			}
		})
	}
}

// TestStreamReaderPassesUnreadable: an event over the size limit makes a
// pass-through stream give up reading, and everything from it on reaches
// the client as it came; a translated stream is ended instead.
func TestStreamReaderPassesUnreadable(t *testing.T) {
	big := "data: " + strings.Repeat("x", maxEventSize) + "\n\n"
	r := newStreamReader(&fakeMeter{}, openai.Passthrough{}, "m", true, nil)
	out, _ := r.chunk([]byte("data: {}\n\n"+big[:len(big)-2]), false)
	if string(out) != "data: {}\n\n"+big[:len(big)-2] {
		t.Fatalf("the unreadable rest was not passed on: %d bytes", len(out))
	}
	if out, changed := r.chunk([]byte("\n\n"), true); changed || out != nil {
		t.Fatalf("later chunks pass unchanged: %q %v", out, changed)
	}
	tr := newStreamReader(&fakeMeter{}, upperSchema{}, "m", false, nil)
	out, _ = tr.chunk([]byte("data: a\n\n"+big[:len(big)-2]), false)
	if string(out) != "data: A\n\n: meter\n\ndata: cut\n\n" || tr.outcome() != outcomeIncomplete {
		t.Fatalf("translated stream not ended: %q", out)
	}
	if out, changed := tr.chunk([]byte("\n\n"), true); !changed || out != nil {
		t.Fatalf("chunks after the end are dropped: %q %v", out, changed)
	}
}

// TestStreamReaderBudgetCountsText: the budget check is told the completion
// text received before each chunk.
func TestStreamReaderBudgetCountsText(t *testing.T) {
	m := &fakeMeter{}
	r := newStreamReader(m, openai.Passthrough{}, "m", true, nil)
	r.chunk([]byte(`data: {"choices":[{"delta":{"content":"abc","tool_calls":[{"function":{"arguments":"{}"}}]}}]}`+"\n\n"), false)
	r.chunk([]byte(`data: {"choices":[{"delta":{"refusal":"no"}}]}`+"\n\n"), false)
	r.chunk(nil, true)
	if want := []int{0, 5, 7}; len(m.asked) != 3 || m.asked[0] != want[0] || m.asked[1] != want[1] || m.asked[2] != want[2] {
		t.Fatalf("budget asked with %v, want %v", m.asked, want)
	}
}

// fakeStatus is a statusCell.
type fakeStatus struct{ code int }

func (s *fakeStatus) status() int        { return s.code }
func (s *fakeStatus) setStatus(code int) { s.code = code }

func TestJSONReader(t *testing.T) {
	const okBody = `{"choices":[{"message":{"content":"hello"}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`
	tests := []struct {
		name       string
		schema     translate.Schema
		endpoint   string
		status     int
		body       string
		changed    bool
		wantStatus int
		usage      bool
		text       int
		headers    map[string]string
	}{
		{name: "identity 200 passes unchanged", schema: openai.Passthrough{}, status: 200, body: okBody, wantStatus: 200, usage: true},
		{name: "identity without usage counts the text", schema: openai.Passthrough{}, status: 200,
			body: `{"choices":[{"message":{"content":"hello"}}]}`, wantStatus: 200, text: 5},
		{name: "identity error passes unchanged", schema: openai.Passthrough{}, status: 429, body: `{"error":{}}`, wantStatus: 429},
		{name: "no status: usage read, body unchanged", status: 0, body: okBody, usage: true},
		{name: "transcription usage", endpoint: "transcriptions", status: 200,
			body: `{"text":"hi","usage":{"type":"tokens","input_tokens":5,"output_tokens":2,"total_tokens":7}}`, wantStatus: 200, usage: true},
		{name: "a translation sets content headers", schema: upperJSON{}, status: 200, body: `{}`, changed: true, wantStatus: 200,
			headers: map[string]string{"content-type": "application/json", "content-length": "8"}},
		{name: "a translated error maps the status", schema: upperJSON{}, status: 529, body: `{}`, changed: true, wantStatus: 503,
			headers: map[string]string{":status": "503", "content-type": "application/json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStatus{code: tt.status}
			r := &jsonReader{x: st, schema: tt.schema, model: "m"}
			if tt.endpoint == "transcriptions" {
				r.endpoint = routing.EndpointTranscriptions
			}
			if out, changed := r.chunk([]byte(tt.body[:1]), false); changed || out != nil {
				t.Fatal("a buffered reader answers only at the end")
			}
			out, changed := r.chunk([]byte(tt.body[1:]), true)
			if changed != tt.changed || !changed && string(out) != tt.body {
				t.Fatalf("changed %v (%q), want %v", changed, out, tt.changed)
			}
			if _, ok := r.usage(); ok != tt.usage || st.code != tt.wantStatus || r.received() != tt.text {
				t.Fatalf("usage %v status %d text %d", ok, st.code, r.received())
			}
			set := setHeaders(r.headers.m)
			for k, v := range tt.headers {
				if set[k] != v {
					t.Fatalf("header %s = %q, want %q (%v)", k, set[k], v, set)
				}
			}
		})
	}
}

// upperJSON is a translating schema for buffered bodies.
type upperJSON struct{ openai.Schema }

func (upperJSON) Response(body []byte, _ string) ([]byte, usage.Usage, bool, error) {
	return []byte(`{"up":1}`), usage.Usage{}, false, nil
}
func (upperJSON) Error(int, []byte) (int, []byte) { return 503, []byte(`{"error":{}}`) }

// A provider's 401 means the gateway's credential was refused: the client
// gets a 502 in its endpoint's format, never the provider's body (whose
// message can show part of the platform's key), and the log gets the cause.
func TestJSONReaderProviderAuth(t *testing.T) {
	const providerBody = `{"error":{"message":"Incorrect API key provided: sk-proj-****wxyz.","type":"invalid_request_error","code":"invalid_api_key"}}`
	for _, tt := range []struct {
		name     string
		format   *apiFormat
		wantPath string
		wantCode string
	}{
		{"OpenAI format", nil, "error.code", "provider_auth_failed"},
		{"Anthropic format on /v1/messages", anthropicFormat, "error.type", "api_error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStatus{code: 401}
			var logged []byte
			r := &jsonReader{x: st, schema: openai.Passthrough{}, model: "m", errorBody: tt.format.errorBody,
				credentialRejected: func(b []byte) { logged = b }}
			out, changed := r.chunk([]byte(providerBody), true)
			if !changed || st.code != 502 || gjson.GetBytes(out, tt.wantPath).String() != tt.wantCode {
				t.Fatalf("status %d, body %s", st.code, out)
			}
			if strings.Contains(string(out), "sk-") || string(logged) != providerBody {
				t.Fatalf("client body %s, logged %s", out, logged)
			}
			if set := setHeaders(r.headers.m); set[":status"] != "502" || set["content-type"] != "application/json" {
				t.Fatalf("headers %v", set)
			}
		})
	}
}

// clientBytes is what the client receives for a response body chunk: the
// reply's body mutation, or the chunk itself when the reply carries none.
func clientBytes(resp *extprocv3.ProcessingResponse, chunk []byte) []byte {
	if m := resp.GetResponseBody().GetResponse().GetBodyMutation(); m != nil {
		return m.GetBody()
	}
	return chunk
}

// TestStreamChunkReplies: a chunk of whole events that pass unchanged gets
// an empty BodyResponse, exactly what a processor that changes nothing
// sends, so Envoy forwards its own bytes; a chunk the gateway changes (the
// metering comment, a held-back partial event, removed usage) carries the
// bytes the client gets instead.
func TestStreamChunkReplies(t *testing.T) {
	content := `data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}` + "\n\n"
	for _, tt := range []struct {
		name    string
		req     string
		chunks  []string
		mutated []bool
	}{
		{"whole events pass", `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true}}`,
			[]string{content, content + content, "data: [DONE]\n\n"}, []bool{false, false, true}},
		{"a partial event is held back", `{"model":"smart-default","stream":true,"stream_options":{"include_usage":true}}`,
			[]string{content[:10], content[10:] + content, "data: [DONE]\n\n"}, []bool{true, true, true}},
		{"usage the gateway asked for is removed", `{"model":"smart-default","stream":true}`,
			[]string{content, ": ping\n\n", "data: [DONE]\n\n"}, []bool{true, false, true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := newTestExchange(t)
			x.handle(chatHeaders())
			x.handle(reqBody(tt.req))
			x.handle(respHeaders(":status", "200", "content-type", "text/event-stream"))
			for i, c := range tt.chunks {
				resp, _ := x.handle(respBody(c, i == len(tt.chunks)-1))
				if resp.GetResponseBody() == nil {
					t.Fatalf("chunk %d: not a body reply: %v", i, resp)
				}
				if got := resp.GetResponseBody().GetResponse().GetBodyMutation() != nil; got != tt.mutated[i] {
					t.Fatalf("chunk %d: body mutation %v, want %v", i, got, tt.mutated[i])
				}
				if !tt.mutated[i] && resp.GetResponseBody().GetResponse() != nil {
					t.Fatalf("chunk %d: unchanged chunk's reply is not empty: %v", i, resp)
				}
			}
		})
	}
}

// TestSSEText: a translated SSE stream's own output counts toward the
// mid-stream budget whichever shape its provider events have.
func TestSSEText(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       int
	}{
		{"anthropic text delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hello"}}`, 5},
		{"anthropic tool input", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}`, 7},
		{"anthropic message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}`, 0},
		{"openai chunk (Gemini on Vertex)", `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hey"}}]}`, 3},
		{"openai tool arguments", `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}`, 2},
		{"usage-only chunk", `{"choices":[],"usage":{"completion_tokens":3}}`, 0},
		{"not json", `[DONE]`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sseText([]byte(tc.data)); got != tc.want {
				t.Fatalf("sseText = %d, want %d", got, tc.want)
			}
		})
	}
}
