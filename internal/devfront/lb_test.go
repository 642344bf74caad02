package devfront

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// testCluster builds a cluster from hosts per priority, each "name" or "name!" (unhealthy).
func testCluster(priorities ...[]string) *cluster {
	c := &cluster{name: "c"}
	for p, names := range priorities {
		c.byPriority = append(c.byPriority, nil)
		for _, n := range names {
			h := &host{cluster: c, index: len(c.hosts), priority: p, hostname: n, healthy: true}
			if n[len(n)-1] == '!' {
				h.hostname, h.healthy = n[:len(n)-1], false
			}
			c.hosts = append(c.hosts, h)
			c.byPriority[p] = append(c.byPriority[p], h)
		}
	}
	c.rr = make([]atomic.Uint64, len(c.byPriority))
	return c
}

func policy(t *testing.T, y string) *retryPolicy {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	rp := &routev3.RetryPolicy{}
	if err := protojson.Unmarshal(js, rp); err != nil {
		t.Fatal(err)
	}
	p, err := compileRetryPolicy(rp)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// LoadBalancerBase::recalculatePerPriorityState: health with the 140% overprovisioning
// factor, load to the highest priorities first.
func TestPriorityLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *cluster
		want []int
	}{
		{"all healthy", testCluster([]string{"a"}, []string{"b"}), []int{100, 0}},
		{"p0 down", testCluster([]string{"a!"}, []string{"b"}), []int{0, 100}},
		{"p0 half healthy spills over", testCluster([]string{"a", "a2!"}, []string{"b"}), []int{70, 30}},
		{"p0 mostly healthy keeps all (overprovisioning)", testCluster([]string{"a", "a2", "a3", "a4!"}, []string{"b"}), []int{100, 0}},
		{"total panic follows host counts", testCluster([]string{"a!"}, []string{"b!", "b2!", "b3!"}), []int{25, 75}},
		{"empty priority", testCluster(nil, []string{"b"}), []int{0, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.distributeLoad(tc.c.health()); !slices.Equal(got, tc.want) {
				t.Fatalf("load %v, want %v", got, tc.want)
			}
		})
	}
}

// previous_priorities: each retry excludes the priorities attempted so far; with all
// excluded it starts over. previous_hosts re-picks up to host_selection_retry_max_attempts.
func TestSelectHost(t *testing.T) {
	prev := "retry_on: 5xx\n" + prevPriorities
	hosts := "retry_on: 5xx\nretry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts }]\n"
	for _, tc := range []struct {
		name  string
		c     *cluster
		retry string
		other int // picks by other requests between attempts
		want  []string
	}{
		{"priorities in order, then over", testCluster([]string{"a"}, []string{"b"}, []string{"c"}), prev, 0,
			[]string{"a", "b", "c", "a", "b", "c"}},
		{"unhealthy priorities skipped", testCluster([]string{"a"}, []string{"b!"}, []string{"c"}), prev, 0,
			[]string{"a", "c", "a", "c"}},
		{"update_frequency 2", testCluster([]string{"a"}, []string{"b"}),
			"retry_on: 5xx\nretry_priority: { name: envoy.retry_priorities.previous_priorities, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig, update_frequency: 2 } }\n",
			0, []string{"a", "a", "b", "b"}},
		{"round robin repeats a host without previous_hosts", testCluster([]string{"a", "a2"}), "retry_on: 5xx\n", 1,
			[]string{"a", "a", "a"}},
		{"previous_hosts avoids it", testCluster([]string{"a", "a2"}), hosts, 1,
			[]string{"a", "a2", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRetryState(policy(t, tc.retry), &headerMap{}, func(string) {})
			var got []string
			for i := range tc.want {
				h := selectHost(tc.c, s, i > 0)
				s.onHostAttempted(h)
				got = append(got, h.hostname)
				for range tc.other {
					selectHost(tc.c, nil, false)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("attempts %v, want %v", got, tc.want)
			}
		})
	}
}

// JitteredExponentialBackOffStrategy: [0, interval), interval doubling up to max.
func TestBackOffIntervals(t *testing.T) {
	s := newRetryState(policy(t, "retry_on: 5xx\nretry_back_off: { base_interval: 0.1s, max_interval: 0.5s }\n"), &headerMap{}, func(string) {})
	var limits []time.Duration
	for range 5 {
		limits = append(limits, s.nextInterval)
		if d := s.backoff(); d < 0 || d >= limits[len(limits)-1] {
			t.Fatalf("back-off %v outside [0, %v)", d, limits[len(limits)-1])
		}
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond}
	if !slices.Equal(limits, want) {
		t.Fatalf("intervals %v, want %v", limits, want)
	}
	d := newRetryState(policy(t, "retry_on: 5xx\n"), &headerMap{}, func(string) {})
	if d.p.base != 25*time.Millisecond || d.p.max != 250*time.Millisecond || d.remaining != 1 {
		t.Fatalf("defaults: base %v max %v retries %d", d.p.base, d.p.max, d.remaining)
	}
}

// Start rejects retry policies it cannot emulate, and Envoy's own config errors.
func TestRetryPolicyRejects(t *testing.T) {
	for _, tc := range []struct{ retry, want string }{
		{"retry_on: 5xx,sometimes\n", "unknown condition"},
		{"retry_on: 5xx\nretry_back_off: { base_interval: 2s, max_interval: 1s }\n", "max_interval"},
		{"retry_on: 5xx\nretry_host_predicate: [{ name: envoy.retry_host_predicates.omit_canary_hosts }]\n", "not emulated"},
	} {
		js, _ := yaml.YAMLToJSON([]byte(tc.retry))
		rp := &routev3.RetryPolicy{}
		if err := protojson.Unmarshal(js, rp); err != nil {
			t.Fatal(err)
		}
		if _, err := compileRetryPolicy(rp); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.retry, err, tc.want)
		}
	}
}

// The reset headers come from an untrusted upstream: any value yields no rate-limited
// back-off or one within [1ms, max_interval], and the back-off drawn from it stays in
// [d, 1.5d).
func FuzzRateLimitFrom(f *testing.F) {
	for _, s := range []string{"1", "0", "30", "301", "-5", " 7 ", "1e3", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", ""} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Add("1700000000", true)
	f.Fuzz(func(t *testing.T, v string, timestamp bool) {
		p := &retryPolicy{base: 25 * time.Millisecond, max: 250 * time.Millisecond, resetMax: 300 * time.Second,
			resetHeaders: []resetHeader{{name: "retry-after", timestamp: timestamp}}}
		s := newRetryState(p, &headerMap{}, func(string) {})
		h := &headerMap{}
		h.add("retry-after", v)
		s.rateLimitFrom(h, time.Unix(1_700_000_000, 0))
		d := s.rateLimited
		if d != 0 && (d <= time.Millisecond || d > p.resetMax) {
			t.Fatalf("%q: interval %v", v, d)
		}
		b := s.backoff()
		if d != 0 && (b < d || b >= d*3/2) {
			t.Fatalf("%q: back-off %v for interval %v", v, b, d)
		}
		if d == 0 && (b < 0 || b >= p.base) {
			t.Fatalf("%q: exponential back-off %v", v, b)
		}
	})
}
