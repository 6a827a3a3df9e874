//go:build linux

package clock

import (
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// boot is CLOCK_BOOTTIME: CLOCK_MONOTONIC plus time spent in suspend.
type boot struct{}

// Now reads CLOCK_BOOTTIME. Go's runtime only reads CLOCK_MONOTONIC through
// the vDSO, so this is a real system call; that is cheap next to the
// network round trips lease code makes.
func (boot) Now() Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME exists since Linux 2.6.39 and Go requires a
		// newer kernel, so this is unreachable. Returning a made-up
		// time would silently break deadlines.
		panic("clock: clock_gettime(CLOCK_BOOTTIME): " + err.Error())
	}
	return Time(ts.Nano())
}

func (boot) NewTimer(at Time) Timer {
	if t, err := newFDTimer(at); err == nil {
		return t
	}
	// No timerfd: CLOCK_BOOTTIME timerfds need Linux 3.15, or the
	// process is out of descriptors. Fall back rather than fail; see the
	// Boot documentation for what is lost.
	return newGoTimer(boot{}.Now, at)
}

// fdTimer is a Timer on a timerfd(CLOCK_BOOTTIME) armed with an absolute
// expiry. The kernel fires it when CLOCK_BOOTTIME reaches the target,
// including immediately on resume if the target passed during suspend, and
// immediately on arming if the target is already past.
//
// The descriptor is nonblocking, so the *os.File wrapping it is registered
// with Go's netpoller: one goroutine (run) waits in Read for expirations
// without holding an OS thread, and Stop unblocks it by closing the file.
type fdTimer struct {
	c    chan struct{}
	f    *os.File
	rc   syscall.RawConn // for timerfd_settime without os.File.Fd
	quit chan struct{}   // closed by Stop
	done chan struct{}   // closed when run exits

	mu      sync.Mutex
	at      Time
	armed   bool // the current arming has not fired yet
	stopped bool
}

func newFDTimer(at Time) (*fdTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_BOOTTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	t := &fdTimer{
		c:     make(chan struct{}, 1),
		f:     f,
		rc:    rc,
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		at:    at,
		armed: true,
	}
	if err := t.settime(at); err != nil {
		_ = f.Close()
		return nil, err
	}
	go t.run()
	return t, nil
}

// settime arms the timerfd to expire when CLOCK_BOOTTIME reaches at,
// replacing any previous arming and discarding its unread expirations.
// Callers other than newFDTimer must hold mu and have checked !stopped, so
// the file is still open.
func (t *fdTimer) settime(at Time) error {
	// An all-zero it_value disarms a timerfd instead of arming it for
	// boot time 0; 1ns is equally in the past.
	if at < 1 {
		at = 1
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(at))}
	var err error
	if cerr := t.rc.Control(func(fd uintptr) {
		err = unix.TimerfdSettime(int(fd), unix.TFD_TIMER_ABSTIME, &spec, nil)
	}); cerr != nil {
		return cerr
	}
	return err
}

// mustSettime is settime for an armed, open timer. Failure is unreachable
// (the value is valid and the descriptor open); a timer that silently never
// fired would let a lease outlive its deadline, so it panics instead.
func (t *fdTimer) mustSettime(at Time) {
	if err := t.settime(at); err != nil {
		panic("clock: timerfd_settime: " + err.Error())
	}
}

func (t *fdTimer) C() <-chan struct{} { return t.c }

func (t *fdTimer) Reset(at Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	drain(t.c)
	t.at = at
	t.armed = true
	t.mustSettime(at)
}

func (t *fdTimer) Stop() {
	t.mu.Lock()
	first := !t.stopped
	if first {
		t.stopped = true
		t.armed = false
		drain(t.c)
		close(t.quit)
	}
	t.mu.Unlock()
	if first {
		// Closing unblocks the Read in run. Nothing touches the
		// descriptor after stopped is set, so this is safe outside mu.
		_ = t.f.Close()
	}
	<-t.done
}

func (t *fdTimer) run() {
	defer close(t.done)
	var buf [8]byte // expiration count; only the wakeup matters
	for {
		_, err := t.f.Read(buf[:])
		t.mu.Lock()
		if t.stopped {
			t.mu.Unlock()
			return
		}
		t.fireIfDue()
		t.mu.Unlock()
		if err != nil {
			// Not from Stop (stopped was false). A timerfd read
			// fails only with EAGAIN, which the poller absorbs, or
			// ECANCELED, which needs flags we do not use. Should it
			// fail anyway, poll instead of spinning: fireIfDue above
			// keeps the timer correct, if coarse.
			select {
			case <-t.quit:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// fireIfDue delivers the current arming's fire if the clock has reached it.
// It is called with mu held after every wakeup, so it also filters out an
// expiration read for an arming that Reset replaced in the meantime.
func (t *fdTimer) fireIfDue() {
	if !t.armed {
		return
	}
	if (boot{}).Now() < t.at {
		// A stale wakeup: Reset has re-armed the timerfd for t.at.
		// Re-arming for the same instant changes nothing then, and
		// guarantees another wakeup if anything else woke us early.
		t.mustSettime(t.at)
		return
	}
	t.armed = false
	notify(t.c)
}
