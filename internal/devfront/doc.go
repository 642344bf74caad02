// Package devfront is the development front: an Envoy stand-in, an HTTP/1.1 front on
// loopback that drives an ext_proc server exactly as Envoy 1.33–1.36's ext_proc HTTP
// filter does in downstream and upstream placement, with the router's retries across
// prioritised endpoints, under a real Envoy v3 bootstrap. It is for development and
// tests only, never for production: `tollgate run` falls back to it when no envoy binary
// can be found, and the end-to-end tests drive the product through it (no Envoy binary
// can be installed on the project's machines). Its behaviour follows Envoy's ext_proc
// filter docs (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/ext_proc_filter),
// its API (https://www.envoyproxy.io/docs/envoy/latest/api-v3/service/ext_proc/v3/external_processor.proto)
// and its source (source/extensions/filters/http/ext_proc/ext_proc.cc); comments name the place.
//
// Start reads the bootstrap through go-control-plane (YAML → protojson into
// bootstrapv3.Bootstrap, Any types resolved by blank imports, PGV validation), rewritten
// by the same RewriteBootstrap that prepares a bootstrap for a real envoy, so both agree.
// From it the stand-in takes the listener's per_connection_buffer_limit_bytes, the HCM
// (static route_config or RDS, http_filters, use_remote_address, normalize_path,
// merge_slashes, stream_idle_timeout, header limits), the ext_proc filter's whole
// configuration, and the clusters (static, and from CDS: see xDS below): endpoints with
// priorities, metadata and health status, and their upstream HTTP filters.
//
// # Emulated
//
//   - One bidirectional Process stream per HTTP request, opened on the first message,
//     never half-closed, cancelled when the request ends, after a local reply, an
//     ImmediateResponse, a gRPC error or a timeout (Envoy ext_proc: one gRPC stream per HTTP request). OK from the server means
//     "continue without me" (Envoy ext_proc: one gRPC stream per HTTP request).
//   - Request and response header maps as Envoy builds them (Envoy ext_proc API: HeaderValue.raw_value): lower-case keys,
//     raw_value, pseudo-headers, Host as :authority, hop-by-hop headers stripped,
//     x-request-id, x-forwarded-for/-proto with use_remote_address, path normalisation; a
//     chunked upstream's transfer-encoding is visible to the processor but never copied
//     to the client.
//   - A response that starts before the request body ended closes the HTTP/1 connection
//     ("connection: close"), as Envoy's HCM does.
//   - attributes once per direction, metadata_context on every message,
//     protocol_config on the first message (1.34+), observability_mode=false (Envoy ext_proc API: HeaderValue.raw_value; Envoy ext_proc: request_attributes).
//   - Processing modes (Envoy ext_proc: processing_mode message order): headers SEND/SKIP, body NONE, BUFFERED, STREAMED
//     (pipelined, FIFO replies, held data consolidated, replies flushed to the client as
//     they arrive), BUFFERED_PARTIAL, send_body_without_waiting_for_header_response;
//     one state machine per direction (Envoy ext_proc: request and response directions interleave); content-length removal (Envoy ext_proc: content-length after a body mutation); buffer
//     limits with 413/500 (Envoy ext_proc: BUFFERED bodies and the buffer limit) and watermarks (reading stops while data is held).
//   - Reply validation (Envoy ext_proc API: ProcessingResponse; Envoy ext_proc: message_timeout and failure_mode_allow): spurious replies by version, override_message_timeout
//     and mode_override (Envoy ext_proc API: ProcessingResponse.mode_override) with allowed_override_modes and 1.33/1.34+ DEFAULT
//     semantics.
//   - The mutation engine and mutation_rules (Envoy ext_proc API: HeaderMutation), body mutations, the content-length
//     mismatch check and CONTINUE_AND_REPLACE (Envoy ext_proc API: CommonResponse.status; Envoy ext_proc API: BodyMutation; Envoy ext_proc: content-length after a body mutation), route-cache clearing
//     and route_cache_action (Envoy ext_proc API: CommonResponse.clear_route_cache), dynamic metadata (Envoy ext_proc API: ProcessingResponse.dynamic_metadata), ImmediateResponse (Envoy ext_proc API: ImmediateResponse),
//     message timeouts, gRPC failures and failure_mode_allow, status_on_error (Envoy ext_proc: message_timeout and failure_mode_allow), and
//     the rule that local replies never reach the processor (Envoy ext_proc: local replies are not sent to the processor).
//   - The HCM's local_reply_config on every local reply, ImmediateResponses included
//     (after their header mutations): mappers with status_code_filter, metadata_filter
//     (dynamic metadata, match_if_key_not_found), and_filter and or_filter; body,
//     headers_to_add, status_code, body_format_override and body_format with text_format
//     or json_format and content_type, formatting %LOCAL_REPLY_BODY%, %RESPONSE_CODE%,
//     %RESPONSE_CODE_DETAILS% and %REQ(name)%. Other filters and commands fail Start.
//   - The router: virtual hosts by domain, prefix/path/path_separated_prefix/safe_regex
//     matchers, header matchers, cluster, cluster_header (503 cluster_not_found),
//     direct_response, request/response headers_to_add/remove, host_rewrite_literal,
//     auto_host_rewrite (per attempt, once its connection is ready, to the endpoint's
//     hostname, kept when the endpoint is pointed at loopback), prefix_rewrite, route
//     timeout, idle_timeout, ExtProcPerRoute (disabled, processing_mode, metadata
//     namespaces, failure_mode_allow on 1.35+) merged once from the initial route.
//   - Retries (route or virtual host retry_policy): every retry_on condition of HTTP/1.1
//     upstreams (5xx, gateway-error, reset, reset-before-request, connect-failure,
//     retriable-4xx, retriable-status-codes, retriable-headers, envoy-ratelimited, the
//     gRPC ones; refused-stream never occurs over HTTP/1.1), retriable_request_headers,
//     num_retries, only before response headers went downstream and only while the body
//     fits the buffer limit (it is re-sent from the router's copy; retry_or_shadow_abandoned
//     otherwise), Envoy's jittered exponential back-off and rate_limited_retry_back_off
//     (reset headers over max_interval are discarded), per_try_timeout (ignored once the
//     response started) and per_try_idle_timeout (both from connection plus complete
//     request; retried as a local reset, 504 once retries are exhausted),
//     include_request_attempt_count / include_attempt_count_in_response, the 503 wording of
//     a retried reset, and the router's and cluster's retry counters.
//   - Host selection: priorities by health (140% overprovisioning, total panic by host
//     count), round robin within a priority, previous_priorities (each retry to the next
//     priority with healthy hosts; all tried: starts over) and previous_hosts with
//     host_selection_retry_max_attempts.
//   - Each attempt connects in parallel with its upstream HTTP filters, on its own
//     connection. Upstream filters (cluster http_filters, else the router's
//     upstream_http_filters): ext_proc and header_mutation (request and response
//     mutations, %DYNAMIC_METADATA(ns:key)% values), upstream_codec last. A new filter
//     instance, so a new gRPC stream, per attempt; its attributes describe the attempt
//     (xds.cluster_name, xds.upstream_host_metadata.filter_metadata[...][...],
//     xds.cluster_metadata.filter_metadata[...][...], upstream.request_attempt_count); the
//     dynamic metadata is the stream's, shared with the downstream filter; header
//     mutations land in the router's headers and persist across attempts, body mutations
//     apply to the attempt's copy; clear_route_cache is ignored and counted; every local
//     reply (ImmediateResponse, gRPC error, message timeout, mutation error) is dropped and
//     counted, leaving the attempt stalled until a per-try, route or idle timeout, or until
//     more request data resumes it unprocessed (Envoy ext_proc API: ImmediateResponse; Envoy router: upstream_http_filters). Its stream closes when the
//     attempt's response headers arrive. Counters of upstream filters are prefixed
//     "upstream.".
//
// Chunker controls where body bytes are cut into codec callbacks (and so STREAMED
// messages), deterministically; Options.NewTimer replaces every timer, the retry back-off
// included, so tests never sleep. Stats and Log expose Envoy's counters and an access
// record per request, with its attempts and the last attempt's endpoint.
//
// # Not emulated
//
//   - HTTP/2 or TLS downstream, HTTP/2 upstream (upstreams are plain HTTP/1.1 to loopback;
//     non-loopback addresses are refused), upgrades and CONNECT.
//   - FULL_DUPLEX_STREAMED, observability_mode, http_service, trailers (only SKIP: a
//     trailers message is never sent, and a trailers reply is spurious), the graceful
//     gRPC close (1.34+ runtime opt-in), the ext_proc cluster's own buffer limit, the
//     x-envoy-internal / x-forwarded-for headers of Envoy's gRPC client (the stream does
//     carry :authority = cluster name and grpc_service.initial_metadata).
//   - Hedging, retry_options_predicates, other retry plugins, circuit breakers and retry
//     budgets, outlier detection and health checks (health_status is static), connection
//     reuse (each attempt opens a connection), TLS and transport_socket_matches (Clusters
//     points endpoints at plain-text loopback servers), x-envoy-retry-on and friends (they
//     are removed, not honoured), load-balancing weights and policies other than round
//     robin, response processing and mode overrides in upstream ext_proc filters (Start
//     rejects them), per-route config for upstream filters.
//   - Other HTTP filters (Start rejects them), dynamic_metadata route matchers,
//     access-log formats, percent-decoding in normalize_path.
//   - Envoy's 1.37+ behaviour (early stream close, local replies of upstream filters).
//
// # xDS
//
// With dynamic_resources.ads_config (api_type GRPC, one envoy_grpc or google_grpc
// service), cds_config {ads: {}} and an HCM whose rds has config_source {ads: {}}, the
// stand-in is a state-of-the-world ADS client
// (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol). The listener, the
// HCM and its filters stay static; clusters come from the bootstrap and from CDS, the
// route table from RDS.
//
//   - Subscription order: CDS (wildcard) first; RDS (the route_config_name) once the
//     initial CDS fetch is over: its clusters applied and warmed, or the response
//     rejected, or cds_config.initial_fetch_timeout (15 s by default) expired
//     ("Eventual consistency considerations" in the protocol page: CDS before EDS before
//     LDS before RDS). Until the initial RDS fetch is over the listener accepts
//     connections but holds requests, as a warming listener would; after an RDS
//     initial_fetch_timeout without routes, every request is a 404 route_not_found.
//   - ACK and NACK ("ACK and NACK semantics summary"): every response is answered once
//     on its type, with the response's nonce; an ACK carries the response's version_info,
//     a NACK the last accepted one and error_detail {code INVALID_ARGUMENT, message}. A
//     response is all or nothing: one bad resource rejects it and nothing changes. Reasons
//     to NACK: a resource of another type, a duplicate name, a field the protos do not
//     define (as Envoy's --reject-unknown-dynamic-fields), the protoc-gen-validate rules
//     and start-up checks of `tollgate check` (envoy/validate.Resource), anything the
//     stand-in does not emulate (Start's rules), EDS clusters, and routes naming an
//     unknown cluster when validate_clusters is true. RDS defaults validate_clusters to
//     false, so such routes are accepted and fail per request
//     (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route.proto).
//     A CDS cluster named like a bootstrap cluster is skipped, as Envoy's cluster manager
//     does.
//   - Cluster warming (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/cluster_manager#cluster-warming):
//     CDS is state of the world, so a cluster absent from a response is removed at once.
//     A new or changed cluster is built (hosts from its inline load_assignment, gRPC
//     clients for its upstream ext_proc filters) and then warms: Options.WarmCluster
//     stands for the initial DNS resolution or EDS load Envoy waits for (nil: none, as for
//     a STATIC cluster). Until then a new cluster does not exist for the router: a route
//     to it answers the route's cluster_not_found_response_code (503 by default, 404 if
//     set) with details cluster_not_found; a changed cluster keeps serving its previous
//     definition and is swapped atomically once warmed. A CDS version counts as applied
//     when no cluster of it is still warming. The ACK does not wait for warming.
//   - Atomic switch for new requests: each request snaps the route table in force when
//     it starts (Envoy's snapped route config), for its whole life, route-cache clears
//     included. Clusters are looked up when the router takes the request, as Envoy's
//     router asks the cluster manager; an attempt in flight finishes on its cluster even
//     after CDS removed it (Envoy drains the removed cluster's connections), and a retry
//     looks the cluster up again: gone, it is a 503 no_healthy_upstream; changed, the
//     retry uses the new hosts and filters (Router::doRetry).
//   - Reconnect: a broken stream is reopened after a jittered exponential back-off
//     (random below a ceiling doubling from 500 ms to 30 s, reset by a response), and
//     every subscription is requested again in order with the last accepted version and
//     no nonce, so a server that still has those versions need not resend them. The
//     config in force stays meanwhile.
//   - Observability: XDS reports per type the applied, accepted and rejected versions
//     with the last error_detail; WaitXDS and WaitApplied wait on them without polling.
//     Stats count cluster_manager.cds.update_success/_rejected and
//     http.<stat_prefix>.rds.<route_config_name>.update_success/_rejected. Options.Clusters
//     entries for clusters the bootstrap does not define point CDS clusters as they arrive.
//
// Not emulated: delta xDS (DELTA_GRPC) and the AGGREGATED_* api types, LDS, EDS (and
// endpoint_name endpoints), SRDS, VHDS, xdstp:// resource names and locators, CDS or RDS
// over anything but ADS, resource TTLs and heartbeats, on-demand CDS, the Resource
// wrapper's name aliases, load reporting, and the control plane's rate limit settings.
// Unknown type URLs are ignored, as Envoy does for types it has no watch for.
//
// Where the stand-in has to choose, it is the stricter party: a BUFFERED body is checked
// against the limit on every chunk (Envoy may let a final codec chunk pass).
package devfront
