package extproc

import (
	"errors"
	"strings"

	"github.com/tidwall/gjson"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/policy/tenancy"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// Identity: who is calling (key, tenant, app, agent), what they attached
// (metadata), and what they may use (model allowlists). The app may be named
// in a header or in the body, so selectApp runs once the body is read (or,
// for body-less requests such as GET /v1/models, from headers alone).

const (
	appHeader      = "x-tollgate-app-id"
	agentHeader    = "x-agent-id"
	metadataPrefix = "x-tollgate-metadata-"
	bodyFieldStart = "tollgate_"
)

// kv is one request metadata entry, kept in arrival order for the log line.
type kv struct{ k, v string }

type metadata []kv

// MarshalLogObject writes the metadata as a JSON object on the log line.
func (m metadata) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for _, e := range m {
		enc.AddString(e.k, e.v)
	}
	return nil
}

func (m metadata) get(k string) string {
	for _, e := range m {
		if e.k == k {
			return e.v
		}
	}
	return ""
}

// set adds or replaces an entry; body values override header values.
func (m *metadata) set(k, v string) {
	for i := range *m {
		if (*m)[i].k == k {
			(*m)[i].v = v
			return
		}
	}
	*m = append(*m, kv{k, v})
}

// readIdentityHeaders collects the identity a client sent in headers before
// sanitizeHeaders removes every x-tollgate-* header from what goes upstream.
func readIdentityHeaders(x *exchange, h headers, _ *mutation) error {
	x.appRequested = h.get(appHeader)
	x.agentID = h.get(agentHeader)
	for _, hv := range h {
		if k, ok := strings.CutPrefix(hv.GetKey(), metadataPrefix); ok {
			v := string(hv.GetRawValue())
			if v == "" {
				v = hv.GetValue()
			}
			x.meta.set(k, v)
		}
	}
	return nil
}

// parseGatewayFields reads tollgate_app_id and tollgate_metadata from the
// body (OpenAI SDKs send them through extra_body).
func parseGatewayFields(x *exchange, req *upstreamRequest) *oaierror.Error {
	if app := req.get("tollgate_app_id"); app.Exists() {
		if app.Type != gjson.String || app.Str == "" {
			return oaierror.InvalidRequest("invalid_type", "tollgate_app_id", "tollgate_app_id must be a non-empty string.")
		}
		x.appRequested = clone(app.Str)
		x.read("tollgate_app_id", app)
	}
	if gc := req.get("tollgate_grounding_context"); gc.Exists() {
		if !gc.IsArray() {
			return oaierror.InvalidRequest("invalid_type", "tollgate_grounding_context", "tollgate_grounding_context must be an array of strings.")
		}
		var bad bool
		gc.ForEach(func(i, v gjson.Result) bool {
			bad = v.Type != gjson.String
			x.grounding = append(x.grounding, clone(v.Str))
			if x.reads != nil {
				x.read("tollgate_grounding_context."+i.String(), v)
			}
			return !bad
		})
		if bad {
			return oaierror.InvalidRequest("invalid_type", "tollgate_grounding_context", "tollgate_grounding_context must be an array of strings.")
		}
	}
	if c := req.get("tollgate_cache"); c.Exists() && c.Type != gjson.True && c.Type != gjson.False {
		return oaierror.InvalidRequest("invalid_type", "tollgate_cache", "tollgate_cache must be true or false.")
	}
	md := req.get("tollgate_metadata")
	if !md.Exists() || md.Type == gjson.Null {
		return nil
	}
	if !md.IsObject() {
		return oaierror.InvalidRequest("invalid_metadata", "tollgate_metadata", "tollgate_metadata must be an object of string values.")
	}
	var bad *oaierror.Error
	md.ForEach(func(k, v gjson.Result) bool {
		if v.Type != gjson.String {
			bad = oaierror.InvalidRequest("invalid_metadata", "tollgate_metadata", "tollgate_metadata values must be strings; "+quote(k.Str)+" is not.")
			return false
		}
		x.meta.set(clone(k.Str), clone(v.Str))
		if x.reads != nil {
			x.read("tollgate_metadata."+k.Str, v)
		}
		return true
	})
	return bad
}

