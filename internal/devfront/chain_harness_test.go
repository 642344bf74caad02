package devfront

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// A chain test environment: cluster "chain" with one endpoint per provider at increasing
// priorities (metadata tollgate.provider), an optional downstream ext_proc filter
// (processor "down"), optional upstream filters whose ext_proc talks to processor "up",
// and one recording upstream server per endpoint.

const providerAttr = "xds.upstream_host_metadata.filter_metadata['tollgate']['provider']"

type endpointSpec struct {
	provider string
	priority int
	health   string           // health_status; "" = unset
	handler  http.HandlerFunc // nil: 200 "<provider> ok"
	closed   bool             // point it at a port nobody listens on
}

type chainOpts struct {
	endpoints   []endpointSpec
	retry       string // retry_policy YAML (block, without the key); "" = none
	routeExtra  string // more RouteAction fields (YAML lines)
	vhostExtra  string // more VirtualHost fields (YAML lines)
	downMode    string // downstream ext_proc body (YAML lines, e.g. modes(...)); "" = no filter
	down        func(*pstream) error
	upFilters   string // upstream http_filters items before upstream_codec (YAML list items); "" = none
	up          func(*pstream) error
	bufferLimit int
	version     int
	hook        func(string)
}

type chainEnv struct {
	envoy  *Envoy
	down   *procServer
	up     *procServer
	ups    []*upstream // by endpoint index
	order  chan string // the provider of each upstream request, in arrival order
	timers *fakeTimers
	client *http.Client
}

// upstreamExtProc is the usual upstream ext_proc filter: headers SEND, body BUFFERED, no
// response processing, the attempt's attributes, the tollgate namespace both ways.
const upstreamExtProc = `- name: envoy.filters.http.ext_proc
  typed_config:
    "@type": ` + extProcTypeURL + `
    grpc_service: { envoy_grpc: { cluster_name: ext_proc_up } }
    message_timeout: 10s
    processing_mode: { request_header_mode: SEND, request_body_mode: BUFFERED, response_header_mode: SKIP, response_body_mode: NONE }
    request_attributes: ["xds.cluster_name", "` + providerAttr + `", "upstream.request_attempt_count"]
    metadata_options:
      forwarding_namespaces: { untyped: ["tollgate"] }
      receiving_namespaces: { untyped: ["tollgate"] }
`

