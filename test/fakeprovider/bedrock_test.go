package fakeprovider

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/cloudauth"
	"github.com/tollgate-ai/tollgate/internal/eventstream"
)

var testAWS = AWS{AccessKeyID: "AKIDFAKEBEDROCK00001", SecretAccessKey: "fake/bedrock/secret/key", SessionToken: "tok"}

// signedPost sends a request signed as the gateway signs it.
func signedPost(t *testing.T, s *Server, path string, body []byte, mutate func(*http.Request)) *http.Response {
	t.Helper()
	host := "bedrock-runtime.us-east-1.amazonaws.com"
	signer := cloudauth.NewSigV4(cloudauth.StaticKeys(testAWS.AccessKeyID, testAWS.SecretAccessKey, testAWS.SessionToken), "bedrock", "us-east-1", host)
	hs, err := signer.Authenticate(context.Background(), cloudauth.Request{Method: "POST", Path: path, Body: body, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", s.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for _, h := range hs {
		req.Header.Set(h[0], h[1])
	}
	if mutate != nil {
		mutate(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestBedrockFake(t *testing.T) {
	s, err := Start(Options{Kind: Bedrock, AWS: testAWS})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}`)
	path := "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse"

	resp := signedPost(t, s, path, body, nil)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || gjson.GetBytes(b, "usage.inputTokens").Int() != 12 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}

	// A body changed after signing, or another key, is refused like Bedrock does.
	resp = signedPost(t, s, path, body, func(r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"Ho"}]}]}`))
	})
	if resp.StatusCode != 403 || !strings.HasPrefix(resp.Header.Get("X-Amzn-Errortype"), "InvalidSignatureException") {
		t.Fatalf("changed body: %d %v", resp.StatusCode, resp.Header)
	}
	resp = signedPost(t, s, path, body, func(r *http.Request) { r.Header.Del("Authorization") })
	if resp.StatusCode != 403 {
		t.Fatalf("unsigned: %d", resp.StatusCode)
	}

	resp = signedPost(t, s, "/model/m/converse-stream", body, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != contentEventStream {
		t.Fatalf("stream %d %v", resp.StatusCode, resp.Header)
	}
	raw, _ := io.ReadAll(resp.Body)
	var d eventstream.Decoder
	d.Feed(raw)
	var types []string
	for range 100 {
		m, ok := d.Next()
		if !ok {
			break
		}
		types = append(types, string(m.Get(":event-type")))
	}
	if d.Finish() != nil || strings.Join(types, ",") != "messageStart,contentBlockDelta,contentBlockDelta,contentBlockDelta,contentBlockStop,messageStop,metadata" {
		t.Fatalf("%v %v", types, d.Err())
	}

	s.Fail(Status(429, ""))
	resp = signedPost(t, s, path, body, nil)
	if resp.StatusCode != 429 || !strings.HasPrefix(resp.Header.Get("X-Amzn-Errortype"), "ThrottlingException") {
		t.Fatalf("%d", resp.StatusCode)
	}
}

// TestBedrockFakeAnswers: the fake answers what the request asks for and
// refuses what the Converse reference does not allow.
func TestBedrockFakeAnswers(t *testing.T) {
	s, err := Start(Options{Kind: Bedrock, AWS: testAWS})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	path := "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse"
	tests := []struct {
		name, body string
		status     int
		check      string // a gjson path that must exist in the answer
	}{
		{"forced response_format tool", `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"toolConfig":{"tools":[{"toolSpec":{"name":"tollgate_json_object","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"tool":{"name":"tollgate_json_object"}}}}`, 200, "output.message.content.0.toolUse.input.city"},
		{"thinking", `{"messages":[{"role":"user","content":[{"text":"Hi"},{"cachePoint":{"type":"default","ttl":"1h"}}]}],"additionalModelRequestFields":{"thinking":{"type":"enabled","budget_tokens":1024}}}`, 200, "output.message.content.0.reasoningContent.reasoningText.signature"},
		{"two members in a block", `{"messages":[{"role":"user","content":[{"text":"Hi","cachePoint":{"type":"default"}}]}]}`, 400, "message"},
		{"leading cachePoint", `{"messages":[{"role":"user","content":[{"cachePoint":{"type":"default"}},{"text":"Hi"}]}]}`, 400, "message"},
		{"bad ttl", `{"system":[{"text":"S"},{"cachePoint":{"type":"default","ttl":"2h"}}],"messages":[{"role":"user","content":[{"text":"Hi"}]}]}`, 400, "message"},
		{"toolChoice not offered", `{"messages":[{"role":"user","content":[{"text":"Hi"}]}],"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{}}}}],"toolChoice":{"tool":{"name":"g"}}}}`, 400, "message"},
	}
	for _, tc := range tests {
		resp := signedPost(t, s, path, []byte(tc.body), nil)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || !gjson.GetBytes(b, tc.check).Exists() {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
		}
	}
}
