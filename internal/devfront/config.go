package devfront

import (
	"errors"
	"fmt"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// config is the stand-in's view of a (rewritten) bootstrap.
type config struct {
	version     int
	bufferLimit int // listener per_connection_buffer_limit_bytes

	statPrefix       string
	useRemoteAddress bool
	normalizePath    bool
	mergeSlashes     bool
	stripAnyHostPort bool
	streamIdle       time.Duration // 0 = disabled
	generateID       bool
	limits           mutationLimits
	localReply       *localReplyConfig // nil: local replies as they are

	extProc *extProcConfig // nil without an ext_proc filter
	// routes is the static route_config, or the RDS route table in force (empty, so every
	// request is a 404, until the first RDS response is applied).
	routes *routeTable
	// rdsName is the HCM's rds.route_config_name; "" with a static route_config.
	rdsName string
	// clusters are the static clusters and the warmed CDS clusters. Requests snap routes
	// when they start but look clusters up in the config in force, as Envoy's router asks
	// the cluster manager (see doc.go, xDS).
	clusters map[string]*cluster
	// static names the bootstrap's clusters, which CDS cannot replace or remove.
	static map[string]bool
	// routerFilters is the router's upstream_http_filters (without upstream_codec), used
	// by clusters that configure no http_filters of their own.
	routerFilters []*upstreamFilter
}

type extProcConfig struct {
	filterName               string
	mode                     *extprocv3.ProcessingMode // filter-level processing_mode
	messageTimeout           time.Duration
	maxMessageTimeout        time.Duration
	failureModeAllow         bool
	allowModeOverride        bool
	allowedOverrides         []*extprocv3.ProcessingMode
	sendBodyWithoutWaiting   bool
	disableImmediateResponse bool
	routeCacheAction         extprocv3.ExternalProcessor_RouteCacheAction
	checker                  *checker
	forwardNS, receiveNS     []string
	requestAttrs, respAttrs  []string
	statusOnError            int
	grpcCluster              string // envoy_grpc cluster name ("" for google_grpc)
	grpcTarget               string // google_grpc target_uri
	grpcAuthority            string
	initialMetadata          []*corev3.HeaderValue
}

func loadConfig(bs *bootstrapv3.Bootstrap, version int) (*config, error) {
	l := bs.GetStaticResources().GetListeners()[0]
	fc, hcm, err := hcmChain(l)
	if err != nil {
		return nil, err
	}
	_ = fc
	c := &config{
		version:     version,
		bufferLimit: defaultBufferSize,
		statPrefix:  hcm.GetStatPrefix(),
		streamIdle:  5 * time.Minute,
		generateID:  true,
		limits:      mutationLimits{maxCount: 100, maxBytes: 60 * 1024},
		clusters:    map[string]*cluster{},
		static:      map[string]bool{},
	}
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		c.bufferLimit = int(v.GetValue())
	}
	c.useRemoteAddress = hcm.GetUseRemoteAddress().GetValue()
	c.normalizePath = hcm.GetNormalizePath().GetValue()
	c.mergeSlashes = hcm.GetMergeSlashes()
	c.stripAnyHostPort = hcm.GetStripAnyHostPort()
	if d := hcm.GetStreamIdleTimeout(); d != nil {
		c.streamIdle = d.AsDuration()
	}
	if g := hcm.GetGenerateRequestId(); g != nil {
		c.generateID = g.GetValue()
	}
	if v := hcm.GetMaxRequestHeadersKb(); v != nil {
		c.limits.maxBytes = int(v.GetValue()) * 1024
	}
	if v := hcm.GetCommonHttpProtocolOptions().GetMaxHeadersCount(); v != nil {
		c.limits.maxCount = int(v.GetValue())
	}
	if c.localReply, err = loadLocalReply(hcm.GetLocalReplyConfig()); err != nil {
		return nil, fmt.Errorf("devfront: local_reply_config: %w", err)
	}
	switch rds := hcm.GetRds(); {
	case hcm.GetScopedRoutes() != nil:
		return nil, errors.New("devfront: scoped_routes are not emulated")
	case rds != nil:
		if rds.GetConfigSource().GetAds() == nil {
			return nil, errors.New("devfront: rds: only config_source {ads: {}} is emulated")
		}
		c.rdsName, c.routes = rds.GetRouteConfigName(), &routeTable{}
	default:
		if c.routes, err = compileRoutes(hcm.GetRouteConfig()); err != nil {
			return nil, fmt.Errorf("devfront: route_config: %w", err)
		}
	}
	for _, cl := range bs.GetStaticResources().GetClusters() {
		cc, err := loadCluster(cl, version)
		if err != nil {
			return nil, fmt.Errorf("devfront: cluster %q: %w", cl.GetName(), err)
		}
		c.clusters[cl.GetName()] = cc
		c.static[cl.GetName()] = true
	}
	if err := c.loadFilters(hcm); err != nil {
		return nil, err
	}
	// Envoy rejects a static route naming an unknown cluster at start-up.
	if err := c.routes.checkClusters(c.clusters); err != nil {
		return nil, fmt.Errorf("devfront: %w", err)
	}
	return c, nil
}

