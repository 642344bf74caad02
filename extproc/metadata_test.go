package extproc

import (
	"context"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestSharedMetadata: requests with the same values share one Struct, equal
// to the one built for the request alone; other values get their own.
func TestSharedMetadata(t *testing.T) {
	snap := testSnapshot(t)
	s := New(Options{Snapshot: func() *Snapshot { return snap }})
	reply := func(body string) *structpb.Struct {
		t.Helper()
		x := newExchange(context.Background(), s, snap)
		x.handle(chatHeaders())
		resp, _ := x.handle(reqBody(body))
		md := resp.GetDynamicMetadata()
		if want := x.metadata(); !proto.Equal(md, want) {
			t.Fatalf("metadata %v, want %v", md, want)
		}
		return md
	}
	a := reply(`{"model":"smart-default"}`)
	if b := reply(`{"model":"smart-default"}`); b != a {
		t.Fatal("same values, a Struct of their own")
	}
	c := reply(`{"model":"openai/gpt-4o-mini"}`)
	if c == a {
		t.Fatal("other values, the same Struct")
	}
	if got := c.GetFields()[metadataNamespace].GetStructValue().GetFields()["model"].GetStringValue(); got != "openai/gpt-4o-mini" {
		t.Fatalf("model %q", got)
	}
	if got := a.GetFields()[metadataNamespace].GetStructValue().GetFields()["model"].GetStringValue(); got != "smart-default" {
		t.Fatalf("the first Struct changed: model %q", got)
	}
}

// TestMetadataCacheCap: the cache stops growing at its cap and still
// answers the values it holds.
func TestMetadataCacheCap(t *testing.T) {
	var c metadataCache
	structs := map[metadataValues]*structpb.Struct{}
	for i := range metadataCacheCap + 10 {
		v := metadataValues{"k", "t", "a", strconv.Itoa(i), "p", "m"}
		s := &structpb.Struct{}
		structs[v] = s
		if c.get(v) != nil {
			t.Fatalf("%d: found before it was added", i)
		}
		c.add(v, s)
	}
	if n := len(*c.m.Load()); n != metadataCacheCap {
		t.Fatalf("%d entries, want %d", n, metadataCacheCap)
	}
	for v, s := range structs {
		got := c.get(v)
		if i, _ := strconv.Atoi(v[3]); i < metadataCacheCap && got != s || i >= metadataCacheCap && got != nil {
			t.Fatalf("%v: got %p, want %p", v, got, s)
		}
	}
}
