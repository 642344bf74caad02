package devfront

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// cluster is a static cluster: its endpoints by priority, its metadata and its upstream
// HTTP filters.
type cluster struct {
	name           string
	connectTimeout time.Duration
	hosts          []*host   // every endpoint, in config order
	byPriority     [][]*host // index = priority; a missing priority is empty
	metadata       *corev3.Metadata
	// filters is the cluster's upstream HTTP filter chain without the final
	// upstream_codec; hasFilters is false when the cluster configures none (the router's
	// upstream_http_filters, if any, apply then).
	filters    []*upstreamFilter
	hasFilters bool
	rr         []atomic.Uint64 // round-robin position per priority (shared by requests)
}

// host is one endpoint (Envoy creates one host per lb_endpoint of a static cluster).
type host struct {
	cluster  *cluster
	index    int // position among the cluster's lb_endpoints, in config order
	priority int
	network  string // "tcp" or "unix"
	addr     string // dial address
	hostname string // endpoint hostname, for auto_host_rewrite
	loopback bool   // the stand-in dials only loopback and unix addresses
	healthy  bool   // health_status UNKNOWN or HEALTHY
	metadata *corev3.Metadata
}

func loadCluster(cl *clusterv3.Cluster, version int) (*cluster, error) {
	c := &cluster{name: cl.GetName(), connectTimeout: 5 * time.Second, metadata: cl.GetMetadata()}
	if d := cl.GetConnectTimeout(); d != nil {
		c.connectTimeout = d.AsDuration()
	}
	for _, lle := range cl.GetLoadAssignment().GetEndpoints() {
		p := int(lle.GetPriority())
		for _, le := range lle.GetLbEndpoints() {
			ep := le.GetEndpoint()
			if ep == nil {
				return nil, errors.New("only endpoint lb_endpoints are emulated (not endpoint_name)")
			}
			h := &host{cluster: c, index: len(c.hosts), priority: p, hostname: ep.GetHostname(), metadata: le.GetMetadata()}
			switch le.GetHealthStatus() {
			case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
				h.healthy = true
			}
			switch a := ep.GetAddress().GetAddress().(type) {
			case *corev3.Address_Pipe:
				h.network, h.addr, h.loopback = "unix", a.Pipe.GetPath(), true
			case *corev3.Address_SocketAddress:
				name := a.SocketAddress.GetAddress()
				h.network = "tcp"
				h.addr = net.JoinHostPort(name, strconv.Itoa(int(a.SocketAddress.GetPortValue())))
				if ip, err := netip.ParseAddr(name); err == nil {
					h.loopback = ip.IsLoopback()
				} else if h.hostname == "" {
					h.hostname = name // a DNS name: what LOGICAL_DNS / STRICT_DNS would use
				}
			default:
				return nil, fmt.Errorf("endpoint address %T is not emulated", a)
			}
			c.hosts = append(c.hosts, h)
			for len(c.byPriority) <= p {
				c.byPriority = append(c.byPriority, nil)
			}
			c.byPriority[p] = append(c.byPriority[p], h)
		}
	}
	c.rr = make([]atomic.Uint64, len(c.byPriority))
	if a, ok := cl.GetTypedExtensionProtocolOptions()[httpOptionsKey]; ok {
		opts := &upstreamhttpv3.HttpProtocolOptions{}
		if err := a.UnmarshalTo(opts); err != nil {
			return nil, fmt.Errorf("%s: %w", httpOptionsKey, err)
		}
		if fs := opts.GetHttpFilters(); len(fs) > 0 {
			var err error
			if c.filters, err = loadUpstreamFilters(fs, version); err != nil {
				return nil, fmt.Errorf("http_filters: %w", err)
			}
			c.hasFilters = true
		}
	}
	return c, nil
}

// overprovisioning is Envoy's default overprovisioning factor (140%).
const overprovisioning = 140

// health is each priority's availability in percent: healthy hosts / hosts scaled by the
// overprovisioning factor, capped at 100 (LoadBalancerBase::recalculatePerPriorityState).
func (c *cluster) health() []int {
	out := make([]int, len(c.byPriority))
	for p, hs := range c.byPriority {
		if len(hs) == 0 {
			continue
		}
		n := 0
		for _, h := range hs {
			if h.healthy {
				n++
			}
		}
		out[p] = min(100, overprovisioning*n/len(hs))
	}
	return out
}

// distributeLoad turns availability into a priority load summing to 100: higher
// priorities first, rounding leftovers to the first available priority. With no
// availability at all (total panic) the load follows the host counts.
func (c *cluster) distributeLoad(avail []int) []int {
	load := make([]int, len(avail))
	total := 0
	for _, a := range avail {
		total += a
	}
	total = min(total, 100)
	if total == 0 {
		n := len(c.hosts)
		if n == 0 {
			return load
		}
		left := 100
		for p, hs := range c.byPriority {
			load[p] = len(hs) * 100 / n
			left -= load[p]
		}
		for p, hs := range c.byPriority {
			if len(hs) > 0 {
				load[p] += left
				break
			}
		}
		return load
	}
	left, first := 100, -1
	for p, a := range avail {
		if first < 0 && a > 0 {
			first = p
		}
		load[p] = min(left, a*100/total)
		left -= load[p]
	}
	if first >= 0 {
		load[first] += left
	}
	return load
}

// choosePriority picks a priority by load.
func choosePriority(load []int) int {
	r := rand.IntN(100)
	for p, l := range load {
		if r < l {
			return p
		}
		r -= l
	}
	for p := len(load) - 1; p >= 0; p-- {
		if load[p] > 0 {
			return p
		}
	}
	return 0
}

// chooseOnce is one pick of the load balancer: a priority by load, then round robin over
// that priority's healthy hosts (all of them when none is healthy: panic mode).
func (c *cluster) chooseOnce(load []int) *host {
	if len(c.hosts) == 0 {
		return nil
	}
	p := choosePriority(load)
	hs := c.byPriority[p]
	var healthy []*host
	for _, h := range hs {
		if h.healthy {
			healthy = append(healthy, h)
		}
	}
	if len(healthy) == 0 {
		healthy = hs
	}
	if len(healthy) == 0 {
		return nil
	}
	return healthy[int((c.rr[p].Add(1)-1)%uint64(len(healthy)))]
}
