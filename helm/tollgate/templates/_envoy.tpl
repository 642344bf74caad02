{{/*
The minimal ADS bootstrap. It mirrors what `tollgate envoy bootstrap` prints (internal/xds, envoy/envoy-ads.yaml)
setting for setting; test/helm compares the two as protos, so change internal/xds and this file together.
Differences, all from values: listener address and port, the ext_proc and xDS target (127.0.0.1:<grpcPort>
or a Unix socket), admin port, ext_proc timeouts and buffer limits, node.id, and the extra "health"
listener with its "envoy_admin" cluster. Provider clusters, fallback chains and the route configuration
are not here: tollgate serve generates them from the routing ConfigMap and serves them over ADS.
*/}}
{{- define "tollgate.envoy.bootstrap" -}}
{{- $e := .Values.envoy -}}
# Envoy v3 bootstrap rendered by the tollgate Helm chart (release {{ .Release.Name }}).
# Structure and the reasons for each setting: envoy/envoy.yaml and envoy/README.md in the Tollgate
# repository; the processing mode and shared names are the contract in docs/architecture.md.
# Citations name the Envoy ext_proc docs: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/ext_proc_filter and its API, https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/ext_proc/v3/external_processor.proto.
# Validate with:  tollgate check --envoy envoy.yaml

# Bound to loopback: the admin can drain and reconfigure Envoy. The "health" listener below exposes
# only its read-only /ready and /stats/prometheus to the kubelet and Prometheus.
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: {{ $e.adminPort }} }

# Envoy 1.34.x can accumulate ext_proc message timeouts with the oghttp2 codec (envoy#39699, Envoy ext_proc: message_timeout and failure_mode_allow);
# use nghttp2. The admin layer keeps /runtime_modify working.
layered_runtime:
  layers:
  - name: static
    static_layer:
      envoy.reloadable_features.http2_use_oghttp2: false
  - name: admin
    admin_layer: {}

