package extproc

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-ai/tollgate/extproc/internal/jsonscan"
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// Each request step alone, on an exchange whose facts are what the steps
// before it would have written.

// stepCase is one run of one step.
type stepCase struct {
	name    string
	snap    *Snapshot         // nil: testSnapshot
	facts   func(x *exchange) // the facts earlier steps wrote
	headers []string          // header steps: the request headers
	body    string            // body steps: the body, its members scanned as parse_json would
	code    string            // the refusal's code; "" when the step accepts
	want    func(*testing.T, *exchange, *upstreamRequest, *mutation)
}

// stepExchange is an exchange after authenticate and classify of a chat
// completion, unless c.facts says otherwise.
func stepExchange(t *testing.T, c stepCase) *exchange {
	snap := c.snap
	if snap == nil {
		snap = testSnapshot(t)
	}
	x := exchangeFor(t, snap)
	x.key = &keys.Key{ID: "k1", Tenant: config.DefaultTenant}
	x.endpoint, x.method, x.path = routing.EndpointChat, "POST", "/v1/chat/completions"
	if c.facts != nil {
		c.facts(x)
	}
	return x
}

func checkStep(t *testing.T, step string, err error, c stepCase) {
	t.Helper()
	got := ""
	if err != nil {
		got = stepFailed(step, err).client.Code
	}
	if got != c.code {
		t.Fatalf("%s: refusal %q (%v), want %q", step, got, err, c.code)
	}
}

func runBodyStep(t *testing.T, s bodyStep, cases []stepCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := stepExchange(t, c)
			req := &upstreamRequest{body: []byte(c.body)}
			if m, err := jsonscan.Object(req.body, nil); err == nil {
				req.members = m
			}
			err := s.run(x, req)
			checkStep(t, s.Name(), err, c)
			if c.want != nil {
				c.want(t, x, req, &req.mu)
			}
		})
	}
}

func runHeaderStep(t *testing.T, s headerStep, cases []stepCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := stepExchange(t, c)
			var mu mutation
			err := s.run(x, headersOf(reqHeaders(false, c.headers...).GetRequestHeaders().GetHeaders()), &mu)
			checkStep(t, s.Name(), err, c)
			if c.want != nil {
				c.want(t, x, nil, &mu)
			}
		})
	}
}

// target points the exchange at a model name as resolve_model would.
func target(name string) func(*exchange) {
	return func(x *exchange) {
		t, ok := x.snap.Routes.Resolve(name)
		if !ok {
			panic("no model " + name)
		}
		x.target, x.rec.model = t, name
	}
}

// member points the exchange at the fallback chain "smart"'s member i.
func member(i int) func(*exchange) {
	return func(x *exchange) {
		t, _ := x.snap.Routes.Resolve("smart")
		x.target, x.rec.model = t.Chain.Members[i], "smart"
	}
}

func both(fs ...func(*exchange)) func(*exchange) {
	return func(x *exchange) {
		for _, f := range fs {
			f(x)
		}
	}
}

// sent is the body as it would leave: every queued edit written.
func sent(t *testing.T, req *upstreamRequest) string {
	t.Helper()
	if !req.applyEdits() {
		t.Fatal("overlapping edits")
	}
	return string(req.body)
}

func TestStepRequireSnapshot(t *testing.T) {
	runHeaderStep(t, headerStep{"require_snapshot", requireSnapshot}, []stepCase{
		{name: "loaded"},
		{name: "not loaded", facts: func(x *exchange) { x.snap = nil }, code: "not_ready"},
	})
}

func TestStepReadIdentityHeaders(t *testing.T) {
	runHeaderStep(t, frontSteps[1], []stepCase{
		{name: "none", want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.appRequested != "" || x.agentID != "" || len(x.meta) != 0 {
				t.Fatalf("read %q %q %v", x.appRequested, x.agentID, x.meta)
			}
		}},
		{name: "app, agent and metadata", headers: []string{appHeader, "bot", agentHeader, "a1", metadataPrefix + "team", "core"},
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.appRequested != "bot" || x.agentID != "a1" || x.meta.get("team") != "core" {
					t.Fatalf("read %q %q %v", x.appRequested, x.agentID, x.meta)
				}
			}},
	})
}

func TestStepSanitizeHeaders(t *testing.T) {
	runHeaderStep(t, frontSteps[2], []stepCase{
		{name: "gateway and credential headers removed",
			headers: []string{"authorization", "Bearer k", clusterHeader, "evil", "accept-encoding", "gzip", "x-custom", "kept"},
			want: func(t *testing.T, _ *exchange, _ *upstreamRequest, mu *mutation) {
				rm := mu.get().GetRemoveHeaders()
				for _, h := range []string{"authorization", clusterHeader, "accept-encoding"} {
					if !slices.Contains(rm, h) {
						t.Errorf("%s not removed: %v", h, rm)
					}
				}
				if slices.Contains(rm, "x-custom") {
					t.Errorf("x-custom removed")
				}
			}},
	})
}

