// Package helm tests the Helm chart in helm/tollgate: it renders the chart with the helm CLI over a matrix
// of values, decodes every manifest strictly into its Kubernetes API type, checks the manifests against
// each other, validates the rendered Envoy bootstrap and gateway configuration with the same code as
// `tollgate check`, and checks that bad values are rejected by values.schema.json.
//
// It is a separate module so that k8s.io/api stays out of the main module's dependencies. Run it with
//
//	cd test/helm && go test ./...
//
// It needs the helm CLI (go install helm.sh/helm/v3/cmd/helm@v3.22.0) on PATH or in $(go env GOPATH)/bin;
// without it the tests are skipped, or fail when CI=true.
package helm
