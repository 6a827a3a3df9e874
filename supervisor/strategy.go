package supervisor

import (
	"errors"
	"time"
)

// Strategy says which siblings restart when one child fails, as in OTP.
type Strategy string

// The restart strategies.
const (
	// OneForOne restarts only the failed child (the default).
	OneForOne Strategy = "one_for_one"
	// OneForAll stops every other child, then restarts them all in order.
	OneForAll Strategy = "one_for_all"
	// RestForOne stops the children declared after the failed one, then
	// restarts it and them in order.
	RestForOne Strategy = "rest_for_one"
)

// RestartType says when a child that returned on its own is restarted.
type RestartType string

// The restart types.
const (
	// Permanent children are always restarted (the default).
	Permanent RestartType = "permanent"
	// Transient children are restarted only after an error (a panic
	// counts); returning nil ends them.
	Transient RestartType = "transient"
	// Temporary children are never restarted.
	Temporary RestartType = "temporary"
)

// Intensity bounds restarts: more than MaxRestarts restarts within Period
// make the group give up and escalate to its parent, as in OTP. Under a
// supervisor node that is a failure of that node in its own parent; under a
// lease it gives the lease up (an election resigns) and takes a new term
// after a backoff. The zero value is DefaultIntensity; a negative
// MaxRestarts means no limit.
type Intensity struct {
	MaxRestarts int
	Period      time.Duration
}

// DefaultIntensity allows 5 restarts in 10 seconds: with the default restart
// backoff a crash loop escalates within about 6 seconds, while a service
// that fails now and then never does.
var DefaultIntensity = Intensity{MaxRestarts: 5, Period: 10 * time.Second}

func (i Intensity) withDefaults() Intensity {
	if i == (Intensity{}) {
		return DefaultIntensity
	}
	return i
}

// ErrEscalated is the cause of a group's stop when its restart intensity
// was exceeded.
var ErrEscalated = errors.New("leasehold: restart intensity exceeded; escalating")

// errGroupRestart is the cause given to siblings stopped for a one-for-all
// or rest-for-one restart; they start again at once.
var errGroupRestart = errors.New("leasehold: restarted with a failed sibling")

func validStrategy(s Strategy) bool {
	return s == "" || s == OneForOne || s == OneForAll || s == RestForOne
}

func validRestart(r RestartType) bool {
	return r == "" || r == Permanent || r == Transient || r == Temporary
}

// SutureBackoff is suture's supervisor-wide failure backoff, available as an
// alternative to escalation: failures are counted with an exponential decay
// (halving every Decay), and once they pass Threshold the whole group waits
// Backoff before restarting anything, then starts counting afresh. A group
// with SutureBackoff set never escalates (its Intensity is ignored).
type SutureBackoff struct {
	Threshold float64       // suture's default: 5
	Decay     time.Duration // suture's default: 30s
	Backoff   time.Duration // suture's default: 15s
}
