package devfront

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// localReplyConfig is the HCM's local_reply_config: mappers that rewrite Envoy's local
// replies, and ImmediateResponses too, since those are sent through the same
// sendLocalReply (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/local_reply).
// The first mapper whose filter matches wins; its body, headers_to_add, status_code and
// body_format_override apply in that order; without a match the top-level body_format
// applies (Envoy's LocalReplyImpl::rewrite).
type localReplyConfig struct {
	mappers []*replyMapper
	format  *bodyFormat // nil: the body stays as it is
}

type replyMapper struct {
	filter  replyFilter
	status  int     // 0: keep
	body    *string // nil: keep
	format  *bodyFormat
	headers []*corev3.HeaderValueOption
}

// replyFilter is the subset of AccessLogFilter the stand-in evaluates.
type replyFilter func(code int, meta map[string]*structpb.Struct) bool

// bodyFormat is a SubstitutionFormatString: text_format or json_format.
type bodyFormat struct {
	text        string
	json        *structpb.Struct
	contentType string
}

func loadLocalReply(lr *hcmv3.LocalReplyConfig) (*localReplyConfig, error) {
	if lr == nil {
		return nil, nil
	}
	c := &localReplyConfig{}
	var err error
	if c.format, err = loadBodyFormat(lr.GetBodyFormat()); err != nil {
		return nil, fmt.Errorf("body_format: %w", err)
	}
	for i, m := range lr.GetMappers() {
		rm := &replyMapper{headers: m.GetHeadersToAdd(), status: int(m.GetStatusCode().GetValue())}
		if rm.filter, err = loadReplyFilter(m.GetFilter()); err != nil {
			return nil, fmt.Errorf("mappers[%d].filter: %w", i, err)
		}
		if b := m.GetBody(); b != nil {
			if _, ok := b.GetSpecifier().(*corev3.DataSource_InlineString); !ok {
				return nil, fmt.Errorf("mappers[%d].body: only inline_string is emulated", i)
			}
			s := b.GetInlineString()
			rm.body = &s
		}
		if rm.format, err = loadBodyFormat(m.GetBodyFormatOverride()); err != nil {
			return nil, fmt.Errorf("mappers[%d].body_format_override: %w", i, err)
		}
		for _, h := range rm.headers {
			if err := checkCommands(h.GetHeader().GetValue()); err != nil {
				return nil, fmt.Errorf("mappers[%d].headers_to_add: %w", i, err)
			}
		}
		c.mappers = append(c.mappers, rm)
	}
	return c, nil
}

// loadReplyFilter compiles status_code_filter, metadata_filter, and_filter and
// or_filter (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/accesslog/v3/accesslog.proto).
// Other filters are rejected rather than guessed.
func loadReplyFilter(f *accesslogv3.AccessLogFilter) (replyFilter, error) {
	switch s := f.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		cmp := s.StatusCodeFilter.GetComparison()
		v := int(cmp.GetValue().GetDefaultValue())
		switch cmp.GetOp() {
		case accesslogv3.ComparisonFilter_EQ:
			return func(code int, _ map[string]*structpb.Struct) bool { return code == v }, nil
		case accesslogv3.ComparisonFilter_GE:
			return func(code int, _ map[string]*structpb.Struct) bool { return code >= v }, nil
		case accesslogv3.ComparisonFilter_LE:
			return func(code int, _ map[string]*structpb.Struct) bool { return code <= v }, nil
		case accesslogv3.ComparisonFilter_NE:
			return func(code int, _ map[string]*structpb.Struct) bool { return code != v }, nil
		}
		return nil, fmt.Errorf("status_code_filter op %v is not emulated", cmp.GetOp())
	case *accesslogv3.AccessLogFilter_MetadataFilter:
		return metadataFilter(s.MetadataFilter)
	case *accesslogv3.AccessLogFilter_AndFilter, *accesslogv3.AccessLogFilter_OrFilter:
		subs := f.GetAndFilter().GetFilters()
		and := f.GetAndFilter() != nil
		if !and {
			subs = f.GetOrFilter().GetFilters()
		}
		var fs []replyFilter
		for i, sub := range subs {
			rf, err := loadReplyFilter(sub)
			if err != nil {
				return nil, fmt.Errorf("filters[%d]: %w", i, err)
			}
			fs = append(fs, rf)
		}
		return func(code int, meta map[string]*structpb.Struct) bool {
			for _, rf := range fs {
				if rf(code, meta) != and {
					return !and
				}
			}
			return and
		}, nil
	}
	return nil, fmt.Errorf("filter %T is not emulated", f.GetFilterSpecifier())
}

