package devfront

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// answer responds with code with an optional header.
func answer(code int, kv ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Set(kv[i], kv[i+1])
		}
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, "status %d", code)
	}
}

// hanging never answers; it returns when the stand-in gives up on the request (a reset
// closes the connection).
func hanging(w http.ResponseWriter, r *http.Request) {
	_, _ = io.ReadAll(r.Body)
	<-r.Context().Done()
}

// dropAfterRequest reads the request and closes the connection without answering: a
// reset after the request was sent.
func dropAfterRequest(w http.ResponseWriter, r *http.Request) {
	_, _ = io.ReadAll(r.Body)
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = c.Close()
	}
}

const prevPriorities = "retry_priority: { name: envoy.retry_priorities.previous_priorities, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig, update_frequency: 1 } }\n"

// Which failures of p0 are retried (on p1), per retry_on (RetryStateImpl's
// wouldRetryFromHeaders / wouldRetryFromReset).
func TestRetryConditions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retry   string
		p0      endpointSpec
		retried bool
		status  int    // without retry
		details string // without retry
	}{
		{"5xx retries 500", "retry_on: 5xx", endpointSpec{handler: answer(500)}, true, 0, ""},
		{"5xx retries a connect failure", "retry_on: 5xx", endpointSpec{closed: true}, true, 0, ""},
		{"5xx retries a reset", "retry_on: 5xx", endpointSpec{handler: dropAfterRequest}, true, 0, ""},
		{"5xx does not retry 429", "retry_on: 5xx", endpointSpec{handler: answer(429)}, false, 429, "via_upstream"},
		{"gateway-error does not retry 500", "retry_on: gateway-error", endpointSpec{handler: answer(500)}, false, 500, "via_upstream"},
		{"gateway-error retries 503", "retry_on: gateway-error", endpointSpec{handler: answer(503)}, true, 0, ""},
		{"retriable-status-codes 429", "retry_on: retriable-status-codes\nretriable_status_codes: [429]", endpointSpec{handler: answer(429)}, true, 0, ""},
		{"retriable-status-codes only the listed", "retry_on: retriable-status-codes\nretriable_status_codes: [429]", endpointSpec{handler: answer(500)}, false, 500, "via_upstream"},
		{"retriable-4xx is 409", "retry_on: retriable-4xx", endpointSpec{handler: answer(409)}, true, 0, ""},
		{"connect-failure", "retry_on: connect-failure", endpointSpec{closed: true}, true, 0, ""},
		{"connect-failure does not retry a reset", "retry_on: connect-failure", endpointSpec{handler: dropAfterRequest}, false, 503,
			"upstream_reset_before_response_started{connection_termination}"},
		{"reset-before-request retries a connect failure", "retry_on: reset-before-request", endpointSpec{closed: true}, true, 0, ""},
		{"reset-before-request not after the request was sent", "retry_on: reset-before-request", endpointSpec{handler: dropAfterRequest}, false, 503,
			"upstream_reset_before_response_started{connection_termination}"},
		{"reset", "retry_on: reset", endpointSpec{handler: dropAfterRequest}, true, 0, ""},
		{"refused-stream alone does not retry a connect failure", "retry_on: refused-stream", endpointSpec{closed: true}, false, 503,
			"upstream_reset_before_response_started{connection_failure}"},
		{"retriable-headers", "retry_on: retriable-headers\nretriable_headers: [{ name: x-retry, present_match: true }]",
			endpointSpec{handler: answer(200, "x-retry", "1")}, true, 0, ""},
		{"x-envoy-ratelimited needs envoy-ratelimited", "retry_on: 5xx", endpointSpec{handler: answer(503, "x-envoy-ratelimited", "true")}, false, 503, "via_upstream"},
		{"envoy-ratelimited", "retry_on: envoy-ratelimited", endpointSpec{handler: answer(429, "x-envoy-ratelimited", "true")}, true, 0, ""},
		{"retriable_request_headers not matched", "retry_on: 5xx\nretriable_request_headers: [{ name: x-may-retry, present_match: true }]",
			endpointSpec{handler: answer(500)}, false, 500, "via_upstream"},
		{"no retry_policy", "", endpointSpec{handler: answer(500)}, false, 500, "via_upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			retry := ""
			if tc.retry != "" {
				retry = tc.retry + "\n" + prevPriorities
			}
			p0 := tc.p0
			p0.provider = "openai"
			e := newChainEnv(t, chainOpts{retry: retry, endpoints: []endpointSpec{p0, {provider: "anthropic", priority: 1}}})
			done := e.async(t, http.MethodPost, "/v1/chat", "hello")
			if tc.retried {
				e.timers.fire(t, RetryBackoff)
			}
			r := wait(t, done)
			l := e.env().lastLog(t)
			if tc.retried {
				wantStatus(t, r, 200)
				if r.body != "anthropic ok" || l.UpstreamAttempts != 2 || l.UpstreamHostname != "anthropic.example" || l.UpstreamPriority != 1 {
					t.Fatalf("got %q, log %+v", r.body, l)
				}
				if u := e.ups[1].next(t); u.Body != "hello" || u.Host != "anthropic.example" {
					t.Errorf("p1 got %+v", u)
				}
				if s := e.envoy.Stats(); s["upstream_rq_retry"] != 1 || s["upstream_rq_retry_success"] != 1 {
					t.Errorf("stats %v", s)
				}
				return
			}
			wantStatus(t, r, tc.status)
			if l.UpstreamAttempts != 1 || l.ResponseCodeDetails != tc.details {
				t.Fatalf("log %+v", l)
			}
			if d := e.timers.durations(RetryBackoff); len(d) != 0 {
				t.Errorf("back-off armed: %v", d)
			}
			e.ups[1].none(t)
		})
	}
}

