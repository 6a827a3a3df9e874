package clock

import (
	"math"
	"time"
)

// Time is an instant on a Clock, in nanoseconds since an arbitrary origin
// fixed for the process (for Boot: since boot).
//
// Arithmetic saturates at the int64 range instead of wrapping, so that a
// deadline such as now.Add(math.MaxInt64) means "never" rather than "long
// ago".
type Time int64

// Add returns t+d, saturating on overflow.
func (t Time) Add(d time.Duration) Time {
	s := t + Time(d)
	switch {
	case d > 0 && s < t:
		return math.MaxInt64
	case d < 0 && s > t:
		return math.MinInt64
	}
	return s
}

// Sub returns the duration t-u, saturating on overflow.
func (t Time) Sub(u Time) time.Duration {
	d := time.Duration(t - u)
	switch {
	case t >= u && d < 0:
		return math.MaxInt64
	case t < u && d > 0:
		return math.MinInt64
	}
	return d
}

// Before reports whether t is before u.
func (t Time) Before(u Time) bool { return t < u }

// After reports whether t is after u.
func (t Time) After(u Time) bool { return t > u }

// IsZero reports whether t is the zero Time. Clocks in this package never
// return the zero Time from Now, so it can mean "unset".
func (t Time) IsZero() bool { return t == 0 }

// Clock reads time and makes timers.
type Clock interface {
	// Now returns the current instant. Successive calls never go backwards
	// (except on a Fake moved back with Set).
	Now() Time
	// NewTimer returns a timer, already armed, that fires once Now() >= at.
	// The caller must call Stop on it when done.
	NewTimer(at Time) Timer
}

// Timer fires when its clock reaches the instant it is armed for.
//
// Guarantees, for every Timer returned by this package:
//
//   - A timer armed for an instant that is not in the future fires
//     promptly.
//   - Each arming (NewTimer or Reset) that expires delivers exactly one
//     value on C, unless superseded first. C has capacity 1 and delivery
//     never blocks, so fires are never lost to a slow receiver.
//   - After Reset or Stop returns, no value belonging to an earlier arming
//     is received from C: a pending undelivered value is discarded, and a
//     fire that was in flight is checked against the current arming before
//     it is delivered. So whenever a value is received, the clock has
//     reached the instant of the arming current at that point.
//
// Timers are safe for concurrent use.
type Timer interface {
	// C returns the channel on which fires are delivered (buffered,
	// capacity 1, never closed). It returns the same channel every time.
	C() <-chan struct{}
	// Reset re-arms the timer for a new instant, earlier or later,
	// whether or not it has fired, discarding any fire of the previous
	// arming that has not been received. After Stop, Reset is a no-op.
	Reset(at Time)
	// Stop disarms the timer, discards a fire not yet received and
	// releases its resources. It waits for any goroutine the timer
	// started to exit, so goroutine-leak checkers stay quiet. Stop is
	// idempotent.
	Stop()
}

// Boot is the real clock.
//
// On Linux it reads CLOCK_BOOTTIME with clock_gettime, and its timers are
// timerfds on CLOCK_BOOTTIME armed with TFD_TIMER_ABSTIME, so that a
// deadline that passes during system suspend fires at resume. If a timerfd
// cannot be created (CLOCK_BOOTTIME timerfds need Linux 3.15, or the
// process is out of file descriptors), NewTimer falls back to a time.Timer
// that re-checks CLOCK_BOOTTIME before firing: it never fires early, but a
// deadline that passes during suspend fires late.
//
// On other systems it is Go's monotonic clock with time.Timer, and time
// spent in system suspend may not be counted (whether it is depends on the
// operating system's monotonic clock).
var Boot Clock = boot{}

// Wall converts an instant of c to wall-clock time, for display only.
//
// The result is the current wall-clock time offset by t's distance from
// c.Now(); it moves if the wall clock is stepped, and it carries no
// monotonic reading, so it must not be used for deadlines.
func Wall(c Clock, t Time) time.Time {
	return time.Now().Round(0).Add(t.Sub(c.Now()))
}

// drain discards a value pending in c, if any.
func drain(c chan struct{}) {
	select {
	case <-c:
	default:
	}
}

// notify delivers a fire on c without blocking; c has capacity 1, so if a
// value is already pending the fires coalesce.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Sleep waits for d on c, or until stop or also (either may be nil) is
// closed, whichever comes first.
func Sleep(c Clock, d time.Duration, stop, also <-chan struct{}) {
	if d <= 0 {
		return
	}
	t := c.NewTimer(c.Now().Add(d))
	defer t.Stop()
	select {
	case <-stop:
	case <-also:
	case <-t.C():
	}
}
