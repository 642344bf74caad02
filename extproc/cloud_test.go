package extproc

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/tidwall/gjson"

	"github.com/tollgate-ai/tollgate/internal/cloudauth"
	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/internal/eventstream/eventstreamtest"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
	"github.com/tollgate-ai/tollgate/routing/pricing"
	"github.com/tollgate-ai/tollgate/routing/usage"
)

const (
	awsKeyID    = "AKIDTOLLGATEEXTPROC1"
	awsSecret   = "extproc/test/secret/access/key/0000000"
	awsToken    = "extproc-session-token"
	bedrockHost = "bedrock-runtime.us-east-1.amazonaws.com"
	bedrockID   = "anthropic.claude-sonnet-4-5-20250929-v1:0"
)

var awsCreds = aws.Credentials{AccessKeyID: awsKeyID, SecretAccessKey: awsSecret, SessionToken: awsToken}

var fixedNow = time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)

func bedrockSnapshot(t testing.TB) *Snapshot {
	t.Helper()
	cfg := &config.Config{
		Version: 1,
		Providers: []config.Provider{
			{Name: "openai", Schema: "openai", Cluster: "openai", BasePath: "/v1",
				Credential: &config.Credential{Header: "authorization", Prefix: "Bearer ", Source: config.SecretRef{Env: "O"}}},
			{Name: "bedrock", Schema: config.SchemaBedrock, Cluster: "bedrock", DefaultMaxTokens: 256,
				AWS: &config.AWS{Region: "us-east-1", Host: bedrockHost,
					AccessKeyID: &config.SecretRef{Env: "AK"}, SecretAccessKey: &config.SecretRef{Env: "SK"}, SessionToken: &config.SecretRef{Env: "ST"}},
				Models: []string{bedrockID}, DirectModels: "listed"},
		},
		Models: []config.Model{
			{Name: "bedrock-default", Provider: "bedrock", Model: bedrockID},
			{Name: "smart", Fallback: &config.Fallback{Cluster: "chain_smart", Targets: []config.ChainTarget{
				{Provider: "openai", Model: "gpt-4o-mini"}, {Provider: "bedrock", Model: bedrockID}}}},
		},
	}
	env := map[string]string{"O": "sk-o", "AK": awsKeyID, "SK": awsSecret, "ST": awsToken}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	table, warns := routing.New(cfg, lookup)
	if len(warns) > 0 {
		t.Fatal(warns)
	}
	tenants, _ := configopts.NewTenancy(cfg, lookup)
	store, _ := keys.NewStore([]keys.Entry{{Key: keys.Key{ID: "k1", Tenant: config.DefaultTenant}, SHA256: keys.Hash(testKey)}})
	return &Snapshot{Routes: table, Keys: store, Tenants: tenants, Metadata: cfg.MetadataLimits(), Prices: pricing.Default(), Limits: &Limits{}}
}

func bedrockExchange(t testing.TB) *exchange {
	snap := bedrockSnapshot(t)
	return newExchange(context.Background(), New(Options{Snapshot: func() *Snapshot { return snap }, Now: func() time.Time { return fixedNow }}), snap)
}

// verifySigned checks the signature as the provider would, on the request
// rebuilt from the gateway's mutations.
func verifySigned(t *testing.T, set map[string]string, body []byte) {
	t.Helper()
	u, err := url.Parse("https://" + bedrockHost + set[":path"])
	if err != nil {
		t.Fatal(err)
	}
	r := &http.Request{Method: "POST", URL: u, Host: bedrockHost, Header: http.Header{}, ContentLength: int64(len(body))}
	for k, v := range set {
		if !strings.HasPrefix(k, ":") {
			r.Header.Set(k, v)
		}
	}
	if set["content-length"] != itoa(len(body)) {
		t.Fatalf("content-length %q for %d bytes", set["content-length"], len(body))
	}
	if err := cloudauth.VerifySigV4(r, body, awsCreds, "bedrock", "us-east-1"); err != nil {
		t.Fatalf("signature: %v (headers %v)", err, set)
	}
}

