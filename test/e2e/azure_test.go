package e2e

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/tidwall/gjson"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-ai/tollgate/test/fakeprovider"
)

const azureConfig = `version: 1
providers:
  - name: azure
    schema: azure-openai
    cluster: azure_eastus
    base_path: /openai
    api_version: "2024-10-21"
    credential: {header: api-key, source: {env: E2E_OPENAI_KEY}}
    models: [gpt-4o-prod]
    price_as: {gpt-4o-prod: openai/gpt-4o}   # the deployment runs gpt-4o: price it as OpenAI's gpt-4o
models:
  - {name: azure-default, provider: azure, model: gpt-4o-prod}
`

// withCluster adds a cluster to a bootstrap: a copy of an existing one under
// a new name and hostname. The shipped configs stay as they are; the routes
// and the ext_proc filter under test are theirs.
func withCluster(t *testing.T, bootstrap []byte, from, name, host string) []byte {
	t.Helper()
	js, err := yaml.YAMLToJSON(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	clusters := gjson.GetBytes(js, "static_resources.clusters").Array()
	for _, c := range clusters {
		if c.Get("name").Str != from {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(c.Raw), &m); err != nil {
			t.Fatal(err)
		}
		m["name"] = name
		la := m["load_assignment"].(map[string]any)
		la["cluster_name"] = name
		ep := la["endpoints"].([]any)[0].(map[string]any)["lb_endpoints"].([]any)[0].(map[string]any)["endpoint"].(map[string]any)
		ep["hostname"] = host
		ep["address"].(map[string]any)["socket_address"].(map[string]any)["address"] = host
		delete(m, "transport_socket") // pointed at a plain test server anyway
		var all []any
		if err := json.Unmarshal([]byte(gjson.GetBytes(js, "static_resources.clusters").Raw), &all); err != nil {
			t.Fatal(err)
		}
		var root map[string]any
		if err := json.Unmarshal(js, &root); err != nil {
			t.Fatal(err)
		}
		root["static_resources"].(map[string]any)["clusters"] = append(all, m)
		out, err := json.Marshal(root)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Fatalf("no cluster %s", from)
	return nil
}

func TestAzureProvider(t *testing.T) {
	h := newHarness(t, harnessOptions{extra: azureConfig, azure: true})
	resp, err := h.client.Chat.Completions.New(context.Background(), chatParams("azure-default"))
	if err != nil {
		t.Fatal(err)
	}
	if want := gjson.GetBytes(fixture(t, "azure_openai/chat_response.json"), "choices.0.message.content").Str; resp.Choices[0].Message.Content != want {
		t.Fatalf("answer %q, want %q", resp.Choices[0].Message.Content, want)
	}
	up := lastRequest(t, h.azure)
	if up.Path != "/openai/deployments/gpt-4o-prod/chat/completions" || up.RawQuery != "api-version=2024-10-21" ||
		up.Header.Get("Api-Key") != providerSecret || up.Header.Get("Authorization") != "" || up.Host != "tollgate-e2e.openai.azure.com" {
		t.Fatalf("upstream %s %s?%s", up.Host, up.Path, up.RawQuery)
	}

	acc := streamChat(t, h.client, chatParams("azure-default"))
	if got, want := acc.Choices[0].Message.Content, streamText(t, fixture(t, "azure_openai/chat_stream.sse")); got != want {
		t.Fatalf("assembled %q, want %q", got, want)
	}
	line := h.waitRequestLogs(2)[1]
	if gjson.Get(line, "provider").Str != "azure" || !gjson.Get(line, "usage_from_provider").Bool() {
		t.Fatalf("log %s", line)
	}

	h.azure.Fail(fakeprovider.Status(400, ""))
	_, err = h.client.Chat.Completions.New(context.Background(), chatParams("azure-default"))
	var e *openai.Error
	if !asAPIError(err, &e) || e.StatusCode != 400 {
		t.Fatalf("Azure error: %v", err)
	}
}
