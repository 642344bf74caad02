// Package validate checks Envoy v3 bootstrap configs strictly against the real Envoy protos
// (go-control-plane), since no Envoy binary is available where Tollgate is built and tested.
//
// A bootstrap (YAML or JSON) is converted to JSON and unmarshalled with protojson into
// bootstrapv3.Bootstrap: unknown fields, unknown "@type"s and bad enum values are errors. Then the
// protoc-gen-validate rules (ValidateAll) run on the bootstrap and on the content of every nested
// google.protobuf.Any, which ValidateAll itself does not look into. Last come a few checks Envoy makes
// at start-up that the protos cannot express: the router filter is last, referenced clusters exist,
// upstream_codec is last in upstream filter chains, and similar.
//
// Only the extension types this package imports (see extensions.go) resolve; a config that uses another
// extension fails with "unable to resolve" until its package is imported there.
package validate

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// Problem is one reason a bootstrap would be rejected.
type Problem struct {
	// File is the path given to File; empty for Bootstrap.
	File string
	// Path locates the offending field with proto field names as written in YAML, for example
	// "static_resources.clusters[0].connect_timeout". Empty when the problem concerns the whole document.
	Path string
	// Message says what is wrong.
	Message string
}

// String formats the problem as "file: path: message", leaving out empty parts.
func (p Problem) String() string {
	var b strings.Builder
	for _, part := range []string{p.File, p.Path} {
		if part != "" {
			b.WriteString(part)
			b.WriteString(": ")
		}
	}
	b.WriteString(p.Message)
	return b.String()
}

// File reads and checks the bootstrap at path. Every returned Problem has File set to path.
func File(path string) []Problem {
	data, err := os.ReadFile(path)
	if err != nil {
		return []Problem{{File: path, Message: fmt.Sprintf("read bootstrap: %v", err)}}
	}
	problems := Bootstrap(data)
	for i := range problems {
		problems[i].File = path
	}
	return problems
}

// Bootstrap checks a bootstrap given as YAML or JSON. It returns nil if Envoy's protos accept it.
// A document that does not unmarshal yields exactly one Problem (protojson stops at the first error).
func Bootstrap(data []byte) []Problem {
	bs, problem := parse(data)
	if problem != nil {
		return []Problem{*problem}
	}
	return check(bs)
}

// parse converts data to a Bootstrap, rejecting unknown fields and unresolvable Any types.
func parse(data []byte) (*bootstrapv3.Bootstrap, *Problem) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, &Problem{Message: fmt.Sprintf("parse YAML: %v", err)}
	}
	if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, &Problem{Message: "empty bootstrap"}
	}
	var bs bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &bs); err != nil {
		p := protojsonProblem(js, err)
		return nil, &p
	}
	return &bs, nil
}

// protojson reports errors as "proto: (line L:C): message", where C counts runes. The prefix's space is
// sometimes a non-breaking one (protobuf-go does that on purpose), so match only the position part.
var protojsonPos = regexp.MustCompile(`\(line (\d+):(\d+)\):\s*`)

// protojsonProblem turns a protojson error into a Problem whose Path is the JSON path at the error's
// position in js.
func protojsonProblem(js []byte, err error) Problem {
	msg := err.Error()
	loc := protojsonPos.FindStringSubmatchIndex(msg)
	if loc == nil {
		msg = strings.TrimLeft(strings.TrimPrefix(msg, "proto:"), " \u00a0")
		return Problem{Message: msg}
	}
	line, _ := strconv.Atoi(msg[loc[2]:loc[3]])
	col, _ := strconv.Atoi(msg[loc[4]:loc[5]])
	return Problem{
		Path:    jsonPathAt(js, byteOffset(js, line, col)),
		Message: msg[loc[1]:],
	}
}
