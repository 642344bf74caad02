package devfront

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// checker is Envoy's mutation_rules Checker (Envoy ext_proc API: HeaderMutation).
type checker struct {
	allowAllRouting, allowEnvoy, disallowSystem, disallowAll, disallowIsError bool
	allow, disallow                                                           *regexp.Regexp
}

type checkOp int

const (
	opSet checkOp = iota
	opAppend
	opRemove
)

type checkResult int

const (
	checkOK checkResult = iota
	checkIgnore
	checkFail
)

func newChecker(r *mutationrulesv3.HeaderMutationRules) (*checker, error) {
	c := &checker{
		allowAllRouting: r.GetAllowAllRouting().GetValue(),
		allowEnvoy:      r.GetAllowEnvoy().GetValue(),
		disallowSystem:  r.GetDisallowSystem().GetValue(),
		disallowAll:     r.GetDisallowAll().GetValue(),
		disallowIsError: r.GetDisallowIsError().GetValue(),
	}
	var err error
	if c.allow, err = compileRegex(r.GetAllowExpression()); err != nil {
		return nil, fmt.Errorf("mutation_rules.allow_expression: %w", err)
	}
	if c.disallow, err = compileRegex(r.GetDisallowExpression()); err != nil {
		return nil, fmt.Errorf("mutation_rules.disallow_expression: %w", err)
	}
	return c, nil
}

// compileRegex compiles an Envoy RegexMatcher; Envoy's regex matchers match the whole
// string (RE2 FullMatch).
func compileRegex(m *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	if m == nil {
		return nil, nil
	}
	return regexp.Compile(`^(?:` + m.GetRegex() + `)$`)
}

var routingHeaders = map[string]bool{"host": true, ":authority": true, ":method": true, ":scheme": true}

func (c *checker) check(op checkOp, name, value string) checkResult {
	if c.allowed(op, name) && (op == opRemove || validValue(name, value)) {
		return checkOK
	}
	if c.disallowIsError {
		return checkFail
	}
	return checkIgnore
}

func (c *checker) allowed(op checkOp, name string) bool {
	if op == opRemove && (strings.HasPrefix(name, ":") || name == "host") {
		return false // never removable, whatever the rules (Envoy ext_proc API: HeaderMutation)
	}
	if c.disallow != nil && c.disallow.MatchString(name) {
		return false
	}
	if c.allow != nil && c.allow.MatchString(name) {
		return true
	}
	if c.disallowAll {
		return false
	}
	if !c.allowAllRouting && routingHeaders[name] {
		return false
	}
	if strings.HasPrefix(name, ":") && (op == opAppend || c.disallowSystem) {
		return false
	}
	if !c.allowEnvoy && strings.HasPrefix(name, "x-envoy") {
		return false
	}
	return true
}

// validValue is Checker::isValidValue.
func validValue(name, value string) bool {
	if !strings.HasPrefix(name, ":") && !validHeaderValue(value) {
		return false
	}
	switch name {
	case "host", ":authority":
		return validAuthority(value)
	case ":scheme":
		return value == "http" || value == "https"
	case ":status":
		n, err := strconv.ParseUint(value, 10, 32)
		return err == nil && n >= 200
	}
	return true
}

// mutationLimits are the HCM header limits a mutated map must stay within (Envoy ext_proc API: HeaderMutation).
type mutationLimits struct {
	maxCount int // common_http_protocol_options.max_headers_count, default 100
	maxBytes int // max_request_headers_kb * 1024, default 60 KiB
}

// mutationError is a hard mutation error: a local reply with status_on_error whose
// details are Envoy's message (Envoy ext_proc API: HeaderMutation; Envoy ext_proc: content-length after a body mutation).
type mutationError string

func (e mutationError) Error() string { return string(e) }

// applyHeaderMutation is MutationUtils::applyHeaderMutations. replacing is
// CONTINUE_AND_REPLACE (which may change :method); ignoreContentLength drops set_headers
// entries for content-length in modes where Envoy removed it (Envoy ext_proc: content-length after a body mutation). rejected counts
// each denied mutation.
func applyHeaderMutation(m *extprocsvc.HeaderMutation, h *headerMap, c *checker, lim mutationLimits,
	replacing, ignoreContentLength bool, rejected func()) error {
	if m == nil {
		return nil
	}
	if len(m.GetRemoveHeaders()) > lim.maxCount || len(m.GetSetHeaders()) > lim.maxCount {
		rejected()
		return mutationError(fmt.Sprintf("Header mutation remove header count %d or set header count %d exceed the HCM header count limit %d", len(m.GetRemoveHeaders()), len(m.GetSetHeaders()), lim.maxCount))
	}
	for _, k := range m.GetRemoveHeaders() {
		if !validHeaderName(k) {
			rejected()
			return mutationError("Invalid character in remove_headers mutation.")
		}
		k = strings.ToLower(k)
		switch c.check(opRemove, k, "") {
		case checkOK:
			h.remove(k)
		case checkIgnore:
			rejected()
		case checkFail:
			rejected()
			return mutationError(fmt.Sprintf("Invalid attempt to remove %s", k))
		}
	}
	for _, sh := range m.GetSetHeaders() {
		hv := sh.GetHeader()
		if hv == nil {
			continue
		}
		// Only raw_value is read (send_header_raw_value); both set is an error, value alone
		// sets an empty header (Envoy ext_proc API: HeaderMutation).
		if hv.GetValue() != "" && len(hv.GetRawValue()) > 0 {
			rejected()
			return mutationError("Only one of value or raw_value in the HeaderValue message should be set.")
		}
		val := string(hv.GetRawValue())
		if !validHeaderName(hv.GetKey()) || !validHeaderValue(val) {
			rejected()
			return mutationError("Invalid character in set_headers mutation.")
		}
		k := strings.ToLower(hv.GetKey())
		if ignoreContentLength && k == "content-length" {
			continue
		}
		// append is the deprecated BoolValue (default false = overwrite); append_action is
		// ignored in all target versions (Envoy ext_proc API: HeaderMutation).
		appendMode := sh.GetAppend().GetValue() //lint:ignore SA1019 ext_proc reads only the deprecated field
		op := opSet
		if appendMode && h.has(k) {
			op = opAppend
		}
		res := c.check(op, k, val)
		if replacing && k == ":method" {
			res = checkOK // CONTINUE_AND_REPLACE may change :method (Envoy ext_proc API: CommonResponse.status)
		}
		switch res {
		case checkOK:
			if appendMode {
				h.add(k, val)
			} else {
				h.set(k, val)
			}
		case checkIgnore:
			rejected()
		case checkFail:
			rejected()
			return mutationError(fmt.Sprintf("Invalid attempt to modify %s", k))
		}
	}
	if h.byteSize() > lim.maxBytes || h.size() > lim.maxCount {
		rejected()
		return mutationError(fmt.Sprintf("Header mutation causes end result header count %d or header size %d bytes, exceeding the count limit %d or the size limit %d kilobytes", h.size(), h.byteSize(), lim.maxCount, lim.maxBytes/1024))
	}
	return nil
}

// mutationDetails is the response-code detail Envoy logs for a rejected mutation: the
// error text with whitespace replaced (Envoy forbids whitespace in details).
func mutationDetails(err error) string {
	return noSpace(err.Error())
}

func noSpace(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			return '_'
		}
		return r
	}, s)
}
