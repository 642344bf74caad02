package extproc

import (
	"strconv"
	"strings"
	"testing"
)

// The header entries and values of a mutation are carved from shared
// chunks; each header must still read back as set, in order, and no value
// may share writable capacity with the next.
func TestMutationSetsFromChunks(t *testing.T) {
	var mu mutation
	want := map[string]string{}
	var order []string
	for i := range 3*headerChunk + 1 {
		k := "x-h-" + strconv.Itoa(i)
		v := strings.Repeat("v", i*7) // some empty, some larger than half a value chunk
		switch i % 3 {
		case 0:
			mu.set(k, v)
		case 1:
			mu.setBytes(k, []byte(v))
		default:
			v = strconv.Itoa(-i * 1000)
			mu.setInt(k, int64(-i*1000))
		}
		want[k] = v
		order = append(order, k)
	}
	mu.setContentLength(42)
	want["content-length"], order = "42", append(order, "content-length")
	got := mu.get().GetSetHeaders()
	if len(got) != len(order) {
		t.Fatalf("%d headers set, want %d", len(got), len(order))
	}
	for i, o := range got {
		h := o.GetHeader()
		if h.GetKey() != order[i] || string(h.GetRawValue()) != want[order[i]] || h.GetValue() != "" {
			t.Fatalf("header %d = %q: %q (value %q), want %q: %q", i, h.GetKey(), h.GetRawValue(), h.GetValue(), order[i], want[order[i]])
		}
		if raw := h.GetRawValue(); cap(raw) != len(raw) {
			t.Fatalf("header %q's value has spare capacity %d: an append would write into the next value", h.GetKey(), cap(raw)-len(raw))
		}
	}
}
