package pricing

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// formatFixedRef is formatFixed as it was written before appendFixed: the
// reference the allocation-free form must match digit for digit.
func formatFixedRef(v int64, scale int) string {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
	}
	p := uint64(1)
	for range scale {
		p *= 10
	}
	s := strconv.FormatUint(u/p, 10)
	if f := u % p; f != 0 {
		fs := strconv.FormatUint(f, 10)
		fs = strings.Repeat("0", scale-len(fs)) + fs
		s += "." + strings.TrimRight(fs, "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}

func TestAmountText(t *testing.T) {
	for _, v := range []int64{0, 1, 9, 10, 1_000_000_000_000, 1_500_000_000_000, 12_345, -1500 * int64(MicroUSD),
		int64(MaxAmount), math.MaxInt64, math.MinInt64 + 1, math.MinInt64, 100_000_000_000, 1_000_000_000_001} {
		a := Amount(v)
		want := formatFixedRef(v, 12)
		if got := a.String(); got != want {
			t.Errorf("Amount(%d).String() = %q, want %q", v, got, want)
		}
		if got := string(a.Append([]byte("x="))); got != "x="+want {
			t.Errorf("Amount(%d).Append = %q, want %q", v, got, "x="+want)
		}
		if got, want := Rate(v).String(), formatFixedRef(v, 6); got != want {
			t.Errorf("Rate(%d).String() = %q, want %q", v, got, want)
		}
	}
	var b [32]byte
	if n := testing.AllocsPerRun(100, func() { _ = Amount(1_234_567).Append(b[:0]) }); n != 0 {
		t.Errorf("Append allocates %v times", n)
	}
}

func FuzzAmountText(f *testing.F) {
	f.Add(int64(0))
	f.Add(int64(-1500))
	f.Add(int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, v int64) {
		if got, want := Amount(v).String(), formatFixedRef(v, 12); got != want {
			t.Fatalf("Amount(%d).String() = %q, want %q", v, got, want)
		}
		if got, want := Rate(v).String(), formatFixedRef(v, 6); got != want {
			t.Fatalf("Rate(%d).String() = %q, want %q", v, got, want)
		}
	})
}
