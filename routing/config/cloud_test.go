package config

import (
	"strings"
	"testing"
)

func TestCloudProviders(t *testing.T) {
	ok := `version: 1
providers:
  - name: bedrock
    schema: bedrock
    cluster: bedrock
    aws: {region: eu-west-1, access_key_id: {env: AK}, secret_access_key: {file: /s/sk}, session_token: {env: ST}}
  - name: bedrock-irsa
    schema: bedrock
    cluster: bedrock
    aws: {region: us-east-1, host: "bedrock-runtime-fips.us-east-1.amazonaws.com"}
  - name: vertex
    schema: vertex-ai
    cluster: vertex
    vertex: {project: my-project-123, location: us-central1, service_account: {file: /s/sa.json}}
`
	cfg, err := Parse("a.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Providers[0]; p.BasePath != "" || p.AWS.Host != "bedrock-runtime.eu-west-1.amazonaws.com" {
		t.Fatalf("bedrock defaults: %+v %+v", p, p.AWS)
	}
	if cfg.Providers[1].AWS.Host != "bedrock-runtime-fips.us-east-1.amazonaws.com" {
		t.Fatal(cfg.Providers[1].AWS.Host)
	}
	if p := cfg.Providers[2]; p.BasePath != "/v1/projects/my-project-123/locations/us-central1" {
		t.Fatalf("vertex base path %q", p.BasePath)
	}
	if got := strings.Join(cfg.SecretFiles(), ","); got != "/s/sk,/s/sa.json" {
		t.Fatalf("secret files %s", got)
	}

	tests := []struct{ name, provider, want string }{
		{"bedrock without aws", `{name: b, schema: bedrock, cluster: c}`, "providers[0].aws: aws is required for schema bedrock"},
		{"bad region", `{name: b, schema: bedrock, cluster: c, aws: {region: mars}}`, `providers[0].aws.region: region "mars" is not an AWS region`},
		{"half a key pair", `{name: b, schema: bedrock, cluster: c, aws: {region: us-east-1, access_key_id: {env: A}}}`, "access_key_id and secret_access_key go together"},
		{"token without keys", `{name: b, schema: bedrock, cluster: c, aws: {region: us-east-1, session_token: {env: T}}}`, "session_token goes with access_key_id"},
		{"pasted credential", `{name: b, schema: bedrock, cluster: c, aws: {region: us-east-1}, credential: {header: authorization, source: {env: X}}}`, "schema bedrock mints its credential"},
		{"base path", `{name: b, schema: bedrock, cluster: c, base_path: /v1, aws: {region: us-east-1}}`, "base_path does not apply to schema bedrock"},
		{"aws elsewhere", `{name: b, schema: openai, cluster: c, aws: {region: us-east-1}}`, "aws applies to schema bedrock only"},
		{"vertex without vertex", `{name: v, schema: vertex-ai, cluster: c}`, "vertex is required for schema vertex-ai"},
		{"vertex bad project", `{name: v, schema: vertex-ai, cluster: c, vertex: {project: X, location: us-central1, service_account: {env: S}}}`, `project "X" is not a Google Cloud project id`},
		{"vertex no service account", `{name: v, schema: vertex-ai, cluster: c, vertex: {project: my-project, location: us-central1}}`, "vertex.service_account: exactly one of env or file is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("a.yaml", []byte("version: 1\nproviders:\n  - "+tc.provider+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCloudBYOK(t *testing.T) {
	base := `version: 1
providers:
  - {name: vertex, schema: vertex-ai, cluster: v, vertex: {project: my-project, location: us-central1, service_account: {env: SA}}}
  - {name: bedrock, schema: bedrock, cluster: b, aws: {region: us-east-1}}
tenants:
  - name: acme
    provider_credentials:
`
	if _, err := Parse("a.yaml", []byte(base+"      - {provider: vertex, source: {file: /s/acme-sa.json}}\n")); err != nil {
		t.Fatalf("vertex BYOK refused: %v", err)
	}
	_, err := Parse("a.yaml", []byte(base+"      - {provider: bedrock, source: {env: X}}\n"))
	if err == nil || !strings.Contains(err.Error(), `provider "bedrock" takes no credential`) {
		t.Fatalf("bedrock BYOK: %v", err)
	}
}