func TestBedrockRequestSignedLast(t *testing.T) {
	for _, stream := range []bool{false, true} {
		x := bedrockExchange(t)
		x.handle(chatHeaders())
		body := `{"model":"bedrock-default","messages":[{"role":"user","content":"Hi"}]}`
		op := "/converse"
		if stream {
			body = `{"model":"bedrock-default","stream":true,"messages":[{"role":"user","content":"Hi"}]}`
			op = "/converse-stream"
		}
		resp, _ := x.handle(reqBody(body))
		c := resp.GetRequestBody().GetResponse()
		set := setHeaders(c.GetHeaderMutation())
		out := c.GetBodyMutation().GetBody()
		if set[":path"] != "/model/"+bedrockID+op || set["x-tollgate-cluster"] != "bedrock" || set["x-amz-security-token"] != awsToken ||
			gjson.GetBytes(out, "inferenceConfig.maxTokens").Int() != 256 || gjson.GetBytes(out, "model").Exists() {
			t.Fatalf("headers %v body %s", set, out)
		}
		verifySigned(t, set, out)
	}
}

func TestBedrockAttemptSignedOverItsBody(t *testing.T) {
	snap := bedrockSnapshot(t)
	first := attemptHeaders("bedrock", 2, true)
	a := &attempt{srv: New(Options{Now: func() time.Time { return fixedNow }}), snap: snap}
	a.handle(first)
	r, _ := a.handle(reqBody(`{"model":"smart","stream":true,"messages":[{"role":"user","content":"Hi"}]}`))
	c := r.GetRequestBody().GetResponse()
	set := setHeaders(c.GetHeaderMutation())
	out := c.GetBodyMutation().GetBody()
	if set[":path"] != "/model/"+bedrockID+"/converse-stream" {
		t.Fatalf("headers %v", set)
	}
	verifySigned(t, set, out)
	for _, h := range c.GetHeaderMutation().GetRemoveHeaders() {
		if h == "authorization" || strings.HasPrefix(h, "x-amz-") {
			t.Fatalf("removes its own credential header %s", h)
		}
	}

	// The OpenAI attempt removes every SigV4 header an earlier attempt set.
	a = &attempt{srv: New(Options{}), snap: snap}
	a.handle(attemptHeaders("openai", 1, true))
	r, _ = a.handle(reqBody(`{"model":"smart","stream":true,"messages":[{"role":"user","content":"Hi"}]}`))
	removed := strings.Join(r.GetRequestBody().GetResponse().GetHeaderMutation().GetRemoveHeaders(), ",")
	for _, h := range []string{"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"} {
		if !strings.Contains(removed, h) {
			t.Fatalf("openai attempt keeps %s (removes %s)", h, removed)
		}
	}
}

var chunkID = regexp.MustCompile(`chatcmpl-[A-Z0-9]+|"created":[0-9]+`)

// TestBedrockStreamEveryOffset feeds the binary ConverseStream fixtures
// split at each offset of splitOffsets: the client gets the same OpenAI SSE stream and usage.
func TestBedrockStreamEveryOffset(t *testing.T) {
	for _, name := range []string{"bedrock/converse_stream.jsonl", "bedrock/converse_stream_tool_use.jsonl"} {
		stream, err := eventstreamtest.FromJSONL(readFixture(t, name))
		if err != nil {
			t.Fatal(err)
		}
		var want string
		var wantUsage usage.Usage
		for _, i := range splitOffsets(stream) {
			got, u := runBedrockStream(t, `{"model":"bedrock-default","stream":true}`, [][]byte{stream[:i], stream[i:]})
			got, _ = cutComment(t, chunkID.ReplaceAllString(got, "X"))
			if i == 0 {
				want, wantUsage = got, u
				if !strings.HasSuffix(got, "data: [DONE]\n\n") || strings.Contains(got, `"usage"`) || u.TotalTokens == 0 {
					t.Fatalf("%s: %s %+v", name, got, u)
				}
				continue
			}
			if got != want || u != wantUsage {
				t.Fatalf("%s split at %d: client stream or usage differ:\n%s\nwant\n%s\n%+v %+v", name, i, got, want, u, wantUsage)
			}
		}
	}
}

