package limits

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is the in-process backend: exact for one replica, never failing.
// Entries expire with the same lifetimes as the Redis keys.
type Memory struct {
	now func() time.Time

	mu        sync.Mutex
	buckets   map[string]memBucket
	spend     map[string]memCounter
	nextSweep time.Time
}

type memBucket struct {
	level   int64
	last    int64 // ms; never moves backwards
	expires int64 // ms; the bucket is empty from then on
}

type memCounter struct {
	value   int64
	expires time.Time
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns an empty in-memory backend reading the time from now
// (time.Now when nil).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, buckets: map[string]memBucket{}, spend: map[string]memCounter{}}
}

// Admit implements [Limiter]. Its error is only ever ErrInvalid.
func (m *Memory) Admit(_ context.Context, req Request) (Decision, error) {
	now := m.now()
	p, err := planAdmit(req, now)
	if err != nil {
		return Decision{Reason: ReasonInvalid}, err
	}
	nowMs := now.UnixMilli()
	levels := make([]int64, len(p.buckets))
	spent := make([]int64, len(p.spends))

	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	for i, op := range p.buckets {
		levels[i] = m.level(op.key, op.rate, nowMs)
	}
	for i, op := range p.spends {
		spent[i] = m.spend[op.key].value
	}
	d := p.decide(levels, spent)
	if d.Allowed {
		for i, op := range p.buckets {
			m.store(op.key, op.rate, min(levels[i]+op.units, maxLevel), nowMs)
		}
	}
	return d, nil
}

// Reconcile implements [Limiter]. Its error is only ever ErrInvalid.
func (m *Memory) Reconcile(_ context.Context, res Reservation, used Usage) error {
	now := m.now()
	buckets, spends, err := planReconcile(res, used, now)
	if err != nil {
		return err
	}
	nowMs := now.UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, op := range buckets {
		m.store(op.key, op.rate, settle(m.level(op.key, op.rate, nowMs), op.units), nowMs)
	}
	for _, op := range spends {
		c := m.spend[op.key]
		m.spend[op.key] = memCounter{value: addSat(c.value, op.limit), expires: now.Add(op.ttl)}
	}
	return nil
}

// Check implements [Limiter]. Its error is only ever ErrInvalid.
func (m *Memory) Check(_ context.Context, budgets []Budget, pending int64) (Decision, error) {
	if err := validateBudgets(budgets); err != nil || pending < 0 {
		if err == nil {
			err = fmt.Errorf("%w: negative pending cost", ErrInvalid)
		}
		return Decision{Reason: ReasonInvalid}, err
	}
	now := m.now()
	ops := spendOps(budgets, now, nil)
	spent := make([]int64, len(ops))
	m.mu.Lock()
	for i, op := range ops {
		spent[i] = m.spend[op.key].value
	}
	m.mu.Unlock()
	return checkDecision(ops, spent, pending, now), nil
}

// level returns a bucket's level drained to nowMs. The caller holds mu.
func (m *Memory) level(key string, rate, nowMs int64) int64 {
	b, ok := m.buckets[key]
	if !ok {
		return 0
	}
	return leak(b.level, rate, nowMs-b.last)
}

// store writes a bucket's level as of nowMs (or its later last update, if
// the clock went back). The caller holds mu.
func (m *Memory) store(key string, rate, level, nowMs int64) {
	last := max(m.buckets[key].last, nowMs)
	if level == 0 {
		delete(m.buckets, key)
		return
	}
	m.buckets[key] = memBucket{level: level, last: last, expires: last + ceilDiv(level, rate) + keyMargin.Milliseconds()}
}

// sweep drops expired entries, at most once a minute. The caller holds mu.
func (m *Memory) sweep(now time.Time) {
	if now.Before(m.nextSweep) {
		return
	}
	m.nextSweep = now.Add(time.Minute)
	nowMs := now.UnixMilli()
	for k, b := range m.buckets {
		if b.expires <= nowMs {
			delete(m.buckets, k)
		}
	}
	for k, c := range m.spend {
		if !c.expires.After(now) {
			delete(m.spend, k)
		}
	}
}
