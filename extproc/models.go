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

// modelProcessor serves GET /v1/models/{id} (models.retrieve), scoped like
// the list: a model the list would not show is not found.
func modelProcessor(*Snapshot) *processor {
	return &processor{
		endpoint: routing.EndpointModels,
		method:   "GET",
		idPrefix: "/v1/models/",
		headers:  []headerStep{{"select_app", selectAppHeaders}, {"retrieve_model", retrieveModel}},
	}
}

// selectAppHeaders is selectApp for a request without a body.
func selectAppHeaders(x *exchange, _ headers, _ *mutation) error { return selectApp(x, nil) }

// listModels answers with the models this caller may use.
func listModels(x *exchange, _ headers, _ *mutation) error {
	x.answer = x.immediate(200, modelsList(x.snap.Routes, x.allowed), "tollgate_models")
	return nil
}

// retrieveModel answers with the model the path names, or 404
// model_not_found when it is unknown or this caller may not use it (the
// same answer, so a key cannot probe for models outside its allowlist).
func retrieveModel(x *exchange, _ headers, _ *mutation) error {
	x.rec.model = x.pathID
	tg, ok := x.snap.Routes.Resolve(x.pathID)
	if !ok || !x.allowed(x.pathID, tg.Canonical()) {
		return oaierror.ModelNotFound(x.pathID)
	}
	x.answer = x.immediate(200, appendModel(nil, x.pathID, tg.Provider.Name), "tollgate_models")
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
		b = appendModel(b, name, tg.Provider.Name)
	}
	return append(b, "]}"...)
}

// appendModel appends one model object in OpenAI's format.
func appendModel(b []byte, name, owner string) []byte {
	b = append(b, `{"id":`...)
	b = oaierror.AppendString(b, name)
	b = append(b, `,"object":"model","created":0,"owned_by":`...)
	b = oaierror.AppendString(b, owner)
	return append(b, '}')
}
