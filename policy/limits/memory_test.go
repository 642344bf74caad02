package limits

import (
	"testing"
	"time"
)

func memoryFactory(t *testing.T, now func() time.Time) func() Limiter {
	m := NewMemory(now)
	return func() Limiter { return m }
}

func TestMemory(t *testing.T) { runSuite(t, memoryFactory) }

// TestMemoryExpiry: entries go once they can no longer matter.
func TestMemoryExpiry(t *testing.T) {
	c := newClock("2026-05-01T23:59:00Z")
	m := NewMemory(c.Now)
	d := admit(t, m, Request{Limits: []Limit{{Scope: "a", RequestsPerMinute: 1, TokensPerMinute: 100}}, Budgets: []Budget{{Scope: "a", Daily: 10, Monthly: 10}}, Tokens: 50})
	reconcile(t, m, d.Reservation, Usage{Tokens: 50, Cost: 1})
	if len(m.buckets) != 2 || len(m.spend) != 2 {
		t.Fatalf("%d buckets, %d counters; want 2, 2", len(m.buckets), len(m.spend))
	}
	// Buckets empty after a minute and expire a margin later; the day and
	// month counters a day after their period.
	c.Advance(2*time.Minute + time.Millisecond)
	admit(t, m, Request{})
	if len(m.buckets) != 0 || len(m.spend) != 2 {
		t.Fatalf("after 2 min: %d buckets, %d counters; want 0, 2", len(m.buckets), len(m.spend))
	}
	c.Set("2026-05-03T00:00:00Z")
	admit(t, m, Request{})
	if len(m.spend) != 1 {
		t.Fatalf("after the day's grace: %d counters; want 1 (the month's)", len(m.spend))
	}
	c.Set("2026-06-02T00:00:00Z")
	admit(t, m, Request{})
	if len(m.spend) != 0 {
		t.Fatalf("after the month's grace: %d counters; want 0", len(m.spend))
	}
	// A refund to zero removes the bucket at once.
	d = admit(t, m, Request{Limits: []Limit{{Scope: "b", TokensPerMinute: 100}}, Tokens: 50})
	reconcile(t, m, d.Reservation, Usage{})
	if len(m.buckets) != 0 {
		t.Fatalf("after a full refund: %d buckets", len(m.buckets))
	}
}

func TestLeak(t *testing.T) {
	for _, tt := range []struct{ level, rate, elapsed, want int64 }{
		{100, 10, 0, 100},
		{100, 10, -5, 100},
		{100, 10, 9, 10},
		{100, 10, 10, 0},
		{100, 10, 1 << 62, 0}, // no overflow
		{maxLevel, MaxPerMinute, 1 << 40, 0},
		{maxLevel, 1, 1, maxLevel - 1},
		{0, 1, 1, 0},
	} {
		if got := leak(tt.level, tt.rate, tt.elapsed); got != tt.want {
			t.Errorf("leak(%d, %d, %d) = %d; want %d", tt.level, tt.rate, tt.elapsed, got, tt.want)
		}
	}
}

func BenchmarkAdmitReconcileMemory(b *testing.B) {
	benchmarkAdmitReconcile(b, NewMemory(nil))
}
