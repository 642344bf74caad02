package mockprovider

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// post answers body as the gateway does: the client's include_usage, Done after a stream.
func post(t *testing.T, path, body string) (Reply, []byte) {
	t.Helper()
	var r Reply
	switch path {
	case "/v1/chat/completions":
		r = Chat([]byte(body), strings.Contains(body, `"include_usage":true`))
	case "/v1/embeddings":
		r = Embeddings([]byte(body))
	default:
		t.Fatalf("no such endpoint %s", path)
	}
	b := r.Body
	if r.Stream {
		b = append(b, Done...)
	}
	return r, b
}

func TestChat(t *testing.T) {
	body := `{"model":"tollgate-mock","messages":[{"role":"user","content":"Hello there"}]}`
	resp, b := post(t, "/v1/chat/completions", body)
	if resp.Status != 200 {
		t.Fatalf("status %d: %s", resp.Status, b)
	}
	var got struct {
		Model   string
		Choices []struct {
			Message      struct{ Role, Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage Usage
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := "This is Tollgate's mock provider. You said: Hello there"
	if got.Model != "tollgate-mock" || len(got.Choices) != 1 || got.Choices[0].Message.Content != want || got.Choices[0].FinishReason != "stop" {
		t.Fatalf("answer %s", b)
	}
	// "user" + "Hello there" = 15 bytes = 4 tokens; the answer has 9 words.
	if got.Usage != (Usage{PromptTokens: 4, CompletionTokens: 9, TotalTokens: 13}) {
		t.Fatalf("usage %+v", got.Usage)
	}
	_, again := post(t, "/v1/chat/completions", body)
	if string(again) != string(b) {
		t.Fatalf("not deterministic:\n%s\n%s", b, again)
	}
}

func TestChatStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		options   string
		wantUsage bool
	}{
		{"without usage", ``, false},
		{"with usage", `,"stream_options":{"include_usage":true}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, "/v1/chat/completions",
				`{"model":"m","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"one two"}]}]`+tc.options+`}`)
			if resp.Status != 200 || !resp.Stream {
				t.Fatalf("status %d stream %v", resp.Status, resp.Stream)
			}
			var text strings.Builder
			var sawUsage, done bool
			events := strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n")
			for _, ev := range events {
				data, ok := strings.CutPrefix(ev, "data: ")
				if !ok {
					t.Fatalf("event %q is not a data line", ev)
				}
				if data == "[DONE]" {
					done = true
					continue
				}
				var c struct {
					Choices []struct{ Delta struct{ Content string } }
					Usage   *Usage
				}
				if err := json.Unmarshal([]byte(data), &c); err != nil {
					t.Fatalf("event %q: %v", data, err)
				}
				for _, ch := range c.Choices {
					text.WriteString(ch.Delta.Content)
				}
				if c.Usage != nil {
					sawUsage = c.Usage.CompletionTokens == 9 && c.Usage.TotalTokens == c.Usage.PromptTokens+9
				}
			}
			if !done || text.String() != "This is Tollgate's mock provider. You said: one two" || sawUsage != tc.wantUsage {
				t.Fatalf("done=%v usage=%v text=%q\n%s", done, sawUsage, text.String(), b)
			}
		})
	}
}

func TestEmbeddings(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		n          int
		b64        bool
	}{
		{"string", `{"model":"e","input":"hello"}`, 1, false},
		{"array", `{"model":"e","input":["a","b","c"]}`, 3, false},
		{"base64", `{"model":"e","input":"hello","encoding_format":"base64"}`, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, "/v1/embeddings", tc.body)
			if resp.Status != 200 {
				t.Fatalf("status %d: %s", resp.Status, b)
			}
			var got struct {
				Data  []struct{ Embedding json.RawMessage }
				Usage struct {
					PromptTokens int64 `json:"prompt_tokens"`
				}
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Data) != tc.n || got.Usage.PromptTokens < int64(tc.n) {
				t.Fatalf("answer %s", b)
			}
			if tc.b64 {
				var s string
				if err := json.Unmarshal(got.Data[0].Embedding, &s); err != nil {
					t.Fatal(err)
				}
				raw, err := base64.StdEncoding.DecodeString(s)
				if err != nil || len(raw) != 4*EmbeddingDims {
					t.Fatalf("base64 embedding %q: %v", s, err)
				}
			} else {
				var v []float32
				if err := json.Unmarshal(got.Data[0].Embedding, &v); err != nil || len(v) != EmbeddingDims {
					t.Fatalf("embedding %s: %v", got.Data[0].Embedding, err)
				}
			}
		})
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"429", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x [mock:429]"}]}`, 429, "rate_limit_exceeded"},
		{"500", "/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"[mock:500]"}]}`, 500, "server_error"},
		{"503 embeddings", "/v1/embeddings", `{"model":"e","input":"[mock:503]"}`, 503, "overloaded"},
		{"bad json", "/v1/chat/completions", `{`, 400, "invalid_json"},
		{"no messages", "/v1/chat/completions", `{"model":"m","messages":[]}`, 400, "missing_messages"},
		{"bad input", "/v1/embeddings", `{"model":"e","input":[1,2]}`, 400, "invalid_input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, tc.path, tc.body)
			var e struct{ Error struct{ Code string } }
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status || e.Error.Code != tc.code || (tc.status == 429) != (resp.RetryAfter == "1") {
				t.Fatalf("got %d %s", resp.Status, b)
			}
		})
	}
}

