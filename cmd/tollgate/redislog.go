package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// redisLogger carries go-redis's own messages (dial failures, bad pooled
// connections) into the process's zap logger, so stderr stays one JSON line
// per entry. They are sampled: during an outage go-redis logs once per
// failed connection attempt, hundreds a second.
type redisLogger struct{ log *zap.Logger }

func newRedisLogger(log *zap.Logger) redisLogger {
	sampled := log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, 10, 100) // 10 a second, then 1 in 100
	}))
	return redisLogger{log: sampled.Named("redis")}
}

// Printf implements go-redis's internal.Logging.
func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn("redis client", zap.String("detail", fmt.Sprintf(format, v...)))
}
