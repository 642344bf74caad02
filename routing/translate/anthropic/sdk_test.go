package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/tidwall/gjson"
)

// These tests serve translated bodies to the official openai-go SDK, over
// loopback HTTP, to prove that a real client accepts them.

// serve answers every request with one status, content type and body.
func serve(t *testing.T, status int, contentType string, body []byte) openai.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return openai.NewClient(
		option.WithBaseURL(srv.URL+"/v1/"),
		option.WithAPIKey("test"),
		option.WithMaxRetries(0),
	)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

var chatParams = openai.ChatCompletionNewParams{
	Model:         "claude",
	Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
}

// sdkStream translates an Anthropic stream fixture and reads it back with
// the SDK's stream and accumulator. Every chunk must be accepted.
func sdkStream(t *testing.T, in []byte) (openai.ChatCompletionAccumulator, error) {
	t.Helper()
	r := translateStream(t, [][]byte{in}, true)
	c := serve(t, 200, "text/event-stream; charset=utf-8", r.out)
	stream := c.Chat.Completions.NewStreaming(ctx(t), chatParams)
	defer stream.Close()
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		if !acc.AddChunk(stream.Current()) {
			t.Fatalf("accumulator rejected chunk %s", stream.Current().RawJSON())
		}
	}
	return acc, stream.Err()
}

// anthropicText joins the text_delta fragments of an Anthropic stream.
func anthropicText(in []byte) string {
	var sb strings.Builder
	for _, ev := range bytes.Split(in, []byte("\n\n")) {
		_, data, ok := bytes.Cut(ev, []byte("\ndata: "))
		if ok && gjson.GetBytes(data, "delta.type").String() == "text_delta" {
			sb.WriteString(gjson.GetBytes(data, "delta.text").String())
		}
	}
	return sb.String()
}

func TestSDKStreamText(t *testing.T) {
	in := readFixture(t, "anthropic/messages_stream.sse")
	acc, err := sdkStream(t, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("%d choices", len(acc.Choices))
	}
	ch := acc.Choices[0]
	if want := anthropicText(in); ch.Message.Content != want || want == "" {
		t.Errorf("content %q, want %q", ch.Message.Content, want)
	}
	if ch.FinishReason != "stop" || acc.ID != "msg_01Pz8GmYcR4vK2tWq7nXbE3L" || acc.Model != "claude-sonnet-4-5-20250929" {
		t.Errorf("finish %q id %q model %q", ch.FinishReason, acc.ID, acc.Model)
	}
	if acc.Usage.PromptTokens != 24 || acc.Usage.CompletionTokens != 27 || acc.Usage.TotalTokens != 51 {
		t.Errorf("usage %+v", acc.Usage)
	}
}

func TestSDKStreamToolUse(t *testing.T) {
	in := readFixture(t, "anthropic/messages_stream_tool_use.sse")
	acc, err := sdkStream(t, in)
	if err != nil {
		t.Fatal(err)
	}
	ch := acc.Choices[0]
	if ch.Message.Content != anthropicText(in) || ch.FinishReason != "tool_calls" {
		t.Errorf("content %q finish %q", ch.Message.Content, ch.FinishReason)
	}
	if len(ch.Message.ToolCalls) != 1 {
		t.Fatalf("%d tool calls", len(ch.Message.ToolCalls))
	}
	tc := ch.Message.ToolCalls[0]
	var args map[string]string
	if err := json.Unmarshal([]byte(tc.Function.Arguments), &args); err != nil {
		t.Fatalf("arguments %q: %v", tc.Function.Arguments, err)
	}
	if tc.ID != "toolu_01Gq5sWz8YcN3vKp6TbXm2Hd" || tc.Function.Name != "get_current_weather" ||
		args["city"] != "Lisbon" || args["unit"] != "celsius" || len(args) != 2 {
		t.Errorf("tool call %+v, args %v", tc, args)
	}
	if acc.Usage.PromptTokens != 412 || acc.Usage.CompletionTokens != 71 {
		t.Errorf("usage %+v", acc.Usage)
	}
}

func TestSDKStreamError(t *testing.T) {
	in := readFixture(t, "anthropic/messages_stream_error.sse")
	acc, err := sdkStream(t, in)
	var se *ssestream.StreamError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "Overloaded") {
		t.Fatalf("err %v, want a StreamError about Overloaded", err)
	}
	if got := acc.Choices[0].Message.Content; got != anthropicText(in) {
		t.Errorf("partial content %q, want %q", got, anthropicText(in))
	}
}

