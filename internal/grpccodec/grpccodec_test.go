package grpccodec

import (
	"bytes"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func big(n int) []byte { return bytes.Repeat([]byte("0123456789abcdef"), n/16) }

func TestUnmarshalAliasesTheBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  *extprocv3.ProcessingRequest
	}{
		{"request body", &extprocv3.ProcessingRequest{
			Request:           &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: big(1 << 20), EndOfStream: true}},
			MetadataContext:   &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"a": {}}},
			ObservabilityMode: false,
		}},
		{"response body", &extprocv3.ProcessingRequest{
			Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: big(Large)}},
		}},
		{"small", &extprocv3.ProcessingRequest{
			Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte("{}"), EndOfStream: true}},
		}},
		{"headers", &extprocv3.ProcessingRequest{
			Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
				Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "k", RawValue: big(Large)}}}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := proto.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			// Split as the transport would: many small buffers.
			var data mem.BufferSlice
			for i := 0; i < len(wire); i += 16 << 10 {
				data = append(data, mem.SliceBuffer(wire[i:min(i+16<<10, len(wire))]))
			}
			got := &extprocv3.ProcessingRequest{}
			if err := (Codec{Slack: 4096}).Unmarshal(data, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.msg) {
				t.Fatal("decoded message differs")
			}
			body := got.GetRequestBody().GetBody()
			if body == nil {
				body = got.GetResponseBody().GetBody()
			}
			if len(body) >= Large && cap(body)-len(body) < 4096 {
				t.Fatalf("a large body has %d bytes of spare capacity, want the slack", cap(body)-len(body))
			}
		})
	}
}

func TestUnmarshalRepeatedBodyFieldMerges(t *testing.T) {
	// Two request_body fields on the wire merge (protobuf's rule); the
	// aliasing path leaves that case to protobuf.
	a, _ := proto.Marshal(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: big(Large)}}})
	b, _ := proto.Marshal(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{EndOfStream: true}}})
	wire := append(a, b...)
	want := &extprocv3.ProcessingRequest{}
	if err := proto.Unmarshal(wire, want); err != nil {
		t.Fatal(err)
	}
	got := &extprocv3.ProcessingRequest{}
	if err := UnmarshalRequest(bytes.Clone(wire), got); err != nil || !proto.Equal(got, want) {
		t.Fatalf("got %v, err %v", got.GetRequestBody().GetEndOfStream(), err)
	}
}

func TestMarshalReferencesTheBody(t *testing.T) {
	body := big(1 << 20)
	for _, resp := range []*extprocv3.ProcessingResponse{
		{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation:  &extprocv3.HeaderMutation{RemoveHeaders: []string{"x"}},
			BodyMutation:    &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}},
			ClearRouteCache: true,
		}}}, DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"m": structpb.NewStringValue("v")}}},
		{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}},
		}}}},
		{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte("small")}},
		}}}},
		{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{Body: body}}},
	} {
		data, err := Codec{}.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		got := &extprocv3.ProcessingResponse{}
		if err := proto.Unmarshal(data.Materialize(), got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, resp) {
			t.Fatalf("decoded reply differs from %v", resp)
		}
		last := data[len(data)-1].ReadOnlyData()
		referenced := len(last) > 0 && &last[0] == &body[0]
		switch {
		case len(resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody()) >= Large && !referenced:
			t.Fatal("the request body was copied")
		case resp.GetResponseBody() != nil && referenced:
			// The stream readers reuse their output buffer after SendMsg
			// returns, while grpc-go may still be sending: never referenced.
			t.Fatal("a response body was referenced, not copied")
		}
		// No field is written twice at any level on the way to the body
		// (that would rely on parsers merging repeated message fields).
		onceEach(t, data.Materialize(), 0)
	}
}

func FuzzUnmarshalRequest(f *testing.F) {
	for _, m := range []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(`{"model":"m"}`), EndOfStream: true}}},
		{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte("data: x\n\n")}}},
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{EndOfStream: true}}},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		want := &extprocv3.ProcessingRequest{}
		wantErr := proto.Unmarshal(wire, want)
		got := &extprocv3.ProcessingRequest{}
		err := UnmarshalRequest(bytes.Clone(wire), got)
		if (err == nil) != (wantErr == nil) || err == nil && !proto.Equal(got, want) {
			t.Fatalf("UnmarshalRequest: %v, protobuf: %v", err, wantErr)
		}
	})
}

