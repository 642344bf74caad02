package pricing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Amount is money in pico-dollars (10^-12 USD).
//
// Why pico-dollars: a price is quoted in USD per million tokens, so one
// token at P $/MTok costs P×10^-6 USD. With prices written with up to six
// decimals (published prices already use four or five, e.g. 0.0375 or
// 0.01875), P×10^-6 USD is a whole number of pico-dollars, so the cost of
// any token count is an exact integer and sums of any number of requests
// never drift. Micro- or nano-dollars would have to round 0.30 $/MTok × 1
// token (0.3 µ$) or 0.0001 $/MTok × 1 token (0.1 n$). The price of that
// exactness is range: an int64 holds ±9,223,372.036854775807 USD, far above
// any single request and, as a spend counter, above any per-key, per-app or
// per-tenant monthly budget this gateway is expected to enforce. Arithmetic
// here saturates at MaxAmount instead of wrapping.
type Amount int64

// Units of Amount.
const (
	PicoUSD   Amount = 1
	NanoUSD   Amount = 1_000
	MicroUSD  Amount = 1_000_000
	USD       Amount = 1_000_000_000_000
	MaxAmount Amount = math.MaxInt64
)

// String formats a as an exact decimal number of USD without trailing zeros,
// e.g. "0.0000003", "2.5" or "0".
func (a Amount) String() string {
	return formatFixed(int64(a), 12)
}

// Append appends String's text to b: the same digits, without allocating
// when b has room.
func (a Amount) Append(b []byte) []byte {
	return appendFixed(b, int64(a), 12)
}

// ParseUSD parses an exact decimal number of USD ("12", "0.75", "0.000001")
// into an Amount, without going through floating point. It accepts up to 12
// decimals (more only when the extra digits are zeros) and no sign or
// exponent.
func ParseUSD(s string) (Amount, error) {
	v, err := parseFixed(s, 12, int64(MaxAmount))
	if err != nil {
		return 0, fmt.Errorf("USD amount %q: %w", s, err)
	}
	return Amount(v), nil
}

// Rate is a price in micro-dollars per million tokens, which is the same
// number as pico-dollars per token: tokens × Rate is an exact Amount.
type Rate int64

// MaxRate is the highest accepted price, 1,000,000 USD per million tokens.
// It keeps every product of a rate and a token count far from accidental
// overflow (which saturates anyway) and catches prices typed per token.
const MaxRate Rate = 1_000_000 * 1_000_000

// String formats r as an exact decimal number of USD per million tokens
// without trailing zeros, e.g. "0.075".
func (r Rate) String() string {
	return formatFixed(int64(r), 6)
}

// ParseRate parses an exact decimal price in USD per million tokens ("3",
// "0.30", "0.01875") without going through floating point. It accepts up to
// six decimals (more only when the extra digits are zeros), no sign, no
// exponent, and at most MaxRate.
func ParseRate(s string) (Rate, error) {
	v, err := parseFixed(s, 6, int64(MaxRate))
	if err != nil {
		return 0, fmt.Errorf("price %q: %w", s, err)
	}
	return Rate(v), nil
}

// MarshalText writes the exact decimal form, so a Rate survives JSON and
// YAML round trips unchanged.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses the scalar text of a price with ParseRate. Decoders
// that hand over the source text of a number (a YAML node's Value) therefore
// never round a price through float64.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalJSON writes the price as a JSON number.
func (r Rate) MarshalJSON() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalJSON accepts a JSON number or a string holding one, parsed from
// its text.
func (r *Rate) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		u, err := strconv.Unquote(s)
		if err != nil {
			return fmt.Errorf("price %s: %w", s, err)
		}
		s = u
	}
	return r.UnmarshalText([]byte(s))
}

// times returns tokens × r as an Amount, saturating at MaxAmount. Negative
// inputs give 0; callers reject them before.
func (r Rate) times(tokens int64) Amount {
	if tokens <= 0 || r <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(r))
	if hi != 0 || lo > uint64(MaxAmount) {
		return MaxAmount
	}
	return Amount(lo)
}

// forMillis returns the cost of ms milliseconds at a per minute: a × ms /
// 60,000, rounded up to the next pico-dollar (never under-billed),
// saturating at MaxAmount.
func (a Amount) forMillis(ms int64) Amount {
	if ms <= 0 || a <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(a), uint64(ms))
	if hi >= 60_000 { // the quotient would not fit in 64 bits
		return MaxAmount
	}
	q, r := bits.Div64(hi, lo, 60_000)
	if r > 0 {
		q++
	}
	if q > uint64(MaxAmount) {
		return MaxAmount
	}
	return Amount(q)
}

// add returns a + b, saturating at MaxAmount; both are non-negative.
func add(a, b Amount) Amount {
	if a > MaxAmount-b {
		return MaxAmount
	}
	return a + b
}

var (
	errSyntax   = errors.New("not a plain decimal number (digits, optionally one '.' and more digits)")
	errNegative = errors.New("must not be negative")
	errRange    = errors.New("too large")
)

// parseFixed parses an unsigned decimal with at most scale significant
// fraction digits into an integer scaled by 10^scale, at most limit.
func parseFixed(s string, scale int, limit int64) (int64, error) {
	if strings.HasPrefix(s, "-") {
		return 0, errNegative
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" || !digits(intPart) || !digits(frac) {
		return 0, errSyntax
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > scale {
		return 0, fmt.Errorf("more than %d decimal places", scale)
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > 19-scale {
		return 0, errRange
	}
	var v uint64
	for _, c := range intPart {
		v = v*10 + uint64(c-'0')
	}
	for i := range scale {
		v *= 10
		if i < len(frac) {
			v += uint64(frac[i] - '0')
		}
	}
	if v > uint64(limit) {
		return 0, errRange
	}
	return int64(v), nil
}

// digits reports whether s is empty or only ASCII digits.
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// formatFixed formats v/10^scale exactly, without trailing zeros.
func formatFixed(v int64, scale int) string {
	var b [24]byte
	return string(appendFixed(b[:0], v, scale))
}

// appendFixed appends formatFixed's text to b.
func appendFixed(b []byte, v int64, scale int) []byte {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
		b = append(b, '-')
	}
	p := uint64(1)
	for range scale {
		p *= 10
	}
	b = strconv.AppendUint(b, u/p, 10)
	if f := u % p; f != 0 {
		b = append(b, '.')
		// f's scale digits, leading zeros included, then the trailing
		// zeros cut.
		start := len(b)
		for range scale {
			b = append(b, '0')
		}
		for i := len(b) - 1; f > 0; i-- {
			b[i] = byte('0' + f%10)
			f /= 10
		}
		end := len(b)
		for end > start && b[end-1] == '0' {
			end--
		}
		b = b[:end]
	}
	return b
}
