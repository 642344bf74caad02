package devfront

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tollgate-ai/tollgate/envoy/validate"
)

// Type URLs of the state-of-the-world resources the ADS client subscribes to.
const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	routeType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	resourceType = "type.googleapis.com/envoy.service.discovery.v3.Resource"
)

// Envoy's xDS defaults: initial_fetch_timeout 15 s (ConfigSource), and the gRPC mux's
// jittered exponential back-off between stream attempts, 500 ms base, 30 s ceiling.
const (
	defaultInitialFetch = 15 * time.Second
	xdsBackoffBase      = 500 * time.Millisecond
	xdsBackoffMax       = 30 * time.Second
)

// adsConfig is what the bootstrap says about ADS.
type adsConfig struct {
	grpc          *corev3.GrpcService
	node          *corev3.Node
	nodeFirstOnly bool
	cds           bool
	cdsFetch      time.Duration // initial_fetch_timeout; 0 waits forever
	rdsName       string        // "" without RDS
	rdsFetch      time.Duration
}

// loadADS reads dynamic_resources (ads_config, cds_config) and the HCM's rds. It returns
// nil for a fully static bootstrap.
func loadADS(bs *bootstrapv3.Bootstrap, cfg *config) (*adsConfig, error) {
	dr := bs.GetDynamicResources()
	if dr.GetLdsConfig() != nil || dr.GetLdsResourcesLocator() != "" {
		return nil, errors.New("devfront: LDS is not emulated (the listener stays static)")
	}
	if dr.GetCdsResourcesLocator() != "" {
		return nil, errors.New("devfront: cds_resources_locator is not emulated")
	}
	cds := dr.GetCdsConfig()
	if cds != nil && cds.GetAds() == nil {
		return nil, errors.New("devfront: only cds_config {ads: {}} is emulated")
	}
	ac := dr.GetAdsConfig()
	if ac == nil {
		if cds != nil || cfg.rdsName != "" {
			return nil, errors.New("devfront: cds_config or rds over ADS needs dynamic_resources.ads_config")
		}
		return nil, nil
	}
	if ac.GetApiType() != corev3.ApiConfigSource_GRPC {
		return nil, fmt.Errorf("devfront: ads_config: only api_type GRPC (state of the world) is emulated, not %s", ac.GetApiType())
	}
	if len(ac.GetGrpcServices()) != 1 {
		return nil, fmt.Errorf("devfront: ads_config: want one grpc_services entry, have %d", len(ac.GetGrpcServices()))
	}
	a := &adsConfig{grpc: ac.GetGrpcServices()[0], nodeFirstOnly: ac.GetSetNodeOnFirstMessageOnly(),
		cds: cds != nil, cdsFetch: initialFetch(cds), rdsName: cfg.rdsName}
	if cfg.rdsName != "" {
		_, hcm, err := hcmChain(bs.GetStaticResources().GetListeners()[0])
		if err != nil {
			return nil, err
		}
		a.rdsFetch = initialFetch(hcm.GetRds().GetConfigSource())
	}
	a.node = &corev3.Node{}
	if n := bs.GetNode(); n != nil {
		a.node = proto.Clone(n).(*corev3.Node)
	}
	a.node.UserAgentName = "envoy"
	return a, nil
}

func initialFetch(cs *corev3.ConfigSource) time.Duration {
	if d := cs.GetInitialFetchTimeout(); d != nil {
		return d.AsDuration()
	}
	return defaultInitialFetch
}

// splitOverrides separates Options.Clusters entries for bootstrap clusters from entries
// for clusters that only CDS can deliver; the latter are applied to CDS clusters as they
// arrive. Without cds_config, every entry is for the bootstrap (rewrite rejects strays).
func splitOverrides(bs *bootstrapv3.Bootstrap, overrides map[string]string) (static, dynamic map[string]string, err error) {
	if bs.GetDynamicResources().GetCdsConfig() == nil {
		return overrides, nil, nil
	}
	static, dynamic = map[string]string{}, map[string]string{}
	for key, addr := range overrides {
		name, _, _ := strings.Cut(key, "/")
		if findCluster(bs.GetStaticResources().GetClusters(), key) != nil ||
			findCluster(bs.GetStaticResources().GetClusters(), name) != nil {
			static[key] = addr
		} else {
			dynamic[key] = addr
		}
	}
	return static, dynamic, nil
}

