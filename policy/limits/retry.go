package limits

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// settlement is one reconciliation script call, ready to send: its keys
// (the marker first) and arguments, with the time of the original request,
// so a late retry charges the right day and month.
type settlement struct {
	keys []string
	args []any
}

// retryQueue holds reconciliations that failed because Redis could not be
// reached, oldest first, up to max of them.
type retryQueue struct {
	max       int
	interval  time.Duration
	onDropped func(n int, err error)

	mu    sync.Mutex
	items []settlement
	n     atomic.Int64 // len(items), read without mu on every successful call

	kick chan struct{} // wakes the worker; buffered 1
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the worker has exited
	once sync.Once
}

func newRetryQueue(maxItems int, interval time.Duration, onDropped func(int, error)) *retryQueue {
	return &retryQueue{
		max: maxItems, interval: interval, onDropped: onDropped,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// push queues op and reports false when the queue is full. The first item
// wakes the worker.
func (q *retryQueue) push(op settlement) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= q.max {
		return false
	}
	q.items = append(q.items, op)
	q.n.Store(int64(len(q.items)))
	if len(q.items) == 1 {
		q.wake()
	}
	return true
}

func (q *retryQueue) wake() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

func (q *retryQueue) len() int { return int(q.n.Load()) }

func (q *retryQueue) head() (settlement, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return settlement{}, false
	}
	return q.items[0], true
}

func (q *retryQueue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items[0] = settlement{}
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // release the backing array after an outage
	}
	q.n.Store(int64(len(q.items)))
}

// drop removes everything queued and returns how many there were.
func (q *retryQueue) drop() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.items)
	q.items = nil
	q.n.Store(0)
	return n
}

// Pending is the number of reconciliations waiting for Redis, for a gauge
// and for tests.
func (r *Redis) Pending() int { return r.retry.len() }

// answered is called after every successful call: Redis is back, so the
// queue should be flushed now rather than at the next interval.
func (r *Redis) answered() {
	if r.retry.len() > 0 {
		r.retry.wake()
	}
}

// retryLoop flushes the queue whenever woken, and every RetryInterval while
// a flush fails.
func (r *Redis) retryLoop() {
	q := r.retry
	defer close(q.done)
	timer := time.NewTimer(q.interval)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-q.kick:
		case <-timer.C:
		}
		if !r.flush(q.stop) {
			timer.Reset(q.interval)
		}
	}
}

// flush sends queued settlements in order until the queue is empty (true),
// or one fails to reach Redis (false) or stop is closed.
func (r *Redis) flush(stop <-chan struct{}) bool {
	for {
		select {
		case <-stop:
			return false
		default:
		}
		op, ok := r.retry.head()
		if !ok {
			return true
		}
		err := r.settle(context.Background(), op)
		switch {
		case err == nil:
			r.retry.pop()
		case isReply(err):
			r.retry.pop()
			r.retry.onDropped(1, fmt.Errorf("redis refused a queued reconciliation: %w", err))
		default:
			return false
		}
	}
}

// Close stops the retry worker, makes one last attempt to flush the queue
// (each settlement bounded by ReconcileTimeout; the attempt ends at the
// first failure) and reports whatever is left to OnDropped. It does not
// close the client. Call it after the last Reconcile: a settlement queued
// later is never sent. Calls after the first do nothing.
func (r *Redis) Close() error {
	q := r.retry
	var err error
	q.once.Do(func() {
		close(q.stop)
		<-q.done
		if r.flush(nil) {
			return
		}
		if n := q.drop(); n > 0 {
			err = fmt.Errorf("%w: %d reconciliations still queued at close were dropped", ErrUnavailable, n)
			q.onDropped(n, errors.New("redis unreachable when the limiter closed"))
		}
	})
	return err
}
