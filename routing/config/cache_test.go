package config

import (
	"reflect"
	"testing"
)

func TestCacheProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown backend", "cache: {backend: memcached}\n", []string{`a.yaml:2: cache.backend: backend "memcached" must be memory, redis or disabled`}},
		{"redis without a redis", "cache: {backend: redis}\n", []string{"a.yaml:2: cache.redis: backend redis needs cache.redis or limits.redis"}},
		{"unknown strategy", "cache: {backend: memory, hash_strategy: semantic}\n",
			[]string{`a.yaml:2: cache.hash_strategy: hash_strategy "semantic" must be content, content+model or full_request`}},
		{"negative ttl", "cache: {backend: memory, ttl_seconds: -1}\n",
			[]string{"a.yaml:2: cache.ttl_seconds: ttl_seconds must be between 1 and 2592000 (0 or unset: 3600)"}},
		{"entry above total", "cache: {backend: memory, max_cache_size_mb: 1, max_entry_kb: 2048}\n",
			[]string{"a.yaml:2: cache.max_entry_kb: max_entry_kb 2048 is above max_cache_size_mb (1 MB)"}},
		{"redis wait", "cache: {backend: redis, redis: {url: {env: R}, read_timeout: 2h}}\n",
			[]string{"a.yaml:2: cache.redis.read_timeout: read_timeout must be above 0 and at most 1m0s"}},
		{"unknown field", "cache: {backend: memory, size: 1}\n", []string{`a.yaml:2: cache: unknown field "size"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"a.yaml": "version: 1\n" + tt.yaml})
			_, got := load(t, dir)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

func TestCacheDefaults(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": "version: 1\ncache: {backend: memory}\n"})
	cfg, probs := load(t, dir)
	if probs != nil {
		t.Fatal(probs)
	}
	want := &Cache{Backend: CacheMemory, TTLSeconds: DefaultCacheTTLSeconds, MaxCacheSizeMB: DefaultCacheSizeMB,
		MaxEntryKB: DefaultCacheEntryKB, HashStrategy: "content"}
	if !reflect.DeepEqual(cfg.Cache, want) || !cfg.CacheEnabled() {
		t.Errorf("cache = %+v, want %+v", cfg.Cache, want)
	}
	writeFiles(t, dir, map[string]string{"a.yaml": "version: 1\ncache: {}\n"})
	if cfg, _ := load(t, dir); cfg.CacheEnabled() {
		t.Error("an empty cache section enables the cache")
	}
}
