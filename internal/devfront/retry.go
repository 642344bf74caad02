package devfront

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previousprioritiesv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
)

// retryOn is RetryPolicy's retry_on bit set (RetryStateImpl::parseRetryOn).
type retryOn uint32

const (
	retry5xx retryOn = 1 << iota
	retryGatewayError
	retryConnectFailure
	retryEnvoyRateLimited
	retryRetriable4xx
	retryRefusedStream
	retryStatusCodes
	retryRetriableHeaders
	retryReset
	retryResetBeforeRequest
	retryHTTP3PostConnect
	retryGrpcCancelled
	retryGrpcDeadlineExceeded
	retryGrpcResourceExhausted
	retryGrpcUnavailable
	retryGrpcInternal
)

var retryOnNames = map[string]retryOn{
	"5xx": retry5xx, "gateway-error": retryGatewayError, "connect-failure": retryConnectFailure,
	"envoy-ratelimited": retryEnvoyRateLimited, "retriable-4xx": retryRetriable4xx,
	"refused-stream": retryRefusedStream, "retriable-status-codes": retryStatusCodes,
	"retriable-headers": retryRetriableHeaders, "reset": retryReset,
	"reset-before-request": retryResetBeforeRequest, "http3-post-connect-failure": retryHTTP3PostConnect,
	"cancelled": retryGrpcCancelled, "deadline-exceeded": retryGrpcDeadlineExceeded,
	"resource-exhausted": retryGrpcResourceExhausted, "unavailable": retryGrpcUnavailable,
	"internal": retryGrpcInternal,
}

// retryPolicy is a compiled route (or virtual host) retry_policy.
type retryPolicy struct {
	on                      retryOn
	numRetries              int
	statusCodes             []uint32
	retriableHeaders        []headerMatcher
	retriableRequestHeaders []headerMatcher
	base, max               time.Duration
	resetHeaders            []resetHeader
	resetMax                time.Duration
	priorityUpdateFrequency int // previous_priorities; 0 = no retry priority
	previousHosts           bool
	hostSelectionAttempts   int
}

type resetHeader struct {
	name      string
	timestamp bool // UNIX_TIMESTAMP, else SECONDS
}

func compileRetryPolicy(rp *routev3.RetryPolicy) (*retryPolicy, error) {
	p := &retryPolicy{numRetries: 1, base: 25 * time.Millisecond, resetMax: 300 * time.Second,
		hostSelectionAttempts: 1, statusCodes: rp.GetRetriableStatusCodes()}
	for _, tok := range strings.Split(rp.GetRetryOn(), ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		bit, ok := retryOnNames[tok]
		if !ok {
			return nil, fmt.Errorf("retry_on: unknown condition %q", tok)
		}
		p.on |= bit
	}
	if n := rp.GetNumRetries(); n != nil {
		p.numRetries = int(n.GetValue())
	}
	if bo := rp.GetRetryBackOff(); bo != nil {
		p.base = max(bo.GetBaseInterval().AsDuration().Truncate(time.Millisecond), time.Millisecond)
		p.max = bo.GetMaxInterval().AsDuration().Truncate(time.Millisecond)
		if bo.GetMaxInterval() != nil && p.max < p.base {
			return nil, errors.New("retry_back_off: max_interval must be greater than or equal to base_interval")
		}
	}
	if p.max == 0 {
		p.max = 10 * p.base
	}
	if rl := rp.GetRateLimitedRetryBackOff(); rl != nil {
		for _, h := range rl.GetResetHeaders() {
			p.resetHeaders = append(p.resetHeaders, resetHeader{name: strings.ToLower(h.GetName()),
				timestamp: h.GetFormat() == routev3.RetryPolicy_UNIX_TIMESTAMP})
		}
		if d := rl.GetMaxInterval(); d != nil {
			p.resetMax = d.AsDuration()
		}
	}
	for _, m := range rp.GetRetriableHeaders() {
		c, err := compileHeaderMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("retriable_headers: %w", err)
		}
		p.retriableHeaders = append(p.retriableHeaders, c)
	}
	for _, m := range rp.GetRetriableRequestHeaders() {
		c, err := compileHeaderMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("retriable_request_headers: %w", err)
		}
		p.retriableRequestHeaders = append(p.retriableRequestHeaders, c)
	}
	if n := rp.GetHostSelectionRetryMaxAttempts(); n != 0 {
		p.hostSelectionAttempts = int(n)
	}
	if pr := rp.GetRetryPriority(); pr != nil {
		cfg := &previousprioritiesv3.PreviousPrioritiesConfig{}
		if pr.GetName() != "envoy.retry_priorities.previous_priorities" || pr.GetTypedConfig() == nil ||
			pr.GetTypedConfig().UnmarshalTo(cfg) != nil {
			return nil, fmt.Errorf("retry_priority %q is not emulated (only envoy.retry_priorities.previous_priorities)", pr.GetName())
		}
		if err := cfg.ValidateAll(); err != nil {
			return nil, fmt.Errorf("retry_priority: %w", err)
		}
		p.priorityUpdateFrequency = int(cfg.GetUpdateFrequency())
	}
	for _, hp := range rp.GetRetryHostPredicate() {
		if hp.GetName() != "envoy.retry_host_predicates.previous_hosts" ||
			(hp.GetTypedConfig() != nil && hp.GetTypedConfig().UnmarshalTo(&previoushostsv3.PreviousHostsPredicate{}) != nil) {
			return nil, fmt.Errorf("retry_host_predicate %q is not emulated (only envoy.retry_host_predicates.previous_hosts)", hp.GetName())
		}
		p.previousHosts = true
	}
	if len(rp.GetRetryOptionsPredicates()) > 0 || rp.GetRefreshClusterOnRetry() {
		return nil, errors.New("retry_options_predicates and refresh_cluster_on_retry are not emulated")
	}
	return p, nil
}