// num_retries bounds the attempts; then the last response goes downstream, or the last
// failure becomes a local reply.
func TestRetriesExhausted(t *testing.T) {
	const retry = "retry_on: 5xx\nnum_retries: 1\nper_try_idle_timeout: 5s\n" + prevPriorities
	for _, tc := range []struct {
		name      string
		p0, p1    endpointSpec
		fireIdle  bool
		status    int
		body      string
		details   string
		exhausted uint64
	}{
		{"last response passes", endpointSpec{handler: answer(500)}, endpointSpec{handler: answer(502)}, false, 502, "status 502", "via_upstream", 1},
		{"last connect failure", endpointSpec{closed: true}, endpointSpec{closed: true}, false, 503,
			"upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection failure",
			"upstream_reset_before_response_started{connection_failure}", 1},
		{"last per-try idle timeout", endpointSpec{handler: hanging}, endpointSpec{handler: hanging}, true, 504, "upstream request timeout",
			"upstream_per_try_idle_timeout", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p0.provider, tc.p1.provider, tc.p1.priority = "openai", "anthropic", 1
			e := newChainEnv(t, chainOpts{retry: retry, endpoints: []endpointSpec{tc.p0, tc.p1}})
			done := e.async(t, http.MethodGet, "/", "")
			if tc.fireIdle {
				e.timers.fire(t, PerTryIdleTimeout)
			}
			e.timers.fire(t, RetryBackoff)
			if tc.fireIdle {
				e.timers.fire(t, PerTryIdleTimeout)
			}
			r := wait(t, done)
			wantStatus(t, r, tc.status)
			l := e.env().lastLog(t)
			if r.body != tc.body || l.ResponseCodeDetails != tc.details || l.UpstreamAttempts != 2 || l.UpstreamHostname != "anthropic.example" {
				t.Fatalf("body %q log %+v", r.body, l)
			}
			if s := e.envoy.Stats(); s["upstream_rq_retry"] != 1 || s["upstream_rq_retry_limit_exceeded"] != tc.exhausted {
				t.Errorf("stats %v", s)
			}
			if len(e.timers.durations(RetryBackoff)) != 1 {
				t.Errorf("back-offs %v", e.timers.durations(RetryBackoff))
			}
		})
	}
}

