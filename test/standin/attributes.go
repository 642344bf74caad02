package standin

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// attributes evaluates the configured attribute expressions (spec §5): ints become
// numbers, bools bools, everything else strings; expressions the stand-in does not know,
// or whose value is unavailable, are omitted silently, as Envoy omits failed ones.
func (x *exchange) attributes(exprs []string) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, e := range exprs {
		if v := x.attribute(e); v != nil {
			s.Fields[e] = v
		}
	}
	return s
}

func (x *exchange) attribute(expr string) *structpb.Value {
	h := x.reqHeaders
	str := func(v string, ok bool) *structpb.Value {
		if !ok {
			return nil
		}
		return structpb.NewStringValue(v)
	}
	num := func(n int) *structpb.Value { return structpb.NewNumberValue(float64(n)) }
	path := h.value(":path")
	switch expr {
	case "request.id":
		return str(h.get("x-request-id"))
	case "request.path":
		return str(h.get(":path"))
	case "request.url_path":
		p, _, _ := strings.Cut(path, "?")
		return structpb.NewStringValue(p)
	case "request.query":
		_, q, _ := strings.Cut(path, "?")
		return structpb.NewStringValue(q)
	case "request.host":
		return str(h.get(":authority"))
	case "request.method":
		return str(h.get(":method"))
	case "request.scheme":
		return str(h.get(":scheme"))
	case "request.protocol":
		return structpb.NewStringValue("HTTP/1.1")
	case "request.useragent":
		return str(h.get("user-agent"))
	case "request.referer":
		return str(h.get("referer"))
	case "source.address":
		return structpb.NewStringValue(x.r.RemoteAddr)
	case "source.port":
		return portValue(x.r.RemoteAddr)
	case "destination.address":
		if a, ok := x.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			return structpb.NewStringValue(a.String())
		}
		return nil
	case "connection.requested_server_name":
		return structpb.NewStringValue("") // plaintext: no SNI
	case "connection.mtls":
		return structpb.NewBoolValue(false)
	case "xds.route_name":
		if r := x.currentRoute(); r != nil {
			return structpb.NewStringValue(r.name)
		}
		return nil
	case "xds.virtual_host_name":
		if r := x.currentRoute(); r != nil {
			return structpb.NewStringValue(r.vh.name)
		}
		return nil
	case "xds.cluster_name":
		// The upstream cluster exists only once the router chose one.
		return str(x.cluster, x.cluster != "")
	case "upstream.request_attempt_count":
		if x.attempts == 0 {
			return nil
		}
		return num(x.attempts)
	case "response.code":
		if x.respHeaders == nil {
			return nil
		}
		n, err := strconv.Atoi(x.respHeaders.value(":status"))
		if err != nil {
			return nil
		}
		return num(n)
	}
	return nil
}

func portValue(addr string) *structpb.Value {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return nil
	}
	return structpb.NewNumberValue(float64(n))
}

// forwardedMetadata is metadata_context: the forwarding namespaces present in the
// stream's dynamic metadata (spec §1.2). Always set, possibly empty.
func (x *exchange) forwardedMetadata(ns []string) *corev3.Metadata {
	md := &corev3.Metadata{}
	for _, n := range ns {
		if s, ok := x.meta[n]; ok {
			if md.FilterMetadata == nil {
				md.FilterMetadata = map[string]*structpb.Struct{}
			}
			md.FilterMetadata[n] = proto.Clone(s).(*structpb.Struct)
		}
	}
	return md
}