func TestCompletionBounded(t *testing.T) {
	long := strings.Repeat("é", 500)
	c := Completion(long)
	if !strings.HasSuffix(c, "…") || len(c) > 300 {
		t.Fatalf("completion of a long prompt: %d bytes", len(c))
	}
	if Completion("  ") != "This is Tollgate's mock provider." {
		t.Fatal(Completion("  "))
	}
}

func TestChatTools(t *testing.T) {
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]`
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"calls the first tool", `{"model":"m",` + tools + `,"messages":[{"role":"user","content":"weather?"}]}`,
			[]string{`"finish_reason":"tool_calls"`, `"name":"get_weather"`, `"arguments":"{}"`, `"id":"call_mock_0"`}},
		{"streamed", `{"model":"m","stream":true,` + tools + `,"messages":[{"role":"user","content":"weather?"}]}`,
			[]string{`"finish_reason":"tool_calls"`, `"name":"get_weather"`, `"arguments":"{}"`, "data: [DONE]"}},
		{"tool_choice none", `{"model":"m",` + tools + `,"tool_choice":"none","messages":[{"role":"user","content":"weather?"}]}`,
			[]string{`"finish_reason":"stop"`, "You said: weather?"}},
		{"answers a tool result", `{"model":"m",` + tools + `,"messages":[{"role":"user","content":"weather?"},{"role":"tool","tool_call_id":"call_mock_0","content":"sunny"}]}`,
			[]string{`"finish_reason":"stop"`, "You said: sunny"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, "/v1/chat/completions", tc.body)
			if resp.Status != 200 {
				t.Fatalf("status %d: %s", resp.Status, b)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(b), w) {
					t.Fatalf("answer lacks %s:\n%s", w, b)
				}
			}
		})
	}
}

// FuzzReplies: any body gets a reply (never a panic), and every reply is
// well-formed: JSON, or SSE events each carrying a JSON chunk.
func FuzzReplies(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"a b"}]}]}`,
		`{"model":"m","tools":[{"function":{"name":"f"}}],"messages":[{"role":"tool","content":"x"}]}`,
		`{"model":"e","input":["a","[mock:503]"]}`,
		`{"model":"e","input":"x","encoding_format":"base64"}`,
		`{"messages":null}`, `[]`, `{`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, embed bool) {
		r := Chat(body, true)
		if embed {
			r = Embeddings(body)
		}
		if r.Status == 0 || (r.Status == 200) != (r.Usage.TotalTokens > 0) {
			t.Fatalf("status %d usage %+v", r.Status, r.Usage)
		}
		if !r.Stream {
			if !json.Valid(r.Body) {
				t.Fatalf("reply is not JSON: %q", r.Body)
			}
			return
		}
		for _, ev := range strings.Split(strings.TrimSuffix(string(r.Body), "\n\n"), "\n\n") {
			data, ok := strings.CutPrefix(ev, "data: ")
			if !ok || !json.Valid([]byte(data)) {
				t.Fatalf("event %q", ev)
			}
		}
	})
}
