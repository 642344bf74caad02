package extproc

import (
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
)

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
