// Package clock provides the time source that lease code uses for
// conservative deadlines.
//
// # Why not time.Now
//
// Go's monotonic clock (the reading carried by time.Now and used by
// time.Since, time.Timer and context deadlines) is CLOCK_MONOTONIC on Linux.
// CLOCK_MONOTONIC does not advance while the system is suspended. A lease
// granted for 10s, followed by a 60s suspend, would still look 10s from
// expiry on resume although the rest of the cluster treated it as expired
// long ago. A holder that acts on such a lease acts on a lease it no longer
// holds.
//
// CLOCK_BOOTTIME is CLOCK_MONOTONIC plus the time spent in suspend, so it
// keeps counting while the machine sleeps. [Boot] reads it, and its timers
// are timerfds on CLOCK_BOOTTIME armed with absolute expiry times: a
// deadline that passes during a suspend fires as soon as the system resumes
// rather than the suspended duration late.
//
// On systems other than Linux, [Boot] falls back to Go's monotonic clock
// and time.Timer; time spent in suspend may then not be counted.
//
// # Model
//
// A [Clock] produces instants of type [Time]: int64 nanoseconds since an
// arbitrary origin fixed for the life of the process (for [Boot] on Linux:
// since boot). Instants of different clocks are not comparable, and an
// instant is meaningless outside the process; convert to wall-clock time
// with [Wall] for display only. Code that needs deadlines takes a [Clock]
// so that tests can substitute [Fake], which only moves when told to.
//
// A [Timer] is armed for an absolute instant rather than a duration, so a
// deadline computed once (grant time plus lease duration) is not shifted by
// scheduling delays between computing it and arming the timer. Its
// delivery guarantees are documented on the type.
package clock
