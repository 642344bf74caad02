package ledger

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tollgate-ai/tollgate/extproc"
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

// BenchmarkOffer is what a finishing request pays to hand its record to the
// ledger: one non-blocking queue send (the writer's goroutine is not
// running here, so its work is not counted).
func BenchmarkOffer(b *testing.B) {
	w := &Writer{q: make(chan *extproc.Record, b.N)}
	r := record(1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if !w.Offer(r) {
			b.Fatal("refused")
		}
	}
}
