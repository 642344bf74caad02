package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a store shared by every replica, with Redis's own TTL expiring
// entries. Its client is configured like the limiter's (short, bounded waits),
// and the caller treats every error as a miss: a Redis outage costs cache
// hits, never requests.
type Redis struct {
	c        redis.UniversalClient
	prefix   string
	ttl      time.Duration
	maxEntry int64
	timeout  time.Duration
}

// NewRedis returns a store over c. Keys are prefix+key; each wait on Redis
// is bounded by timeout (on top of the client's own).
func NewRedis(c redis.UniversalClient, prefix string, ttl time.Duration, maxEntry int64, timeout time.Duration) *Redis {
	return &Redis{c: c, prefix: prefix, ttl: ttl, maxEntry: maxEntry, timeout: timeout}
}

// Get returns the entry under key, if Redis has it.
func (r *Redis) Get(ctx context.Context, key string) (Entry, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	b, err := r.c.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("cache get: %w", err)
	}
	e, err := decode(b)
	if err != nil {
		return Entry{}, false, err
	}
	return e, true, nil
}

// Put stores e under key with the TTL.
func (r *Redis) Put(ctx context.Context, key string, e Entry) error {
	if int64(len(key)+len(e.Body)) > r.maxEntry {
		return ErrTooLarge
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Set(ctx, r.prefix+key, encode(e), r.ttl).Err(); err != nil {
		return fmt.Errorf("cache put: %w", err)
	}
	return nil
}
