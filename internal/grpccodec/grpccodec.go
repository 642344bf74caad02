// Package grpccodec is the gRPC codec of the ext_proc server: grpc-go's
// proto codec, minus two whole copies of every large HTTP body.
//
// grpc-go's codec copies a received message into one buffer and protobuf
// then copies a bytes field out of it; on the way back it marshals the
// reply, body included, into a new buffer. For a 50 MB request body that
// is 100 MB more than the body itself. This codec instead
//
//   - receives a ProcessingRequest carrying a large HttpBody into one
//     buffer of its own and points HttpBody.Body into it (with spare
//     capacity after it, so the gateway's small edits need no new buffer);
//   - sends a ProcessingResponse carrying a large body mutation with the
//     body's bytes referenced, not copied: each message on the way to the
//     body is marshalled without that field, which is then written once,
//     after the message's other fields, ending with the body. Every field
//     still appears once; only the order differs from protobuf's own, and
//     parsers accept fields in any order (https://protobuf.dev/programming-guides/encoding/,
//     "Field Order").
//
// Every other message goes through grpc-go's proto codec unchanged.
package grpccodec

import (
	"errors"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec this one wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Large is the body size from which the codec avoids the copies; smaller
// messages take grpc-go's pooled path.
const Large = 64 << 10

// DefaultSlack is the spare capacity the server leaves after a received
// body: enough for the usual edits (a longer model id, include_usage).
const DefaultSlack = 4 << 10

// Codec implements encoding.CodecV2. Slack is the spare capacity left after
// a received body.
type Codec struct {
	Slack int
}

// Name is "proto": on the wire nothing changes.
func (Codec) Name() string { return "proto" }

func std() encoding.CodecV2 { return encoding.GetCodecV2("proto") }

// Field numbers, read from the descriptors rather than written down.
var (
	reqFields     = (&extprocv3.ProcessingRequest{}).ProtoReflect().Descriptor().Fields()
	fReqBody      = reqFields.ByName("request_body").Number()
	fRespBody     = reqFields.ByName("response_body").Number()
	fHTTPBody     = (&extprocv3.HttpBody{}).ProtoReflect().Descriptor().Fields().ByName("body").Number()
	respFields    = (&extprocv3.ProcessingResponse{}).ProtoReflect().Descriptor().Fields()
	fRespReqBody  = respFields.ByName("request_body").Number()
	fRespRespBody = respFields.ByName("response_body").Number()
	fBRCommon     = (&extprocv3.BodyResponse{}).ProtoReflect().Descriptor().Fields().ByName("response").Number()
	fCRBodyMu     = (&extprocv3.CommonResponse{}).ProtoReflect().Descriptor().Fields().ByName("body_mutation").Number()
	fBMBody       = (&extprocv3.BodyMutation{}).ProtoReflect().Descriptor().Fields().ByName("body").Number()
)

// Unmarshal decodes a message; a ProcessingRequest with a large body gets a
// body that aliases the codec's own receive buffer.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*extprocv3.ProcessingRequest)
	if !ok || data.Len() < Large {
		return std().Unmarshal(data, v)
	}
	buf := make([]byte, data.Len(), data.Len()+c.Slack)
	data.CopyTo(buf)
	return UnmarshalRequest(buf, req)
}

var errNoBody = errors.New("no single body field")

// UnmarshalRequest decodes a ProcessingRequest from buf, which it keeps:
// the HttpBody's body is a slice of buf (with buf's spare capacity).
// Anything but exactly one request_body or response_body with one body
// field is decoded by protobuf, copying.
func UnmarshalRequest(buf []byte, req *extprocv3.ProcessingRequest) error {
	if err := unmarshalAliased(buf, req); err == nil {
		return nil
	}
	proto.Reset(req)
	return proto.Unmarshal(buf, req)
}

