package devfront

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	upstreamCodecTypeURL  = "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"
	headerMutationTypeURL = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
)

// upstreamFilter is one configured upstream HTTP filter (Envoy router: upstream_http_filters): ext_proc or
// header_mutation. upstream_codec, always last, is the attempt itself.
type upstreamFilter struct {
	name           string
	extProc        *extProcConfig
	headerMutation *headerMutationConfig
}

// loadUpstreamFilters compiles a cluster's HttpProtocolOptions.http_filters (or the
// router's upstream_http_filters). Envoy requires upstream_codec last (Envoy bootstrap).
func loadUpstreamFilters(fs []*hcmv3.HttpFilter, version int) ([]*upstreamFilter, error) {
	last := len(fs) - 1
	if fs[last].GetTypedConfig().GetTypeUrl() != upstreamCodecTypeURL {
		return nil, fmt.Errorf("the last upstream http filter must be envoy.filters.http.upstream_codec, found %q", fs[last].GetName())
	}
	var out []*upstreamFilter
	for _, f := range fs[:last] {
		uf := &upstreamFilter{name: f.GetName()}
		switch url := f.GetTypedConfig().GetTypeUrl(); url {
		case extProcTypeURL:
			ep := &extprocv3.ExternalProcessor{}
			if err := f.GetTypedConfig().UnmarshalTo(ep); err != nil {
				return nil, fmt.Errorf("%q: %w", f.GetName(), err)
			}
			if err := ep.ValidateAll(); err != nil {
				return nil, fmt.Errorf("%q: %w", f.GetName(), err)
			}
			if err := upstreamExtProcSupported(ep); err != nil {
				return nil, fmt.Errorf("%q: %w", f.GetName(), err)
			}
			c, err := loadExtProc(ep, version)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", f.GetName(), err)
			}
			c.filterName = f.GetName()
			uf.extProc = c
		case headerMutationTypeURL:
			hm := &headermutationv3.HeaderMutation{}
			if err := f.GetTypedConfig().UnmarshalTo(hm); err != nil {
				return nil, fmt.Errorf("%q: %w", f.GetName(), err)
			}
			c, err := compileHeaderMutation(hm)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", f.GetName(), err)
			}
			uf.headerMutation = c
		case upstreamCodecTypeURL:
			return nil, errors.New("envoy.filters.http.upstream_codec is terminal and must be the last filter")
		default:
			return nil, fmt.Errorf("upstream http filter %q (%s) is not emulated", f.GetName(), url)
		}
		out = append(out, uf)
	}
	return out, nil
}

// upstreamExtProcSupported rejects what the upstream ext_proc emulation does not cover:
// response processing (Envoy router: upstream_http_filters advises against it in ≤1.36; 1.37 fixed a bug there) and
// mode overrides, which could switch it on.
func upstreamExtProcSupported(ep *extprocv3.ExternalProcessor) error {
	pm := ep.GetProcessingMode()
	switch {
	case pm.GetResponseHeaderMode() != extprocv3.ProcessingMode_SKIP:
		return errors.New("upstream ext_proc: response processing is not emulated: set response_header_mode: SKIP (DEFAULT means SEND)")
	case pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE:
		return errors.New("upstream ext_proc: response processing is not emulated: set response_body_mode: NONE")
	case pm.GetResponseTrailerMode() == extprocv3.ProcessingMode_SEND:
		return errors.New("upstream ext_proc: response trailers are not emulated")
	case ep.GetAllowModeOverride():
		return errors.New("upstream ext_proc: allow_mode_override is not emulated")
	}
	return nil
}

// stage is one step of a request's way through a filter chain: the next filter, or the
// codec at the end.
type stage interface {
	headers(h *headerMap, eos bool)
	data(p []byte, eos bool)
}

// buildChain creates the attempt's upstream filter instances, each feeding the next, with
// the attempt's codec last. Each ext_proc instance opens its own gRPC stream (Envoy ext_proc: one gRPC stream per HTTP request).
func (a *attempt) buildChain(fs []*upstreamFilter) stage {
	var next stage = a
	for i := len(fs) - 1; i >= 0; i-- {
		switch uf := fs[i]; {
		case uf.extProc != nil:
			f := newUpstreamFilter(a.rt.x, a, uf.extProc, next)
			a.filters = append(a.filters, f)
			next = extProcStage{f}
		case uf.headerMutation != nil:
			next = &headerMutationStage{x: a.rt.x, cfg: uf.headerMutation, next: next}
		}
	}
	return next
}

type extProcStage struct{ f *filter }

func (s extProcStage) headers(h *headerMap, eos bool) { s.f.dec.onHeaders(h, eos) }
func (s extProcStage) data(p []byte, eos bool)        { s.f.dec.onData(p, eos) }

// discard is the response-side sink of an upstream ext_proc filter, whose response path
// is never driven (response processing is rejected at Start).
type discard struct{}

func (discard) headers(*headerMap, bool) {}
func (discard) data([]byte, bool)        {}

// headerMutationConfig is envoy.filters.http.header_mutation.
type headerMutationConfig struct {
	request, response []headerOp
}

type headerOp struct {
	remove      string
	removeMatch func(string) bool
	add         *corev3.HeaderValueOption
	value       []formatPart
}

// formatPart is a literal or a %DYNAMIC_METADATA(ns:key:...)% command.
type formatPart struct {
	lit  string
	ns   string
	path []string
}

