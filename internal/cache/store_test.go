package cache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-ai/tollgate/test/redistest"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestMemoryLRU(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	entry := func(n int) Entry { return Entry{Body: []byte(strings.Repeat("x", n)), Created: clk.now()} }
	// Keys are one byte: each entry of 9 bytes of body costs 10.
	m := NewMemory(30, 20, time.Minute, clk.now)
	for _, k := range []string{"a", "b", "c"} {
		if err := m.Put(ctx, k, entry(9)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := m.Get(ctx, "a"); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	if err := m.Put(ctx, "d", entry(9)); err != nil { // evicts b, the least recently used
		t.Fatal(err)
	}
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok, _ := m.Get(ctx, k); ok != want {
			t.Errorf("Get(%s) present = %v, want %v", k, ok, want)
		}
	}
	if m.Size() != 30 || m.Len() != 3 {
		t.Errorf("size %d, len %d; want 30, 3", m.Size(), m.Len())
	}
	if err := m.Put(ctx, "e", entry(20)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("entry over the entry limit: %v", err)
	}
	if err := m.Put(ctx, "a", entry(19)); err != nil { // replaces a, evicting to fit
		t.Fatal(err)
	}
	if m.Size() > 30 {
		t.Errorf("size %d over the limit", m.Size())
	}
}

func TestMemoryTTL(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(1<<20, 1<<20, time.Minute, clk.now)
	if err := m.Put(ctx, "k", Entry{Body: []byte("{}"), Created: clk.now()}); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(59 * time.Second)
	e, ok, _ := m.Get(ctx, "k")
	if !ok || e.Age(clk.now()) != 59 {
		t.Fatalf("before TTL: ok=%v age=%d", ok, e.Age(clk.now()))
	}
	clk.t = clk.t.Add(time.Second)
	if _, ok, _ := m.Get(ctx, "k"); ok {
		t.Fatal("served after its TTL")
	}
	if m.Len() != 0 || m.Size() != 0 {
		t.Errorf("expired entry still held: len %d size %d", m.Len(), m.Size())
	}
}

func TestRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), DialTimeout: 250 * time.Millisecond,
		ReadTimeout: 250 * time.Millisecond, WriteTimeout: 250 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	r := NewRedis(c, "tollgate:cache:", time.Minute, 1<<10, time.Second)
	created := time.UnixMilli(1_700_000_000_123)
	if err := r.Put(ctx, "k", Entry{Body: []byte(`{"id":"x"}`), Created: created}); err != nil {
		t.Fatal(err)
	}
	e, ok, err := r.Get(ctx, "k")
	if err != nil || !ok || string(e.Body) != `{"id":"x"}` || !e.Created.Equal(created) {
		t.Fatalf("Get = %+v, %v, %v", e, ok, err)
	}
	if ttl := c.TTL(ctx, "tollgate:cache:k").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL in Redis = %v", ttl)
	}
	if _, ok, err := r.Get(ctx, "absent"); ok || err != nil {
		t.Errorf("absent key: ok=%v err=%v", ok, err)
	}
	if err := r.Put(ctx, "big", Entry{Body: make([]byte, 2<<10)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("big entry: %v", err)
	}

	// An outage is an error (the caller counts it and treats it as a miss),
	// returned within the bounded waits.
	srv.Stop()
	if _, ok, err := r.Get(ctx, "k"); ok || err == nil {
		t.Errorf("during outage: ok=%v err=%v", ok, err)
	}
	if err := r.Put(ctx, "k2", Entry{Body: []byte("{}")}); err == nil {
		t.Error("put during outage: no error")
	}
	srv.Start()
	if _, ok, err := r.Get(ctx, "k"); err != nil || ok {
		// redistest runs without persistence: the restarted server is empty.
		t.Errorf("after recovery: ok=%v err=%v", ok, err)
	}
}

func TestEntryEncoding(t *testing.T) {
	e := Entry{Body: []byte("{}"), Created: time.UnixMilli(42)}
	got, err := decode(encode(e))
	if err != nil || string(got.Body) != "{}" || !got.Created.Equal(e.Created) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := decode([]byte{1, 2}); err == nil {
		t.Error("truncated entry decoded")
	}
}
