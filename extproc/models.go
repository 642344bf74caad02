package extproc

import (
	"github.com/tollgate-ai/tollgate/extproc/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
)

// modelsList renders GET /v1/models in OpenAI's list format.
func modelsList(t *routing.Table) []byte {
	names := t.Models()
	b := make([]byte, 0, 32+64*len(names))
	b = append(b, `{"object":"list","data":[`...)
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		owner := "tollgate"
		if tg, ok := t.Resolve(name); ok {
			owner = tg.Provider.Name
		}
		b = append(b, `{"id":`...)
		b = oaierror.AppendString(b, name)
		b = append(b, `,"object":"model","created":0,"owned_by":`...)
		b = oaierror.AppendString(b, owner)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