func TestStepAuthenticate(t *testing.T) {
	keyed := func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
		if x.key == nil || x.key.ID != "k1" || x.rec.keyID != "k1" {
			t.Fatalf("key %v", x.key)
		}
	}
	noKey := func(x *exchange) { x.key = nil }
	runHeaderStep(t, frontStep("authenticate"), []stepCase{
		{name: "bearer", facts: noKey, headers: []string{"authorization", "Bearer " + testKey}, want: keyed},
		{name: "bearer any case", facts: noKey, headers: []string{"authorization", "bEaReR " + testKey}, want: keyed},
		{name: "api-key", facts: noKey, headers: []string{"api-key", testKey}, want: keyed},
		{name: "x-api-key", facts: noKey, headers: []string{"x-api-key", testKey}, want: keyed},
		{name: "authorization wins", facts: noKey, headers: []string{"authorization", "Basic x", "api-key", testKey}, code: "invalid_api_key"},
		{name: "wrong key", facts: noKey, headers: []string{"authorization", "Bearer nope"}, code: "invalid_api_key"},
		{name: "none", facts: noKey, code: "invalid_api_key"},
	})
}

func TestStepClassify(t *testing.T) {
	is := func(ep routing.Endpoint, dep string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.proc == nil || x.proc.endpoint != ep || x.endpoint != ep || x.deployment != dep || x.rec.route != ep.String() {
				t.Fatalf("classified %v %q", x.endpoint, x.deployment)
			}
		}
	}
	step := frontStep("classify")
	runHeaderStep(t, step, []stepCase{
		{name: "chat", headers: []string{":method", "POST", ":path", "/v1/chat/completions?x=1"}, want: is(routing.EndpointChat, "")},
		{name: "embeddings", headers: []string{":method", "POST", ":path", "/v1/embeddings"}, want: is(routing.EndpointEmbeddings, "")},
		{name: "models", headers: []string{":method", "GET", ":path", "/v1/models"}, want: is(routing.EndpointModels, "")},
		{name: "transcriptions", headers: []string{":method", "POST", ":path", "/v1/audio/transcriptions"}, want: is(routing.EndpointTranscriptions, "")},
		{name: "azure chat", headers: []string{":method", "POST", ":path", "/openai/deployments/smart/chat/completions?api-version=1"},
			want: is(routing.EndpointChat, "smart")},
		{name: "azure embeddings", headers: []string{":method", "POST", ":path", "/openai/deployments/e/embeddings"}, want: is(routing.EndpointEmbeddings, "e")},
		{name: "azure transcriptions", headers: []string{":method", "POST", ":path", "/openai/deployments/w/audio/transcriptions"},
			want: is(routing.EndpointTranscriptions, "w")},
		{name: "azure models is unknown", headers: []string{":method", "GET", ":path", "/openai/deployments/m/models"}, code: "unknown_url"},
		{name: "azure without deployment", headers: []string{":method", "POST", ":path", "/openai/deployments//chat/completions"}, code: "unknown_url"},
		{name: "unknown", headers: []string{":method", "POST", ":path", "/v1/completions"}, code: "unknown_url"},
		{name: "wrong method", headers: []string{":method", "GET", ":path", "/v1/chat/completions"}, code: "method_not_allowed"},
		{name: "models by POST", headers: []string{":method", "POST", ":path", "/v1/models"}, code: "method_not_allowed"},
		{name: "model by id", headers: []string{":method", "GET", ":path", "/v1/models/smart-default"}, want: isID("smart-default")},
		{name: "model id escaped", headers: []string{":method", "GET", ":path", "/v1/models/local%2Fllama3"}, want: isID("local/llama3")},
		{name: "model id with a slash", headers: []string{":method", "GET", ":path", "/v1/models/local/llama3"}, want: isID("local/llama3")},
		{name: "model id bad escape", headers: []string{":method", "GET", ":path", "/v1/models/a%zz"}, code: "unknown_url"},
		{name: "model without id", headers: []string{":method", "GET", ":path", "/v1/models/"}, code: "unknown_url"},
		{name: "model by DELETE", headers: []string{":method", "DELETE", ":path", "/v1/models/x"}, code: "method_not_allowed"},
		{name: "azure models", headers: []string{":method", "GET", ":path", "/openai/models?api-version=1"}, want: is(routing.EndpointModels, "")},
		{name: "azure model by id", headers: []string{":method", "GET", ":path", "/openai/models/smart-default"}, want: isID("smart-default")},
		{name: "azure v1 chat", headers: []string{":method", "POST", ":path", "/openai/v1/chat/completions"}, want: is(routing.EndpointChat, "")},
		{name: "azure v1 embeddings", headers: []string{":method", "POST", ":path", "/openai/v1/embeddings"}, want: is(routing.EndpointEmbeddings, "")},
		{name: "azure v1 models", headers: []string{":method", "GET", ":path", "/openai/v1/models"}, want: is(routing.EndpointModels, "")},
		{name: "azure v1 unknown", headers: []string{":method", "POST", ":path", "/openai/v1/completions"}, code: "unknown_url"},
		{name: "azure modelsx", headers: []string{":method", "GET", ":path", "/openai/modelsx"}, code: "unknown_url"},
	})
	based := testSnapshot(t)
	based.BasePath = "/api/v1/llm"
	runHeaderStep(t, step, []stepCase{
		{name: "under the base path", snap: based, headers: []string{":method", "POST", ":path", "/api/v1/llm/v1/chat/completions"},
			want: is(routing.EndpointChat, "")},
		{name: "model under the base path", snap: based, headers: []string{":method", "GET", ":path", "/api/v1/llm/v1/models/smart-default"},
			want: isID("smart-default")},
		{name: "azure under the base path", snap: based, headers: []string{":method", "POST", ":path", "/api/v1/llm/openai/deployments/smart/chat/completions"},
			want: is(routing.EndpointChat, "smart")},
		{name: "azure v1 under the base path", snap: based, headers: []string{":method", "POST", ":path", "/api/v1/llm/openai/v1/embeddings"},
			want: is(routing.EndpointEmbeddings, "")},
		{name: "outside the base path", snap: based, headers: []string{":method", "POST", ":path", "/v1/chat/completions"}, code: "unknown_url"},
		{name: "base path alone", snap: based, headers: []string{":method", "GET", ":path", "/api/v1/llm"}, code: "unknown_url"},
		{name: "base path as a name prefix", snap: based, headers: []string{":method", "GET", ":path", "/api/v1/llmx/v1/models"}, code: "unknown_url"},
	})
}

