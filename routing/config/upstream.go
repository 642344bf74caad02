package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Cluster names the gateway's own Envoy configuration uses; no provider or chain
// cluster may take them.
const (
	ExtProcCluster = "tollgate_ext_proc" // the ext_proc gRPC service (tollgate serve)
	XDSCluster     = "tollgate_xds"      // the ADS service (tollgate serve, same listener)
)

// ChainClusterPrefix starts the derived name of a fallback chain's cluster: chain_<alias>.
const ChainClusterPrefix = "chain_"

// Defaults of a generated provider cluster.
const (
	DefaultConnectTimeout   = 5 * time.Second
	DefaultFirstByteTimeout = 60 * time.Second
	HTTP2                   = "2"
	HTTP11                  = "1.1"
)

// CircuitBreakers bound what Envoy sends to one provider cluster at once
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/circuit_breaking).
// Zero fields take the defaults in DefaultCircuitBreakers.
type CircuitBreakers struct {
	MaxConnections     int `json:"max_connections"`
	MaxPendingRequests int `json:"max_pending_requests"`
	MaxRequests        int `json:"max_requests"`
	// RetryBudgetPercent caps concurrent retries at this share of active requests.
	RetryBudgetPercent int `json:"retry_budget_percent"`
	// MinRetryConcurrency is the floor of the retry budget.
	MinRetryConcurrency int `json:"min_retry_concurrency"`
}

// DefaultCircuitBreakers lift Envoy's defaults (1024 requests, 3 concurrent
// retries): long generations hold requests open for minutes, and a retry
// budget scales with traffic where a fixed retry count does not.
var DefaultCircuitBreakers = CircuitBreakers{
	MaxConnections: 10000, MaxPendingRequests: 10000, MaxRequests: 10000,
	RetryBudgetPercent: 20, MinRetryConcurrency: 10,
}

// WithDefaults returns c with every unset field defaulted; nil gives the defaults.
func (c *CircuitBreakers) WithDefaults() CircuitBreakers {
	d := DefaultCircuitBreakers
	if c == nil {
		return d
	}
	for _, f := range []struct{ dst, src *int }{
		{&d.MaxConnections, &c.MaxConnections}, {&d.MaxPendingRequests, &c.MaxPendingRequests},
		{&d.MaxRequests, &c.MaxRequests}, {&d.RetryBudgetPercent, &c.RetryBudgetPercent},
		{&d.MinRetryConcurrency, &c.MinRetryConcurrency},
	} {
		if *f.src != 0 {
			*f.dst = *f.src
		}
	}
	return d
}

// UpstreamTLS overrides the TLS settings of an https provider's cluster.
type UpstreamTLS struct {
	// SNI is the server name sent and the certificate name verified; the URL's host when unset.
	SNI string `json:"sni"`
	// CAFile is the CA bundle (on Envoy's file system) that verifies the provider; DefaultCAFile when unset.
	CAFile string `json:"ca_file"`
}

// DefaultCAFile is the CA bundle of Debian, Ubuntu and the Envoy image.
const DefaultCAFile = "/etc/ssl/certs/ca-certificates.crt"

// Endpoint is a provider URL taken apart.
type Endpoint struct {
	Host string // host name or IP address, without brackets
	Port int
	TLS  bool // https
	IP   bool // Host is an IP address: a static cluster, no DNS
}

// ParseURL parses a provider URL: http or https, a host, an optional port, no
// path, query, fragment or user info. Ports default to 443 and 80.
func ParseURL(raw string) (Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, fmt.Errorf("not a URL: %w", err)
	}
	var e Endpoint
	switch u.Scheme {
	case "https":
		e.TLS, e.Port = true, 443
	case "http":
		e.Port = 80
	default:
		return Endpoint{}, fmt.Errorf("scheme must be http or https")
	}
	switch {
	case u.User != nil:
		return Endpoint{}, fmt.Errorf("user info is not allowed (credentials go in credential)")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.Opaque != "":
		return Endpoint{}, fmt.Errorf("no path, query or fragment: the upstream path prefix is base_path")
	case u.Hostname() == "":
		return Endpoint{}, fmt.Errorf("host is required")
	}
	e.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Endpoint{}, fmt.Errorf("port %q is out of range", p)
		}
		e.Port = n
	}
	if ip := net.ParseIP(e.Host); ip != nil {
		e.IP = true
	} else if !hostRE.MatchString(e.Host) {
		return Endpoint{}, fmt.Errorf("host %q is not a host name", e.Host)
	}
	return e, nil
}

// Generated reports whether Tollgate generates the provider's Envoy cluster:
// it has a URL rather than an externally managed cluster.
func (p *Provider) Generated() bool { return p.URL != "" }

// ChainGenerated reports whether Tollgate generates a fallback chain's
// cluster and route: every member's provider has a URL.
func (c *Config) ChainGenerated(fb *Fallback) bool {
	for _, t := range fb.Targets {
		p := c.Provider(t.Provider)
		if p == nil || !p.Generated() {
			return false
		}
	}
	return true
}

// Provider returns the provider of that name, nil if there is none.
func (c *Config) Provider(name string) *Provider {
	for i := range c.Providers {
		if c.Providers[i].Name == name {
			return &c.Providers[i]
		}
	}
	return nil
}