// selectApp selects the app the request acts for.
func selectApp(x *exchange, _ *upstreamRequest) error {
	app, err := x.snap.Tenants.Select(x.key, x.appRequested)
	if errors.Is(err, tenancy.ErrAppMismatch) {
		return &oaierror.Error{Status: 403, Type: oaierror.TypePermission, Code: "app_mismatch", Param: "tollgate_app_id",
			Message: "This key cannot act for the app " + quote(x.appRequested) + "."}
	}
	x.app = app
	x.rec.tenant, x.rec.tier = x.key.Tenant, x.key.Tier
	if app != nil {
		x.rec.app = app.Name
		if app.Tier != "" {
			x.rec.tier = app.Tier
		}
	}
	return nil
}

// checkAgent enforces x-agent-id where the key or app requires it or the
// app keeps an allowlist. Elsewhere a well-formed id is recorded and a
// malformed one only noted, never logged verbatim.
func checkAgent(x *exchange, _ *upstreamRequest) error {
	id := x.agentID
	valid := config.IsUUIDv4(id)
	required := x.key.RequireAgentID || (x.app != nil && (x.app.RequireAgentID || x.app.AgentIDs != nil))
	switch {
	case required && !valid:
		return oaierror.InvalidRequest("invalid_agent_id", agentHeader, "The x-agent-id header must be a UUID v4.")
	case x.app != nil && valid && !x.app.AgentAllowed(id):
		return &oaierror.Error{Status: 403, Type: oaierror.TypePermission, Code: "permission_denied", Param: agentHeader,
			Message: "This agent is not allowed to act for the app " + quote(x.app.Name) + "."}
	case valid:
		x.rec.agentID = id
	case id != "":
		x.rec.agentInvalid = true
	}
	return nil
}

// checkMetadata bounds what clients attach and requires the app's keys.
func checkMetadata(x *exchange, _ *upstreamRequest) error {
	lim := x.snap.Metadata
	if len(x.meta) > lim.MaxKeys {
		return oaierror.InvalidRequest("invalid_metadata", "tollgate_metadata", "At most "+itoa(lim.MaxKeys)+" metadata keys are allowed.")
	}
	for _, e := range x.meta {
		if !validMetadataKey(e.k) {
			return oaierror.InvalidRequest("invalid_metadata", "tollgate_metadata", "Metadata keys must be 1 to 64 characters of a-z, 0-9 and '_'.")
		}
		if len(e.v) > lim.MaxValueLength {
			return oaierror.InvalidRequest("invalid_metadata", "tollgate_metadata", "The metadata value of "+quote(e.k)+" is longer than "+itoa(lim.MaxValueLength)+" bytes.")
		}
	}
	if x.app != nil {
		for _, k := range x.app.RequiredMetadata {
			if x.meta.get(k) == "" {
				return oaierror.InvalidRequest("missing_required_metadata", "tollgate_metadata", "The app "+quote(x.app.Name)+" requires the metadata key "+quote(k)+".")
			}
		}
	}
	x.rec.metadata = x.meta
	return nil
}

func validMetadataKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// allowed reports whether both the key's and the app's allowlists admit a
// model, by the client's name or by its provider/model form.
func (x *exchange) allowed(name, canonical string) bool {
	if !x.key.Models.Allows(name, canonical) {
		return false
	}
	return x.app == nil || x.app.Models.Allows(name, canonical)
}

// confine refuses a model the key or app may not use. It runs for every
// endpoint that names a model.
func confine(x *exchange, _ *upstreamRequest) error {
	if x.allowed(x.target.Name, x.target.Canonical()) {
		return nil
	}
	return &oaierror.Error{Status: 403, Type: oaierror.TypePermission, Code: "model_not_allowed", Param: "model",
		Message: "This key or app may not use the model " + quote(x.rec.model) + "."}
}

// stripGatewayFields removes every top-level tollgate_* field: they are for
// the gateway, never for a provider. Keys are matched as decoded, so an
// escaped "tollgate\u005fmetadata" goes too.
func stripGatewayFields(_ *exchange, req *upstreamRequest) error {
	for i, m := range req.members {
		if m.HasPrefix(bodyFieldStart) {
			req.deleteMember(i)
		}
	}
	return nil
}
