package eventstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
)

// stream builds a ConverseStream-shaped stream of n messages.
func stream() ([]byte, []string) {
	var b []byte
	var payloads []string
	for i, ev := range []string{"messageStart", "contentBlockDelta", "contentBlockDelta", "messageStop", "metadata"} {
		p := fmt.Sprintf(`{"contentBlockIndex":0,"n":%d}`, i)
		payloads = append(payloads, p)
		b = Encode(b, [][2]string{{":event-type", ev}, {":content-type", "application/json"}, {":message-type", "event"}}, []byte(p))
	}
	return b, payloads
}

func decodeAll(t *testing.T, d *Decoder, chunks [][]byte) ([]string, error) {
	t.Helper()
	var got []string
	for _, c := range chunks {
		d.Feed(c)
		for {
			m, ok := d.Next()
			if !ok {
				break
			}
			if string(m.Get(":message-type")) != "event" {
				t.Fatalf("headers %q", m.Headers)
			}
			got = append(got, string(m.Payload))
		}
	}
	return got, d.Finish()
}

func TestDecodeEverySplit(t *testing.T) {
	b, want := stream()
	for i := 0; i <= len(b); i++ {
		for j := i; j <= len(b); j += 7 { // two cut points: every first cut, a spread of second ones
			var d Decoder
			got, err := decodeAll(t, &d, [][]byte{b[:i], b[i:j], b[j:]})
			if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("split at %d,%d: %q, %v", i, j, got, err)
			}
		}
	}
}

func TestDecodeByteByByte(t *testing.T) {
	b, want := stream()
	var d Decoder
	var chunks [][]byte
	for i := range b {
		chunks = append(chunks, b[i:i+1])
	}
	got, err := decodeAll(t, &d, chunks)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%q, %v", got, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := Encode(nil, [][2]string{{":event-type", "x"}}, []byte(`{}`))
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"prelude crc", flip(9), 0, ErrPreludeCRC},
		{"length corrupted", flip(2), 0, ErrPreludeCRC},
		{"payload corrupted", flip(len(good) - 6), 0, ErrMessageCRC},
		{"message crc corrupted", flip(len(good) - 1), 0, ErrMessageCRC},
		{"too large", Encode(nil, nil, make([]byte, 100)), 64, ErrTooLarge},
		{"truncated", good[:len(good)-1], 0, ErrTruncated},
		{"truncated prelude", good[:5], 0, ErrTruncated},
		{"headers longer than message", withPrelude(30, 20), 0, ErrMalformed},
		{"too short", withPrelude(8, 0), 0, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decoder{MaxMessageSize: tc.max}
			d.Feed(tc.in)
			for range 10 {
				if _, ok := d.Next(); !ok {
					break
				}
			}
			if err := d.Finish(); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// withPrelude is a prelude with a valid CRC and the given lengths, followed
// by enough bytes to complete the message.
func withPrelude(total, hlen uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, total)
	b = binary.BigEndian.AppendUint32(b, hlen)
	b = binary.BigEndian.AppendUint32(b, crc32IEEE(b))
	return append(b, make([]byte, max(int(total), 12)-12)...)
}

func TestHeaderTypes(t *testing.T) {
	// A header block with every value type, built by hand from the format.
	var h []byte
	add := func(name string, typ byte, val []byte) {
		h = append(h, byte(len(name)))
		h = append(h, name...)
		h = append(h, typ)
		h = append(h, val...)
	}
	add("t", TypeBoolTrue, nil)
	add("f", TypeBoolFalse, nil)
	add("b", TypeByte, []byte{1})
	add("s", TypeShort, []byte{0, 1})
	add("i", TypeInt, []byte{0, 0, 0, 1})
	add("l", TypeLong, make([]byte, 8))
	add("ts", TypeTimestamp, make([]byte, 8))
	add("u", TypeUUID, make([]byte, 16))
	add("by", TypeBytes, []byte{0, 2, 'h', 'i'})
	add(":event-type", TypeString, []byte{0, 3, 'a', 'b', 'c'})
	msg := rawMessage(h, []byte("payload"))
	var d Decoder
	d.Feed(msg)
	m, ok := d.Next()
	if !ok || string(m.Get(":event-type")) != "abc" || string(m.Get("by")) != "hi" || len(m.Headers) != 10 || string(m.Payload) != "payload" {
		t.Fatalf("%v %q %v", ok, m.Headers, d.Err())
	}
	d = Decoder{}
	d.Feed(rawMessage([]byte{1, 'x', 42}, nil))
	if _, ok := d.Next(); ok || d.Err() == nil {
		t.Fatal("unknown header type accepted")
	}
}

func rawMessage(headers, payload []byte) []byte {
	total := 12 + len(headers) + len(payload) + 4
	b := binary.BigEndian.AppendUint32(nil, uint32(total))
	b = binary.BigEndian.AppendUint32(b, uint32(len(headers)))
	b = binary.BigEndian.AppendUint32(b, crc32IEEE(b))
	b = append(b, headers...)
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32IEEE(b))
}

func FuzzDecoder(f *testing.F) {
	b, _ := stream()
	f.Add(b, 3)
	f.Add(b[:20], 1)
	f.Add(rawMessage([]byte{1, 'x', 7, 0, 1, 'y'}, []byte("p")), 2)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		d := Decoder{MaxMessageSize: 1 << 16}
		split = max(1, split%64+1)
		for i := 0; i < len(in); i += split {
			d.Feed(in[i:min(len(in), i+split)])
			for range len(in) + 1 {
				m, ok := d.Next()
				if !ok {
					break
				}
				if len(m.Payload) > len(in) {
					t.Fatal("payload longer than input")
				}
			}
		}
		_ = d.Finish()
		if d.Err() == nil && d.Buffered() != 0 {
			t.Fatal("clean finish with bytes left")
		}
	})
}

func crc32IEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// BenchmarkDecode decodes a ConverseStream-shaped stream fed in 1 KiB chunks,
// as Envoy delivers a streamed body.
func BenchmarkDecode(b *testing.B) {
	var s []byte
	for range 200 {
		s = Encode(s, [][2]string{{":event-type", "contentBlockDelta"}, {":content-type", "application/json"}, {":message-type", "event"}},
			[]byte(`{"contentBlockIndex":0,"delta":{"text":"Hello, world. "},"p":"abcdefghijklmnop"}`))
	}
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		var d Decoder
		for i := 0; i < len(s); i += 1024 {
			d.Feed(s[i:min(len(s), i+1024)])
			for {
				if _, ok := d.Next(); !ok {
					break
				}
			}
		}
		if d.Finish() != nil {
			b.Fatal(d.Err())
		}
	}
}