func (o chainOpts) yaml() string {
	filters := ""
	if o.downMode != "" {
		filters = "- name: envoy.filters.http.ext_proc\n  typed_config:\n    \"@type\": " + extProcTypeURL + "\n" +
			indent("grpc_service: { envoy_grpc: { cluster_name: ext_proc } }\n"+o.downMode, 4)
	}
	filters += "- name: envoy.filters.http.router\n  typed_config:\n    \"@type\": " + routerTypeURL + "\n"
	route := "cluster: chain\ntimeout: 0s\nauto_host_rewrite: true\n" + o.routeExtra
	if o.retry != "" {
		route += "retry_policy:\n" + indent(o.retry, 2)
	}
	limit := ""
	if o.bufferLimit > 0 {
		limit = fmt.Sprintf("    per_connection_buffer_limit_bytes: %d\n", o.bufferLimit)
	}
	var eps strings.Builder
	for _, ep := range o.endpoints {
		health := ""
		if ep.health != "" {
			health = "\n    health_status: " + ep.health
		}
		fmt.Fprintf(&eps, `- priority: %d
  lb_endpoints:
  - endpoint:
      hostname: %s.example
      address: { socket_address: { address: %s.example, port_value: 443 } }
    metadata: { filter_metadata: { tollgate: { provider: %s } } }%s
`, ep.priority, ep.provider, ep.provider, ep.provider, health)
	}
	httpFilters := ""
	if o.upFilters != "" {
		httpFilters = "http_filters:\n" + indent(o.upFilters, 2) +
			"  - name: envoy.filters.http.upstream_codec\n    typed_config: { \"@type\": " + upstreamCodecTypeURL + " }\n"
	}
	return `static_resources:
  listeners:
  - name: test
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
` + limit + `    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": ` + hcmTypeURL + `
          stat_prefix: test
          http_filters:
` + indent(filters, 10) + `          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
` + indent(o.vhostExtra, 14) + `              routes:
              - name: chain
                match: { prefix: "/" }
                route:
` + indent(route, 18) + `
  clusters:
  - name: ext_proc
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: ext_proc
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }]
  - name: ext_proc_up
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: ext_proc_up
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } }] }]
  - name: chain
    type: STRICT_DNS
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http_protocol_options: {} }
` + indent(httpFilters, 8) + `    load_assignment:
      cluster_name: chain
      endpoints:
` + indent(eps.String(), 6)
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newChainEnv(t *testing.T, o chainOpts) *chainEnv {
	t.Helper()
	e := &chainEnv{timers: newFakeTimers(), order: make(chan string, 64)}
	clusters := map[string]string{}
	if o.down == nil {
		o.down = replier(passAll)
	}
	if o.up == nil {
		o.up = replier(passAll)
	}
	e.down = startProcessor(t, o.down)
	e.up = startProcessor(t, o.up)
	clusters["ext_proc"], clusters["ext_proc_up"] = e.down.addr, e.up.addr
	for i, ep := range o.endpoints {
		h := ep.handler
		if h == nil {
			p := ep.provider
			h = func(w http.ResponseWriter, r *http.Request) { _, _ = fmt.Fprintf(w, "%s ok", p) }
		}
		p, inner := ep.provider, h
		h = func(w http.ResponseWriter, r *http.Request) {
			e.order <- p
			inner(w, r)
		}
		u := startUpstream(t, h)
		e.ups = append(e.ups, u)
		addr := u.addr()
		if ep.closed {
			addr = closedAddr(t)
		}
		clusters["chain/#"+strconv.Itoa(i)] = addr
	}
	var err error
	e.envoy, err = Start(context.Background(), Options{Bootstrap: []byte(o.yaml()), Clusters: clusters,
		Version: o.version, NewTimer: e.timers.NewTimer, hook: o.hook})
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, o.yaml())
	}
	t.Cleanup(func() { _ = e.envoy.Close() })
	e.client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: testTimeout}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// fireWith waits until a timer of kind with duration d is armed, then fires the newest.
func (f *fakeTimers) fireWith(t *testing.T, kind TimerKind, d time.Duration) {
	t.Helper()
	deadline := timeoutCh()
	for {
		f.mu.Lock()
		var ft *fakeTimer
		for _, x := range f.timers {
			if x.kind == kind && x.d == d && !x.stopped {
				ft = x
			}
		}
		if ft != nil {
			ft.stopped = true
		}
		f.mu.Unlock()
		if ft != nil {
			ft.ch <- time.Now()
			return
		}
		select {
		case <-f.notify:
		case <-deadline:
			t.Fatalf("no %s timer of %v armed", kind, d)
		}
	}
}

// attempts drains the providers the upstream requests went to, in order.
func (e *chainEnv) attempts() []string {
	var out []string
	for {
		select {
		case p := <-e.order:
			out = append(out, p)
		default:
			return out
		}
	}
}

func (e *chainEnv) env() *env { return &env{envoy: e.envoy, client: e.client, timers: e.timers} }

// async sends a request in the background.
func (e *chainEnv) async(t *testing.T, method, path, body string, hdr ...string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		var r *strings.Reader
		if body != "" || method == http.MethodPost {
			r = strings.NewReader(body)
		}
		if r == nil {
			ch <- e.env().do(t, method, path, nil, hdr...)
			return
		}
		ch <- e.env().do(t, method, path, r, hdr...)
	}()
	return ch
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-timeoutCh():
		t.Fatal("request did not finish")
		return result{}
	}
}

// attr returns attribute name of a ProcessingRequest's attributes.
func attr(m *extprocsvc.ProcessingRequest, name string) *structpb.Value {
	return m.GetAttributes()[attributesKey].GetFields()[name]
}
