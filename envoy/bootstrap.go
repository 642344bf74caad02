// Package envoy holds the shipped Envoy bootstraps. Local is envoy.yaml, the sidecar
// bootstrap `tollgate run` starts Envoy (or the development front) with.
package envoy

import _ "embed"

//go:embed envoy.yaml
var local []byte

// Local returns a copy of envoy/envoy.yaml.
func Local() []byte { return append([]byte(nil), local...) }