// metadataFilter is Envoy's MetadataFilter::evaluate: a key present in the dynamic
// metadata matches only if the matcher's value matches it; an absent key matches per
// match_if_key_not_found (default true). Only bool_match, string_match.exact and
// present_match values are emulated.
func metadataFilter(mf *accesslogv3.MetadataFilter) (replyFilter, error) {
	m := mf.GetMatcher()
	ifAbsent := true
	if v := mf.GetMatchIfKeyNotFound(); v != nil {
		ifAbsent = v.GetValue()
	}
	var path []string
	for _, p := range m.GetPath() {
		path = append(path, p.GetKey())
	}
	var match func(*structpb.Value) bool
	switch p := m.GetValue().GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_BoolMatch:
		match = func(v *structpb.Value) bool {
			b, ok := v.GetKind().(*structpb.Value_BoolValue)
			return ok && b.BoolValue == p.BoolMatch
		}
	case *matcherv3.ValueMatcher_PresentMatch:
		match = func(*structpb.Value) bool { return p.PresentMatch }
	case *matcherv3.ValueMatcher_StringMatch:
		exact, ok := p.StringMatch.GetMatchPattern().(*matcherv3.StringMatcher_Exact)
		if !ok || p.StringMatch.GetIgnoreCase() {
			return nil, fmt.Errorf("metadata_filter string_match other than exact is not emulated")
		}
		match = func(v *structpb.Value) bool {
			s, ok := v.GetKind().(*structpb.Value_StringValue)
			return ok && s.StringValue == exact.Exact
		}
	default:
		return nil, fmt.Errorf("metadata_filter value %T is not emulated", p)
	}
	if m.GetInvert() {
		return nil, fmt.Errorf("metadata_filter matcher.invert is not emulated")
	}
	ns := m.GetFilter()
	return func(_ int, meta map[string]*structpb.Struct) bool {
		v := lookupMetadata(meta[ns], path)
		if v == nil {
			return ifAbsent
		}
		return match(v)
	}, nil
}

func lookupMetadata(s *structpb.Struct, path []string) *structpb.Value {
	if s == nil || len(path) == 0 {
		return nil
	}
	v := s.GetFields()[path[0]]
	for _, k := range path[1:] {
		if v == nil {
			return nil
		}
		v = v.GetStructValue().GetFields()[k]
	}
	if v == nil || v.GetKind() == nil {
		return nil
	}
	return v
}

func loadBodyFormat(f *corev3.SubstitutionFormatString) (*bodyFormat, error) {
	if f == nil {
		return nil, nil
	}
	if len(f.GetFormatters()) > 0 || f.GetOmitEmptyValues() {
		return nil, fmt.Errorf("formatters and omit_empty_values are not emulated")
	}
	b := &bodyFormat{contentType: f.GetContentType()}
	switch {
	case f.GetJsonFormat() != nil:
		b.json = f.GetJsonFormat()
		if b.contentType == "" {
			b.contentType = "application/json"
		}
		if err := checkStruct(b.json); err != nil {
			return nil, err
		}
	case f.GetTextFormatSource() != nil:
		b.text = f.GetTextFormatSource().GetInlineString()
	default:
		//lint:ignore SA1019 text_format is deprecated for text_format_source but still read by Envoy
		b.text = f.GetTextFormat()
	}
	if b.contentType == "" {
		b.contentType = "text/plain"
	}
	return b, checkCommands(b.text)
}

