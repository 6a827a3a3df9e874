package clock

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestBootIsTimerfd(t *testing.T) {
	tm := Boot.NewTimer(Boot.Now().Add(time.Hour))
	defer tm.Stop()
	if _, ok := tm.(*fdTimer); !ok {
		t.Fatalf("Boot.NewTimer returned %T, want the timerfd timer", tm)
	}
}

func TestBootNotBehindMonotonic(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	if b := Boot.Now(); b < Time(ts.Nano()) {
		t.Fatalf("CLOCK_BOOTTIME %d behind CLOCK_MONOTONIC %d", b, ts.Nano())
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

func TestFDTimerClosesDescriptor(t *testing.T) {
	before := countFDs(t)
	var timers []Timer
	for i := range 50 {
		// Mix of fired and waiting timers.
		at := Boot.Now().Add(time.Hour)
		if i%2 == 0 {
			at = Boot.Now()
		}
		timers = append(timers, Boot.NewTimer(at))
	}
	if n := countFDs(t); n < before+50 {
		t.Fatalf("%d descriptors with 50 timers, %d before; not timerfds?", n, before)
	}
	for _, tm := range timers {
		tm.Stop()
	}
	if n := countFDs(t); n > before {
		t.Fatalf("%d descriptors after Stop, %d before", n, before)
	}
}
