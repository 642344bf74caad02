package byteview

import "testing"

func TestString(t *testing.T) {
	for _, in := range [][]byte{nil, {}, []byte("x"), []byte(`{"a":1}`)} {
		if got := String(in); got != string(in) {
			t.Errorf("String(%q) = %q", in, got)
		}
	}
}
