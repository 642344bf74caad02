package devfront

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// attributes evaluates the configured attribute expressions (Envoy ext_proc: request_attributes): ints become
// numbers, bools bools, everything else strings; expressions the stand-in does not know,
// or whose value is unavailable, are omitted silently, as Envoy omits failed ones. a is
// the attempt an upstream filter belongs to (nil downstream, where the upstream
// attributes describe the latest attempt).
func (x *exchange) attributes(exprs []string, a *attempt) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, e := range exprs {
		if v := x.attribute(e, a); v != nil {
			s.Fields[e] = v
		}
	}
	return s
}

func (x *exchange) attribute(expr string, a *attempt) *structpb.Value {
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
		if a != nil {
			return num(a.n) // StreamInfo's attempt count when the attempt started
		}
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
	return x.metadataAttribute(expr, a)
}

// metadataAttribute evaluates xds.upstream_host_metadata.filter_metadata['ns']['key'] and
// xds.cluster_metadata.filter_metadata['ns']['key'] (either quote): the attempt's endpoint
// (Envoy router: upstream_http_filters) or its cluster. String, number, bool and null values are converted as Envoy
// does; anything else, and the whole-metadata forms (which Envoy sends as text proto),
// are omitted.
func (x *exchange) metadataAttribute(expr string, a *attempt) *structpb.Value {
	if a == nil {
		a = x.rt.last
	}
	var md *corev3.Metadata
	var rest string
	if r, ok := strings.CutPrefix(expr, "xds.upstream_host_metadata.filter_metadata"); ok && a != nil {
		md, rest = a.host.metadata, r
	} else if r, ok := strings.CutPrefix(expr, "xds.cluster_metadata.filter_metadata"); ok && x.rt.cluster != nil {
		md, rest = x.rt.cluster.metadata, r
	} else {
		return nil
	}
	keys, ok := bracketKeys(rest)
	if !ok || len(keys) < 2 {
		return nil
	}
	s, ok := md.GetFilterMetadata()[keys[0]]
	if !ok {
		return nil
	}
	v := structpb.NewStructValue(s)
	for _, k := range keys[1:] {
		f, ok := v.GetStructValue().GetFields()[k]
		if !ok {
			return nil
		}
		v = f
	}
	switch v.GetKind().(type) {
	case *structpb.Value_StringValue, *structpb.Value_NumberValue, *structpb.Value_BoolValue, *structpb.Value_NullValue:
		return proto.Clone(v).(*structpb.Value)
	}
	return nil
}

// bracketKeys parses ['a']["b"]... into its keys.
func bracketKeys(s string) ([]string, bool) {
	var keys []string
	for s != "" {
		if len(s) < 4 || s[0] != '[' || (s[1] != '\'' && s[1] != '"') {
			return nil, false
		}
		q := s[1]
		end := strings.IndexByte(s[2:], q)
		if end < 0 || len(s) < end+4 || s[end+3] != ']' {
			return nil, false
		}
		keys = append(keys, s[2:2+end])
		s = s[end+4:]
	}
	return keys, true
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
// stream's dynamic metadata (Envoy ext_proc API: HeaderValue.raw_value). Always set, possibly empty.
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