func isID(id string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
	return func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
		if x.proc == nil || x.proc.idPrefix != "/v1/models/" || x.endpoint != routing.EndpointModels || x.pathID != id {
			t.Fatalf("classified %v id %q, want a model %q", x.endpoint, x.pathID, id)
		}
	}
}

func TestStepRequireBody(t *testing.T) {
	runHeaderStep(t, stepRequireBody, []stepCase{
		{name: "body follows"},
		{name: "end of stream on headers", facts: func(x *exchange) { x.noBody = true }, code: "missing_body"},
	})
}

func TestStepTraceHeaders(t *testing.T) {
	runHeaderStep(t, stepTraceHeaders, []stepCase{
		{name: "tracing off adds nothing", want: func(t *testing.T, _ *exchange, _ *upstreamRequest, mu *mutation) {
			if mu.m != nil {
				t.Fatalf("mutation %v", mu.m)
			}
		}},
	})
}

func TestStepListModels(t *testing.T) {
	models := modelsProcessor(nil)
	runHeaderStep(t, models.headers[1], []stepCase{
		{name: "the key's models", want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			ir := x.answer.GetImmediateResponse()
			if ir.GetStatus().GetCode() != 200 || !gjson.GetBytes(ir.GetBody(), `data.#(id=="smart-default")`).Exists() || !x.done {
				t.Fatalf("answer %v", x.answer)
			}
		}},
		{name: "filtered by the key's allowlist", facts: func(x *exchange) { x.key.Models = []string{"embed-default"} },
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				ids := gjson.GetBytes(x.answer.GetImmediateResponse().GetBody(), "data.#.id").String()
				if ids != `["embed-default"]` {
					t.Fatalf("listed %s", ids)
				}
			}},
	})
}

func TestStepRetrieveModel(t *testing.T) {
	model := modelProcessor(nil)
	found := func(id, owner string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			ir := x.answer.GetImmediateResponse()
			want := `{"id":"` + id + `","object":"model","created":0,"owned_by":"` + owner + `"}`
			if ir.GetStatus().GetCode() != 200 || string(ir.GetBody()) != want || !x.done {
				t.Fatalf("answer %v, want %s", x.answer, want)
			}
		}
	}
	id := func(id string, more ...func(*exchange)) func(*exchange) {
		return func(x *exchange) {
			x.pathID = id
			for _, f := range more {
				f(x)
			}
		}
	}
	onlyEmbed := func(x *exchange) { x.key.Models = []string{"embed-default"} }
	runHeaderStep(t, model.headers[1], []stepCase{
		{name: "alias", facts: id("smart-default"), want: found("smart-default", "openai")},
		{name: "provider/model", facts: id("local/llama3"), want: found("local/llama3", "local")},
		{name: "unknown", facts: id("nope"), code: "model_not_found"},
		{name: "provider not offering any model", facts: id("openai/o9"), code: "model_not_found"},
		{name: "outside the key's allowlist", facts: id("smart-default", onlyEmbed), code: "model_not_found"},
		{name: "inside the key's allowlist", facts: id("embed-default", onlyEmbed), want: found("embed-default", "openai")},
	})
}

func TestStepParseJSON(t *testing.T) {
	model := func(want string) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.rec.model != want {
				t.Fatalf("model %q, want %q", x.rec.model, want)
			}
		}
	}
	runBodyStep(t, stepParseJSON, []stepCase{
		{name: "model", body: `{"model":"smart-default"}`, want: model("smart-default")},
		{name: "deployment names the model", facts: func(x *exchange) { x.deployment = "dep" }, body: `{}`, want: model("dep")},
		{name: "missing model", body: `{"messages":[]}`, code: "missing_required_parameter"},
		{name: "empty model", body: `{"model":""}`, code: "missing_required_parameter"},
		{name: "model not a string", body: `{"model":7}`, code: "invalid_type"},
		{name: "not an object", body: `[1]`, code: "invalid_json"},
		{name: "invalid", body: `{"model":`, code: "invalid_json"},
		{name: "duplicate key", body: `{"model":"a","model":"b"}`, code: "duplicate_key"},
		{name: "client usage", body: `{"model":"m","stream_options":{"include_usage":true}}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if !x.clientUsage {
					t.Fatal("include_usage not read")
				}
			}},
		{name: "gateway fields", body: `{"model":"m","tollgate_app_id":"bot","tollgate_metadata":{"team":"a"},"tollgate_grounding_context":["g"]}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.appRequested != "bot" || x.meta.get("team") != "a" || !slices.Equal(x.grounding, []string{"g"}) {
					t.Fatalf("read %q %v %v", x.appRequested, x.meta, x.grounding)
				}
			}},
		{name: "app id not a string", body: `{"model":"m","tollgate_app_id":1}`, code: "invalid_type"},
		{name: "metadata value not a string", body: `{"model":"m","tollgate_metadata":{"a":1}}`, code: "invalid_metadata"},
		{name: "grounding not strings", body: `{"model":"m","tollgate_grounding_context":[1]}`, code: "invalid_type"},
	})
}

