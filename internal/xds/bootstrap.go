package xds

import (
	"bytes"
	_ "embed"
	"fmt"
	"net"
	"strconv"
	"strings"
	"text/template"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// BootstrapOptions shape a bootstrap. Zero values take the defaults of the
// shipped files.
type BootstrapOptions struct {
	Listen  string // listener "host:port"; DefaultListen
	Admin   string // admin "host:port"; DefaultAdmin
	ExtProc string // tollgate serve's gRPC address, "host:port" or "unix:///path"; DefaultExtProc
	// TLS terminates TLS on the listener (ALPN h2 and http/1.1).
	TLS *ListenerTLS
	// NodeID is the node id Envoy presents to the ADS server; "tollgate" when empty.
	NodeID string
	// Command is the command line named in the header comment.
	Command string
	// Static inlines these resources (clusters and route_config); nil makes
	// an ADS bootstrap whose clusters and routes come from tollgate serve.
	Static *Resources
}

// ListenerTLS names the listener's certificate chain and key files.
type ListenerTLS struct {
	Cert, Key string
}

// Defaults of BootstrapOptions.
const (
	DefaultListen  = "127.0.0.1:10000"
	DefaultAdmin   = "127.0.0.1:9901"
	DefaultExtProc = "127.0.0.1:50051"
	DefaultNodeID  = "tollgate"
	DefaultTLSCert = "/etc/envoy/tls/server.crt"
	DefaultTLSKey  = "/etc/envoy/tls/server.key"
)

//go:embed bootstrap.yaml.tmpl
var bootstrapTmpl string

var tmpl = template.Must(template.New("bootstrap").Option("missingkey=error").Parse(bootstrapTmpl))

// Bootstrap renders an Envoy bootstrap: the listener with the HTTP connection
// manager (ext_proc, router, local replies, access log), admin, runtime and
// the ext_proc cluster; then either the ADS cluster and dynamic_resources
// (routes over RDS "tollgate", clusters over CDS) or, with Static, the
// generated clusters and route configuration inline.
func Bootstrap(o BootstrapOptions) ([]byte, error) {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Admin == "" {
		o.Admin = DefaultAdmin
	}
	if o.ExtProc == "" {
		o.ExtProc = DefaultExtProc
	}
	if o.NodeID == "" {
		o.NodeID = DefaultNodeID
	}
	listen, err := address(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address: %w", err)
	}
	extProc, err := address(o.ExtProc)
	if err != nil {
		return nil, fmt.Errorf("ext_proc address: %w", err)
	}
	adminHost, adminPort, err := hostPort(o.Admin)
	if err != nil {
		return nil, fmt.Errorf("admin address: %w", err)
	}
	data := map[string]any{
		"Command": o.Command, "Static": o.Static != nil, "TLS": o.TLS, "Listen": o.Listen, "ExtProc": o.ExtProc,
		"ListenAddress": listen, "ExtProcAddress": extProc, "AdminHost": adminHost, "AdminPort": adminPort,
		"NodeID": o.NodeID, "Chains": true, "Routes": rdsRoutes, "Clusters": "",
	}
	if r := o.Static; r != nil {
		routes, err := toYAML(r.Routes, "")
		if err != nil {
			return nil, err
		}
		data["Routes"] = "          route_config:\n" + indent(routes, 12)
		clusters, err := clustersYAML(r)
		if err != nil {
			return nil, err
		}
		data["Clusters"] = clusters
		// The provider of the answering endpoint: only chains have it.
		data["Chains"] = hasChainRoute(r.Routes)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// rdsRoutes takes the route configuration from the ADS server.
const rdsRoutes = `          # The route configuration "tollgate" comes from tollgate serve over ADS (RDS): the route on
          # x-tollgate-cluster, one route per fallback chain, and the 404 when no provider was chosen.
          rds:
            route_config_name: tollgate
            config_source:
              ads: {}
              resource_api_version: V3`

// address renders "host:port" as a socket_address and "unix:///path" as a pipe.
func address(a string) (string, error) {
	if path, ok := strings.CutPrefix(a, "unix://"); ok {
		if path == "" {
			return "", fmt.Errorf("%q: empty socket path", a)
		}
		return "pipe: { path: " + strconv.Quote(path) + " }", nil
	}
	host, port, err := hostPort(a)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("socket_address: { address: %s, port_value: %d }", host, port), nil
}

func hostPort(a string) (string, int, error) {
	host, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", a)
	}
	if host == "" || strings.ContainsAny(host, " {}:,#") && net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q: bad host", a)
	}
	return host, port, nil
}

// clustersYAML renders the generated clusters as items of static_resources.clusters.
func clustersYAML(r *Resources) (string, error) {
	var b strings.Builder
	for _, c := range r.Clusters {
		y, err := toYAML(c, "generated from the gateway configuration: "+describe(c.GetName(), r))
		if err != nil {
			return "", err
		}
		b.WriteString("\n")
		b.WriteString(indent(listItem(y), 2))
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func describe(name string, r *Resources) string {
	if len(r.Clusters) > 0 && strings.HasPrefix(name, "chain_") {
		return "fallback chain " + name
	}
	return "provider " + name
}

// toYAML renders a message as block YAML with proto field names, in proto
// field order, with an optional comment above it.
func toYAML(m proto.Message, comment string) (string, error) {
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return "", err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(js, &doc); err != nil {
		return "", err
	}
	plain(&doc)
	if comment != "" && len(doc.Content) > 0 {
		doc.Content[0].HeadComment = comment
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", err
	}
	return b.String(), nil
}

// plain drops JSON's flow and quoting styles; the encoder quotes where YAML needs it.
func plain(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		plain(c)
	}
}

// listItem turns a mapping into a sequence item ("- " before its first key).
func listItem(y string) string {
	var b strings.Builder
	first := true
	for _, l := range strings.SplitAfter(y, "\n") {
		switch {
		case l == "":
		case first && !strings.HasPrefix(l, "#"):
			b.WriteString("- " + l)
			first = false
		case first:
			b.WriteString(l)
		default:
			b.WriteString("  " + l)
		}
	}
	return b.String()
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.TrimSpace(l) != "" {
			b.WriteString(pad)
		}
		b.WriteString(l)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// hasChainRoute reports whether a route goes to a fallback chain: the only
// routes naming their cluster (the provider route takes it from a header).
func hasChainRoute(rc *routev3.RouteConfiguration) bool {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetRoute().GetCluster() != "" {
				return true
			}
		}
	}
	return false
}
