package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/internal/sse"
	"github.com/tollgate-ai/tollgate/routing/translate"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

const fixtures = "../../../test/testdata/fixtures/"

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(fixtures + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type result struct {
	out      []byte
	complete bool
	usage    usage.Usage
	usageOK  bool
}

func translateStream(tb testing.TB, in [][]byte, includeUsage bool) result {
	tb.Helper()
	st := Schema{}.NewStream("m", includeUsage)
	var sc sse.Scanner
	var out []byte
	drain := func() {
		for {
			ev, ok := sc.Next()
			if !ok {
				return
			}
			if ev.Data != nil {
				out = st.Event(out, ev.Name, ev.Data)
			}
		}
	}
	for _, p := range in {
		sc.Feed(p)
		drain()
	}
	sc.Finish()
	drain()
	var r result
	r.out, r.complete = st.End(out)
	r.usage, r.usageOK = st.Usage()
	return r
}

func TestStreamFixtures(t *testing.T) {
	withUsage := readFixture(t, "openai/chat_stream.sse")
	noUsage := readFixture(t, "openai/chat_stream_no_usage.sse")
	tools := readFixture(t, "openai/chat_stream_tool_calls.sse")
	tests := []struct {
		name         string
		in           []byte
		includeUsage bool
		want         []byte
		usage        usage.Usage
		usageOK      bool
	}{
		{"usage asked for: unchanged", withUsage, true, withUsage, usage.Usage{PromptTokens: 31, CompletionTokens: 22, TotalTokens: 53}, true},
		// Removing what the gateway added gives exactly the stream the client asked for.
		{"usage not asked for: stripped", withUsage, false, noUsage, usage.Usage{PromptTokens: 31, CompletionTokens: 22, TotalTokens: 53}, true},
		{"no usage anywhere", noUsage, false, noUsage, usage.Usage{}, false},
		{"tool calls", tools, true, tools, usage.Usage{PromptTokens: 88, CompletionTokens: 46, TotalTokens: 134}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; i <= len(tt.in); i++ {
				r := translateStream(t, [][]byte{tt.in[:i], tt.in[i:]}, tt.includeUsage)
				if !bytes.Equal(r.out, tt.want) {
					t.Fatalf("split at %d:\n got: %s\nwant: %s", i, r.out, tt.want)
				}
				if !r.complete || r.usage != tt.usage || r.usageOK != tt.usageOK {
					t.Fatalf("split at %d: complete %v usage %+v %v", i, r.complete, r.usage, r.usageOK)
				}
			}
		})
	}
}

func TestStreamCutAndError(t *testing.T) {
	in := readFixture(t, "openai/chat_stream.sse")
	cut := in[:bytes.Index(in, []byte(`"finish_reason":"stop"`))]
	r := translateStream(t, [][]byte{cut}, true)
	if r.complete || !bytes.HasSuffix(r.out, []byte(`"type":"server_error","param":null,"code":null}}`+"\n\n")) {
		t.Fatalf("cut stream: complete %v, output ends %q", r.complete, r.out[max(0, len(r.out)-120):])
	}

	// A provider's own error event passes through and ends the stream.
	errEv := "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"
	r = translateStream(t, [][]byte{[]byte("data: {\"choices\":[]}\n\n" + errEv + "data: [DONE]\n\n")}, true)
	if r.complete || !strings.HasSuffix(string(r.out), errEv) {
		t.Fatalf("error event: complete %v, output %s", r.complete, r.out)
	}
}

func TestStreamFraming(t *testing.T) {
	r := translateStream(t, [][]byte{[]byte(": keep-alive\n\nevent: x\ndata: a\ndata: b\r\n\r\ndata: [DONE]\n\ndata: late\n\n")}, true)
	if want := "event: x\ndata: a\ndata: b\n\ndata: [DONE]\n\n"; string(r.out) != want || !r.complete {
		t.Fatalf("got %q, %v; want %q", r.out, r.complete, want)
	}
}

func TestRequest(t *testing.T) {
	in := []byte(`{"model":"alias","messages":[{"role":"user","content":"hi"}],"future_field":{"x":[1,2]},"stream":true}`)
	out, err := Schema{}.Request(in, "gpt-4o-mini", translate.RequestOptions{Stream: true, DefaultMaxTokens: 5})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"future_field":{"x":[1,2]},"stream":true}`; string(out) != want {
		t.Fatalf("got %s, want %s", out, want)
	}
	for _, bad := range []string{`[]`, `{"model":`} {
		_, err := Schema{}.Request([]byte(bad), "m", translate.RequestOptions{})
		var oe *oaierror.Error
		if !errors.As(err, &oe) || oe.Status != 400 {
			t.Errorf("Request(%s) error %v, want a 400", bad, err)
		}
	}
}

func TestPassThrough(t *testing.T) {
	s := Schema{}
	for _, e := range []string{"/chat/completions", "/embeddings", "/models"} {
		if p, ok := s.Path(e); !ok || p != e {
			t.Errorf("Path(%s) = %s, %v", e, p, ok)
		}
	}
	body := readFixture(t, "openai/chat_response.json")
	out, u, ok, err := s.Response(body, "m")
	if err != nil || !bytes.Equal(out, body) || !ok || u.PromptTokens != 1342 || u.CachedTokens != 1152 {
		t.Errorf("Response: %v %+v %v", err, u, ok)
	}
	eb := readFixture(t, "openai/error_429.json")
	if st, b := s.Error(429, eb); st != 429 || !bytes.Equal(b, eb) {
		t.Errorf("Error: %d %s", st, b)
	}
	if s.Headers() != nil {
		t.Error("Headers not nil")
	}
}

// FuzzStream: arbitrary upstream bytes never panic, give the same output
// however split, and always end in [DONE] or an error event, every event
// being well-formed SSE.
func FuzzStream(f *testing.F) {
	for _, name := range []string{"openai/chat_stream.sse", "openai/chat_stream_tool_calls.sse", "azure_openai/chat_stream.sse"} {
		f.Add(readFixture(f, name), uint16(100), false)
	}
	f.Add([]byte("data: {\"usage\":{\"prompt_tokens\":1},\"choices\":[]}\r\r: c\n\ndata: [DONE]\n\n"), uint16(5), false)
	f.Add([]byte("data: {\"error\":1\n\n"), uint16(0), true)
	f.Fuzz(func(t *testing.T, in []byte, split uint16, includeUsage bool) {
		at := int(split) % (len(in) + 1)
		whole := translateStream(t, [][]byte{in}, includeUsage)
		parts := translateStream(t, [][]byte{in[:at], in[at:]}, includeUsage)
		if !bytes.Equal(whole.out, parts.out) || whole.complete != parts.complete {
			t.Fatalf("split at %d changed the output", at)
		}
		// Re-scan the output: it must be complete events only, the last one
		// [DONE] exactly when complete, else an error.
		var sc sse.Scanner
		sc.Feed(whole.out)
		sc.Finish()
		var last []byte
		n := 0
		for {
			ev, ok := sc.Next()
			if !ok {
				break
			}
			n++
			last = append(last[:0], ev.Data...)
		}
		if len(sc.Rest()) != 0 || n == 0 {
			t.Fatalf("output %q: %d events, rest %q", whole.out, n, sc.Rest())
		}
		if whole.complete != bytes.Equal(last, []byte("[DONE]")) {
			t.Fatalf("complete %v, last event %q", whole.complete, last)
		}
		if !whole.complete && !json.Valid(last) {
			t.Fatalf("last event %q is not a JSON error", last)
		}
	})
}