func TestStepParseStream(t *testing.T) {
	streams := func(want bool) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.stream != want || x.rec.stream != want {
				t.Fatalf("stream %v, want %v", x.stream, want)
			}
		}
	}
	runBodyStep(t, stepParseStream, []stepCase{
		{name: "true", body: `{"stream":true}`, want: streams(true)},
		{name: "false", body: `{"stream":false}`, want: streams(false)},
		{name: "null", body: `{"stream":null}`, want: streams(false)},
		{name: "absent", body: `{}`, want: streams(false)},
		{name: "not a boolean", body: `{"stream":"yes"}`, code: "invalid_type"},
	})
}

func TestStepSelectApp(t *testing.T) {
	snap := guardedSnapshot(t)
	runBodyStep(t, stepSelectApp, []stepCase{
		{name: "no app", snap: snap, want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.app != nil || x.rec.tenant != config.DefaultTenant {
				t.Fatalf("app %v tenant %q", x.app, x.rec.tenant)
			}
		}},
		{name: "named app", snap: snap, facts: func(x *exchange) { x.appRequested = "guarded" },
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.app == nil || x.rec.app != "guarded" {
					t.Fatalf("app %v", x.app)
				}
			}},
		{name: "unknown app", snap: snap, facts: func(x *exchange) { x.appRequested = "nope" }, code: "app_mismatch"},
		{name: "app-scoped key names another", snap: snap, facts: func(x *exchange) { x.key.App, x.appRequested = "guarded", "redacted" }, code: "app_mismatch"},
	})
}

func TestStepCheckAgent(t *testing.T) {
	const uuid = "0b0e4f4e-8c7a-4c43-9d6e-2f1b3c4d5e6f"
	runBodyStep(t, stepCheckAgent, []stepCase{
		{name: "none"},
		{name: "valid recorded", facts: func(x *exchange) { x.agentID = uuid },
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.rec.agentID != uuid {
					t.Fatalf("agent %q", x.rec.agentID)
				}
			}},
		{name: "malformed noted, not recorded", facts: func(x *exchange) { x.agentID = "bob" },
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.rec.agentID != "" || !x.rec.agentInvalid {
					t.Fatalf("agent %q invalid %v", x.rec.agentID, x.rec.agentInvalid)
				}
			}},
		{name: "required by the key", facts: func(x *exchange) { x.key.RequireAgentID = true }, code: "invalid_agent_id"},
		{name: "required and valid", facts: func(x *exchange) { x.key.RequireAgentID, x.agentID = true, uuid }},
	})
}

func TestStepCheckMetadata(t *testing.T) {
	meta := func(kv ...string) func(*exchange) {
		return func(x *exchange) {
			for i := 0; i+1 < len(kv); i += 2 {
				x.meta.set(kv[i], kv[i+1])
			}
		}
	}
	many := make([]string, 0, 200)
	for i := range 100 {
		many = append(many, "k"+itoa(i), "v")
	}
	runBodyStep(t, stepCheckMetadata, []stepCase{
		{name: "recorded", facts: meta("team", "core"), want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.rec.metadata.get("team") != "core" {
				t.Fatalf("metadata %v", x.rec.metadata)
			}
		}},
		{name: "bad key", facts: meta("Team", "core"), code: "invalid_metadata"},
		{name: "value too long", facts: meta("team", strings.Repeat("x", 100_000)), code: "invalid_metadata"},
		{name: "too many keys", facts: meta(many...), code: "invalid_metadata"},
	})
}

func TestStepResolveModel(t *testing.T) {
	runBodyStep(t, stepResolveModel, []stepCase{
		{name: "alias", facts: func(x *exchange) { x.rec.model = "smart-default" },
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.target.Model != "gpt-4o-mini" || x.rec.provider != "openai" || x.rec.providerModel != "gpt-4o-mini" {
					t.Fatalf("target %v", x.target)
				}
			}},
		{name: "unknown", facts: func(x *exchange) { x.rec.model = "nope" }, code: "model_not_found"},
	})
}

func TestStepCheckOffered(t *testing.T) {
	mock := mockExchange(t).snap
	chain := chainSnapshot(t)
	transcribe := func(x *exchange) { x.endpoint = routing.EndpointTranscriptions }
	runBodyStep(t, stepCheckOffered, []stepCase{
		{name: "offered", facts: target("smart-default")},
		{name: "mock has no transcriptions", snap: mock, facts: both(target("demo"), transcribe), code: "unsupported_endpoint"},
		{name: "every chain member checked", snap: chain, facts: both(target("smart"), transcribe), code: "unsupported_endpoint"},
		{name: "chain offers chat", snap: chain, facts: target("smart")},
	})
}

func TestStepConfine(t *testing.T) {
	runBodyStep(t, stepConfine, []stepCase{
		{name: "no allowlist", facts: target("smart-default")},
		{name: "allowed by alias", facts: both(target("smart-default"), func(x *exchange) { x.key.Models = []string{"smart-*"} })},
		{name: "not allowed", facts: both(target("smart-default"), func(x *exchange) { x.key.Models = []string{"embed-default"} }), code: "model_not_allowed"},
	})
}

