package responses

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// These helpers serve bodies to the official openai-go SDK over loopback
// HTTP, to prove that a real Responses client accepts what the gateway
// sends.

func sdkClient(t *testing.T, contentType string, body []byte) openai.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/responses" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("content-type", contentType)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
}

func sdkCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

var sdkParams = responses.ResponseNewParams{
	Model: "m",
	Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
}

// sdkResponse reads a non-streamed response body with the SDK.
func sdkResponse(t *testing.T, body []byte) *responses.Response {
	t.Helper()
	c := sdkClient(t, "application/json", body)
	r, err := c.Responses.New(sdkCtx(t), sdkParams)
	if err != nil {
		t.Fatalf("SDK rejected the response: %v\n%s", err, body)
	}
	return r
}

// sdkRead is what an SDK client made of a Responses stream.
type sdkRead struct {
	types    []string
	text     string              // concatenated output_text deltas
	args     map[string]string   // function call arguments by item id, from deltas
	final    *responses.Response // the terminal event's response, nil if none
	terminal string
	err      error
}

// sdkStream reads a Responses event stream with the SDK's stream decoder
// and typed events. Every event must decode into its variant.
func sdkStream(t *testing.T, stream []byte) sdkRead {
	t.Helper()
	c := sdkClient(t, "text/event-stream; charset=utf-8", stream)
	s := c.Responses.NewStreaming(sdkCtx(t), sdkParams)
	defer s.Close()
	r := sdkRead{args: map[string]string{}}
	for s.Next() {
		ev := s.Current()
		r.types = append(r.types, ev.Type)
		switch v := ev.AsAny().(type) {
		case responses.ResponseTextDeltaEvent:
			r.text += v.Delta
		case responses.ResponseFunctionCallArgumentsDeltaEvent:
			r.args[v.ItemID] += v.Delta
		case responses.ResponseCompletedEvent:
			r.final, r.terminal = &v.Response, ev.Type
		case responses.ResponseIncompleteEvent:
			r.final, r.terminal = &v.Response, ev.Type
		case responses.ResponseFailedEvent:
			r.final, r.terminal = &v.Response, ev.Type
		case nil:
			t.Fatalf("SDK does not know event %q", ev.Type)
		}
	}
	r.err = s.Err()
	return r
}

// event is one event of a stream we wrote.
type event struct {
	name string
	data map[string]any
	raw  string
}

// splitEvents checks the framing of a translated stream (each event one
// "event:" line equal to its type, one compact "data:" line, a blank line;
// sequence numbers 0, 1, 2…) and returns its events.
func splitEvents(t *testing.T, out []byte) []event {
	t.Helper()
	if len(out) == 0 {
		return nil
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		t.Fatalf("stream does not end with a blank line: %q", out)
	}
	var evs []event
	for i, block := range strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(block, "\n")
		if !ok || !strings.HasPrefix(name, "event: ") || !strings.HasPrefix(data, "data: ") || strings.Contains(data, "\n") {
			t.Fatalf("event %d badly framed: %q", i, block)
		}
		e := event{name: strings.TrimPrefix(name, "event: "), raw: strings.TrimPrefix(data, "data: ")}
		if err := json.Unmarshal([]byte(e.raw), &e.data); err != nil {
			t.Fatalf("event %d data is not a JSON object: %v: %s", i, err, e.raw)
		}
		if e.data["type"] != e.name {
			t.Fatalf("event %d: type %v under event: %s", i, e.data["type"], e.name)
		}
		if seq, _ := e.data["sequence_number"].(float64); int(seq) != i {
			t.Fatalf("event %d has sequence_number %v", i, e.data["sequence_number"])
		}
		evs = append(evs, e)
	}
	return evs
}

func TestNativeFixturesParse(t *testing.T) {
	// The hand-written native fixtures must be what the SDK reads.
	r := sdkResponse(t, readFixture(t, "openai/responses_response.json"))
	if r.Status != "completed" || !strings.HasPrefix(r.OutputText(), "An API gateway") || r.Usage.OutputTokensDetails.ReasoningTokens != 192 {
		t.Fatalf("unexpected: %+v", r)
	}
	for _, f := range []string{"openai/responses_stream.sse", "openai/responses_stream_tool_call.sse"} {
		raw := readFixture(t, f)
		splitEvents(t, raw)
		got := sdkStream(t, raw)
		if got.err != nil || got.terminal != "response.completed" || got.final.Usage.TotalTokens == 0 {
			t.Fatalf("%s: %+v", f, got)
		}
	}
}
