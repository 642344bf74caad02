package validate

// Extension types that may appear in a bootstrap's "@type" fields. protojson resolves an Any only if its
// Go package is linked in, so everything the shipped configs use (and a few close relatives a
// deployment is likely to add) is imported here. A config using anything else fails with "unable to
// resolve": add the package below rather than loosening the check.
import (
	// Used by envoy/*.yaml.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"                   // StdoutAccessLog
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"                   // ExternalProcessor
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"                     // Router
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3" // HttpConnectionManager
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"                   // Upstream/DownstreamTlsContext
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"                          // HttpProtocolOptions

	// The upstream ext_proc variant (Envoy router: upstream_http_filters; Envoy bootstrap) and other likely additions.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"          // FileAccessLog
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"           // aggregate cluster (provider fallback)
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3" // HeaderMutation
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"  // UpstreamCodec
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3" // envoy-fallback.yaml
)
