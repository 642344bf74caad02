package extproc

import (
	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/policy/keys"
	"github.com/tollgate-ai/tollgate/policy/tenancy"
	"github.com/tollgate-ai/tollgate/routing"
	"github.com/tollgate-ai/tollgate/routing/translate"
)

// facts are what the request chain learns about a request: who sent it,
// what it asks for and where it goes. The request steps write them; the
// response side only reads them. The one exception is answeredBy, which
// moves target to the fallback-chain member whose provider answered.
type facts struct {
	proc          *processor // the endpoint's processor, chosen by classify
	method, path  string
	endpoint      routing.Endpoint
	deployment    string // Azure-style path: the model name
	pathID        string // the {id} of a path such as /v1/models/{id}, unescaped
	contentType   string // of the client request
	boundary      string // multipart boundary of a transcription request
	bodyModel     string // "model" as the body had it
	key           *keys.Key
	app           *tenancy.App
	appRequested  string // app id the client named
	agentID       string // x-agent-id as sent
	meta          metadata
	grounding     []string            // tollgate_grounding_context
	guard         *guardrails.Request // the app's guardrails for this request
	target        routing.Target
	stream        bool   // client asked for an SSE stream
	injectedUsage bool   // the gateway added stream_options.include_usage
	clientUsage   bool   // the client asked for stream_options.include_usage
	noBody        bool   // request_headers arrived with end_of_stream set
	reqBytes      int    // size of the client's request body
	cacheControl  string // the client's Cache-Control (lookup_cache)

	msgs    messagesFacts    // the Messages endpoints' own facts (messages.go)
	respond translate.Schema // the endpoint's response schema over the provider's; nil: the provider's (responseSchema)
}