func TestStepGuardInput(t *testing.T) {
	snap := guardedSnapshot(t)
	app := func(name string) func(*exchange) {
		return func(x *exchange) {
			x.appRequested = name
			if err := selectApp(x, nil); err != nil {
				panic(err)
			}
		}
	}
	redacted := func(t *testing.T, x *exchange, req *upstreamRequest, _ *mutation) {
		if !req.pinned || strings.Contains(sent(t, req), "a@b.example") || x.guard == nil {
			t.Fatalf("not redacted: %s", req.body)
		}
	}
	chat, embeddings := stepGuardInput(chatPieces), stepGuardInput(chatPieces, embeddingPieces)
	if chat.Name() != guardInputStep {
		t.Fatalf("name %q", chat.Name())
	}
	runBodyStep(t, chat, []stepCase{
		{name: "no app, no guard", snap: snap, body: `{"messages":[{"role":"user","content":"forbidden"}]}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.guard != nil {
					t.Fatal("guard without an app")
				}
			}},
		{name: "blocked", snap: snap, facts: app("blocked"), body: `{"messages":[{"role":"user","content":"forbidden"}]}`, code: "guardrail_blocked"},
		{name: "blocked in a text part", snap: snap, facts: app("blocked"),
			body: `{"messages":[{"role":"user","content":[{"type":"text","text":"forbidden"}]}]}`, code: "guardrail_blocked"},
		{name: "blocked in tool arguments", snap: snap, facts: app("blocked"),
			body: `{"messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"forbidden"}}]}]}`, code: "guardrail_blocked"},
		{name: "redacted", snap: snap, facts: app("redacted"), body: `{"messages":[{"role":"user","content":"mail a@b.example"}]}`, want: redacted},
		{name: "chat does not read input", snap: snap, facts: app("blocked"), body: `{"input":"forbidden"}`},
	})
	runBodyStep(t, embeddings, []stepCase{
		{name: "input string", snap: snap, facts: app("blocked"), body: `{"input":"forbidden"}`, code: "guardrail_blocked"},
		{name: "input array", snap: snap, facts: app("blocked"), body: `{"input":["ok","forbidden"]}`, code: "guardrail_blocked"},
		{name: "input redacted", snap: snap, facts: app("redacted"), body: `{"input":["mail a@b.example"]}`, want: redacted},
	})
}

func TestStepCaptureInput(t *testing.T) {
	runBodyStep(t, stepCaptureInput, []stepCase{
		{name: "tracing off: nothing captured", body: `{"messages":[]}`, want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
			if x.tr != nil {
				t.Fatal("span without tracing")
			}
		}},
	})
}

func TestStepAdmit(t *testing.T) {
	runBodyStep(t, stepAdmitChat, []stepCase{
		{name: "no rules, no reservation", facts: target("smart-default"), body: `{}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.reservation != nil || x.budgets != nil {
					t.Fatal("reserved without rules")
				}
			}},
	})
}

func TestStepStripGatewayFields(t *testing.T) {
	runBodyStep(t, stepStripGatewayFields, []stepCase{
		{name: "every tollgate field", body: `{"tollgate_app_id":"a","model":"m","tollgate\u005fmetadata":{},"tollgate_x":1}`,
			want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				if got := sent(t, req); got != `{"model":"m"}` {
					t.Fatalf("sent %s", got)
				}
			}},
		{name: "none", body: `{"model":"m"}`, want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
			if sent(t, req); req.bodyChanged {
				t.Fatal("changed")
			}
		}},
	})
}

func TestStepRewriteModel(t *testing.T) {
	runBodyStep(t, stepRewriteModel, []stepCase{
		{name: "alias to provider id", facts: both(target("smart-default"), func(x *exchange) { x.bodyModel = "smart-default" }),
			body: `{"model":"smart-default"}`, want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				if got := sent(t, req); got != `{"model":"gpt-4o-mini"}` {
					t.Fatalf("sent %s", got)
				}
			}},
		{name: "already the provider id", facts: both(target("openai/gpt-4o-mini"), func(x *exchange) { x.bodyModel = "gpt-4o-mini" }),
			body: `{"model":"gpt-4o-mini"}`, want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				if sent(t, req); req.bodyChanged {
					t.Fatal("changed")
				}
			}},
		{name: "azure body without model", facts: target("smart-default"), body: `{"input":"x"}`,
			want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				if got := sent(t, req); got != `{"input":"x","model":"gpt-4o-mini"}` {
					t.Fatalf("sent %s", got)
				}
			}},
	})
}

func TestStepTranslateBody(t *testing.T) {
	chain := chainSnapshot(t)
	runBodyStep(t, stepTranslateBody, []stepCase{
		{name: "anthropic", snap: chain, facts: member(1), body: `{"model":"smart","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}`,
			want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				b := gjson.ParseBytes(req.body)
				if !req.bodyChanged || b.Get("model").Str != "claude-sonnet-4-5" || b.Get("system").String() == "" || b.Get("max_tokens").Int() != 512 {
					t.Fatalf("translated %s", req.body)
				}
			}},
		{name: "refused by the translator: its own error", snap: chain, facts: member(1), body: `{"model":"smart","messages":"hi"}`, code: "invalid_value"},
	})
}

func TestStepCheckChainMembers(t *testing.T) {
	chain := chainSnapshot(t)
	runBodyStep(t, stepCheckChainMembers, []stepCase{
		{name: "every member takes it", snap: chain, facts: target("smart"), body: `{"model":"smart","messages":[{"role":"user","content":"hi"}]}`,
			want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				if gjson.GetBytes(req.body, "model").Str != "smart" {
					t.Fatalf("the body left OpenAI's format: %s", req.body)
				}
			}},
		{name: "one member refuses", snap: chain, facts: target("smart"), body: `{"model":"smart","messages":"hi"}`, code: "invalid_value"},
	})
}

