package cache

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// Entry is one stored answer: the OpenAI chat.completion body exactly as a
// non-streaming client received it, and when it was stored.
type Entry struct {
	Body    []byte
	Created time.Time
}

// Age is how long ago the entry was stored, in whole seconds (never negative),
// for the response's Age header.
func (e Entry) Age(now time.Time) int64 {
	if d := now.Sub(e.Created); d > 0 {
		return int64(d / time.Second)
	}
	return 0
}

// ErrTooLarge is returned by Put for an entry over the store's entry limit.
var ErrTooLarge = errors.New("cache: entry over the size limit")

// Memory is a bounded in-process LRU store. Entries expire after the TTL;
// when the total size would pass the limit, the least recently used go
// first. It is safe for concurrent use.
type Memory struct {
	mu       sync.Mutex
	ll       *list.List // front: most recently used
	items    map[string]*list.Element
	size     int64 // bytes held (keys + bodies)
	maxBytes int64
	maxEntry int64
	ttl      time.Duration
	now      func() time.Time
}

type memItem struct {
	key string
	e   Entry
}

// NewMemory returns a store holding at most maxBytes, no entry over
// maxEntry bytes, each for ttl. now is the clock (time.Now when nil).
func NewMemory(maxBytes, maxEntry int64, ttl time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{ll: list.New(), items: map[string]*list.Element{}, maxBytes: maxBytes, maxEntry: maxEntry, ttl: ttl, now: now}
}

func itemSize(key string, e Entry) int64 { return int64(len(key) + len(e.Body)) }

// Get returns the entry under key, if present and not expired.
func (m *Memory) Get(_ context.Context, key string) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return Entry{}, false, nil
	}
	it := el.Value.(*memItem)
	if m.ttl > 0 && m.now().Sub(it.e.Created) >= m.ttl {
		m.remove(el)
		return Entry{}, false, nil
	}
	m.ll.MoveToFront(el)
	return it.e, true, nil
}

// Put stores e under key, evicting least recently used entries to stay
// within the size limit.
func (m *Memory) Put(_ context.Context, key string, e Entry) error {
	n := itemSize(key, e)
	if n > m.maxEntry || n > m.maxBytes {
		return ErrTooLarge
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	for m.size+n > m.maxBytes {
		m.remove(m.ll.Back())
	}
	m.items[key] = m.ll.PushFront(&memItem{key: key, e: e})
	m.size += n
	return nil
}

func (m *Memory) remove(el *list.Element) {
	it := m.ll.Remove(el).(*memItem)
	delete(m.items, it.key)
	m.size -= itemSize(it.key, it.e)
}

// Len and Size report the entries and bytes held (tests, metrics).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

// Size reports the bytes held.
func (m *Memory) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

// encode lays out an entry for Redis: 8 bytes of creation time (Unix
// milliseconds, big endian), then the body.
func encode(e Entry) []byte {
	b := make([]byte, 8, 8+len(e.Body))
	binary.BigEndian.PutUint64(b, uint64(e.Created.UnixMilli()))
	return append(b, e.Body...)
}

func decode(b []byte) (Entry, error) {
	if len(b) < 8 {
		return Entry{}, errors.New("cache: stored entry is truncated")
	}
	ms := int64(binary.BigEndian.Uint64(b[:8]))
	return Entry{Body: b[8:], Created: time.UnixMilli(ms)}, nil
}
