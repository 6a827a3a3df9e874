//go:build !linux

package clock

import "time"

// origin is placed an hour before process start so that Boot.Now is never
// the zero Time.
var origin = time.Now().Add(-time.Hour)

// boot is Go's monotonic clock: without CLOCK_BOOTTIME there is no portable
// clock that is known to count system suspend.
type boot struct{}

func (boot) Now() Time { return Time(time.Since(origin)) }

func (boot) NewTimer(at Time) Timer { return newGoTimer(boot{}.Now, at) }