// validateUpstream checks how a provider is reached: url (a generated cluster, with its
// options) or cluster (an externally managed one), and sets the derived cluster name.
func validateUpstream(d *document, path string, p *Provider) {
	options := p.ConnectTimeout != "" || p.IdleTimeout != "" || p.HTTPVersion != "" || p.CircuitBreakers != nil || p.TLS != nil
	switch {
	case p.Schema == SchemaMock: // validateMock refuses cluster
		if p.URL != "" || options {
			d.addf(path+".url", "schema %s is answered by the gateway itself: remove url and its options", SchemaMock)
		}
		return
	case p.URL != "" && p.Cluster != "" && p.Cluster != p.Name: // the derived name is accepted: Load's output loads again
		d.addf(path+".cluster", "set url (Tollgate generates the Envoy cluster) or cluster (an externally managed one), not both")
		return
	case p.URL == "" && p.Cluster == "":
		d.addf(path+".url", "url is required (e.g. https://api.openai.com), or cluster to name an externally managed Envoy cluster")
		return
	case p.URL == "":
		if len(p.Cluster) > maxCluster || !clusterRE.MatchString(p.Cluster) {
			d.addf(path+".cluster", "cluster %q is invalid: use 1 to %d characters of letters, digits, '_', '.', ':' and '-', starting with a letter or digit", p.Cluster, maxCluster)
		}
		if options {
			d.addf(path, "connect_timeout, idle_timeout, http_version, circuit_breakers and tls configure the generated cluster: they need url")
		}
		return
	}
	e, err := ParseURL(p.URL)
	if err != nil {
		d.addf(path+".url", "url %q: %v", p.URL, err)
	}
	p.Cluster = p.Name
	checkDuration(d, path+".connect_timeout", p.ConnectTimeout)
	checkDuration(d, path+".idle_timeout", p.IdleTimeout)
	switch p.HTTPVersion {
	case "", HTTP2, HTTP11:
	default:
		d.addf(path+".http_version", "http_version %q must be %q or %q", p.HTTPVersion, HTTP2, HTTP11)
	}
	if cb := p.CircuitBreakers; cb != nil {
		for _, f := range []struct {
			name string
			v    int
			max  int
		}{
			{"max_connections", cb.MaxConnections, 1 << 30}, {"max_pending_requests", cb.MaxPendingRequests, 1 << 30},
			{"max_requests", cb.MaxRequests, 1 << 30}, {"retry_budget_percent", cb.RetryBudgetPercent, 100},
			{"min_retry_concurrency", cb.MinRetryConcurrency, 1 << 30},
		} {
			if f.v < 0 || f.v > f.max {
				d.addf(path+".circuit_breakers."+f.name, "%s must be between 1 and %d (0 or unset: the default)", f.name, f.max)
			}
		}
	}
	if t := p.TLS; t != nil {
		if err == nil && !e.TLS {
			d.addf(path+".tls", "tls applies to https URLs only")
		}
		if t.SNI != "" && !hostRE.MatchString(t.SNI) {
			d.addf(path+".tls.sni", "sni %q is not a host name", t.SNI)
		}
		if t.CAFile != "" && !strings.HasPrefix(t.CAFile, "/") {
			d.addf(path+".tls.ca_file", "ca_file %q must be an absolute path on Envoy's file system", t.CAFile)
		}
	}
	// A bedrock request is signed for the Host Envoy sends, which is the URL's host
	// (auto_host_rewrite), so aws.host must not name another.
	if a := p.AWS; a != nil && err == nil && p.Schema == SchemaBedrock {
		def := "bedrock-runtime." + a.Region + ".amazonaws.com"
		switch {
		case a.Host == def && e.Host != def:
			a.Host = e.Host
		case a.Host != e.Host:
			d.addf(path+".aws.host", "host %q differs from the url's host %q, which is the Host Envoy sends and the signature covers", a.Host, e.Host)
		}
	}
}

func checkDuration(d *document, path string, v Duration) {
	if v == "" {
		return
	}
	if t, err := time.ParseDuration(string(v)); err != nil || t <= 0 {
		d.addf(path, "%q is not a positive duration such as 5s or 1m", v)
	}
}

// validateClusters derives fallback chains' cluster names and checks that every
// cluster Tollgate generates has a name of its own.
func validateClusters(docs []*document) {
	generated := map[string]bool{} // provider name → cluster generated
	names := map[string]where{}
	claim := func(d *document, path, name string) {
		if name == ExtProcCluster || name == XDSCluster {
			d.addf(path, "cluster name %q is the gateway's own", name)
			return
		}
		if first, dup := names[name]; dup {
			d.addf(path, "cluster %q is already generated for %s", name, first)
			return
		}
		names[name] = where{d, path}
	}
	for _, d := range docs {
		for i, p := range d.cfg.Providers {
			if p.Generated() && p.Cluster == p.Name { // derived, so valid
				generated[p.Name] = true
				claim(d, fmt.Sprintf("providers[%d].name", i), p.Cluster)
			}
		}
	}
	for _, d := range docs {
		for i := range d.cfg.Models {
			m := &d.cfg.Models[i]
			fb := m.Fallback
			if fb == nil {
				continue
			}
			path := fmt.Sprintf("models[%d].fallback", i)
			checkDuration(d, path+".first_byte_timeout", fb.FirstByteTimeout)
			gen := len(fb.Targets) > 0
			for _, t := range fb.Targets {
				gen = gen && generated[t.Provider]
			}
			switch {
			case gen && fb.Cluster == "":
				fb.Cluster = ChainClusterPrefix + m.Name
				if len(fb.Cluster) > maxCluster {
					d.addf(path, "the derived chain cluster name %q is too long: set cluster", fb.Cluster)
				}
			case !gen && fb.Cluster == "":
				d.addf(path+".cluster", "cluster is required: a member's provider has no url, so the chain's Envoy cluster is managed outside Tollgate")
				continue
			case !gen && fb.FirstByteTimeout != "":
				d.addf(path+".first_byte_timeout", "first_byte_timeout configures a generated chain: every member's provider needs a url")
			}
			if gen {
				claim(d, path+".cluster", fb.Cluster)
			}
		}
	}
}
