package extproc

import (
	"strings"
	"testing"
)

// FuzzMatch: any request path either matches no processor or matches one
// consistently: under the base path, with a non-empty id exactly for the
// processors that take one.
func FuzzMatch(f *testing.F) {
	for _, p := range []string{"/v1/chat/completions", "/v1/models/openai%2Fgpt-4o", "/v1/models/a/b", "/openai/models",
		"/openai/v1/embeddings", "/openai/deployments/x/chat/completions", "/api/v1/llm/v1/models", "/api/v1/llmx/v1/models",
		"/v1/models/%zz", "/openai/v1/", "/api/v1/llm"} {
		f.Add(p, "")
		f.Add(p, "/api/v1/llm")
	}
	procs := testSnapshot(f).processors()
	f.Fuzz(func(t *testing.T, path, base string) {
		p, dep, id := match(procs, base, path)
		if p == nil {
			if dep != "" || id != "" {
				t.Fatalf("no processor but deployment %q id %q", dep, id)
			}
			return
		}
		if !strings.HasPrefix(path, base+"/") {
			t.Fatalf("%q matched outside base %q", path, base)
		}
		if (p.idPrefix != "") != (id != "") {
			t.Fatalf("%q: processor with id prefix %q, id %q", path, p.idPrefix, id)
		}
		if dep != "" && p.azureOp == "" {
			t.Fatalf("%q: deployment %q for a processor without an Azure operation", path, dep)
		}
	})
}