// resetReason is why an attempt ended before response headers (Http::StreamResetReason).
type resetReason int

const (
	resetConnectFailure resetReason = iota // the connection could not be established
	resetConnectionTermination
	resetLocal // Envoy reset the attempt: per-try (idle) timeout
	resetRemoteRefused
)

// details and text are the %RESPONSE_CODE_DETAILS% fragment and the local reply's wording.
func (r resetReason) details() string {
	return [...]string{"connection_failure", "connection_termination", "local_reset", "remote_refused_stream_reset"}[r]
}

func (r resetReason) text() string { return strings.ReplaceAll(r.details(), "_", " ") }

type retryDecision int

const (
	noRetry retryDecision = iota
	retryWithBackoff
)

type retryStatus int

const (
	retryNo retryStatus = iota
	retryYes
	retryLimitExceeded
)

// retryState is one request's RetryStateImpl, together with the retry priority and host
// predicate plugins that see every attempted host.
type retryState struct {
	p         *retryPolicy
	on        retryOn
	remaining int
	inc       func(string)

	nextInterval time.Duration // exponential back-off: [0, nextInterval)
	rateLimited  time.Duration // from the last retriable response's reset header; 0 = none
	scheduled    bool          // a retry was scheduled (for upstream_rq_retry_success)

	attempted     []*host // previous_hosts: every host attempted
	prioAttempted []*host // previous_priorities: hosts since its last reset
	excluded      []bool
	prioLoad      []int
}

func newRetryState(p *retryPolicy, req *headerMap, inc func(string)) *retryState {
	s := &retryState{p: p, on: p.on, remaining: p.numRetries, inc: inc, nextInterval: p.base}
	if len(p.retriableRequestHeaders) > 0 && !slices.ContainsFunc(p.retriableRequestHeaders,
		func(m headerMatcher) bool { return m.matches(req) }) {
		s.on = 0 // retries limited by request headers, and none matched
	}
	return s
}

// fromHeaders is wouldRetryFromHeaders.
func (s *retryState) fromHeaders(h *headerMap) retryDecision {
	if h.has("x-envoy-ratelimited") {
		if s.on&retryEnvoyRateLimited != 0 {
			return retryWithBackoff
		}
		return noRetry
	}
	code, _ := strconv.Atoi(h.value(":status"))
	switch {
	case s.on&retry5xx != 0 && code >= 500 && code <= 599,
		s.on&retryGatewayError != 0 && code >= 502 && code <= 504,
		s.on&retryRetriable4xx != 0 && code == 409,
		s.on&retryStatusCodes != 0 && code != 425 && slices.Contains(s.p.statusCodes, uint32(code)):
		return retryWithBackoff
	}
	if s.on&retryRetriableHeaders != 0 && slices.ContainsFunc(s.p.retriableHeaders,
		func(m headerMatcher) bool { return m.matches(h) }) {
		return retryWithBackoff
	}
	if gs, ok := h.get("grpc-status"); ok {
		bit := map[string]retryOn{"1": retryGrpcCancelled, "4": retryGrpcDeadlineExceeded,
			"8": retryGrpcResourceExhausted, "13": retryGrpcInternal, "14": retryGrpcUnavailable}[gs]
		if bit != 0 && s.on&bit != 0 {
			return retryWithBackoff
		}
	}
	return noRetry
}

// fromReset is wouldRetryFromReset. started is the router's sticky "some attempt sent
// bytes upstream" flag, which reset-before-request consults.
func (s *retryState) fromReset(r resetReason, started bool) retryDecision {
	switch {
	case r == resetConnectFailure && s.on&retryConnectFailure != 0,
		s.on&retryResetBeforeRequest != 0 && !started,
		s.on&retryReset != 0,
		s.on&(retry5xx|retryGatewayError) != 0,
		r == resetRemoteRefused && s.on&retryRefusedStream != 0:
		return retryWithBackoff
	}
	return noRetry
}