// pointDynamic applies the Options.Clusters entries for c, a CDS cluster.
func pointDynamic(c *clusterv3.Cluster, overrides map[string]string) error {
	if addr, ok := overrides[c.GetName()]; ok {
		if n := len(lbEndpoints(c)); n > 1 {
			return fmt.Errorf("it has %d endpoints: point them one by one as %q/<hostname> or %q/#<n>", n, c.GetName(), c.GetName())
		}
		return pointCluster(c, addr)
	}
	sels := map[string]string{}
	for key, addr := range overrides {
		if name, sel, ok := strings.Cut(key, "/"); ok && name == c.GetName() {
			sels[sel] = addr
		}
	}
	if len(sels) == 0 {
		return nil
	}
	return pointEndpoints(c, sels)
}

// XDSStatus is what the stand-in's ADS client has done so far.
type XDSStatus struct {
	Connected bool // an ADS stream is open
	Streams   int  // ADS streams opened so far (reconnects included)
	CDS, RDS  XDSTypeStatus
}

// XDSTypeStatus is the state of one resource type.
type XDSTypeStatus struct {
	// Applied is the version in force: accepted and, for CDS, every new or changed cluster
	// warmed. Requests that start from now on use it.
	Applied string
	// Updates counts applied versions (a repeated version counts again).
	Updates int
	// Accepted is the last ACKed version_info.
	Accepted string
	// Rejected is the version_info of the last NACKed response, Error its error_detail.
	Rejected, Error string
	Acks, Nacks     int
}

// XDS returns the ADS client's status; the zero value without dynamic_resources.
func (e *Envoy) XDS() XDSStatus {
	if e.ads == nil {
		return XDSStatus{}
	}
	s, _ := e.ads.snapshot()
	return s
}

// WaitXDS waits until cond holds for the ADS client's status, or ctx ends.
func (e *Envoy) WaitXDS(ctx context.Context, cond func(XDSStatus) bool) (XDSStatus, error) {
	if e.ads == nil {
		return XDSStatus{}, errors.New("devfront: no ADS in this bootstrap")
	}
	for {
		s, changed := e.ads.snapshot()
		if cond(s) {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return s, fmt.Errorf("devfront: waiting for xDS (now CDS %q, RDS %q): %w", s.CDS.Applied, s.RDS.Applied, ctx.Err())
		}
	}
}

// WaitApplied waits until the CDS version cds and the RDS version rds are in force ("" does
// not wait for that type).
func (e *Envoy) WaitApplied(ctx context.Context, cds, rds string) error {
	_, err := e.WaitXDS(ctx, func(s XDSStatus) bool {
		return (cds == "" || s.CDS.Applied == cds) && (rds == "" || s.RDS.Applied == rds)
	})
	return err
}

// adsClient is the ADS client: one goroutine (loop) owns the protocol state; the stream
// reader, warmings and timers post closures to it, as Envoy's main thread runs xDS.
type adsClient struct {
	e         *Envoy
	cfg       *adsConfig
	overrides map[string]string // Options.Clusters entries for CDS clusters
	conn      *grpc.ClientConn
	client    discoveryv3.AggregatedDiscoveryServiceClient
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	events    chan func()

	// Owned by the loop goroutine.
	st       discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	stCancel context.CancelFunc
	stGen    int
	nodeSent bool
	retries  int
	subs     []string          // subscribed type URLs, in subscription order
	accepted map[string]string // type URL → last accepted version_info
	defs     map[string]*clusterv3.Cluster
	warming  map[string]*warmJob
	cdsWait  *string // the CDS version whose clusters are warming
	cdsInit  bool    // the initial CDS fetch is over (applied, rejected or timed out)
	rdsInit  bool

	mu      sync.Mutex
	status  XDSStatus
	changed chan struct{}
}

