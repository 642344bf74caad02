package config

// Cache configures the response cache (docs/cache.md). Apps opt in with
// App.Cache; without this section, or with backend disabled, nothing is
// cached.
type Cache struct {
	Backend string `json:"backend"` // "memory", "redis" or "disabled" (default)
	// Redis locates the shared Redis of backend redis; when unset, the
	// limiter's limits.redis is used, with the same client settings.
	Redis          *RedisBackend `json:"redis"`
	TTLSeconds     int           `json:"ttl_seconds"`       // entry lifetime; DefaultCacheTTLSeconds when 0
	MaxCacheSizeMB int           `json:"max_cache_size_mb"` // memory backend: total size; DefaultCacheSizeMB when 0
	MaxEntryKB     int           `json:"max_entry_kb"`      // largest answer stored; DefaultCacheEntryKB when 0
	HashStrategy   string        `json:"hash_strategy"`     // "content" (default), "content+model" or "full_request"
}

// AppCache is an app's opt-in to the response cache.
type AppCache struct {
	Enabled bool `json:"enabled"`
	// AnyTemperature also caches requests that are not deterministic
	// (neither temperature 0 nor a seed). Off by default.
	AnyTemperature bool `json:"any_temperature"`
}

// Cache backends.
const (
	CacheDisabled = "disabled"
	CacheMemory   = "memory"
	CacheRedis    = "redis"
)

// Cache defaults and bounds.
const (
	DefaultCacheTTLSeconds = 3600
	DefaultCacheSizeMB     = 256
	DefaultCacheEntryKB    = 1024
	MaxCacheTTLSeconds     = 30 * 24 * 3600
	MaxCacheSizeMB         = 64 << 10
	MaxCacheEntryKB        = 64 << 10
)

func validateCache(docs []*document) {
	var first *where
	for _, d := range docs {
		c := d.cfg.Cache
		if c == nil {
			continue
		}
		if first != nil {
			d.addf("cache", "cache is already set at %s", *first)
			continue
		}
		first = &where{d, "cache"}
		switch c.Backend {
		case "", CacheDisabled:
			c.Backend = CacheDisabled
		case CacheMemory:
		case CacheRedis:
			if c.Redis != nil {
				validateSecretRef(d, "cache.redis.url", &c.Redis.URL)
				validateRedisAt(d, "cache.redis", c.Redis)
			} else if !limitsRedis(docs) {
				d.addf("cache.redis", "backend redis needs cache.redis or limits.redis")
			}
		default:
			d.addf("cache.backend", "backend %q must be memory, redis or disabled", c.Backend)
		}
		switch c.HashStrategy {
		case "":
			c.HashStrategy = "content"
		case "content", "content+model", "full_request":
		default:
			d.addf("cache.hash_strategy", "hash_strategy %q must be content, content+model or full_request", c.HashStrategy)
		}
		bound := func(field string, v *int, def, max int) {
			switch {
			case *v < 0 || *v > max:
				d.addf("cache."+field, "%s must be between 1 and %d (0 or unset: %d)", field, max, def)
			case *v == 0:
				*v = def
			}
		}
		bound("ttl_seconds", &c.TTLSeconds, DefaultCacheTTLSeconds, MaxCacheTTLSeconds)
		bound("max_cache_size_mb", &c.MaxCacheSizeMB, DefaultCacheSizeMB, MaxCacheSizeMB)
		bound("max_entry_kb", &c.MaxEntryKB, DefaultCacheEntryKB, MaxCacheEntryKB)
		if c.MaxEntryKB > c.MaxCacheSizeMB<<10 {
			d.addf("cache.max_entry_kb", "max_entry_kb %d is above max_cache_size_mb (%d MB)", c.MaxEntryKB, c.MaxCacheSizeMB)
		}
	}
}

func limitsRedis(docs []*document) bool {
	for _, d := range docs {
		if l := d.cfg.Limits; l != nil && l.Redis != nil {
			return true
		}
	}
	return false
}

// CacheEnabled reports whether the response cache is configured on.
func (c *Config) CacheEnabled() bool { return c.Cache != nil && c.Cache.Backend != CacheDisabled }