// checkClusters is validate_clusters: every route's fixed cluster must exist.
func (t *routeTable) checkClusters(clusters map[string]*cluster) error {
	for _, vh := range t.vhosts {
		for _, r := range vh.routes {
			if r.cluster != "" && clusters[r.cluster] == nil {
				return fmt.Errorf("route %q: unknown cluster %q", r.name, r.cluster)
			}
		}
	}
	return nil
}

func (c *config) loadFilters(hcm *hcmv3.HttpConnectionManager) error {
	fs := hcm.GetHttpFilters()
	if len(fs) == 0 || fs[len(fs)-1].GetTypedConfig().GetTypeUrl() != routerTypeURL {
		return errors.New("devfront: the router must be the last http filter")
	}
	rc := &routerv3.Router{}
	if err := fs[len(fs)-1].GetTypedConfig().UnmarshalTo(rc); err != nil {
		return fmt.Errorf("devfront: router: %w", err)
	}
	if ufs := rc.GetUpstreamHttpFilters(); len(ufs) > 0 {
		var err error
		if c.routerFilters, err = loadUpstreamFilters(ufs, c.version); err != nil {
			return fmt.Errorf("devfront: router upstream_http_filters: %w", err)
		}
	}
	for _, f := range fs[:len(fs)-1] {
		if f.GetTypedConfig().GetTypeUrl() != extProcTypeURL {
			return fmt.Errorf("devfront: http filter %q (%s) is not emulated", f.GetName(), f.GetTypedConfig().GetTypeUrl())
		}
		if c.extProc != nil {
			return errors.New("devfront: only one ext_proc filter is emulated")
		}
		ep := &extprocv3.ExternalProcessor{}
		if err := f.GetTypedConfig().UnmarshalTo(ep); err != nil {
			return fmt.Errorf("devfront: ext_proc: %w", err)
		}
		if err := ep.ValidateAll(); err != nil {
			return fmt.Errorf("devfront: ext_proc: %w", err)
		}
		epc, err := loadExtProc(ep, c.version)
		if err != nil {
			return fmt.Errorf("devfront: ext_proc: %w", err)
		}
		epc.filterName = f.GetName()
		c.extProc = epc
	}
	return nil
}

func loadExtProc(ep *extprocv3.ExternalProcessor, version int) (*extProcConfig, error) {
	pm := ep.GetProcessingMode()
	if pm == nil {
		pm = &extprocv3.ProcessingMode{}
	}
	for _, m := range []extprocv3.ProcessingMode_BodySendMode{pm.GetRequestBodyMode(), pm.GetResponseBodyMode()} {
		if m == extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED {
			return nil, errors.New("FULL_DUPLEX_STREAMED is not emulated")
		}
	}
	switch {
	case ep.GetObservabilityMode():
		return nil, errors.New("observability_mode is not emulated")
	case ep.GetHttpService() != nil:
		return nil, errors.New("http_service is not emulated (gRPC only)")
	case ep.GetDisableClearRouteCache() && ep.GetRouteCacheAction() != extprocv3.ExternalProcessor_DEFAULT:
		// Envoy's own start-up check (Envoy ext_proc API: CommonResponse.clear_route_cache).
		return nil, errors.New("disable_clear_route_cache and route_cache_action can not be set to none-default at the same time")
	case ep.GetStatusOnError() != nil && version < 36:
		return nil, fmt.Errorf("status_on_error does not exist before Envoy 1.36 (emulating 1.%d)", version)
	}
	c := &extProcConfig{
		mode:                     pm,
		messageTimeout:           200 * time.Millisecond,
		failureModeAllow:         ep.GetFailureModeAllow(),
		allowModeOverride:        ep.GetAllowModeOverride(),
		allowedOverrides:         ep.GetAllowedOverrideModes(),
		sendBodyWithoutWaiting:   ep.GetSendBodyWithoutWaitingForHeaderResponse(),
		disableImmediateResponse: ep.GetDisableImmediateResponse(),
		routeCacheAction:         ep.GetRouteCacheAction(),
		forwardNS:                ep.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(),
		receiveNS:                ep.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(),
		requestAttrs:             ep.GetRequestAttributes(),
		respAttrs:                ep.GetResponseAttributes(),
		statusOnError:            500,
	}
	if ep.GetDisableClearRouteCache() {
		c.routeCacheAction = extprocv3.ExternalProcessor_RETAIN
	}
	if d := ep.GetMessageTimeout(); d != nil {
		c.messageTimeout = d.AsDuration()
	}
	if d := ep.GetMaxMessageTimeout(); d != nil {
		c.maxMessageTimeout = d.AsDuration()
	}
	if s := ep.GetStatusOnError(); s != nil && s.GetCode() != 0 {
		c.statusOnError = int(s.GetCode())
	}
	var err error
	if c.checker, err = newChecker(ep.GetMutationRules()); err != nil {
		return nil, err
	}
	gs := ep.GetGrpcService()
	switch {
	case gs.GetEnvoyGrpc() != nil:
		c.grpcCluster = gs.GetEnvoyGrpc().GetClusterName()
		c.grpcAuthority = gs.GetEnvoyGrpc().GetAuthority()
		if c.grpcAuthority == "" {
			c.grpcAuthority = c.grpcCluster
		}
	case gs.GetGoogleGrpc() != nil:
		c.grpcTarget = gs.GetGoogleGrpc().GetTargetUri()
	default:
		return nil, errors.New("grpc_service is required")
	}
	c.initialMetadata = gs.GetInitialMetadata()
	return c, nil
}
