package serve

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/policy/limits"
	"github.com/tollgate-ai/tollgate/routing/config"
)

func backendOf(l *config.Limits) string {
	if l == nil || l.Backend == "" {
		return "memory"
	}
	return l.Backend
}

// newLimiter builds the process's limiter from the limits section in force
// at start: counters must outlive config reloads, so the backend is chosen
// once. The closer releases the Redis client.
func newLimiter(l *config.Limits, lookupEnv func(string) (string, bool)) (limits.Limiter, func() error, error) {
	if backendOf(l) == "memory" {
		return limits.NewMemory(nil), func() error { return nil }, nil
	}
	url, err := l.Redis.URL.Resolve(lookupEnv)
	if err != nil {
		return nil, nil, fmt.Errorf("limits: redis url: %w", err)
	}
	opts, err := redis.ParseURL(string(url))
	if err != nil {
		// The URL may hold a password: say what is wrong, not what it is.
		return nil, nil, fmt.Errorf("limits: redis url from %s is not a valid redis:// or rediss:// URL", l.Redis.URL)
	}
	client := redis.NewClient(opts)
	fail := limits.FailurePolicy{Budgets: limits.FailClosed}
	if f := l.OnBackendFailure; f != nil {
		fail.Requests = failMode(f.Requests, limits.FailOpen)
		fail.Tokens = failMode(f.Tokens, limits.FailOpen)
		fail.Budgets = failMode(f.Budgets, limits.FailClosed)
	}
	return limits.NewRedis(client, limits.RedisOptions{Prefix: l.Redis.Prefix, Failure: fail}), client.Close, nil
}

func failMode(s string, def limits.FailMode) limits.FailMode {
	switch s {
	case "open":
		return limits.FailOpen
	case "closed":
		return limits.FailClosed
	}
	return def
}
