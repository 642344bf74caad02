package ledger

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tollgate-ai/tollgate/extproc"
)

// WriterOptions configure a Writer. Zero values take the defaults.
type WriterOptions struct {
	Queue      int           // records held while the database catches up; 10000
	Batch      int           // rows per transaction; 256
	FlushEvery time.Duration // longest a queued record waits for a batch to fill; 500ms
	Retention  time.Duration // rows older than this are purged; 0 keeps them
	// PurgeTick triggers a purge; nil means every hour (and once at start).
	PurgeTick <-chan time.Time
	Now       func() time.Time
	// RetryMin and RetryMax bound the backoff between attempts to write a
	// batch the database refused (100ms to 5s).
	RetryMin, RetryMax time.Duration
	Logger             *zap.Logger
	Registry           prometheus.Registerer // nil: metrics are not registered
}

// Writer queues records and writes them to the store in batches on its own
// goroutine, so a request never waits for the database. When the queue is
// full a record is dropped, counted and logged: the request is never held.
// A batch the database refuses is retried with backoff (rows are keyed by
// request id, so a retry never doubles a row); meanwhile new records queue
// up to the bound.
type Writer struct {
	store *Store
	o     WriterOptions
	log   *zap.Logger
	q     chan *extproc.Record

	mu     sync.RWMutex // guards closed against Offer
	closed bool

	stop   chan struct{} // Close asks the loop to drain
	done   chan struct{} // the loop has ended
	ctx    context.Context
	cancel context.CancelFunc // abandons retries when Close's deadline passes

	dropped, reported atomic.Int64
	m                 writerMetrics
}

type writerMetrics struct {
	written prometheus.Counter
	dropped *prometheus.CounterVec
	errors  prometheus.Counter
	purged  prometheus.Counter
}

// NewWriter starts a writer over store.
func NewWriter(store *Store, o WriterOptions) *Writer {
	if o.Queue <= 0 {
		o.Queue = 10000
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 500 * time.Millisecond
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(5*time.Second, o.RetryMin)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{store: store, o: o, log: o.Logger, q: make(chan *extproc.Record, o.Queue),
		stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	w.m = writerMetrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_ledger_rows_written_total", Help: "Usage ledger rows committed to the database."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tollgate_ledger_rows_dropped_total",
			Help: "Usage ledger records dropped, by reason (queue_full; closed: finished after the drain; shutdown: unwritten at the drain deadline)."}, []string{"reason"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_ledger_write_errors_total", Help: "Usage ledger batch writes that failed and were retried."}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{Name: "tollgate_ledger_rows_purged_total", Help: "Usage ledger rows deleted by retention."}),
	}
	if o.Registry != nil {
		o.Registry.MustRegister(w.m.written, w.m.dropped, w.m.errors, w.m.purged,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tollgate_ledger_queue_length", Help: "Usage ledger records waiting to be written."},
				func() float64 { return float64(len(w.q)) }))
	}
	go w.run()
	return w
}

// Record queues r (extproc.RecordSink). It never blocks.
func (w *Writer) Record(r *extproc.Record) { w.Offer(r) }

// Offer queues r and reports whether it was accepted. An accepted record is
// written before Close returns, unless Close's deadline passes first (then it
// is counted as dropped).
func (w *Writer) Offer(r *extproc.Record) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	reason := "closed"
	if !w.closed {
		select {
		case w.q <- r:
			return true
		default:
			reason = "queue_full"
		}
	}
	w.dropped.Add(1)
	w.m.dropped.WithLabelValues(reason).Inc()
	return false
}

// Dropped is the number of records refused so far (queue full or closed).
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

// Close stops taking records and writes everything queued, retrying failed
// batches until ctx ends; whatever is still unwritten then is counted as
// dropped and logged. It does not close the store.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		close(w.stop)
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.cancel()
		<-w.done
		return errors.New("ledger: drain deadline passed before every queued row was written")
	}
}

func (w *Writer) run() {
	defer close(w.done)
	defer w.cancel()
	tick := w.o.PurgeTick
	if tick == nil {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		tick = t.C
		w.purge()
	}
	flush := time.NewTicker(w.o.FlushEvery)
	defer flush.Stop()
	batch := make([]Row, 0, w.o.Batch)
	for {
		select {
		case r := <-w.q:
			batch = append(batch, FromRecord(r))
			if len(batch) == w.o.Batch {
				batch = w.write(batch)
			}
		case <-flush.C:
			batch = w.write(batch)
			w.reportDrops()
		case <-tick:
			w.purge()
		case <-w.stop:
			w.drain(batch)
			return
		}
	}
}

// drain writes the batch in hand and everything queued. No record can be
// added any more: Offer sees closed before Close signals stop.
func (w *Writer) drain(batch []Row) {
	for {
		select {
		case r := <-w.q:
			batch = append(batch, FromRecord(r))
			if len(batch) == w.o.Batch {
				batch = w.write(batch)
			}
		default:
			w.write(batch)
			w.reportDrops()
			return
		}
	}
}

// write commits batch, retrying with backoff until it succeeds or the writer
// is abandoned, and returns the emptied batch.
func (w *Writer) write(batch []Row) []Row {
	if len(batch) == 0 {
		return batch
	}
	wait := w.o.RetryMin
	for {
		err := w.store.Insert(w.ctx, batch)
		if err == nil {
			w.m.written.Add(float64(len(batch)))
			return batch[:0]
		}
		if w.ctx.Err() != nil {
			n := int64(len(batch))
			w.dropped.Add(n)
			w.reported.Add(n) // logged here, not as a full queue
			w.m.dropped.WithLabelValues("shutdown").Add(float64(n))
			w.log.Error("usage ledger: rows lost at shutdown: the database did not accept them before the drain deadline",
				zap.Int64("rows", n), zap.Error(err))
			return batch[:0]
		}
		w.m.errors.Inc()
		w.log.Warn("usage ledger: write failed; retrying", zap.Int("rows", len(batch)), zap.Duration("retry_in", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
		}
		wait = min(wait*2, w.o.RetryMax)
		w.reportDrops()
	}
}

// reportDrops logs records dropped since the last report: never silent,
// never one line per dropped request.
func (w *Writer) reportDrops() {
	total := w.dropped.Load()
	if prev := w.reported.Swap(total); total > prev {
		w.log.Error("usage ledger: records dropped because the queue was full (or the writer had closed)",
			zap.Int64("dropped", total-prev), zap.Int64("dropped_total", total), zap.Int("queue_size", w.o.Queue))
	}
}

func (w *Writer) purge() {
	if w.o.Retention <= 0 {
		return
	}
	n, err := w.store.Purge(w.ctx, w.o.Now().Add(-w.o.Retention))
	if err != nil {
		w.log.Warn("usage ledger: retention purge failed", zap.Error(err))
		return
	}
	w.m.purged.Add(float64(n))
	if n > 0 {
		w.log.Info("usage ledger: retention purge", zap.Int64("rows", n))
	}
}