func unmarshalAliased(buf []byte, req *extprocv3.ProcessingRequest) error {
	var rest []byte // every top-level field but the HttpBody
	var hb []byte   // the HttpBody message
	var which protowire.Number
	err := fields(buf, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if (num == fReqBody || num == fRespBody) && typ == protowire.BytesType {
			if hb != nil {
				return errNoBody // merged twice: leave it to protobuf
			}
			hb, which = value, num
			return nil
		}
		rest = append(rest, field...)
		return nil
	})
	if err != nil || hb == nil {
		return errNoBody
	}
	var hbRest, body []byte
	err = fields(hb, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if num == fHTTPBody && typ == protowire.BytesType {
			if body != nil {
				return errNoBody
			}
			body = value
			return nil
		}
		hbRest = append(hbRest, field...)
		return nil
	})
	if err != nil || body == nil {
		return errNoBody
	}
	if err := proto.Unmarshal(rest, req); err != nil {
		return err
	}
	m := &extprocv3.HttpBody{}
	if err := proto.Unmarshal(hbRest, m); err != nil {
		return err
	}
	m.Body = body // its capacity runs to the end of buf: decoded fields, then the slack
	if which == fReqBody {
		req.Request = &extprocv3.ProcessingRequest_RequestBody{RequestBody: m}
	} else {
		req.Request = &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: m}
	}
	return nil
}

// fields calls fn for each field of a message: its number, wire type, whole
// encoding and, for length-delimited fields, the value.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, field, value []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		var value []byte
		if typ == protowire.BytesType {
			v, k := protowire.ConsumeBytes(b[n:])
			if k < 0 {
				return protowire.ParseError(k)
			}
			value = v
		}
		if err := fn(num, typ, b[:n+m], value); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

// Marshal encodes a message; a ProcessingResponse with a large body
// mutation references the body instead of copying it.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	resp, ok := v.(*extprocv3.ProcessingResponse)
	if !ok {
		return marshalWhole(v)
	}
	var br *extprocv3.BodyResponse
	var top protowire.Number
	switch r := resp.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_RequestBody:
		br, top = r.RequestBody, fRespReqBody
	case *extprocv3.ProcessingResponse_ResponseBody:
		// Response bodies are copied: grpc-go sends a message after SendMsg
		// returns, and the stream readers reuse their output buffer for the
		// next chunk, so a referenced response body could change under the
		// transport. A request body's buffer is never reused.
		return marshalWhole(v)
	}
	cr := br.GetResponse()
	bm := cr.GetBodyMutation()
	body := bm.GetBody()
	n := len(body)
	lBM := protowire.SizeTag(fBMBody) + protowire.SizeBytes(n) // BodyMutation{body}
	if _, isBody := bm.GetMutation().(*extprocv3.BodyMutation_Body); !isBody || n < Large || proto.Size(bm) != lBM {
		return marshalWhole(v)
	}
	// Each message on the way to the body is marshalled without that field,
	// which is then written once after the message's other fields (field
	// order is free on the wire), ending with the body's bytes, referenced.
	saved := resp.Response
	resp.Response = nil
	p0, err := proto.Marshal(resp)
	resp.Response = saved
	if err != nil {
		return nil, err
	}
	br.Response = nil
	b0, err := proto.Marshal(br)
	br.Response = cr
	if err != nil {
		return nil, err
	}
	cr.BodyMutation = nil
	c0, err := proto.Marshal(cr)
	cr.BodyMutation = bm
	if err != nil {
		return nil, err
	}
	lCR := len(c0) + protowire.SizeTag(fCRBodyMu) + protowire.SizeBytes(lBM)
	lBR := len(b0) + protowire.SizeTag(fBRCommon) + protowire.SizeBytes(lCR)
	hdr := make([]byte, 0, len(p0)+len(b0)+len(c0)+48)
	hdr = append(hdr, p0...)
	hdr = protowire.AppendTag(hdr, top, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(lBR))
	hdr = append(hdr, b0...)
	hdr = protowire.AppendTag(hdr, fBRCommon, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(lCR))
	hdr = append(hdr, c0...)
	hdr = protowire.AppendTag(hdr, fCRBodyMu, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(lBM))
	hdr = protowire.AppendTag(hdr, fBMBody, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(n))
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.SliceBuffer(body)}, nil
}

// vtMarshaler is what go-control-plane's vtprotobuf-generated code adds to
// its messages when the program is built with -tags vtprotobuf: a size and a
// deterministic marshal without protobuf's reflection.
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict(dAtA []byte) (int, error)
}

// marshalWhole encodes a message into one buffer: with the generated
// marshaller when the message has one, else with grpc-go's proto codec.
// Either way a buffer from the pooling threshold up comes from grpc-go's
// pool and returns to it once the transport has written it.
func marshalWhole(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMarshaler)
	if !ok {
		return std().Marshal(v)
	}
	n := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(n) {
		buf := make([]byte, n)
		if _, err := m.MarshalToSizedBufferVTStrict(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(n)
	if _, err := m.MarshalToSizedBufferVTStrict((*buf)[:n]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}