// rateLimitFrom remembers the reset interval of a retriable response
// (RetryStateImpl::parseResetInterval): the first header whose value parses and is within
// max_interval; longer values are discarded, not capped.
func (s *retryState) rateLimitFrom(h *headerMap, now time.Time) {
	s.rateLimited = 0
	for _, rh := range s.p.resetHeaders {
		v, ok := h.get(rh.name)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 63)
		if err != nil {
			continue
		}
		d := time.Duration(n) * time.Second
		if rh.timestamp {
			d = time.Unix(int64(n), 0).Sub(now).Truncate(time.Second)
			if d < 0 {
				continue
			}
		}
		if d <= s.p.resetMax {
			if d > time.Millisecond {
				s.rateLimited = d
			}
			return
		}
	}
}

// shouldRetry is RetryStateImpl::shouldRetry: the retry budget and counters.
func (s *retryState) shouldRetry(d retryDecision) retryStatus {
	if s.scheduled && d == noRetry {
		s.inc("upstream_rq_retry_success")
	}
	if d == noRetry {
		return retryNo
	}
	if s.remaining == 0 {
		s.inc("upstream_rq_retry_limit_exceeded")
		return retryLimitExceeded
	}
	s.remaining--
	s.inc("upstream_rq_retry")
	s.scheduled = true
	return retryYes
}

// backoff is enableBackoffTimer: a rate-limited interval, jittered to [d, 1.5d), is used
// once; otherwise Envoy's fully jittered exponential back-off, [0, interval) with the
// interval doubling up to max_interval.
func (s *retryState) backoff() time.Duration {
	if d := s.rateLimited; d > 0 {
		s.rateLimited = 0
		s.inc("upstream_rq_retry_backoff_ratelimited")
		ms := d.Milliseconds()
		return time.Duration(rand.Int64N(ms>>1)+ms) * time.Millisecond
	}
	s.inc("upstream_rq_retry_backoff_exponential")
	cur := s.nextInterval
	if cur < s.p.max/2 {
		s.nextInterval = cur * 2
	} else {
		s.nextInterval = s.p.max
	}
	return time.Duration(rand.Int64N(cur.Milliseconds())) * time.Millisecond
}

func (s *retryState) onHostAttempted(h *host) {
	s.attempted = append(s.attempted, h)
	s.prioAttempted = append(s.prioAttempted, h)
}

// priorityLoad is PreviousPrioritiesRetryPriority::determinePriorityLoad: every
// update_frequency attempts, the priorities attempted so far are excluded; once every
// priority has been excluded the state resets and the original load applies again.
func (s *retryState) priorityLoad(c *cluster, original []int) []int {
	f := s.p.priorityUpdateFrequency
	if f == 0 || len(s.prioAttempted) < f {
		return original
	}
	if len(s.prioAttempted)%f == 0 {
		if len(s.excluded) < len(c.byPriority) {
			s.excluded = append(s.excluded, make([]bool, len(c.byPriority)-len(s.excluded))...)
		}
		for _, h := range s.prioAttempted {
			if h.cluster == c {
				s.excluded[h.priority] = true
			}
		}
		avail := s.adjusted(c)
		if sum(avail) == 0 {
			clear(s.excluded)
			s.prioAttempted = nil
			avail = s.adjusted(c)
		}
		if sum(avail) == 0 {
			return original
		}
		s.prioLoad = c.distributeLoad(avail)
	}
	if s.prioLoad == nil {
		return original
	}
	return s.prioLoad
}

func (s *retryState) adjusted(c *cluster) []int {
	avail := c.health()
	for p := range avail {
		if p < len(s.excluded) && s.excluded[p] {
			avail[p] = 0
		}
	}
	return avail
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// rejects is the previous_hosts predicate.
func (s *retryState) rejects(h *host) bool {
	return s.p.previousHosts && slices.Contains(s.attempted, h)
}

// selectHost is the load balancer's chooseHost with the router as its context: on a
// retry the retry priority adjusts the priority load and the host predicates may reject
// picks, up to host_selection_retry_max_attempts re-picks, after which the last pick is
// used anyway.
func selectHost(c *cluster, s *retryState, retry bool) *host {
	load := c.distributeLoad(c.health())
	picks := 2 // a first attempt: hostSelectionRetryCount() is 1
	if retry && s != nil {
		load = s.priorityLoad(c, load)
		picks = s.p.hostSelectionAttempts + 1
	}
	var h *host
	for range picks {
		if h = c.chooseOnce(load); h == nil || s == nil || !s.rejects(h) {
			return h
		}
	}
	return h
}
