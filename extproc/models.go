package extproc

import (
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
)

// modelsProcessor serves GET /v1/models from headers alone: no body
// follows. The app's allowlist filters the list; agent and metadata
// requirements attribute usage, and listing models uses nothing, so they do
// not run.
func modelsProcessor(*Snapshot) *processor {
	return &processor{
		endpoint: routing.EndpointModels,
		method:   "GET",
		path:     "/v1/models",
		headers:  []headerStep{{"select_app", selectAppHeaders}, {"list_models", listModels}},
	}
}

// selectAppHeaders is selectApp for a request without a body.
func selectAppHeaders(x *exchange, _ headers, _ *mutation) error { return selectApp(x, nil) }

// listModels answers with the models this caller may use.
func listModels(x *exchange, _ headers, _ *mutation) error {
	x.answer = x.immediate(200, modelsList(x.snap.Routes, x.allowed), "tollgate_models")
	return nil
}

// modelsList renders GET /v1/models in OpenAI's list format: the models
// this caller may use.
func modelsList(t *routing.Table, allowed func(name, canonical string) bool) []byte {
	names := t.Models()
	b := make([]byte, 0, 32+64*len(names))
	b = append(b, `{"object":"list","data":[`...)
	n := 0
	for _, name := range names {
		tg, ok := t.Resolve(name)
		if !ok || !allowed(name, tg.Canonical()) {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		owner := tg.Provider.Name
		b = append(b, `{"id":`...)
		b = oaierror.AppendString(b, name)
		b = append(b, `,"object":"model","created":0,"owned_by":`...)
		b = oaierror.AppendString(b, owner)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
