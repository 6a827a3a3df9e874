package clock

import (
	"sync"
	"time"
)

// Fake is a manual clock for tests: time stands still until Advance or Set
// moves it, and timers fire synchronously inside those calls, so tests need
// no sleeps. It is in the spirit of tailscale's tstest.Clock.
//
// Fake timers meet the Timer guarantees and start no goroutines. A Fake is
// safe for concurrent use. Create one with NewFake; the zero value also
// works but starts at the zero Time.
type Fake struct {
	mu     sync.Mutex
	now    Time
	timers map[*fakeTimer]struct{} // armed timers that have not fired
}

var _ Clock = (*Fake)(nil)

// NewFake returns a Fake clock reading one hour, so that Now is never the
// zero Time and instants somewhat before Now are representable too.
func NewFake() *Fake {
	return &Fake{now: Time(time.Hour)}
}

// Now returns the fake clock's current instant.
func (f *Fake) Now() Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires once the fake clock reaches at. If at
// is not in the future it fires before NewTimer returns.
func (f *Fake) NewTimer(at Time) Timer {
	t := &fakeTimer{f: f, c: make(chan struct{}, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arm(t, at)
	return t
}

// Advance moves the clock forward by d and fires every timer whose instant
// has been reached; their values are in their channels when Advance
// returns. It panics if d is negative: use Set to move backwards.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: Fake.Advance with negative duration")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(f.now.Add(d))
}

// Set moves the clock to t and, like Advance, fires every timer whose
// instant has been reached. Unlike Advance it may move time backwards;
// timers that have not fired then wait for the clock to reach them again.
func (f *Fake) Set(t Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(t)
}

func (f *Fake) setLocked(t Time) {
	f.now = t
	for ft := range f.timers {
		if ft.at <= f.now {
			f.fire(ft)
		}
	}
}

// arm arms ft for at, firing it at once if at has been reached. f.mu must
// be held.
func (f *Fake) arm(ft *fakeTimer, at Time) {
	ft.at = at
	if at <= f.now {
		f.fire(ft)
		return
	}
	if f.timers == nil {
		f.timers = make(map[*fakeTimer]struct{})
	}
	f.timers[ft] = struct{}{}
}

// fire delivers ft's fire and disarms it. f.mu must be held.
func (f *Fake) fire(ft *fakeTimer) {
	delete(f.timers, ft)
	notify(ft.c)
}

// fakeTimer is a Fake's Timer. Its state is guarded by f.mu, so firing in
// Advance and discarding in Reset or Stop cannot interleave.
type fakeTimer struct {
	f       *Fake
	c       chan struct{}
	at      Time
	stopped bool
}

func (t *fakeTimer) C() <-chan struct{} { return t.c }

func (t *fakeTimer) Reset(at Time) {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	if t.stopped {
		return
	}
	drain(t.c)
	delete(t.f.timers, t)
	t.f.arm(t, at)
}

func (t *fakeTimer) Stop() {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	t.stopped = true
	drain(t.c)
	delete(t.f.timers, t)
}