func compileHeaderMutation(hm *headermutationv3.HeaderMutation) (*headerMutationConfig, error) {
	m := hm.GetMutations()
	if len(m.GetQueryParameterMutations()) > 0 || len(m.GetRequestTrailersMutations()) > 0 ||
		len(m.GetResponseTrailersMutations()) > 0 || len(m.GetFormatters()) > 0 {
		return nil, errors.New("header_mutation: only request_mutations and response_mutations are emulated")
	}
	c := &headerMutationConfig{}
	var err error
	if c.request, err = compileHeaderOps(m.GetRequestMutations()); err != nil {
		return nil, fmt.Errorf("request_mutations: %w", err)
	}
	if c.response, err = compileHeaderOps(m.GetResponseMutations()); err != nil {
		return nil, fmt.Errorf("response_mutations: %w", err)
	}
	return c, nil
}

func compileHeaderOps(ms []*mutationrulesv3.HeaderMutation) ([]headerOp, error) {
	var out []headerOp
	for i, m := range ms {
		var op headerOp
		switch a := m.GetAction().(type) {
		case *mutationrulesv3.HeaderMutation_Remove:
			op.remove = strings.ToLower(a.Remove)
		case *mutationrulesv3.HeaderMutation_RemoveOnMatch_:
			f, err := stringMatcher(a.RemoveOnMatch.GetKeyMatcher())
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			op.removeMatch = f
		case *mutationrulesv3.HeaderMutation_Append:
			op.add = a.Append
			v := a.Append.GetHeader().GetValue()
			if raw := a.Append.GetHeader().GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			parts, err := parseFormat(v)
			if err != nil {
				return nil, fmt.Errorf("[%d] %q: %w", i, a.Append.GetHeader().GetKey(), err)
			}
			op.value = parts
		default:
			return nil, fmt.Errorf("[%d]: unsupported action %T", i, a)
		}
		out = append(out, op)
	}
	return out, nil
}

// parseFormat parses a header value format string. Only %DYNAMIC_METADATA(...)% (and %%)
// is emulated; anything else is rejected so a config never silently differs.
func parseFormat(s string) ([]formatPart, error) {
	var out []formatPart
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit.WriteByte('%')
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '%')
		if end < 0 {
			return nil, fmt.Errorf("unterminated %% command in %q", s)
		}
		cmd := s[i+1 : i+1+end]
		args, ok := strings.CutPrefix(cmd, "DYNAMIC_METADATA(")
		if !ok || !strings.HasSuffix(args, ")") {
			return nil, fmt.Errorf("%%%s%% is not emulated (only %%DYNAMIC_METADATA(ns:key)%%)", cmd)
		}
		keys := strings.Split(strings.TrimSuffix(args, ")"), ":")
		if len(keys) < 2 || slicesContainsEmpty(keys) {
			return nil, fmt.Errorf("%%%s%%: want NAMESPACE:KEY", cmd)
		}
		if lit.Len() > 0 {
			out = append(out, formatPart{lit: lit.String()})
			lit.Reset()
		}
		out = append(out, formatPart{ns: keys[0], path: keys[1:]})
		i += end + 1
	}
	if lit.Len() > 0 {
		out = append(out, formatPart{lit: lit.String()})
	}
	return out, nil
}

func slicesContainsEmpty(ss []string) bool {
	for _, s := range ss {
		if s == "" {
			return true
		}
	}
	return false
}

// format evaluates parts against the stream's dynamic metadata; a missing value is empty
// (the header is then skipped unless keep_empty_value).
func (x *exchange) format(parts []formatPart) string {
	var b strings.Builder
	for _, p := range parts {
		if p.ns == "" {
			b.WriteString(p.lit)
			continue
		}
		s, ok := x.meta[p.ns]
		if !ok {
			continue
		}
		v := structpb.NewStructValue(s)
		for _, k := range p.path {
			v = v.GetStructValue().GetFields()[k]
		}
		b.WriteString(metadataString(v))
	}
	return b.String()
}

// metadataString renders a metadata value as Envoy's formatter does: strings as-is,
// everything else as JSON.
func metadataString(v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return ""
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		if f := k.NumberValue; f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return strconv.FormatInt(int64(f), 10)
		}
		return strconv.FormatFloat(k.NumberValue, 'g', -1, 64)
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	}
	b, err := json.Marshal(v.AsInterface())
	if err != nil {
		return ""
	}
	return string(b)
}

// headerMutationStage applies request mutations to the router's headers, which persist
// across attempts like any upstream filter's mutation (Envoy router: upstream_http_filters).
type headerMutationStage struct {
	x    *exchange
	cfg  *headerMutationConfig
	next stage
}

func (s *headerMutationStage) headers(h *headerMap, eos bool) {
	s.x.applyHeaderOps(h, s.cfg.request)
	s.next.headers(h, eos)
}

func (s *headerMutationStage) data(p []byte, eos bool) { s.next.data(p, eos) }

func (x *exchange) applyHeaderOps(h *headerMap, ops []headerOp) {
	for _, op := range ops {
		switch {
		case op.remove != "":
			h.remove(op.remove)
		case op.removeMatch != nil:
			for _, e := range append([]headerEntry(nil), h.e...) {
				if !strings.HasPrefix(e.k, ":") && op.removeMatch(e.k) {
					h.remove(e.k)
				}
			}
		case op.add != nil:
			applyHeaderValue(h, op.add, x.format(op.value))
		}
	}
}