func runBedrockStream(t *testing.T, reqJSON string, parts [][]byte) (string, usage.Usage) {
	t.Helper()
	got, u, _ := runBedrockStreamOutcome(t, reqJSON, parts)
	return got, u
}

// runBedrockStreamOutcome is runBedrockStream that also returns the
// response outcome the ledger and logs record.
func runBedrockStreamOutcome(t *testing.T, reqJSON string, parts [][]byte) (string, usage.Usage, string) {
	t.Helper()
	x := bedrockExchange(t)
	x.handle(chatHeaders())
	x.handle(reqBody(reqJSON))
	resp, _ := x.handle(respHeaders(":status", "200", "content-type", "application/vnd.amazon.eventstream"))
	if resp.GetModeOverride() == nil || setHeaders(resp.GetResponseHeaders().GetResponse().GetHeaderMutation())["content-type"] != "text/event-stream; charset=utf-8" {
		t.Fatalf("no streaming override: %v", resp)
	}
	var out strings.Builder
	for i, p := range parts {
		r, _ := x.handle(respBody(string(p), i == len(parts)-1))
		out.Write(clientBytes(r, p))
	}
	u, _ := x.body.usage()
	return out.String(), u, x.body.outcome()
}

// A ConverseStream that ends with its metadata event is complete; one cut
// short is not.
func TestBedrockStreamOutcome(t *testing.T) {
	stream, err := eventstreamtest.FromJSONL(readFixture(t, "bedrock/converse_stream.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		body       []byte
	}{
		{"complete", "", stream},
		{"cut inside a message", outcomeIncomplete, stream[:len(stream)-3]},
	} {
		if _, _, got := runBedrockStreamOutcome(t, `{"model":"bedrock-default","stream":true}`, [][]byte{tc.body}); got != tc.want {
			t.Errorf("%s: outcome %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBedrockStreamBroken(t *testing.T) {
	stream, err := eventstreamtest.FromJSONL(readFixture(t, "bedrock/converse_stream.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := []byte(string(stream))
	corrupt[len(corrupt)-20] ^= 0xff // inside the last message: its CRC fails
	exc, err := eventstreamtest.FromJSONL(readFixture(t, "bedrock/converse_stream_exception.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, typ string
		body      []byte
	}{
		{"corrupt message", "server_error", corrupt},
		{"cut inside a message", "server_error", stream[:len(stream)-3]},
		{"throttling exception", "rate_limit_error", exc},
	} {
		got, _ := runBedrockStream(t, `{"model":"bedrock-default","stream":true}`, [][]byte{tc.body})
		i := strings.Index(got, `data: {"error"`)
		if strings.Contains(got, "[DONE]") || i < 0 || strings.Count(got, `{"error"`) != 1 {
			t.Fatalf("%s: %s", tc.name, got)
		}
		ev := got[i+len("data: "):]
		if gjson.Get(ev[:strings.Index(ev, "\n")], "error.type").Str != tc.typ {
			t.Errorf("%s: %s", tc.name, got)
		}
	}
}

func TestBedrockBufferedAndErrors(t *testing.T) {
	x := bedrockExchange(t)
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"bedrock-default"}`))
	x.handle(respHeaders(":status", "200", "content-type", "application/json"))
	r, _ := x.handle(respBody(string(readFixture(t, "bedrock/converse_response.json")), true))
	out := r.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if gjson.GetBytes(out, "choices.0.message.content").Str != "Hello! How can I help you today?" || gjson.GetBytes(out, "usage.prompt_tokens").Int() != 1512 {
		t.Fatalf("%s", out)
	}

	x = bedrockExchange(t)
	x.handle(chatHeaders())
	x.handle(reqBody(`{"model":"bedrock-default","stream":true}`))
	x.handle(respHeaders(":status", "429", "content-type", "application/json", "x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"))
	r, _ = x.handle(respBody(string(readFixture(t, "bedrock/error_429.json")), true))
	c := r.GetResponseBody().GetResponse()
	if gjson.GetBytes(c.GetBodyMutation().GetBody(), "error.code").Str != "rate_limit_exceeded" {
		t.Fatalf("%s", c.GetBodyMutation().GetBody())
	}
}
