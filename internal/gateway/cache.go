package gateway

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/extproc"
	"github.com/tollgate-ai/tollgate/internal/cache"
	"github.com/tollgate-ai/tollgate/internal/configopts"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// cacheSettings is a snapshot's part of the response cache: the hash
// strategy and the guardrail scopes, which may change on reload. nil when
// the configuration has no cache.
func cacheSettings(cfg *config.Config) (*extproc.CacheSettings, error) {
	if !cfg.CacheEnabled() {
		return nil, nil
	}
	s, err := cache.ParseStrategy(cfg.Cache.HashStrategy)
	if err != nil {
		return nil, err
	}
	scopes, err := configopts.CacheScopes(cfg)
	if err != nil {
		return nil, err
	}
	return &extproc.CacheSettings{Strategy: s, Scopes: scopes}, nil
}

// newCacheStore builds the process's cache store from the cache section in
// force at start, as the limiter is built: entries outlive reloads, so the
// backend and its sizes are chosen once. Redis uses the limiter's client
// settings (cache.redis, else limits.redis); every wait is bounded by the
// admission timeout, and a failure is a miss, never a failed request.
func newCacheStore(c *config.Cache, l *config.Limits, lookupEnv func(string) (string, bool), now func() time.Time) (extproc.CacheStore, func() error, error) {
	none := func() error { return nil }
	if c == nil || c.Backend == "" || c.Backend == config.CacheDisabled {
		return nil, none, nil
	}
	ttl := time.Duration(c.TTLSeconds) * time.Second
	maxEntry := int64(c.MaxEntryKB) << 10
	if c.Backend == config.CacheMemory {
		return cache.NewMemory(int64(c.MaxCacheSizeMB)<<20, maxEntry, ttl, now), none, nil
	}
	rb := c.Redis
	if rb == nil && l != nil {
		rb = l.Redis
	}
	if rb == nil {
		return nil, nil, fmt.Errorf("cache: backend redis needs cache.redis or limits.redis")
	}
	url, err := rb.URL.Resolve(lookupEnv)
	if err != nil {
		return nil, nil, fmt.Errorf("cache: redis url: %w", err)
	}
	opts, err := redis.ParseURL(string(url))
	if err != nil {
		// The URL may hold a password: say what is wrong, not what it is.
		return nil, nil, fmt.Errorf("cache: redis url from %s is not a valid redis:// or rediss:// URL", rb.URL)
	}
	set := rb.Settings()
	applySettings(opts, set)
	client := redis.NewClient(opts)
	prefix := rb.Prefix
	if prefix == "" {
		prefix = "tollgate:"
	}
	prefix += "cache:"
	return cache.NewRedis(client, prefix, ttl, maxEntry, set.AdmissionTimeout), client.Close, nil
}
