package leasehold

import "github.com/leasehold/leasehold/internal/otp"

// RestartStrategy says which siblings restart when one child fails, as in
// OTP; set it with Strategy.
type RestartStrategy = otp.Strategy

// The restart strategies.
const (
	// OneForOne restarts only the failed child (the default).
	OneForOne RestartStrategy = otp.OneForOne
	// OneForAll stops every other child, then restarts them all in order.
	OneForAll RestartStrategy = otp.OneForAll
	// RestForOne stops the children declared after the failed one, then
	// restarts it and them in order.
	RestForOne RestartStrategy = otp.RestForOne
)

// RestartType says when a child that returned on its own is restarted; set
// it with Restart.
type RestartType = otp.RestartType

// The restart types.
const (
	// Permanent children are always restarted (the default).
	Permanent RestartType = otp.Permanent
	// Transient children are restarted only after an error (a panic
	// counts); returning nil ends them.
	Transient RestartType = otp.Transient
	// Temporary children are never restarted.
	Temporary RestartType = otp.Temporary
)

// BackoffRange is an exponential delay: Min after the first failure,
// doubling up to Max, starting over at Min after a run (or term) that
// lasted longer than Max. It is Options.Reacquire's type; a child's restart
// backoff is set with Backoff.
type BackoffRange = otp.Backoff

// ErrEscalated is the cause of a group's stop (Event.Err of EventEscalated)
// when its children exceeded its restart intensity (see Intensity).
var ErrEscalated = otp.ErrEscalated