// Retries happen only while nothing went downstream: a response that fails after its
// headers is reset, never retried.
func TestNoRetryAfterResponseStarted(t *testing.T) {
	gotFirst := make(chan struct{})
	e := newChainEnv(t, chainOpts{
		retry: "retry_on: 5xx,reset\nnum_retries: 2\n",
		endpoints: []endpointSpec{{provider: "openai", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			<-gotFirst
			dropAfterRequest(w, r)
		}}, {provider: "anthropic", priority: 1}},
	})
	resp, err := e.client.Get(e.envoy.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	close(gotFirst)
	if rest, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("want a reset stream, got a clean end after %q", rest)
	}
	l := e.env().lastLog(t)
	if !l.Reset || l.UpstreamAttempts != 1 || l.ResponseCode != 200 {
		t.Fatalf("log %+v", l)
	}
	e.ups[1].none(t)
	if d := e.timers.durations(RetryBackoff); len(d) != 0 {
		t.Fatalf("back-off armed: %v", d)
	}
}

// The body is re-sent from the router's buffer; a body over the buffer limit gives up
// on retries (retry_or_shadow_abandoned).
func TestRetryResendsBufferedBody(t *testing.T) {
	const retry = "retry_on: 5xx\n"
	t.Run("re-sent", func(t *testing.T) {
		e := newChainEnv(t, chainOpts{retry: retry, endpoints: []endpointSpec{{provider: "a", handler: answer(500)}, {provider: "b"}}})
		body := strings.Repeat("x", 3000)
		done := e.async(t, http.MethodPost, "/", body)
		e.timers.fire(t, RetryBackoff)
		wantStatus(t, wait(t, done), 200)
		if u := e.ups[0].next(t); u.Body != body {
			t.Errorf("p0 got %d bytes", len(u.Body))
		}
		// No retry_priority: the retry stays in p0, where round robin picks the other host.
		if u := e.ups[1].next(t); u.Body != body || u.ContentLength != int64(len(body)) {
			t.Errorf("retry got %d bytes, content-length %d", len(u.Body), u.ContentLength)
		}
	})
	t.Run("over the buffer limit", func(t *testing.T) {
		e := newChainEnv(t, chainOpts{retry: retry, bufferLimit: 1024,
			endpoints: []endpointSpec{{provider: "a", handler: answer(500)}, {provider: "b"}}})
		r := wait(t, e.async(t, http.MethodPost, "/", strings.Repeat("x", 2000)))
		wantStatus(t, r, 500)
		if e.envoy.Stats()["retry_or_shadow_abandoned"] != 1 {
			t.Errorf("stats %v", e.envoy.Stats())
		}
		if l := e.env().lastLog(t); l.UpstreamAttempts != 1 {
			t.Errorf("log %+v", l)
		}
	})
}

