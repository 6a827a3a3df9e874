package leasehold

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxQueuedLogs bounds the log records waiting for a blocked writer; past it
// records are dropped (and counted) rather than held in memory without end.
// Events are never dropped: they are the tree's record of itself.
const maxQueuedLogs = 4096

// outbox hands events and log records to user code (Options.OnEvent, the
// Logger's handler) on one goroutine of its own, in the order they were
// posted. The runtime never waits for user code: a handler that blocks, or a
// log writer stuck on a full pipe, delays only the outbox, never a teardown
// or the enforcement of a lease's deadline, and a handler may call anything
// on the Runtime (Snapshot, Group.Add) because no runtime lock is held while
// it runs.
type outbox struct {
	mu struct {
		sync.Mutex // a leaf: nothing else is locked while it is held
		queue      []delivery
		logs       int           // log records in queue
		dropped    int           // log records dropped since the last delivered one
		running    bool          // the delivery goroutine is up; else post delivers inline
		busy       bool          // a delivery is in progress
		idle       chan struct{} // closed and replaced whenever queue drains
	}
	wake    chan struct{} // capacity 1: something was posted, or stop
	done    chan struct{}
	onEvent func(Event)
}

// delivery is one event (for onEvent) or one log record (deliver set).
// Events are held by value: no closure per event.
type delivery struct {
	event   Event
	deliver func()
	log     bool
}

func newOutbox(onEvent func(Event)) *outbox {
	o := &outbox{onEvent: onEvent}
	o.wake = make(chan struct{}, 1)
	o.mu.idle = make(chan struct{})
	return o
}

// start starts the delivery goroutine; stop ends it after the queue drains.
func (o *outbox) start() {
	o.mu.Lock()
	o.mu.running = true
	o.mu.Unlock()
	o.done = make(chan struct{})
	go o.loop()
}

func (o *outbox) stop() {
	o.mu.Lock()
	o.mu.running = false
	o.mu.Unlock()
	o.signal()
	<-o.done
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// post queues d. Outside Run (no goroutine to deliver) it delivers inline.
func (o *outbox) post(d delivery) {
	o.mu.Lock()
	if !o.mu.running {
		o.mu.Unlock()
		o.deliver(d)
		return
	}
	if d.log {
		if o.mu.logs >= maxQueuedLogs {
			o.mu.dropped++
			o.mu.Unlock()
			return
		}
		o.mu.logs++
	}
	o.mu.queue = append(o.mu.queue, d)
	o.mu.Unlock()
	o.signal()
}

func (o *outbox) loop() {
	defer close(o.done)
	var batch []delivery
	for {
		o.mu.Lock()
		if len(o.mu.queue) == 0 {
			close(o.mu.idle)
			o.mu.idle = make(chan struct{})
			if !o.mu.running {
				o.mu.Unlock()
				return
			}
			o.mu.Unlock()
			<-o.wake
			continue
		}
		// Take the whole queue at once: a teardown of thousands of
		// services posts thousands of events, and posters should not
		// contend with the loop for every one of them. The drained array
		// is reused for the next burst, unless a big burst left it large.
		if cap(batch) > 1024 {
			batch = nil
		}
		batch, o.mu.queue = o.mu.queue, batch[:0]
		o.mu.busy = true
		o.mu.Unlock()
		for i := range batch {
			o.deliver(batch[i])
			if batch[i].log {
				// Counted until written, so that a blocked writer holds
				// at most maxQueuedLogs records.
				o.mu.Lock()
				o.mu.logs--
				o.mu.Unlock()
			}
			batch[i] = delivery{}
		}
		o.mu.Lock()
		o.mu.busy = false
		o.mu.Unlock()
	}
}

func (o *outbox) deliver(d delivery) {
	if d.deliver != nil {
		d.deliver()
		return
	}
	if o.onEvent != nil {
		o.onEvent(d.event)
	}
}

// flush waits until everything posted so far has been delivered, or for at
// most wait. The overrun policy uses it so that the log saying which services
// failed to stop is written before the default policy exits the process.
func (o *outbox) flush(wait time.Duration) {
	o.mu.Lock()
	if !o.mu.running || (len(o.mu.queue) == 0 && !o.mu.busy) {
		o.mu.Unlock()
		return
	}
	idle := o.mu.idle
	o.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

// takeDropped returns and resets the count of dropped log records.
func (o *outbox) takeDropped() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.mu.dropped
	o.mu.dropped = 0
	return n
}

// asyncHandler is the runtime's slog.Handler: it queues records on the
// outbox so that writing them never blocks the runtime.
type asyncHandler struct {
	inner slog.Handler
	out   *outbox
}

func (h asyncHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h asyncHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	inner := h.inner
	h.out.post(delivery{log: true, deliver: func() {
		if n := h.out.takeDropped(); n > 0 {
			lost := slog.NewRecord(r.Time, slog.LevelWarn, "log records dropped: the log writer was blocked", 0)
			lost.AddAttrs(slog.Int("dropped", n))
			_ = inner.Handle(context.Background(), lost)
		}
		_ = inner.Handle(context.Background(), r)
	}})
	return nil
}

func (h asyncHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return asyncHandler{inner: h.inner.WithAttrs(attrs), out: h.out}
}

func (h asyncHandler) WithGroup(name string) slog.Handler {
	return asyncHandler{inner: h.inner.WithGroup(name), out: h.out}
}