// onceEach fails if a field number appears twice in the reply or in any
// message on the way to the body (the codec must not rely on parsers
// merging repeated message fields).
func onceEach(t *testing.T, b []byte, _ int) {
	t.Helper()
	path := []protowire.Number{0, fBRCommon, fCRBodyMu} // the top field is request_body or response_body
	for level := 0; b != nil; level++ {
		seen := map[protowire.Number]bool{}
		var next []byte
		err := fields(b, func(num protowire.Number, typ protowire.Type, _, value []byte) error {
			if seen[num] {
				t.Fatalf("field %d twice at level %d", num, level)
			}
			seen[num] = true
			if level < len(path) && typ == protowire.BytesType &&
				(level == 0 && (num == fRespReqBody || num == fRespRespBody) || level > 0 && num == path[level]) {
				next = value
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		b = next
	}
}

// typical is one of each message a non-streaming request exchanges, with
// the sizes Envoy and the gateway send: the request headers with
// attributes, and the replies' header mutations and dynamic metadata.
func typical() map[string]proto.Message {
	var hs []*corev3.HeaderValue
	for _, k := range []string{":authority", ":path", ":method", ":scheme", "content-type", "content-length", "authorization",
		"user-agent", "accept", "x-request-id", "x-forwarded-proto", "x-envoy-internal", "accept-encoding", "x-stainless-lang"} {
		hs = append(hs, &corev3.HeaderValue{Key: k, RawValue: []byte("value-of-" + k)})
	}
	attrs, _ := structpb.NewStruct(map[string]any{"request.id": "rid-1"})
	var set []*corev3.HeaderValueOption
	for _, k := range []string{"x-tollgate-provider", "x-tollgate-model", "x-tollgate-prompt-tokens", "x-tollgate-completion-tokens",
		"x-tollgate-total-tokens", "x-tollgate-cached-tokens", "x-tollgate-usage", "x-tollgate-cost-usd", "server-timing", "content-length"} {
		set = append(set, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte("12345")}})
	}
	md, _ := structpb.NewStruct(map[string]any{"tollgate": map[string]any{"key_id": "k1", "tenant": "default", "app": "",
		"model": "smart-default", "provider": "openai", "provider_model": "gpt-4o-mini"}})
	return map[string]proto.Message{
		"request-headers": &extprocv3.ProcessingRequest{
			Request:    &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hs}}},
			Attributes: map[string]*structpb.Struct{"envoy.filters.http.ext_proc": attrs},
		},
		"request-body": &extprocv3.ProcessingRequest{
			Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(`{"model":"smart-default","messages":[{"role":"user","content":"hi"}]}`), EndOfStream: true}},
		},
		"reply-body-metadata": &extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
				HeaderMutation:  &extprocv3.HeaderMutation{SetHeaders: set[8:], RemoveHeaders: []string{"authorization", "accept-encoding"}},
				BodyMutation:    &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)}},
				ClearRouteCache: true,
			}}},
			DynamicMetadata: md,
		},
		"reply-response-body": &extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
				HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: set},
			}}},
		},
	}
}

// TestMarshalWholeDecodesAlike holds for both encoders marshalWhole may use:
// protobuf's, and, built with -tags vtprotobuf, the generated one.
func TestMarshalWholeDecodesAlike(t *testing.T) {
	_, vt := any(&extprocv3.ProcessingResponse{}).(vtMarshaler)
	t.Logf("generated marshallers in use: %v", vt)
	msgs := typical()
	// From the pooling threshold up the buffer is pooled: one large enough.
	var hs []*corev3.HeaderValueOption
	for range 100 {
		hs = append(hs, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-k", RawValue: []byte("0123456789abcdef")}})
	}
	msgs["pooled"] = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: hs}}}}}
	for name, m := range msgs {
		t.Run(name, func(t *testing.T) {
			data, err := Codec{}.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			defer data.Free()
			got := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(data.Materialize(), got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, m) {
				t.Fatal("decoded message differs")
			}
			if want := proto.Size(m); data.Len() != want {
				t.Fatalf("encoded %d bytes, protobuf's size is %d", data.Len(), want)
			}
		})
	}
}

// BenchmarkMarshal encodes the messages of a non-streaming request. Run it
// with and without -tags vtprotobuf to compare the generated marshallers
// with protobuf's (docs/performance.md).
func BenchmarkMarshal(b *testing.B) {
	for name, m := range typical() {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				data, err := Codec{}.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				data.Free()
			}
		})
	}
}

// BenchmarkUnmarshal is the receive of a 400 KB request body in 16 KiB
// frames, as the transport hands it to the codec.
func BenchmarkUnmarshal(b *testing.B) {
	msg := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: big(400 << 10), EndOfStream: true}}}
	wire, err := proto.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	var data mem.BufferSlice
	for i := 0; i < len(wire); i += 16 << 10 {
		data = append(data, mem.SliceBuffer(wire[i:min(i+16<<10, len(wire))]))
	}
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if err := (Codec{Slack: DefaultSlack}).Unmarshal(data, &extprocv3.ProcessingRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
