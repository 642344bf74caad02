package xds

import (
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

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

// MissingClusters lists the clusters the configuration routes to that a
// bootstrap (YAML or JSON) lacks: with CDS, the externally managed ones,
// which Tollgate does not serve; without it, every one. A bootstrap that
// does not parse is an error (validate.Bootstrap says why).
func MissingClusters(r *Resources, bootstrap []byte) ([]string, error) {
	js, err := yaml.YAMLToJSON(bootstrap)
	if err != nil {
		return nil, err
	}
	var bs bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(js, &bs); err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		have[c.GetName()] = true
	}
	want := r.External
	if bs.GetDynamicResources().GetCdsConfig() == nil {
		want = append(r.ClusterNames(), r.External...)
	}
	var missing []string
	for _, name := range want {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	return missing, nil
}