func checkStruct(s *structpb.Struct) error {
	for _, v := range s.GetFields() {
		switch k := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			if err := checkCommands(k.StringValue); err != nil {
				return err
			}
		case *structpb.Value_StructValue:
			if err := checkStruct(k.StructValue); err != nil {
				return err
			}
		}
	}
	return nil
}

// commandRE finds substitution commands: %NAME% or %NAME(arg)%.
var commandRE = regexp.MustCompile(`%([A-Z_]+)(\(([^)]*)\))?%`)

// checkCommands rejects commands the stand-in does not format.
func checkCommands(s string) error {
	for _, m := range commandRE.FindAllStringSubmatch(s, -1) {
		switch m[1] {
		case "LOCAL_REPLY_BODY", "RESPONSE_CODE", "RESPONSE_CODE_DETAILS", "REQ":
		default:
			return fmt.Errorf("command %%%s%% is not emulated", m[1])
		}
	}
	return nil
}

// replyContext is what a formatter sees.
type replyContext struct {
	req     *headerMap
	code    int
	details string
	body    string
}

func (rc replyContext) format(s string) string {
	return commandRE.ReplaceAllStringFunc(s, func(cmd string) string {
		m := commandRE.FindStringSubmatch(cmd)
		switch m[1] {
		case "LOCAL_REPLY_BODY":
			return rc.body
		case "RESPONSE_CODE":
			return strconv.Itoa(rc.code)
		case "RESPONSE_CODE_DETAILS":
			return rc.details
		case "REQ":
			if rc.req == nil {
				return "-"
			}
			if v, ok := rc.req.get(strings.ToLower(m[3])); ok {
				return v
			}
		}
		return "-"
	})
}

func (rc replyContext) formatStruct(s *structpb.Struct) map[string]any {
	out := make(map[string]any, len(s.GetFields()))
	for k, v := range s.GetFields() {
		switch kv := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			out[k] = rc.format(kv.StringValue)
		case *structpb.Value_StructValue:
			out[k] = rc.formatStruct(kv.StructValue)
		default:
			out[k] = v.AsInterface()
		}
	}
	return out
}

// render formats a body and returns it with its content type.
func (b *bodyFormat) render(rc replyContext) (string, string) {
	if b.json != nil {
		out, _ := json.Marshal(rc.formatStruct(b.json))
		return string(out) + "\n", b.contentType // Envoy's JSON formatter ends with a newline
	}
	return rc.format(b.text), b.contentType
}

// rewrite applies the config to a local reply whose headers (ImmediateResponse
// mutations included) are h. It returns the final status and body, and the content type
// of a rewritten body ("" when the body was left alone).
func (c *localReplyConfig) rewrite(x *exchange, h *headerMap, code int, body, details string) (int, string, string) {
	if c == nil {
		return code, body, ""
	}
	orig := body
	rc := replyContext{req: x.reqHeaders, code: code, details: details, body: body}
	format := c.format
	for _, m := range c.mappers {
		if !m.filter(code, x.meta) {
			continue
		}
		if m.body != nil {
			body = *m.body
			rc.body = body
		}
		for _, hv := range m.headers {
			v := rc.format(hv.GetHeader().GetValue())
			k := strings.ToLower(hv.GetHeader().GetKey())
			if hv.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || hv.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS {
				if hv.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS && !h.has(k) {
					continue
				}
				h.set(k, v)
			} else if hv.GetAppendAction() != corev3.HeaderValueOption_ADD_IF_ABSENT || !h.has(k) {
				h.add(k, v)
			}
		}
		if m.status != 0 && m.status != code {
			code = m.status
			rc.code = code
			h.set(":status", strconv.Itoa(code))
		}
		if m.format != nil {
			format = m.format
		}
		break
	}
	if format == nil {
		if body != orig {
			return code, body, "text/plain"
		}
		return code, body, ""
	}
	out, ct := format.render(rc)
	if out == orig {
		return code, out, ""
	}
	return code, out, ct
}