// warmJob is a cluster warming before it replaces its predecessor or becomes known.
type warmJob struct {
	c      *cluster
	cancel context.CancelFunc
}

func newADSClient(e *Envoy, a *adsConfig, overrides map[string]string) (*adsClient, error) {
	cfg := e.config()
	target := ""
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	switch {
	case a.grpc.GetEnvoyGrpc() != nil:
		name := a.grpc.GetEnvoyGrpc().GetClusterName()
		c := cfg.clusters[name]
		if c == nil || len(c.hosts) == 0 {
			return nil, fmt.Errorf("devfront: ads_config: cluster %q is not a static cluster with an endpoint", name)
		}
		h := c.hosts[0]
		target = "passthrough:///" + h.addr
		if h.network == "unix" {
			target = "unix://" + h.addr
		}
		authority := a.grpc.GetEnvoyGrpc().GetAuthority()
		if authority == "" {
			authority = name
		}
		opts = append(opts, grpc.WithAuthority(authority), grpc.WithContextDialer(loopbackDialer(h)))
	case a.grpc.GetGoogleGrpc() != nil:
		target = a.grpc.GetGoogleGrpc().GetTargetUri()
	default:
		return nil, errors.New("devfront: ads_config: grpc_services needs envoy_grpc or google_grpc")
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("devfront: ads client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &adsClient{e: e, cfg: a, overrides: overrides, conn: conn,
		client: discoveryv3.NewAggregatedDiscoveryServiceClient(conn), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), events: make(chan func(), 16), accepted: map[string]string{},
		defs: map[string]*clusterv3.Cluster{}, warming: map[string]*warmJob{}, changed: make(chan struct{})}, nil
}

func (c *adsClient) start() {
	go c.loop()
	c.post(func() {
		c.connect()
		if c.cfg.cds {
			c.subscribe(clusterType)
		} else {
			c.cdsInit = true
			c.subscribe(routeType)
		}
	})
}

func (c *adsClient) stop() {
	c.cancel()
	<-c.done
	_ = c.conn.Close()
}

func (c *adsClient) loop() {
	defer close(c.done)
	for {
		select {
		case f := <-c.events:
			f()
		case <-c.ctx.Done():
			for _, j := range c.warming {
				j.cancel()
			}
			if c.stCancel != nil {
				c.stCancel()
			}
			return
		}
	}
}

func (c *adsClient) post(f func()) {
	select {
	case c.events <- f:
	case <-c.ctx.Done():
	}
}

// after runs f on the loop when a timer of kind fires.
func (c *adsClient) after(kind TimerKind, d time.Duration, f func()) {
	ch, stop := c.e.newTimer(kind, d)
	go func() {
		select {
		case <-ch:
			c.post(f)
		case <-c.ctx.Done():
			stop()
		}
	}()
}

func (c *adsClient) snapshot() (XDSStatus, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.changed
}

