package layers

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tollgate-ai/tollgate/"

// A layer is a rank and a name. A package may import a package of a lower
// rank, or of its own layer; never one of a higher rank, nor one of another
// layer of the same rank (domain and schema share a rank so that neither
// imports the other).
type layer struct {
	rank int
	name string
}

var (
	foundation = layer{0, "foundation"} // leaf libraries, value types and file formats: no policy, no configuration
	domain     = layer{1, "domain"}     // one job each (routes, keys, limits, guardrails, translation); compile from their own options
	schema     = layer{1, "schema"}     // the configuration file's schema, loader and validation
	compilers  = layer{2, "compilers"}  // turn the schema into domain options and the routing table
	processor  = layer{3, "processor"}  // the ext_proc service that runs a request through the domain
	assembly   = layer{4, "assembly"}   // wires config, domain and processor into a running gateway
	command    = layer{5, "command"}    // the tollgate binary
	testing_   = layer{6, "test"}       // test support and end-to-end suites
)

// layers assigns every package of the module a layer. A new package fails
// TestLayers until it is added here (and to the table in docs/architecture.md).
var layers = map[string]layer{
	"internal/byteview":                    foundation,
	"internal/cloudauth":                   foundation,
	"internal/eventstream":                 foundation,
	"internal/eventstream/eventstreamtest": foundation,
	"internal/grpccodec":                   foundation,
	"internal/mockprovider":                foundation,
	"internal/oaierror":                    foundation,
	"internal/sse":                         foundation,
	"internal/tracing":                     foundation,
	"internal/yamldoc":                     foundation,
	"internal/layers":                      foundation,
	"extproc/internal/jsonscan":            foundation,
	"routing/pricing":                      foundation,
	"internal/detect":                      foundation,
	"internal/cache":                       foundation,
	"envoy/validate":                       foundation,

	"policy/allow":                         domain,
	"policy/keys":                          domain,
	"policy/limits":                        domain,
	"policy/tenancy":                       domain,
	"policy/guardrails":                    domain,
	"policy/guardrails/internal/grounding": domain,
	"routing/usage":                        domain,
	"routing/translate":                    domain,
	"routing/translate/internal/wire":      domain,
	"routing/translate/anthropic":          domain,
	"routing/translate/bedrock":            domain,
	"routing/translate/openai":             domain,
	"routing/translate/vertex":             domain,
	"routing/translate/responses":          domain,
	"routing/translate/messages":           domain,

	"routing/config": schema,

	"routing":             compilers,
	"internal/configopts": compilers,
	"internal/xds":        compilers,

	"extproc": processor,

	"internal/gateway":  assembly,
	"internal/ledger":   assembly,
	"internal/devfront": assembly,

	"cmd/tollgate": command,

	"test/clients":           testing_,
	"test/e2e":               testing_,
	"test/fakeprovider":      testing_,
	"test/internal/procwait": testing_,
	"test/pgtest":            testing_,
	"test/redistest":         testing_,
}

// allowed reports whether a package of layer from may import one of layer to.
func allowed(from, to layer) bool {
	return to.rank < from.rank || to == from
}

// TestLayers checks every package's (non-test) imports against the layer
// rule. Tests may import helpers from any layer (test/pgtest, fakes).
func TestLayers(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg := strings.TrimPrefix(fields[0], module)
		seen[pkg] = true
		from, ok := layers[pkg]
		if !ok {
			t.Errorf("package %s has no layer: add it to the table here and in docs/architecture.md", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			to, ok := layers[dep]
			if !ok {
				continue // reported as a package without a layer
			}
			if !allowed(from, to) {
				t.Errorf("%s (%s) imports %s (%s): a layer may import only lower ranks or its own layer", pkg, from.name, dep, to.name)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for pkg := range layers {
		if !seen[pkg] {
			t.Errorf("the table names %s, which no longer exists", pkg)
		}
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		from, to layer
		want     bool
	}{
		{domain, foundation, true},
		{domain, domain, true},
		{domain, schema, false}, // domain packages get their options from the assembly
		{schema, domain, false}, // the schema names no domain type
		{compilers, schema, true},
		{foundation, domain, false},
		{processor, assembly, false},
		{assembly, processor, true},
	}
	for _, tt := range tests {
		if got := allowed(tt.from, tt.to); got != tt.want {
			t.Errorf("allowed(%s, %s) = %v, want %v", tt.from.name, tt.to.name, got, tt.want)
		}
	}
}
