package clock

import (
	"sync"
	"time"
)

// goTimer is a Timer built on time.Timer for a clock given by now. It
// serves Boot on systems without timerfd and is the fallback on Linux when
// a timerfd cannot be created.
//
// time.Timer measures Go's monotonic clock, which may run slower than now
// (CLOCK_BOOTTIME counts suspend, CLOCK_MONOTONIC does not) but never
// faster, so the goroutine re-checks now() whenever the time.Timer fires and
// waits again if the deadline has not been reached: the timer may fire late
// but never early.
type goTimer struct {
	now  func() Time
	c    chan struct{}
	kick chan struct{} // capacity 1; wakes run after Reset or Stop
	done chan struct{} // closed when run exits

	mu      sync.Mutex
	at      Time
	armed   bool // the current arming has not fired yet
	stopped bool
}

func newGoTimer(now func() Time, at Time) *goTimer {
	t := &goTimer{
		now:   now,
		c:     make(chan struct{}, 1),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		at:    at,
		armed: true,
	}
	go t.run()
	return t
}

func (t *goTimer) C() <-chan struct{} { return t.c }

func (t *goTimer) Reset(at Time) {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	drain(t.c)
	t.at = at
	t.armed = true
	t.mu.Unlock()
	notify(t.kick)
}

func (t *goTimer) Stop() {
	t.mu.Lock()
	if !t.stopped {
		t.stopped = true
		t.armed = false
		drain(t.c)
		notify(t.kick)
	}
	t.mu.Unlock()
	<-t.done
}

func (t *goTimer) run() {
	defer close(t.done)
	tm := time.NewTimer(time.Hour)
	tm.Stop()
	defer tm.Stop()
	for {
		var expired <-chan time.Time
		t.mu.Lock()
		if t.stopped {
			t.mu.Unlock()
			return
		}
		// Deciding and delivering under mu is what keeps a fire of an
		// arming that Reset replaced from being delivered.
		if t.armed {
			if d := t.at.Sub(t.now()); d > 0 {
				// Since Go 1.23, Reset discards any stale expiry.
				tm.Reset(d)
				expired = tm.C
			} else {
				t.armed = false
				notify(t.c)
			}
		}
		t.mu.Unlock()
		select {
		case <-expired:
		case <-t.kick:
		}
	}
}