func TestStepInjectStreamUsage(t *testing.T) {
	stream := func(x *exchange) { x.stream = true }
	injected := func(want bool) func(*testing.T, *exchange, *upstreamRequest, *mutation) {
		return func(t *testing.T, x *exchange, req *upstreamRequest, _ *mutation) {
			got := gjson.Get(sent(t, req), "stream_options.include_usage").Bool()
			if x.injectedUsage != want || got != want {
				t.Fatalf("injected %v, sent %v, want %v", x.injectedUsage, got, want)
			}
		}
	}
	runBodyStep(t, stepInjectStreamUsage, []stepCase{
		{name: "stream", facts: stream, body: `{"stream":true}`, want: injected(true)},
		{name: "other options kept", facts: stream, body: `{"stream":true,"stream_options":{"x":1}}`,
			want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				if got := sent(t, req); got != `{"stream":true,"stream_options":{"x":1,"include_usage":true}}` {
					t.Fatalf("sent %s", got)
				}
			}},
		{name: "client asked", facts: both(stream, func(x *exchange) { x.clientUsage = true }), body: `{"stream":true,"stream_options":{"include_usage":true}}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.injectedUsage {
					t.Fatal("injected")
				}
			}},
		{name: "not a stream", body: `{}`, want: injected(false)},
	})
}

func TestStepSpliceBody(t *testing.T) {
	runBodyStep(t, stepSpliceBody, []stepCase{
		{name: "nothing queued", body: `{"a":1}`, want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
			if req.bodyChanged {
				t.Fatal("changed")
			}
		}},
	})
	// Overlapping edits: never queued by the steps, refused with the cause.
	x := stepExchange(t, stepCase{})
	req := &upstreamRequest{body: []byte(`{"a":1}`)}
	req.edit(1, 4, nil)
	req.edit(2, 5, nil)
	err := spliceBody(x, req)
	if se := stepFailed("splice_body", err); se.client.Code != "rewrite_failed" || !errors.Is(err, errOverlap) {
		t.Fatalf("overlap: %v", err)
	}
}

func TestStepAnswerMock(t *testing.T) {
	mock := mockExchange(t).snap
	runBodyStep(t, stepMockChat, []stepCase{
		{name: "chat", snap: mock, facts: target("demo"), body: `{"model":"tollgate-mock","messages":[{"role":"user","content":"hi"}]}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				ir := x.answer.GetImmediateResponse()
				if ir.GetStatus().GetCode() != 200 || gjson.GetBytes(ir.GetBody(), "object").Str != "chat.completion" || !x.forwarded {
					t.Fatalf("answer %v", x.answer)
				}
			}},
	})
	runBodyStep(t, stepMockEmbeddings, []stepCase{
		{name: "embeddings", snap: mock, facts: both(target("mock/tollgate-mock-embed"), func(x *exchange) { x.endpoint = routing.EndpointEmbeddings }),
			body: `{"model":"tollgate-mock-embed","input":"hi"}`,
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if gjson.GetBytes(x.answer.GetImmediateResponse().GetBody(), "object").Str != "list" {
					t.Fatalf("answer %v", x.answer)
				}
			}},
	})
}

func TestStepUnsupportedEndpoint(t *testing.T) {
	runBodyStep(t, stepUnsupportedEndpoint, []stepCase{{name: "always", code: "unsupported_endpoint"}})
}

func TestStepRouteUpstream(t *testing.T) {
	runBodyStep(t, stepRouteUpstream, []stepCase{
		{name: "provider", facts: target("smart-default"), want: func(t *testing.T, _ *exchange, req *upstreamRequest, mu *mutation) {
			set := setHeaders(mu.get())
			if set[clusterHeader] != "openai" || set[":path"] != "/v1/chat/completions" || set["authorization"] != "Bearer sk-provider-secret" ||
				req.path != "/v1/chat/completions" || set["content-length"] != "" {
				t.Fatalf("set %v", set)
			}
		}},
		{name: "changed body gets its length", facts: target("smart-default"), body: `{"model":"gpt-4o-mini"}`,
			want: func(t *testing.T, _ *exchange, req *upstreamRequest, mu *mutation) {
				req.bodyChanged = true // as rewrite_model leaves it
				mu2 := mutation{}
				req.mu = mu2
				if err := routeUpstream(stepExchange(t, stepCase{facts: target("smart-default")}), req); err != nil {
					t.Fatal(err)
				}
				if setHeaders(req.mu.get())["content-length"] != itoa(len(req.body)) {
					t.Fatalf("set %v", setHeaders(req.mu.get()))
				}
			}},
		{name: "credential unavailable", facts: target("broken-model"), code: "provider_unavailable"},
	})
	// The cause reaches the log, never the client.
	x := stepExchange(t, stepCase{facts: target("broken-model")})
	err := routeUpstream(x, &upstreamRequest{})
	se := stepFailed("route_upstream", err)
	if se.cause == nil || !strings.Contains(se.cause.Error(), "broken") || strings.Contains(string(se.client.Body()), "broken") {
		t.Fatalf("cause %v, client %s", se.cause, se.client.Body())
	}
}

