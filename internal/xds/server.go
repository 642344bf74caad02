package xds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/log"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Server serves the generated resources to Envoy over ADS (state of the
// world), from go-control-plane's snapshot cache. Every Envoy gets the same
// snapshot whatever its node id: Tollgate's Envoys are interchangeable.
// Publish replaces the snapshot; Envoy applies it to new requests while
// requests in flight keep the clusters and routes they started with.
type Server struct {
	cache cachev3.SnapshotCache
	xds   serverv3.Server
	log   *zap.Logger

	mu      sync.Mutex
	current *Resources
	version string
}

// snapshotKey is the one cache entry every node reads.
const snapshotKey = "tollgate"

type oneSnapshot struct{}

func (oneSnapshot) ID(*corev3.Node) string { return snapshotKey }

// NewServer makes an ADS server with no snapshot yet: Envoy's requests wait
// until the first Publish. ctx bounds the server's streams.
func NewServer(ctx context.Context, logger *zap.Logger) *Server {
	if logger == nil {
		logger = zap.NewNop()
	}
	s := &Server{log: logger}
	sl := logger.Sugar()
	s.cache = cachev3.NewSnapshotCache(true, oneSnapshot{}, log.LoggerFuncs{
		DebugFunc: sl.Debugf, InfoFunc: sl.Debugf, WarnFunc: sl.Warnf, ErrorFunc: sl.Errorf,
	})
	s.xds = serverv3.NewServer(ctx, s.cache, serverv3.CallbackFuncs{
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			// A NACK: Envoy keeps its previous resources of that type
			// (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol#ack-nack-and-resource-type-instance-version).
			if d := req.GetErrorDetail(); d != nil {
				logger.Warn("xds: Envoy rejected resources", zap.Int64("stream", id), zap.String("node", req.GetNode().GetId()),
					zap.String("type", req.GetTypeUrl()), zap.String("version", req.GetVersionInfo()), zap.String("error", d.GetMessage()))
			}
			return nil
		},
	})
	return s
}

// Register adds the Aggregated Discovery Service to a gRPC server (tollgate
// serve's, next to ext_proc).
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
}

// Publish makes r the snapshot Envoy receives. The version is a hash of the
// resources, so a reload that changes nothing Envoy sees sends nothing, and
// any change gets a new version. The snapshot must be consistent: the route
// configuration is the one the bootstrap's listener asks for.
func (s *Server) Publish(ctx context.Context, r *Resources) (string, error) {
	version, err := Version(r)
	if err != nil {
		return "", err
	}
	clusters := make([]types.Resource, len(r.Clusters))
	for i, c := range r.Clusters {
		clusters[i] = c
	}
	res := map[resource.Type][]types.Resource{resource.ClusterType: clusters, resource.RouteType: {r.Routes}}
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		return "", fmt.Errorf("xds snapshot: %w", err)
	}
	// The listener lives in the bootstrap, not in the snapshot; check the
	// snapshot's references as if it were there.
	withListener := map[resource.Type][]types.Resource{resource.ClusterType: clusters, resource.RouteType: {r.Routes},
		resource.ListenerType: {referenceListener()}}
	check, err := cachev3.NewSnapshot(version, withListener)
	if err == nil {
		err = check.Consistent()
	}
	if err != nil {
		return "", fmt.Errorf("xds snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cache.SetSnapshot(ctx, snapshotKey, snap); err != nil {
		return "", fmt.Errorf("xds snapshot: %w", err)
	}
	if version != s.version {
		s.log.Info("xds: published", zap.String("version", version), zap.Strings("clusters", r.ClusterNames()))
	}
	s.current, s.version = r, version
	return version, nil
}

// Current returns the resources in force and their version; nil before the
// first Publish.
func (s *Server) Current() (*Resources, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, s.version
}

// Version is the snapshot version of r: a hash of its deterministic encoding.
func Version(r *Resources) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, m := range append(clusterMessages(r), r.Routes) {
		b, err := opts.Marshal(m)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func clusterMessages(r *Resources) []proto.Message {
	ms := make([]proto.Message, len(r.Clusters))
	for i, c := range r.Clusters {
		ms[i] = c
	}
	return ms
}

// referenceListener is the part of the bootstrap's listener that names
// resources of the snapshot: its HCM takes RouteConfigName over ADS.
func referenceListener() *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: ListenerName,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: RouteConfigName,
			ConfigSource: &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}},
	}
	return &listenerv3.Listener{Name: ListenerName, FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
	}}}}}
}
