// Package configopts turns the validated configuration schema (package config)
// into the options each domain package compiles from. Domain packages never
// import config: the schema may change shape without touching them, and each
// takes only the part it needs. The gateway assembly calls these; so may
// tests that build a snapshot by hand.
package configopts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/tollgate-ai/tollgate/policy/guardrails"
	"github.com/tollgate-ai/tollgate/policy/tenancy"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// Tenancy returns the tenant directory's options. Tenant credentials are
// read here, through lookupEnv and the filesystem; one that cannot be read
// is returned in the warnings and carried as an error, so that it refuses
// the requests that would use it (never falling back to the platform's
// credential, which would bill the wrong account).
func Tenancy(cfg *config.Config, lookupEnv func(string) (string, bool)) (tenancy.Options, []error) {
	prefixes := map[string]string{}
	documents := map[string]bool{} // providers whose tenant credential is a document (a service-account key)
	for _, p := range cfg.Providers {
		if p.Credential != nil {
			prefixes[p.Name] = p.Credential.Prefix
		}
		documents[p.Name] = p.Schema == config.SchemaVertexAI
	}
	opts := tenancy.Options{DefaultTenant: config.DefaultTenant}
	var warnings []error
	for _, tc := range cfg.Tenants {
		t := tenancy.TenantOptions{Name: tc.Name}
		for _, ac := range tc.Apps {
			ao := tenancy.AppOptions{
				Name: ac.Name, Models: ac.Models, Tier: ac.Tier, GuardrailPolicy: ac.GuardrailPolicy,
				RequiredMetadata: ac.RequiredMetadata, RequireAgentID: ac.RequireAgentID, AgentIDs: ac.AgentIDs,
				OnBudgetExhausted: ac.OnBudgetExhausted, CaptureContent: ac.CaptureContent,
			}
			if ac.Cache != nil {
				ao.Cache, ao.CacheAnyTemp = ac.Cache.Enabled, ac.Cache.AnyTemperature
			}
			t.Apps = append(t.Apps, ao)
		}
		for _, c := range tc.ProviderCredentials {
			resolve := c.Source.Resolve
			if documents[c.Provider] {
				resolve = c.Source.ResolveDocument
			}
			secret, err := resolve(lookupEnv)
			if err != nil {
				err = fmt.Errorf("tenant %s: credential for provider %s: %w", tc.Name, c.Provider, err)
				warnings = append(warnings, err)
				t.Credentials = append(t.Credentials, tenancy.Credential{Provider: c.Provider, Err: err})
				continue
			}
			t.Credentials = append(t.Credentials, tenancy.Credential{Provider: c.Provider, Value: prefixes[c.Provider] + string(secret)})
		}
		opts.Tenants = append(opts.Tenants, t)
	}
	return opts, warnings
}

// NewTenancy compiles cfg's tenant directory: Tenancy, then tenancy.New.
func NewTenancy(cfg *config.Config, lookupEnv func(string) (string, bool)) (*tenancy.Directory, []error) {
	opts, warnings := Tenancy(cfg, lookupEnv)
	return tenancy.New(opts), warnings
}

// Guardrails returns the guardrails section as package guardrails' input,
// or false when the configuration has none.
func Guardrails(cfg *config.Config) (guardrails.Config, bool) {
	if cfg.Guardrails == nil {
		return guardrails.Config{}, false
	}
	var out guardrails.Config
	for _, p := range cfg.Guardrails.Policies {
		pc := guardrails.PolicyConfig{
			Name:              p.Name,
			Input:             guardrailList(p.Input),
			Output:            guardrailList(p.Output),
			OutputWindowBytes: p.OutputWindowBytes,
		}
		if g := p.Grounding; g != nil {
			pc.Grounding = &guardrails.GroundingConfig{
				Name: g.Name, Threshold: g.Threshold, SentenceThreshold: g.SentenceThreshold, Action: guardrails.Action(g.Action),
			}
		}
		out.Policies = append(out.Policies, pc)
	}
	return out, true
}

func guardrailList(in []config.Guardrail) []guardrails.GuardrailConfig {
	if in == nil {
		return nil
	}
	out := make([]guardrails.GuardrailConfig, len(in))
	for i, g := range in {
		out[i] = guardrails.GuardrailConfig{
			Name: g.Name, Type: g.Type, Action: guardrails.Action(g.Action), Roles: g.Roles,
			Entities: g.Entities, Patterns: g.Patterns, Terms: g.Terms, Label: g.Label, RestoreRedacted: g.RestoreRedacted,
			Threshold: g.Threshold, MaxChars: g.MaxChars, MaxTokens: g.MaxTokens, MaxCompletionTokens: g.MaxCompletionTokens,
		}
	}
	return out
}

// CacheScopes returns each guardrail policy's identity in response cache
// keys: its name and a fingerprint of its configuration, so cached answers
// never outlive a change to the policy that judged them.
func CacheScopes(cfg *config.Config) (map[string]string, error) {
	out := map[string]string{}
	if cfg.Guardrails == nil {
		return out, nil
	}
	for _, p := range cfg.Guardrails.Policies {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("cache scope of guardrail policy %s: %w", p.Name, err)
		}
		sum := sha256.Sum256(b)
		out[p.Name] = p.Name + "@" + hex.EncodeToString(sum[:8])
	}
	return out, nil
}