func TestStepTranslatorHeaders(t *testing.T) {
	runBodyStep(t, stepTranslatorHeaders, []stepCase{
		{name: "anthropic", snap: chainSnapshot(t), facts: member(1), want: func(t *testing.T, _ *exchange, _ *upstreamRequest, mu *mutation) {
			if setHeaders(mu.get())["anthropic-version"] == "" {
				t.Fatalf("set %v", setHeaders(mu.get()))
			}
		}},
	})
}

func TestStepRouteChain(t *testing.T) {
	chain := chainSnapshot(t)
	runBodyStep(t, stepRouteChain, []stepCase{
		{name: "chain cluster, no credential", snap: chain, facts: target("smart"), want: func(t *testing.T, _ *exchange, _ *upstreamRequest, mu *mutation) {
			set := setHeaders(mu.get())
			if set[clusterHeader] != "chain_smart" || set[":path"] != "" || set["authorization"] != "" {
				t.Fatalf("set %v", set)
			}
		}},
	})
}

func TestStepMintCredential(t *testing.T) {
	// Minting providers are tested end to end in cloud_test.go.
	runBodyStep(t, stepMintCredential, []stepCase{
		{name: "static credential: nothing to mint", facts: target("smart-default"), want: func(t *testing.T, _ *exchange, _ *upstreamRequest, mu *mutation) {
			if mu.m != nil {
				t.Fatalf("mutation %v", mu.m)
			}
		}},
	})
}

func TestStepParseMultipart(t *testing.T) {
	form := func(parts ...string) string {
		var b strings.Builder
		for i := 0; i+1 < len(parts); i += 2 {
			b.WriteString("--B\r\nContent-Disposition: form-data; name=\"" + parts[i] + "\"\r\n\r\n" + parts[i+1] + "\r\n")
		}
		return b.String() + "--B--\r\n"
	}
	multipart := func(x *exchange) {
		x.endpoint, x.contentType = routing.EndpointTranscriptions, "multipart/form-data; boundary=B"
	}
	runBodyStep(t, stepParseMultipart, []stepCase{
		{name: "model", facts: multipart, body: form("file", "....", "model", "whisper-1"),
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.rec.model != "whisper-1" || x.bodyModel != "whisper-1" || x.boundary != "B" {
					t.Fatalf("model %q boundary %q", x.rec.model, x.boundary)
				}
			}},
		{name: "deployment names the model", facts: both(multipart, func(x *exchange) { x.deployment = "dep" }), body: form("file", "...."),
			want: func(t *testing.T, x *exchange, _ *upstreamRequest, _ *mutation) {
				if x.rec.model != "dep" {
					t.Fatalf("model %q", x.rec.model)
				}
			}},
		{name: "not multipart", facts: func(x *exchange) { x.contentType = "application/json" }, body: `{}`, code: "invalid_content_type"},
		{name: "no model", facts: multipart, body: form("file", "...."), code: "missing_required_parameter"},
		{name: "model twice", facts: multipart, body: form("model", "a", "model", "b"), code: "duplicate_key"},
	})
}

func TestStepRewriteFormModel(t *testing.T) {
	body := "--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nsmart-default\r\n--B--\r\n"
	facts := both(target("smart-default"), func(x *exchange) { x.boundary, x.bodyModel = "B", "smart-default" })
	runBodyStep(t, stepRewriteFormModel, []stepCase{
		{name: "provider id", facts: facts, body: body, want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
			if !req.bodyChanged || !strings.Contains(string(req.body), "\r\n\r\ngpt-4o-mini\r\n") {
				t.Fatalf("body %q", req.body)
			}
		}},
		{name: "unchanged", facts: both(facts, func(x *exchange) { x.bodyModel = "gpt-4o-mini" }), body: body,
			want: func(t *testing.T, _ *exchange, req *upstreamRequest, _ *mutation) {
				if req.bodyChanged {
					t.Fatal("changed")
				}
			}},
	})
}

func TestStepNoFallback(t *testing.T) {
	chain := chainSnapshot(t)
	runBodyStep(t, stepNoFallback, []stepCase{
		{name: "a model", facts: target("smart-default")},
		{name: "a fallback alias", snap: chain, facts: target("smart"), code: "unsupported_endpoint"},
	})
}

func TestAttemptSteps(t *testing.T) {
	snap := chainSnapshot(t)
	t.Run("inject usage only for a stream the client did not ask usage for", func(t *testing.T) {
		for _, tt := range []struct {
			stream, usage, want bool
		}{{true, false, true}, {true, true, false}, {false, false, false}} {
			a := &attempt{srv: New(Options{}), snap: snap, stream: tt.stream, usage: tt.usage}
			a.member, _ = snapMember(snap, 0)
			r := attemptRequest{body: []byte(`{"model":"smart"}`), set: map[string]bool{}}
			for _, s := range []attemptStep{attemptRewriteModel, attemptInjectStreamUsage, attemptSpliceBody} {
				if err := s.run(a, &r); err != nil {
					t.Fatal(err)
				}
			}
			if got := gjson.GetBytes(r.body, "stream_options.include_usage").Bool(); got != tt.want || gjson.GetBytes(r.body, "model").Str != "gpt-4o-mini" {
				t.Errorf("%+v: %s", tt, r.body)
			}
		}
	})
	t.Run("translate", func(t *testing.T) {
		a := &attempt{srv: New(Options{}), snap: snap}
		a.member, _ = snapMember(snap, 1)
		r := attemptRequest{body: []byte(`{"model":"smart","messages":"hi"}`), set: map[string]bool{}}
		if err := attemptTranslateBody.run(a, &r); err == nil {
			t.Fatal("an untranslatable body was translated")
		}
	})
}

