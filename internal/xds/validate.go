package xds

import (
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/tollgate-ai/tollgate/envoy/validate"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// Validate checks the resources strictly, as Envoy would load them: inlined
// into a static bootstrap and run through envoy/validate (the protos'
// validation rules and Envoy's start-up checks). Externally managed clusters
// the routes name are stood in for by empty clusters: Tollgate cannot see
// them. Problems are returned as config.Problems paths under "envoy.".
func Validate(r *Resources) config.Problems {
	withExternal := *r
	withExternal.Clusters = append([]*clusterv3.Cluster(nil), r.Clusters...)
	for _, name := range r.External {
		withExternal.Clusters = append(withExternal.Clusters, &clusterv3.Cluster{Name: name})
	}
	bs, err := Bootstrap(BootstrapOptions{Static: &withExternal})
	if err != nil {
		return config.Problems{{Path: "envoy", Message: err.Error()}}
	}
	var ps config.Problems
	for _, p := range validate.Bootstrap(bs) {
		ps = append(ps, config.Problem{Path: strings.TrimSuffix("envoy."+p.Path, "."), Message: "generated Envoy resources: " + p.Message})
	}
	return ps
}