// Envoy's back-off: fully jittered exponential, [0, interval) with the interval doubling
// up to max_interval; a reset header's interval jittered to [d, 1.5d) once; a header
// value over the rate-limited max_interval is discarded, not capped.
func TestRetryBackOff(t *testing.T) {
	t.Run("exponential", func(t *testing.T) {
		var n atomic.Int32
		e := newChainEnv(t, chainOpts{
			retry: "retry_on: 5xx\nnum_retries: 4\nretry_back_off: { base_interval: 1s, max_interval: 3s }\n",
			endpoints: []endpointSpec{{provider: "a", handler: func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= 4 {
					w.WriteHeader(500)
				}
			}}},
		})
		done := e.async(t, http.MethodGet, "/", "")
		var got []time.Duration
		for range 4 {
			got = append(got, e.timers.fire(t, RetryBackoff))
		}
		wantStatus(t, wait(t, done), 200)
		for i, limit := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second} {
			if got[i] < 0 || got[i] >= limit || got[i]%time.Millisecond != 0 {
				t.Errorf("back-off %d = %v, want [0, %v) in ms", i+1, got[i], limit)
			}
		}
		if s := e.envoy.Stats(); s["upstream_rq_retry_backoff_exponential"] != 4 || s["upstream_rq_retry_backoff_ratelimited"] != 0 {
			t.Errorf("stats %v", s)
		}
	})
	for _, tc := range []struct {
		name        string
		header      []string
		lo, hi      time.Duration
		rateLimited uint64
	}{
		{"retry-after seconds", []string{"Retry-After", "2"}, 2 * time.Second, 3 * time.Second, 1},
		{"over max_interval is discarded", []string{"Retry-After", "120"}, 0, 100 * time.Millisecond, 0},
		{"zero is not rate limited", []string{"Retry-After", "0"}, 0, 100 * time.Millisecond, 0},
		{"not a number", []string{"Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"}, 0, 100 * time.Millisecond, 0},
		{"unix timestamp header", []string{"X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(10*time.Second).Unix(), 10)}, 8 * time.Second, 15 * time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newChainEnv(t, chainOpts{
				retry: `retry_on: retriable-status-codes
retriable_status_codes: [429]
retry_back_off: { base_interval: 0.1s }
rate_limited_retry_back_off:
  reset_headers: [{ name: retry-after, format: SECONDS }, { name: x-ratelimit-reset, format: UNIX_TIMESTAMP }]
  max_interval: 60s
`,
				endpoints: []endpointSpec{{provider: "a", handler: answer(429, tc.header...)}, {provider: "b", priority: 1}},
			})
			done := e.async(t, http.MethodGet, "/", "")
			d := e.timers.fire(t, RetryBackoff)
			wait(t, done)
			if d < tc.lo || d >= tc.hi {
				t.Errorf("back-off %v, want [%v, %v)", d, tc.lo, tc.hi)
			}
			if got := e.envoy.Stats()["upstream_rq_retry_backoff_ratelimited"]; got != tc.rateLimited {
				t.Errorf("ratelimited back-offs %d, want %d", got, tc.rateLimited)
			}
		})
	}
}

// Host selection: priorities by health, previous_priorities moving each retry to the
// next healthy priority and starting over once all were tried, previous_hosts.
func TestRetryHostSelection(t *testing.T) {
	const prev = prevPriorities
	const hosts = "retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } }]\n"
	fail := answer(500)
	for _, tc := range []struct {
		name      string
		retry     string
		endpoints []endpointSpec
		want      []string // providers in attempt order
	}{
		{"next priority each retry", "retry_on: 5xx\nnum_retries: 2\n" + prev,
			[]endpointSpec{{provider: "a", handler: fail}, {provider: "b", priority: 1, handler: fail}, {provider: "c", priority: 2}},
			[]string{"a", "b", "c"}},
		{"skips an unhealthy priority", "retry_on: 5xx\n" + prev,
			[]endpointSpec{{provider: "a", handler: fail}, {provider: "b", priority: 1, health: "UNHEALTHY"}, {provider: "c", priority: 2}},
			[]string{"a", "c"}},
		{"first attempt avoids an unhealthy p0", "retry_on: 5xx\n" + prev,
			[]endpointSpec{{provider: "a", health: "UNHEALTHY"}, {provider: "b", priority: 1}},
			[]string{"b"}},
		{"starts over after the last priority", "retry_on: 5xx\nnum_retries: 3\n" + prev + hosts,
			[]endpointSpec{{provider: "a", handler: fail}, {provider: "b", priority: 1, handler: fail}},
			[]string{"a", "b", "a", "b"}},
		{"without retry_priority p0 again", "retry_on: 5xx\n" + hosts,
			[]endpointSpec{{provider: "a", handler: fail}, {provider: "b", priority: 1}},
			[]string{"a", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newChainEnv(t, chainOpts{retry: tc.retry, endpoints: tc.endpoints})
			done := e.async(t, http.MethodGet, "/", "")
			for range len(tc.want) - 1 {
				e.timers.fire(t, RetryBackoff)
			}
			wait(t, done)
			if got := e.attempts(); !slices.Equal(got, tc.want) {
				t.Fatalf("attempts went to %v, want %v", got, tc.want)
			}
			if l := e.env().lastLog(t); l.UpstreamAttempts != len(tc.want) || l.UpstreamHostname != tc.want[len(tc.want)-1]+".example" {
				t.Fatalf("log %+v", l)
			}
		})
	}
}