func snapMember(s *Snapshot, i int) (routing.Target, bool) {
	t, ok := s.Routes.Resolve("smart")
	return t.Chain.Members[i], ok
}

// TestStepErrors: a step's error carries the client error, the cause and
// the step's name; the refusal is logged with the cause and names the step.
func TestStepErrors(t *testing.T) {
	cause := errors.New("disk on fire")
	client := oaierror.Internal(503, "provider_unavailable", "x")
	for _, tt := range []struct {
		name  string
		err   error
		code  string
		cause error
	}{
		{"client error", oaierror.ModelNotFound("m"), "model_not_found", nil},
		{"with cause", failure(client, cause), "provider_unavailable", cause},
		{"bare error", cause, "internal_error", cause},
	} {
		se := stepFailed("route_upstream", tt.err)
		if se.step != "route_upstream" || se.client.Code != tt.code || se.cause != tt.cause {
			t.Errorf("%s: %+v", tt.name, se)
		}
		if tt.cause != nil && !errors.Is(&se, tt.cause) {
			t.Errorf("%s: cause not unwrapped", tt.name)
		}
	}
	x := newTestExchange(t)
	x.rec.requestID = "rid-9"
	r := x.refuseStep(stepFailed("route_upstream", failure(client, cause)))
	if x.rec.refusalStep != "route_upstream" || x.rec.refusal != "provider_unavailable" || r.GetImmediateResponse().GetStatus().GetCode() != 503 {
		t.Fatalf("refusal %+v", x.rec)
	}
}

// TestProcessors: every processor serves each kind of target, names its
// steps, and is assembled once per snapshot.
func TestProcessors(t *testing.T) {
	snap := testSnapshot(t)
	procs := snap.processors()
	if &procs[0] != &snap.processors()[0] {
		t.Fatal("processors assembled twice for one snapshot")
	}
	for _, p := range procs {
		for _, s := range p.headers {
			if s.Name() == "" {
				t.Errorf("%v: unnamed header step", p.endpoint)
			}
		}
		if p.method == "GET" {
			continue // answered from headers
		}
		for _, s := range p.body {
			if s.Name() == "" {
				t.Errorf("%v: unnamed body step", p.endpoint)
			}
		}
		for k, steps := range p.deliver {
			if len(steps) == 0 {
				t.Errorf("%v: no delivery for target kind %d", p.endpoint, k)
			}
		}
	}
}

// TestRequestLogger: a refusal with a cause is logged once, by the request's
// logger, with what is known of the request and the step's name.
func TestRequestLogger(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	snap := testSnapshot(t)
	x := newExchange(t.Context(), New(Options{Snapshot: func() *Snapshot { return snap }, Logger: zap.New(core)}), snap)
	x.rec.requestID, x.rec.keyID = "rid-7", "k1"
	x.key = &keys.Key{ID: "k1", Tenant: "acme"}
	x.refuseStep(stepFailed("mint_credential", failure(oaierror.Internal(503, "provider_unavailable", "x"), errors.New("sts down"))))
	x.refuseStep(stepFailed("confine", oaierror.ModelNotFound("m"))) // the client's mistake: nothing to log
	entries := logs.FilterMessage("request refused").All()
	if len(entries) != 1 {
		t.Fatalf("%d refusal log lines, want 1", len(entries))
	}
	f := entries[0].ContextMap()
	if f["request_id"] != "rid-7" || f["tenant"] != "acme" || f["key_id"] != "k1" || f["step"] != "mint_credential" ||
		f["code"] != "provider_unavailable" || f["error"] != "sts down" {
		t.Fatalf("fields %v", f)
	}
}

// Each processor's admit step estimates what its body holds: chat reads or
// sets the output cap, other text bodies only estimate the prompt, audio
// estimates nothing.
func TestStepAdmitVariants(t *testing.T) {
	rules, err := NewLimits(&config.Limits{RateLimits: []config.RateLimit{{Scope: "key", TokensPerMinute: 1_000_000}}})
	if err != nil {
		t.Fatal(err)
	}
	snap := testSnapshot(t)
	snap.Limits = rules
	const body = `{"model":"smart-default","messages":[{"role":"user","content":"hi"}]}`
	withLimiter := func(x *exchange) {
		x.srv.limiter = limits.NewMemory(time.Now)
		x.target = routing.Target{Provider: x.snap.Routes.Provider("openai")}
	}
	for _, tt := range []struct {
		step           bodyStep
		prompt, maxOut int64
		capped         bool
	}{
		{stepAdmitChat, estimateTokens(len(body)), rules.DefaultMaxTokens(), true},
		{stepAdmitText, estimateTokens(len(body)), 0, false},
		{stepAdmitAudio, 0, 0, false},
	} {
		runBodyStep(t, tt.step, []stepCase{{name: fmt.Sprintf("prompt %d, cap %v", tt.prompt, tt.capped), snap: snap, facts: withLimiter, body: body,
			want: func(t *testing.T, x *exchange, req *upstreamRequest, _ *mutation) {
				if x.reservation == nil || x.promptEst != tt.prompt || x.maxOut != tt.maxOut {
					t.Fatalf("reservation %v, prompt %d, max out %d", x.reservation, x.promptEst, x.maxOut)
				}
				if capped := strings.Contains(sent(t, req), "max_completion_tokens"); capped != tt.capped {
					t.Fatalf("sent %s", sent(t, req))
				}
			}}})
	}
}
