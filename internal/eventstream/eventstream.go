// Package eventstream decodes the AWS event-stream binary framing
// (content type application/vnd.amazon.eventstream), which Bedrock's
// ConverseStream uses instead of SSE.
//
// A message is, all integers big-endian
// (https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html):
//
//	total length   uint32  the whole message, these 4 bytes and the final CRC included
//	headers length uint32
//	prelude CRC    uint32  CRC-32 (IEEE) of the 8 bytes above
//	headers        name length (1 byte), name, value type (1 byte), value; repeated
//	payload        total - headers - 16 bytes
//	message CRC    uint32  CRC-32 of everything before it
//
// The Decoder is incremental: bytes are fed as they arrive, in chunks split
// anywhere, and whole messages come out. It verifies both CRCs and bounds the
// size of one message, so a broken or hostile upstream cannot make it buffer
// without limit.
package eventstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	preludeLen = 12
	crcLen     = 4
	minMessage = preludeLen + crcLen
)

// DefaultMaxMessageSize bounds one message when Decoder.MaxMessageSize is 0.
// AWS limits event-stream messages to 16 MiB.
const DefaultMaxMessageSize = 16 << 20

// Errors of a stream that cannot be decoded any further.
var (
	ErrPreludeCRC  = errors.New("eventstream: prelude CRC mismatch")
	ErrMessageCRC  = errors.New("eventstream: message CRC mismatch")
	ErrTooLarge    = errors.New("eventstream: message larger than the limit")
	ErrMalformed   = errors.New("eventstream: malformed message")
	ErrTruncated   = errors.New("eventstream: stream ended inside a message")
	errBadHeaderTy = errors.New("eventstream: unknown header value type")
)

// Message is one decoded message. Its slices point into the decoder's buffer
// and are valid only until the next call to Feed.
type Message struct {
	Headers []Header
	Payload []byte
}

// Header is one message header. Only string and byte-array values, the only
// types Bedrock sends, are kept in Value; other types are skipped over
// correctly and kept with a nil Value.
type Header struct {
	Name  []byte
	Type  byte
	Value []byte
}

// Header value types.
const (
	TypeBoolTrue  = 0
	TypeBoolFalse = 1
	TypeByte      = 2
	TypeShort     = 3
	TypeInt       = 4
	TypeLong      = 5
	TypeBytes     = 6
	TypeString    = 7
	TypeTimestamp = 8
	TypeUUID      = 9
)

// Get returns the value of the first header named name.
func (m *Message) Get(name string) []byte {
	for _, h := range m.Headers {
		if string(h.Name) == name {
			return h.Value
		}
	}
	return nil
}

// Decoder decodes a stream of messages. The zero value is ready to use.
type Decoder struct {
	// MaxMessageSize bounds one message's total length; 0 means
	// DefaultMaxMessageSize.
	MaxMessageSize int

	buf     []byte
	off     int // start of the first undecoded byte in buf
	err     error
	headers []Header // reused across messages
}

// Feed appends bytes received from the stream. Messages returned earlier by
// Next become invalid.
func (d *Decoder) Feed(p []byte) {
	if d.off > 0 {
		n := copy(d.buf, d.buf[d.off:])
		d.buf = d.buf[:n]
		d.off = 0
	}
	d.buf = append(d.buf, p...)
}

// Next returns the next complete message, or false when more bytes are
// needed or the stream is broken (see Err).
func (d *Decoder) Next() (Message, bool) {
	if d.err != nil {
		return Message{}, false
	}
	rest := d.buf[d.off:]
	if len(rest) < preludeLen {
		return Message{}, false
	}
	total := binary.BigEndian.Uint32(rest[0:4])
	hlen := binary.BigEndian.Uint32(rest[4:8])
	if crc32.ChecksumIEEE(rest[0:8]) != binary.BigEndian.Uint32(rest[8:12]) {
		d.err = ErrPreludeCRC
		return Message{}, false
	}
	limit := d.MaxMessageSize
	if limit <= 0 {
		limit = DefaultMaxMessageSize
	}
	switch {
	case uint64(total) > uint64(limit):
		d.err = fmt.Errorf("%w (%d bytes)", ErrTooLarge, total)
		return Message{}, false
	case total < minMessage || uint64(hlen) > uint64(total)-minMessage:
		d.err = ErrMalformed
		return Message{}, false
	}
	if len(rest) < int(total) {
		return Message{}, false
	}
	msg := rest[:total]
	body := msg[:total-crcLen]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(msg[total-crcLen:]) {
		d.err = ErrMessageCRC
		return Message{}, false
	}
	hs, err := parseHeaders(d.headers[:0], body[preludeLen:preludeLen+hlen])
	if err != nil {
		d.err = err
		return Message{}, false
	}
	d.headers = hs
	d.off += int(total)
	return Message{Headers: hs, Payload: body[preludeLen+hlen:]}, true
}

// Finish reports whether the stream ended cleanly between messages; call it
// at the end of the stream, after Next returned false.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.buf) > d.off {
		d.err = ErrTruncated
	}
	return d.err
}

// Err is the error that stopped decoding, if any.
func (d *Decoder) Err() error { return d.err }

// Buffered is how many undecoded bytes the decoder holds.
func (d *Decoder) Buffered() int { return len(d.buf) - d.off }

func parseHeaders(out []Header, b []byte) ([]Header, error) {
	for len(b) > 0 {
		n := int(b[0])
		if n == 0 || len(b) < 1+n+1 {
			return out, ErrMalformed
		}
		h := Header{Name: b[1 : 1+n], Type: b[1+n]}
		b = b[2+n:]
		var size int
		switch h.Type {
		case TypeBoolTrue, TypeBoolFalse:
		case TypeByte:
			size = 1
		case TypeShort:
			size = 2
		case TypeInt:
			size = 4
		case TypeLong, TypeTimestamp:
			size = 8
		case TypeUUID:
			size = 16
		case TypeBytes, TypeString:
			if len(b) < 2 {
				return out, ErrMalformed
			}
			l := int(binary.BigEndian.Uint16(b))
			if len(b) < 2+l {
				return out, ErrMalformed
			}
			h.Value = b[2 : 2+l]
			b = b[2+l:]
			out = append(out, h)
			continue
		default:
			return out, errBadHeaderTy
		}
		if len(b) < size {
			return out, ErrMalformed
		}
		b = b[size:]
		out = append(out, h)
	}
	return out, nil
}

// Encode appends one message with string-valued headers (name, value pairs)
// to dst, in the wire format. It is what the decoder's tests and the fake
// Bedrock use to build streams from the documented format.
func Encode(dst []byte, headers [][2]string, payload []byte) []byte {
	hlen := 0
	for _, h := range headers {
		hlen += 1 + len(h[0]) + 1 + 2 + len(h[1])
	}
	total := preludeLen + hlen + len(payload) + crcLen
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(total))
	dst = binary.BigEndian.AppendUint32(dst, uint32(hlen))
	dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:start+8]))
	for _, h := range headers {
		dst = append(dst, byte(len(h[0])))
		dst = append(dst, h[0]...)
		dst = append(dst, TypeString)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(h[1])))
		dst = append(dst, h[1]...)
	}
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}