func (c *adsClient) update(f func(s *XDSStatus)) {
	c.mu.Lock()
	f(&c.status)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// connect opens an ADS stream without blocking the loop; on success every subscription
// is sent again, in subscription order, with the last accepted version and no nonce, as
// Envoy's gRPC mux does (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol).
func (c *adsClient) connect() {
	c.stGen++
	gen := c.stGen
	sctx, cancel := context.WithCancel(c.ctx)
	go func() {
		st, err := c.client.StreamAggregatedResources(sctx)
		c.post(func() {
			if gen != c.stGen || err != nil {
				cancel()
				if gen == c.stGen {
					c.reconnectLater()
				}
				return
			}
			c.st, c.stCancel, c.nodeSent = st, cancel, false
			c.update(func(s *XDSStatus) { s.Connected, s.Streams = true, s.Streams+1 })
			for _, typ := range c.subs {
				c.request(typ, "", nil)
			}
			go c.read(gen, st)
		})
	}()
}

func (c *adsClient) read(gen int, st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) {
	for {
		r, err := st.Recv()
		if err != nil {
			c.post(func() { c.streamEnded(gen) })
			return
		}
		c.post(func() {
			if gen == c.stGen {
				c.onResponse(r)
			}
		})
	}
}

func (c *adsClient) streamEnded(gen int) {
	if gen != c.stGen {
		return
	}
	c.stCancel()
	c.st, c.stCancel = nil, nil
	c.stGen++ // a stale reader or opener is ignored from now on
	c.update(func(s *XDSStatus) { s.Connected = false })
	c.reconnectLater()
}

// reconnectLater waits a jittered exponential back-off (random below a ceiling that
// doubles from 500 ms up to 30 s, like Envoy's JitteredExponentialBackOffStrategy) and
// opens a new stream.
func (c *adsClient) reconnectLater() {
	ceiling := min(xdsBackoffBase<<min(c.retries, 16), xdsBackoffMax)
	c.retries++
	gen := c.stGen
	c.after(XDSRetryBackoff, time.Duration(rand.Int64N(int64(ceiling)))+time.Millisecond, func() {
		if gen == c.stGen && c.st == nil {
			c.connect()
		}
	})
}

// subscribe adds a type to the stream and starts its initial fetch timer.
func (c *adsClient) subscribe(typ string) {
	c.subs = append(c.subs, typ)
	if c.st != nil {
		c.request(typ, "", nil)
	}
	d := c.cfg.cdsFetch
	if typ == routeType {
		d = c.cfg.rdsFetch
	}
	if d > 0 {
		c.after(XDSInitialFetchTimeout, d, func() { c.initDone(typ) })
	}
}

// initDone ends a type's initial fetch: after CDS, the listener's RDS subscription
// starts; after RDS, the listener serves.
func (c *adsClient) initDone(typ string) {
	switch {
	case typ == clusterType && !c.cdsInit:
		c.cdsInit = true
		if c.cfg.rdsName != "" {
			c.subscribe(routeType)
		} else {
			c.initDone(routeType)
		}
	case typ == routeType && !c.rdsInit:
		c.rdsInit = true
		close(c.e.ready)
	}
}

func (c *adsClient) request(typ, nonce string, nack error) {
	if c.st == nil {
		return
	}
	req := &discoveryv3.DiscoveryRequest{VersionInfo: c.accepted[typ], TypeUrl: typ, ResponseNonce: nonce}
	if typ == routeType {
		req.ResourceNames = []string{c.cfg.rdsName}
	}
	if !c.nodeSent || !c.cfg.nodeFirstOnly {
		req.Node, c.nodeSent = c.cfg.node, true
	}
	if nack != nil {
		req.ErrorDetail = status.New(codes.InvalidArgument, nack.Error()).Proto()
	}
	_ = c.st.Send(req) // a broken stream shows in read
}

// onResponse validates and applies a response, then ACKs or NACKs it.
func (c *adsClient) onResponse(r *discoveryv3.DiscoveryResponse) {
	c.retries = 0
	typ := r.GetTypeUrl()
	var err error
	switch typ {
	case clusterType:
		err = c.onCDS(r)
	case routeType:
		err = c.onRDS(r)
	default:
		return // no watch for this type: Envoy ignores it
	}
	stat := "cluster_manager.cds."
	if typ == routeType {
		stat = "http." + c.e.config().statPrefix + ".rds." + c.cfg.rdsName + "."
	}
	if err != nil {
		c.e.inc(stat + "update_rejected")
		c.update(func(s *XDSStatus) {
			ts := s.typ(typ)
			ts.Rejected, ts.Error, ts.Nacks = r.GetVersionInfo(), err.Error(), ts.Nacks+1
		})
		c.request(typ, r.GetNonce(), err)
	} else {
		c.e.inc(stat + "update_success")
		c.accepted[typ] = r.GetVersionInfo()
		c.update(func(s *XDSStatus) {
			ts := s.typ(typ)
			ts.Accepted, ts.Acks = r.GetVersionInfo(), ts.Acks+1
			if typ == routeType {
				ts.Applied, ts.Updates = r.GetVersionInfo(), ts.Updates+1
			}
		})
		c.request(typ, r.GetNonce(), nil)
	}
	switch {
	case typ == clusterType && err != nil:
		// A rejected initial CDS fetch still lets start-up continue (CdsApiImpl).
		c.initDone(clusterType)
	case typ == clusterType:
		c.cdsWarmed()
	case typ == routeType:
		c.initDone(routeType)
	}
}

func (s *XDSStatus) typ(typ string) *XDSTypeStatus {
	if typ == routeType {
		return &s.RDS
	}
	return &s.CDS
}

// onCDS applies a state-of-the-world CDS response: every cluster is validated first (one
// bad cluster rejects the whole response); then clusters that are absent are removed at
// once, and new or changed clusters warm before they are used.
func (c *adsClient) onCDS(r *discoveryv3.DiscoveryResponse) error {
	cur := c.e.config()
	defs := map[string]*clusterv3.Cluster{}
	built := map[string]*cluster{}
	for i, a := range r.GetResources() {
		cl := &clusterv3.Cluster{}
		if err := decodeResource(a, clusterType, cl); err != nil {
			return fmt.Errorf("cluster %d: %w", i, err)
		}
		name := cl.GetName()
		if defs[name] != nil {
			return fmt.Errorf("duplicate cluster %q", name)
		}
		if cur.static[name] {
			continue // CDS cannot replace a bootstrap cluster: Envoy skips it
		}
		defs[name] = cl
		if old := c.defs[name]; old != nil && proto.Equal(old, cl) {
			continue
		}
		if cl.GetType() == clusterv3.Cluster_EDS || cl.GetEdsClusterConfig() != nil {
			return fmt.Errorf("cluster %q: EDS is not emulated (give clusters a load_assignment)", name)
		}
		if cl.GetClusterType() != nil {
			return fmt.Errorf("cluster %q: cluster_type extensions are not emulated", name)
		}
		pointed := proto.Clone(cl).(*clusterv3.Cluster)
		if err := pointDynamic(pointed, c.overrides); err != nil {
			return fmt.Errorf("cluster %q: %w", name, err)
		}
		cc, err := loadCluster(pointed, cur.version)
		if err != nil {
			return fmt.Errorf("cluster %q: %w", name, err)
		}
		built[name] = cc
	}
	var removed []string
	for name := range c.defs {
		if defs[name] == nil {
			removed = append(removed, name)
			if j := c.warming[name]; j != nil {
				j.cancel()
				delete(c.warming, name)
			}
		}
	}
	c.defs = defs
	if len(removed) > 0 {
		// Removed clusters go at once; requests already sent on them finish (Envoy drains
		// their connection pools).
		c.publish(func(nc *config) {
			for _, name := range removed {
				delete(nc.clusters, name)
			}
		})
	}
	v := r.GetVersionInfo()
	c.cdsWait = &v
	var ready []string
	for name, cc := range built {
		if j := c.warming[name]; j != nil {
			j.cancel() // superseded before it warmed
		}
		if c.e.opts.WarmCluster == nil {
			delete(c.warming, name)
			ready = append(ready, name)
			continue
		}
		ctx, cancel := context.WithCancel(c.ctx)
		j := &warmJob{c: cc, cancel: cancel}
		c.warming[name] = j
		go func() {
			c.e.opts.WarmCluster(ctx, name)
			c.post(func() {
				if c.warming[name] != j {
					return
				}
				delete(c.warming, name)
				c.publish(func(nc *config) { nc.clusters[name] = j.c })
				c.cdsWarmed()
			})
		}()
	}
	if len(ready) > 0 {
		c.publish(func(nc *config) {
			for _, name := range ready {
				nc.clusters[name] = built[name]
			}
		})
	}
	return nil
}

// cdsWarmed records the pending CDS version as applied once no cluster is warming.
func (c *adsClient) cdsWarmed() {
	if c.cdsWait == nil || len(c.warming) > 0 {
		return
	}
	v := *c.cdsWait
	c.cdsWait = nil
	c.update(func(s *XDSStatus) { s.CDS.Applied, s.CDS.Updates = v, s.CDS.Updates+1 })
	c.initDone(clusterType)
}

// onRDS applies the subscribed RouteConfiguration. Routes may name clusters that do not
// exist (validate_clusters defaults to false for RDS) unless validate_clusters is set.
func (c *adsClient) onRDS(r *discoveryv3.DiscoveryResponse) error {
	var rc *routev3.RouteConfiguration
	for i, a := range r.GetResources() {
		m := &routev3.RouteConfiguration{}
		if err := decodeResource(a, routeType, m); err != nil {
			return fmt.Errorf("route_configuration %d: %w", i, err)
		}
		if m.GetName() != c.cfg.rdsName {
			continue // not subscribed
		}
		if rc != nil {
			return fmt.Errorf("duplicate route_configuration %q", m.GetName())
		}
		rc = m
	}
	if rc == nil {
		return nil
	}
	t, err := compileRoutes(rc)
	if err != nil {
		return fmt.Errorf("route_configuration %q: %w", rc.GetName(), err)
	}
	if rc.GetValidateClusters().GetValue() {
		if err := t.checkClusters(c.e.config().clusters); err != nil {
			return fmt.Errorf("route_configuration %q: %w", rc.GetName(), err)
		}
	}
	c.publish(func(nc *config) { nc.routes = t })
	return nil
}

// publish installs a modified copy of the config in force. Requests that already started
// keep the copy they snapped.
func (c *adsClient) publish(f func(nc *config)) {
	old := c.e.config()
	nc := *old
	nc.clusters = make(map[string]*cluster, len(old.clusters))
	for k, v := range old.clusters {
		nc.clusters[k] = v
	}
	f(&nc)
	// The upstream ext_proc filters of new clusters get their gRPC clients before use.
	_ = c.e.dialProcessors(&nc) // only a malformed google_grpc target fails; its filter fails open
	c.e.cfg.Store(&nc)
}

// decodeResource unpacks one resource of a response strictly: the declared type, no
// unknown fields (Envoy's --reject-unknown-dynamic-fields), and the same validation as
// `tollgate check` (protoc-gen-validate rules, nested Anys, start-up checks).
func decodeResource(a *anypb.Any, typ string, m proto.Message) error {
	if a.GetTypeUrl() == resourceType {
		w := &discoveryv3.Resource{}
		if err := a.UnmarshalTo(w); err != nil {
			return err
		}
		if a = w.GetResource(); a == nil {
			return errors.New("a Resource wrapper without a resource")
		}
	}
	if a.GetTypeUrl() != typ {
		return fmt.Errorf("type %s in a %s response", a.GetTypeUrl(), typ)
	}
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return err
	}
	if path, ok := unknownField(m.ProtoReflect(), ""); ok {
		return fmt.Errorf("unknown field at %q", path)
	}
	if ps := validate.Resource(m); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.String()
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// unknownField finds a field the protos do not define, looking into Anys.
func unknownField(m protoreflect.Message, path string) (string, bool) {
	if len(m.GetUnknown()) > 0 {
		return path, true
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return "", false // validate reports unresolvable types
		}
		return unknownField(inner.ProtoReflect(), path)
	}
	var found string
	var ok bool
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := string(fd.Name())
		if path != "" {
			p = path + "." + p
		}
		isMsg := func(fd protoreflect.FieldDescriptor) bool { return fd.Message() != nil }
		switch {
		case fd.IsList() && isMsg(fd):
			l := v.List()
			for i := 0; i < l.Len() && !ok; i++ {
				found, ok = unknownField(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.IsMap() && isMsg(fd.MapValue()):
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				found, ok = unknownField(mv.Message(), fmt.Sprintf("%s[%q]", p, k.String()))
				return !ok
			})
		case !fd.IsList() && !fd.IsMap() && isMsg(fd):
			found, ok = unknownField(v.Message(), p)
		}
		return !ok
	})
	return found, ok
}