// TestSDKStreamCut: a stream cut before message_stop must not look complete
// to the SDK.
func TestSDKStreamCut(t *testing.T) {
	in := readFixture(t, "anthropic/messages_stream_tool_use.sse")
	cut := in[:bytes.Index(in, []byte("event: message_delta"))]
	_, err := sdkStream(t, cut)
	var se *ssestream.StreamError
	if !errors.As(err, &se) {
		t.Fatalf("err %v, want a StreamError", err)
	}
}

func TestSDKResponse(t *testing.T) {
	body, _, _, err := testSchema.Response(readFixture(t, "anthropic/messages_response.json"), "m")
	if err != nil {
		t.Fatal(err)
	}
	c := serve(t, 200, "application/json", body)
	resp, err := c.Chat.Completions.New(ctx(t), chatParams)
	if err != nil {
		t.Fatal(err)
	}
	want := "An API gateway is the single entry point that authenticates, rate-limits and routes client requests to the right backend service."
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != want || resp.Choices[0].FinishReason != "stop" {
		t.Fatalf("response %s", resp.RawJSON())
	}
	u := resp.Usage
	if u.PromptTokens != 46+2048 || u.CompletionTokens != 29 || u.TotalTokens != 46+2048+29 || u.PromptTokensDetails.CachedTokens != 2048 {
		t.Errorf("usage %+v", u)
	}
	if resp.ID != "msg_01HkT7qWv3ZbN9xR2pLmC4sD" || resp.Created != 1795300400 || resp.Model != "claude-sonnet-4-5-20250929" {
		t.Errorf("id %q created %d model %q", resp.ID, resp.Created, resp.Model)
	}
}

func TestSDKErrors(t *testing.T) {
	tests := []struct {
		file   string
		status int
		want   int
		code   string
		msg    string
	}{
		{"anthropic/error_401.json", 401, 401, "invalid_api_key", "invalid x-api-key"},
		{"anthropic/error_429.json", 429, 429, "rate_limit_exceeded", "would exceed the rate limit"},
		{"anthropic/error_529_overloaded.json", 529, 503, "", "Overloaded"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			status, body := testSchema.Error(tt.status, readFixture(t, tt.file))
			if status != tt.want {
				t.Fatalf("status %d, want %d", status, tt.want)
			}
			c := serve(t, status, "application/json", body)
			_, err := c.Chat.Completions.New(ctx(t), chatParams)
			var ae *openai.Error
			if !errors.As(err, &ae) {
				t.Fatalf("err %v, want *openai.Error", err)
			}
			if ae.StatusCode != tt.want || ae.Code != tt.code || !strings.Contains(ae.Message, tt.msg) {
				t.Errorf("got %d code %q message %q", ae.StatusCode, ae.Code, ae.Message)
			}
		})
	}
}

// TestSDKStreamThinkingJSON reads a stream with thinking and a json_object
// answer back with openai-go: the thinking deltas must not disturb the
// accumulator, the JSON answer is the content, and the reasoning tokens
// reach the usage.
func TestSDKStreamThinkingJSON(t *testing.T) {
	var in []byte
	for _, e := range []string{streamStart,
		`{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Plan."}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"tollgate_json_object","input":{}}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ok\":"}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"true}"}}`,
		`{"type":"content_block_stop","index":1}`,
		`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":20,"output_tokens_details":{"thinking_tokens":8}}}`,
		`{"type":"message_stop"}`} {
		in = append(in, "event: x\ndata: "+e+"\n\n"...)
	}
	acc, err := sdkStream(t, in)
	if err != nil {
		t.Fatal(err)
	}
	ch := acc.Choices[0]
	if ch.Message.Content != `{"ok":true}` || ch.FinishReason != "stop" || len(ch.Message.ToolCalls) != 0 {
		t.Errorf("content %q finish %q tool calls %d", ch.Message.Content, ch.FinishReason, len(ch.Message.ToolCalls))
	}
	if acc.Usage.CompletionTokens != 20 || acc.Usage.CompletionTokensDetails.ReasoningTokens != 8 {
		t.Errorf("usage %+v", acc.Usage)
	}
}