// include_request_attempt_count / include_attempt_count_in_response.
func TestAttemptCountHeaders(t *testing.T) {
	e := newChainEnv(t, chainOpts{
		retry:      "retry_on: 5xx\n",
		vhostExtra: "include_request_attempt_count: true\ninclude_attempt_count_in_response: true\n",
		endpoints:  []endpointSpec{{provider: "a", handler: answer(500)}, {provider: "b"}},
	})
	done := e.async(t, http.MethodGet, "/", "")
	e.timers.fire(t, RetryBackoff)
	r := wait(t, done)
	wantStatus(t, r, 200)
	if r.header.Get("X-Envoy-Attempt-Count") != "2" {
		t.Errorf("response headers %v", r.header)
	}
	u1, u2 := e.ups[0].next(t), e.ups[1].next(t) // both in p0: round robin
	if u1.Header.Get("X-Envoy-Attempt-Count") != "1" || u2.Header.Get("X-Envoy-Attempt-Count") != "2" {
		t.Errorf("attempt headers %q %q", u1.Header.Get("X-Envoy-Attempt-Count"), u2.Header.Get("X-Envoy-Attempt-Count"))
	}
}

// per_try_timeout: a retry before the response started, ignored after it.
func TestPerTryTimeout(t *testing.T) {
	const retry = "retry_on: 5xx\nper_try_timeout: 3s\n" + prevPriorities
	t.Run("retried", func(t *testing.T) {
		e := newChainEnv(t, chainOpts{retry: retry, endpoints: []endpointSpec{
			{provider: "a", handler: hanging}, {provider: "b", priority: 1}}})
		done := e.async(t, http.MethodGet, "/", "")
		if d := e.timers.fire(t, PerTryTimeout); d != 3*time.Second {
			t.Errorf("per-try timer %v", d)
		}
		e.timers.fire(t, RetryBackoff)
		if r := wait(t, done); r.status != 200 || e.envoy.Stats()["upstream_rq_per_try_timeout"] != 1 {
			t.Fatalf("got %d, stats %v", r.status, e.envoy.Stats())
		}
	})
	t.Run("ignored once the response started", func(t *testing.T) {
		more := make(chan struct{})
		ignored := make(chan struct{}, 1)
		hook := func(ev string) {
			if ev == hookPerTryIgnored {
				ignored <- struct{}{}
			}
		}
		e := newChainEnv(t, chainOpts{retry: retry, hook: hook, endpoints: []endpointSpec{{provider: "a", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "part1 ")
			w.(http.Flusher).Flush()
			<-more
			_, _ = io.WriteString(w, "part2")
		}}}})
		resp, err := e.client.Get(e.envoy.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, len("part1 "))
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		e.timers.fire(t, PerTryTimeout)
		select {
		case <-ignored:
		case <-timeoutCh():
			t.Fatal("per-try timeout not handled")
		}
		close(more)
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(rest) != "part2" {
			t.Fatalf("rest %q %v", rest, err)
		}
		if e.envoy.Stats()["upstream_rq_per_try_timeout"] != 0 {
			t.Errorf("stats %v", e.envoy.Stats())
		}
	})
}
