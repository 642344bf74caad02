package config

import (
	"fmt"
	"regexp"
)

// Cloud provider schemas, whose credentials are minted rather than pasted.
const (
	SchemaBedrock  = "bedrock"   // Amazon Bedrock Converse API, SigV4-signed
	SchemaVertexAI = "vertex-ai" // Google Vertex AI: Gemini (OpenAI-compatible) and Claude (rawPredict), OAuth tokens
)

// AWS configures a bedrock provider: where requests go and how they are signed.
type AWS struct {
	Region string `json:"region"` // e.g. us-east-1; required
	// Host is the Host header Envoy sends (the cluster endpoint's hostname), which the signature covers;
	// default bedrock-runtime.<region>.amazonaws.com.
	Host string `json:"host"`
	// Static keys, usually from a Secret. Without them the standard AWS credential chain is used
	// (environment, web identity / IRSA, shared config, container and instance roles).
	AccessKeyID     *SecretRef `json:"access_key_id"`
	SecretAccessKey *SecretRef `json:"secret_access_key"`
	SessionToken    *SecretRef `json:"session_token"` // optional, with static keys only
}

// Vertex configures a vertex-ai provider.
type Vertex struct {
	Project  string `json:"project"`  // Google Cloud project id; required
	Location string `json:"location"` // region, e.g. us-central1, or "global"; required
	// ServiceAccount is the service-account JSON key access tokens are minted from; required.
	ServiceAccount SecretRef `json:"service_account"`
}

var (
	awsRegionRE   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	hostRE        = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$`)
	gcpProjectRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	gcpLocationRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)
)

// validateCloud checks the bedrock and vertex-ai settings of a provider and fills in their defaults. It
// reports whether the schema is one of them.
func validateCloud(d *document, path string, p *Provider) bool {
	switch p.Schema {
	case SchemaBedrock:
		validateAWS(d, path, p)
	case SchemaVertexAI:
		validateVertex(d, path, p)
	default:
		if p.AWS != nil {
			d.addf(path+".aws", "aws applies to schema %s only", SchemaBedrock)
		}
		if p.Vertex != nil {
			d.addf(path+".vertex", "vertex applies to schema %s only", SchemaVertexAI)
		}
		return false
	}
	if p.Credential != nil {
		d.addf(path+".credential", "schema %s mints its credential; use %s", p.Schema, map[string]string{SchemaBedrock: "aws", SchemaVertexAI: "vertex.service_account"}[p.Schema])
	}
	if p.APIVersion != "" {
		d.addf(path+".api_version", "api_version applies to schema %s only", SchemaAzureOpenAI)
	}
	return true
}

func validateAWS(d *document, path string, p *Provider) {
	if p.Vertex != nil {
		d.addf(path+".vertex", "vertex applies to schema %s only", SchemaVertexAI)
	}
	a := p.AWS
	if a == nil {
		d.addf(path+".aws", "aws is required for schema %s (at least region)", SchemaBedrock)
		return
	}
	if !awsRegionRE.MatchString(a.Region) {
		d.addf(path+".aws.region", "region %q is not an AWS region (e.g. us-east-1)", a.Region)
	}
	if a.Host == "" {
		a.Host = "bedrock-runtime." + a.Region + ".amazonaws.com"
	} else if !hostRE.MatchString(a.Host) {
		d.addf(path+".aws.host", "host %q is not a host name", a.Host)
	}
	if p.BasePath != "" {
		d.addf(path+".base_path", "base_path does not apply to schema %s (requests go to /model/{model}/converse)", SchemaBedrock)
	}
	switch {
	case (a.AccessKeyID == nil) != (a.SecretAccessKey == nil):
		d.addf(path+".aws", "access_key_id and secret_access_key go together; set both, or neither for the default AWS credential chain")
	case a.AccessKeyID != nil:
		validateSecretRef(d, path+".aws.access_key_id", a.AccessKeyID)
		validateSecretRef(d, path+".aws.secret_access_key", a.SecretAccessKey)
		if a.SessionToken != nil {
			validateSecretRef(d, path+".aws.session_token", a.SessionToken)
		}
	case a.SessionToken != nil:
		d.addf(path+".aws.session_token", "session_token goes with access_key_id and secret_access_key")
	}
}

func validateVertex(d *document, path string, p *Provider) {
	if p.AWS != nil {
		d.addf(path+".aws", "aws applies to schema %s only", SchemaBedrock)
	}
	v := p.Vertex
	if v == nil {
		d.addf(path+".vertex", "vertex is required for schema %s (project, location, service_account)", SchemaVertexAI)
		return
	}
	if !gcpProjectRE.MatchString(v.Project) {
		d.addf(path+".vertex.project", "project %q is not a Google Cloud project id", v.Project)
	}
	if !gcpLocationRE.MatchString(v.Location) {
		d.addf(path+".vertex.location", "location %q is not a Google Cloud location (e.g. us-central1)", v.Location)
	}
	if p.BasePath == "" && v.Project != "" && v.Location != "" {
		p.BasePath = "/v1/projects/" + v.Project + "/locations/" + v.Location
	}
	validateSecretRef(d, path+".vertex.service_account", &v.ServiceAccount)
}

// cloudSecretFiles lists the secret files of a provider's cloud settings.
func cloudSecretFiles(p Provider, add func(string)) {
	if a := p.AWS; a != nil {
		for _, r := range []*SecretRef{a.AccessKeyID, a.SecretAccessKey, a.SessionToken} {
			if r != nil {
				add(r.File)
			}
		}
	}
	if v := p.Vertex; v != nil {
		add(v.ServiceAccount.File)
	}
}

// supportedSchemas lists every schema, for messages.
const supportedSchemas = SchemaOpenAI + ", " + SchemaAnthropic + ", " + SchemaAzureOpenAI + ", " + SchemaBedrock + ", " + SchemaVertexAI + ", " + SchemaMock

// maxSecretDocument bounds a secret document such as a service-account key.
const maxSecretDocument = 64 << 10

// ResolveDocument reads a secret that is a document rather than a header
// value (a service-account JSON key): like Resolve, but line breaks are kept
// and the value is not checked for use in a header. Errors never include the
// value.
func (r SecretRef) ResolveDocument(lookupEnv func(string) (string, bool)) ([]byte, error) {
	val, err := r.read(lookupEnv)
	if err != nil {
		return nil, err
	}
	switch {
	case len(val) == 0:
		return nil, fmt.Errorf("secret %s: empty", r)
	case len(val) > maxSecretDocument:
		return nil, fmt.Errorf("secret %s: larger than %d bytes", r, maxSecretDocument)
	}
	return val, nil
}

// mintsFromDocument reports whether a provider defined in this document mints its credential from a
// secret document (vertex-ai's service account), which a tenant may bring instead (BYOK).
func (d *document) mintsFromDocument(name string) bool {
	for _, p := range d.cfg.Providers {
		if p.Name == name {
			return p.Schema == SchemaVertexAI
		}
	}
	return false
}
