package ledger

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/test/pgtest"
)

// BenchmarkWriter measures rows written per second per core through the
// asynchronous writer: b.N records queued, then a drain that commits them.
func BenchmarkWriter(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchWriter(b, openSQLite(b)) })
	b.Run("postgres", func(b *testing.B) {
		pg := pgtest.Start(b)
		s, err := OpenPostgres(context.Background(), pg.CreateDB("bench"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchWriter(b, s)
	})
}

func benchWriter(b *testing.B, s *Store) {
	w := NewWriter(s, WriterOptions{Queue: b.N + 1, Batch: 500, PurgeTick: make(chan time.Time)})
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		w.Offer(record(i))
	}
	if err := w.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds()/float64(runtime.GOMAXPROCS(0)), "rows/s/core")
}