static_resources:
  listeners:
  - name: tollgate
    address:
      socket_address: { address: {{ $e.listenAddress | quote }}, port_value: {{ $e.port }} }
    # Bounds BUFFERED bodies: a larger request body is a local 413, a larger buffered response a 500
    # (Envoy ext_proc: BUFFERED bodies and the buffer limit). Matches the ext_proc cluster and stays under the gRPC server's MaxRecvMsgSize.
    per_connection_buffer_limit_bytes: {{ int64 $e.bufferLimitBytes }}
    filter_chains:
    {{- if .Values.tls.enabled }}
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            # HTTP/2 for SDKs that speak it, HTTP/1.1 for the rest.
            alpn_protocols: ["h2", "http/1.1"]
            # The tls.existingSecret (kubernetes.io/tls) mounted with its keys renamed; read at start-up.
            tls_certificates:
            - certificate_chain: { filename: {{ include "tollgate.envoyTLSDir" . }}/server.crt }
              private_key: { filename: {{ include "tollgate.envoyTLSDir" . }}/server.key }
      filters:
    {{- else }}
    - filters:
    {{- end }}
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: tollgate
          codec_type: AUTO
          # Envoy is the edge: the client address comes from the connection, and client-sent
          # x-envoy-retry-on / x-envoy-max-retries / x-envoy-upstream-rq-timeout-ms are stripped.
          use_remote_address: true
          # The processor classifies the endpoint from :path; normalise it first.
          normalize_path: true
          merge_slashes: true
          # Bounds the whole stream, ext_proc time included; longer than the per-try idle timeout.
          stream_idle_timeout: {{ $e.timeouts.streamIdle }}
          # Envoy's own local replies in OpenAI's error format, so SDKs surface them as typed API errors
          # with a code (docs/config.md "Errors Envoy generates"). Envoy runs these mappers on every local
          # reply, the processor's ImmediateResponses included, the first matching mapper wins, and a
          # mapper's body_format_override applies only to the replies it matched
          # (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/local_reply).
          # Every gateway reply sets the dynamic metadata tollgate.gateway_reply=true before Envoy sends
          # it (Envoy ext_proc API: ImmediateResponse; Envoy ext_proc API: ProcessingResponse.dynamic_metadata); the metadata_filter below matches only where that key is absent
          # (match_if_key_not_found, https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/accesslog/v3/accesslog.proto#config-accesslog-v3-metadatafilter),
          # so gateway bodies such as model_not_found or guardrail_blocked are never rewritten. There is
          # deliberately no top-level body_format, which would apply to every reply. Messages are fixed
          # texts: %RESPONSE_CODE_DETAILS% and %LOCAL_REPLY_BODY% can name internal clusters and
          # gRPC errors, so they stay in the access log. x-request-id (%REQ(X-REQUEST-ID)%) gives the
          # SDKs their request_id.
          local_reply_config:
            mappers:
            - filter:
                and_filter:
                  filters:
                  - status_code_filter: { comparison: { op: EQ, value: { default_value: 413, runtime_key: tollgate.local_reply.413 } } }
                  - metadata_filter: { matcher: { filter: tollgate, path: [{ key: gateway_reply }], value: { bool_match: false } }, match_if_key_not_found: true }
              headers_to_add:
              - { header: { key: x-request-id, value: "%REQ(X-REQUEST-ID)%" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
              body_format_override:
                json_format:
                  error: { message: "The request body is larger than the gateway accepts.", type: invalid_request_error, code: envoy_payload_too_large }
                content_type: application/json
            - filter:
                and_filter:
                  filters:
                  - status_code_filter: { comparison: { op: EQ, value: { default_value: 408, runtime_key: tollgate.local_reply.408 } } }
                  - metadata_filter: { matcher: { filter: tollgate, path: [{ key: gateway_reply }], value: { bool_match: false } }, match_if_key_not_found: true }
              headers_to_add:
              - { header: { key: x-request-id, value: "%REQ(X-REQUEST-ID)%" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
              body_format_override:
                json_format:
                  error: { message: "The request did not arrive completely in time.", type: invalid_request_error, code: envoy_request_timeout }
                content_type: application/json
            - filter:
                and_filter:
                  filters:
                  - status_code_filter: { comparison: { op: EQ, value: { default_value: 404, runtime_key: tollgate.local_reply.404 } } }
                  - metadata_filter: { matcher: { filter: tollgate, path: [{ key: gateway_reply }], value: { bool_match: false } }, match_if_key_not_found: true }
              headers_to_add:
              - { header: { key: x-request-id, value: "%REQ(X-REQUEST-ID)%" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
              body_format_override:
                json_format:
                  error: { message: "No provider was selected for this request.", type: invalid_request_error, code: envoy_no_route }
                content_type: application/json
            - filter:
                and_filter:
                  filters:
                  - status_code_filter: { comparison: { op: EQ, value: { default_value: 500, runtime_key: tollgate.local_reply.500 } } }
                  - metadata_filter: { matcher: { filter: tollgate, path: [{ key: gateway_reply }], value: { bool_match: false } }, match_if_key_not_found: true }
              headers_to_add:
              - { header: { key: x-request-id, value: "%REQ(X-REQUEST-ID)%" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
              body_format_override:
                json_format:
                  error: { message: "The gateway could not process the request.", type: server_error, code: envoy_processor_error }
                content_type: application/json
            - filter:
                and_filter:
                  filters:
                  - status_code_filter: { comparison: { op: EQ, value: { default_value: 503, runtime_key: tollgate.local_reply.503 } } }
                  - metadata_filter: { matcher: { filter: tollgate, path: [{ key: gateway_reply }], value: { bool_match: false } }, match_if_key_not_found: true }
              headers_to_add:
              - { header: { key: x-request-id, value: "%REQ(X-REQUEST-ID)%" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
              body_format_override:
                json_format:
                  error: { message: "No provider endpoint is available for this request.", type: server_error, code: envoy_upstream_unavailable }
                content_type: application/json
            - filter:
                and_filter:
                  filters:
                  - status_code_filter: { comparison: { op: EQ, value: { default_value: 504, runtime_key: tollgate.local_reply.504 } } }
                  - metadata_filter: { matcher: { filter: tollgate, path: [{ key: gateway_reply }], value: { bool_match: false } }, match_if_key_not_found: true }
              headers_to_add:
              - { header: { key: x-request-id, value: "%REQ(X-REQUEST-ID)%" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
              body_format_override:
                json_format:
                  error: { message: "The gateway timed out.", type: server_error, code: envoy_timeout }
                content_type: application/json
            # Anything else Envoy answers itself (400 bad path, 431, 502, 507 …).
            - filter:
                and_filter:
                  filters:
                  - status_code_filter: { comparison: { op: GE, value: { default_value: 400, runtime_key: tollgate.local_reply.other } } }
                  - metadata_filter: { matcher: { filter: tollgate, path: [{ key: gateway_reply }], value: { bool_match: false } }, match_if_key_not_found: true }
              headers_to_add:
              - { header: { key: x-request-id, value: "%REQ(X-REQUEST-ID)%" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
              body_format_override:
                json_format:
                  error: { message: "The gateway could not handle the request.", type: server_error, code: envoy_error }
                content_type: application/json
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                json_format:
                  start_time: "%START_TIME%"
                  request_id: "%REQ(X-REQUEST-ID)%"
                  method: "%REQ(:METHOD)%"
                  path: "%REQ(:PATH)%"
                  protocol: "%PROTOCOL%"
                  response_code: "%RESPONSE_CODE%"
                  response_code_details: "%RESPONSE_CODE_DETAILS%"
                  response_flags: "%RESPONSE_FLAGS%"
                  route: "%ROUTE_NAME%"
                  cluster: "%UPSTREAM_CLUSTER%"
                  upstream_host: "%UPSTREAM_HOST%"
                  upstream_failure: "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
                  attempts: "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"
                  duration_ms: "%DURATION%"
                  bytes_received: "%BYTES_RECEIVED%"
                  bytes_sent: "%BYTES_SENT%"
                  model: "%DYNAMIC_METADATA(tollgate:model)%"
                  provider: "%DYNAMIC_METADATA(tollgate:provider)%"
          http_filters:
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service:
                envoy_grpc: { cluster_name: tollgate_ext_proc }
              # Fail closed: without the processor nothing is authenticated or metered (Envoy ext_proc: message_timeout and failure_mode_allow).
              failure_mode_allow: false
              message_timeout: {{ $e.timeouts.message }}
              max_message_timeout: {{ $e.timeouts.maxMessage }}
              # docs/architecture.md "Processing mode" (Envoy ext_proc API: CommonResponse.clear_route_cache; Envoy ext_proc API: ProcessingResponse.mode_override).
              processing_mode:
                request_header_mode: SEND
                request_body_mode: BUFFERED
                request_trailer_mode: SKIP
                response_header_mode: SEND
                response_body_mode: BUFFERED
                response_trailer_mode: SKIP
              # The one override the processor uses: STREAMED responses for stream:true requests answered 200.
              allow_mode_override: true
              allowed_override_modes:
              - request_header_mode: SEND
                request_body_mode: BUFFERED
                request_trailer_mode: SKIP
                response_header_mode: SEND
                response_body_mode: STREAMED
                response_trailer_mode: SKIP
              request_attributes: ["request.id"]
              # The last attribute is the provider of the endpoint that answered (empty outside fallback
              # chains): the response must be translated back from that provider's format.
              response_attributes: ["xds.cluster_name", "response.code", "upstream.request_attempt_count",
                "xds.upstream_host_metadata.filter_metadata['tollgate']['provider']"]
              # Without receiving_namespaces Envoy drops all metadata the processor returns (Envoy ext_proc API: ProcessingResponse.dynamic_metadata).
              metadata_options:
                receiving_namespaces: { untyped: ["tollgate"] }
              # No forwarding_namespaces: this processor keeps its state per stream and never reads the
              # metadata back, and forwarding would attach it to every later message, each SSE chunk included.
              # Only the upstream filter of fallback attempts forwards it (docs/architecture.md).
          # The router must be the last filter.
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          # The route configuration "tollgate" comes from tollgate serve over ADS (RDS): the route on
          # x-tollgate-cluster, one route per fallback chain, and the 404 when no provider was chosen.
          rds:
            route_config_name: tollgate
            config_source:
              ads: {}
              resource_api_version: V3

  # Probes come from the kubelet to the pod IP, but the admin is bound to 127.0.0.1. This listener
  # forwards exactly GET /ready (readiness) and /stats/prometheus (metrics) to the admin; everything
  # else is a 404, so the admin's mutating endpoints stay unreachable from the network.
  - name: health
    address:
      socket_address: { address: {{ $e.listenAddress | quote }}, port_value: {{ $e.healthPort }} }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: health
          codec_type: AUTO
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            name: health
            virtual_hosts:
            - name: health
              domains: ["*"]
              routes:
              - name: ready
                match:
                  path: /ready
                  headers:
                  - name: ":method"
                    string_match: { exact: GET }
                route: { cluster: envoy_admin, timeout: 5s }
              - name: metrics
                match:
                  path: /stats/prometheus
                  headers:
                  - name: ":method"
                    string_match: { exact: GET }
                route: { cluster: envoy_admin, timeout: 10s }
              - name: not_found
                match: { prefix: "/" }
                direct_response: { status: 404 }

  clusters:
  # The ext_proc server (tollgate serve). grpc-go serves h2c with prior knowledge, so HTTP/2 explicitly.
  - name: tollgate_ext_proc
    type: STATIC
    connect_timeout: 1s
    # A BUFFERED body travels to the processor as one gRPC message (Envoy ext_proc: BUFFERED bodies and the buffer limit).
    per_connection_buffer_limit_bytes: {{ int64 $e.bufferLimitBytes }}
    # Every HTTP request holds one ext_proc stream for its whole life: lift the 1024 default.
    circuit_breakers:
      thresholds:
      - priority: DEFAULT
        max_connections: 10000
        max_pending_requests: 10000
        max_requests: 10000
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        # No connection_keepalive pings: grpc-go answers frequent pings with GOAWAY "too_many_pings".
        explicit_http_config:
          http2_protocol_options: {}
    load_assignment:
      cluster_name: tollgate_ext_proc
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
            {{- if eq .Values.tollgate.transport "unix" }}
              # tollgate serve --grpc-addr {{ include "tollgate.grpcAddr" . }} (shared emptyDir).
              pipe: { path: {{ include "tollgate.socketDir" . }}/extproc.sock }
            {{- else }}
              socket_address: { address: 127.0.0.1, port_value: {{ .Values.tollgate.grpcPort }} }
            {{- end }}

  # The admin interface, for the health listener only.
  - name: envoy_admin
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: envoy_admin
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: {{ $e.adminPort }} }

  # The ADS server (tollgate serve, on the same gRPC address as ext_proc): provider and fallback-chain
  # clusters (CDS) and the route configuration "tollgate" (RDS), generated from the routing ConfigMap.
  - name: tollgate_xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
    load_assignment:
      cluster_name: tollgate_xds
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
            {{- if eq .Values.tollgate.transport "unix" }}
              pipe: { path: {{ include "tollgate.socketDir" . }}/extproc.sock }
            {{- else }}
              socket_address: { address: 127.0.0.1, port_value: {{ .Values.tollgate.grpcPort }} }
            {{- end }}

# Clusters and routes come from tollgate serve over one ADS stream
# (https://www.envoyproxy.io/docs/envoy/latest/configuration/overview/xds_api#aggregated-discovery-service):
# editing the routing ConfigMap adds, changes or removes providers and fallback chains without a restart.
node:
  id: tollgate
  cluster: tollgate
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: { cluster_name: tollgate_xds }
  cds_config:
    ads: {}
    resource_api_version: V3
{{- end }}
