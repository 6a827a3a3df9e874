// Package otp is the supervision vocabulary shared by the tree's front door
// (package leasehold, which exports it to users) and the engine that applies
// it (package supervisor): restart strategies and types, intensity, restart
// backoff. It lives here, internal, so that each name is exported to users
// once, by leasehold.
package otp

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

// Valid reports whether s is a strategy or empty (the default).
func (s Strategy) Valid() bool {
	return s == "" || s == OneForOne || s == OneForAll || s == RestForOne
}

// OrDefault is s, or OneForOne when s is empty.
func (s Strategy) OrDefault() Strategy {
	if s == "" {
		return OneForOne
	}
	return s
}

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

// Valid reports whether r is a restart type or empty (the default).
func (r RestartType) Valid() bool {
	return r == "" || r == Permanent || r == Transient || r == Temporary
}

// OrDefault is r, or Permanent when r is empty.
func (r RestartType) OrDefault() RestartType {
	if r == "" {
		return Permanent
	}
	return r
}

// Intensity bounds restarts: more than MaxRestarts restarts within Period
// make the group give up and escalate. The zero value is DefaultIntensity;
// a negative MaxRestarts means no limit.
type Intensity struct {
	MaxRestarts int
	Period      time.Duration
}

// DefaultIntensity allows 5 restarts in 10 seconds: with the default restart
// backoff a crash loop escalates within about 6 seconds, while a service
// that fails now and then never does.
var DefaultIntensity = Intensity{MaxRestarts: 5, Period: 10 * time.Second}

// OrDefault is i, or DefaultIntensity for the zero value.
func (i Intensity) OrDefault() Intensity {
	if i == (Intensity{}) {
		return DefaultIntensity
	}
	return i
}

// Backoff is an exponential delay: Min after the first failure, doubling up
// to Max. Zero fields take the defaults of WithDefaults.
type Backoff struct {
	Min time.Duration
	Max time.Duration
}

// WithDefaults fills zero fields: Min 100ms, Max 10s.
func (b Backoff) WithDefaults() Backoff {
	if b.Min == 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max == 0 {
		b.Max = 10 * time.Second
	}
	return b
}

// Delay is the wait before retry number n (n >= 1).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// SutureBackoff is suture's supervisor-wide failure backoff, an alternative
// to escalation: failures are counted with an exponential decay (halving
// every Decay), and once they pass Threshold the whole group waits Backoff
// before restarting anything, then counts afresh. A group with it never
// escalates.
type SutureBackoff struct {
	Threshold float64       // suture's default: 5
	Decay     time.Duration // suture's default: 30s
	Backoff   time.Duration // suture's default: 15s
}

// GroupRules shape how a node with children restarts and orders them.
type GroupRules struct {
	Strategy  Strategy
	Intensity Intensity
	// Suture, if set, replaces Intensity with suture's failure backoff.
	Suture *SutureBackoff
	// Ordered starts the children one at a time in declaration order, each
	// once the previous is ready, and stops them one at a time in reverse
	// order. Without it, children start together and stop together
	// (subtrees first, then services).
	Ordered bool
}

// ChildRules shape a node as a child of its group.
type ChildRules struct {
	Restart RestartType
	// Shutdown is how long the child has to return once asked to stop;
	// zero: until the enclosing lease's deadline.
	Shutdown time.Duration
	// Backoff paces the restarts of a failing child.
	Backoff Backoff
	// AwaitReady makes an Ordered group start the next sibling only once
	// this child has said it is ready (or returned).
	AwaitReady bool
}

// ErrEscalated is the cause of a group's stop when its restart intensity
// was exceeded.
var ErrEscalated = errors.New("leasehold: restart intensity exceeded; escalating")
