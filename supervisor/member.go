package supervisor

import (
	"context"
	"time"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/otp"
)

// A Member is one child of a group, as the engine sees it: a node of the
// runtime's tree (a service, or a subtree of its own). The engine runs it,
// restarts it and stops it; the member says how (Rules) and is told what
// happened through its hooks.
//
// Hooks are called in the order things happen to the member. Started and
// Ended are called under the child's lock: like every hook they must not
// block or call back into the group; they may take the member's own lock
// and queue events.
type Member interface {
	// Name identifies the member among its siblings.
	Name() string
	// String is the member's path, for logs and suture.
	String() string
	// Rules are the member's restart type, Shutdown, Backoff and readiness;
	// zero fields take otp's defaults (permanent, 100ms to 10s).
	Rules() *otp.ChildRules
	// Subtree reports a member with children of its own: an unordered
	// group stops its subtrees before its services.
	Subtree() bool
	// Run runs the member once, until ctx ends or it returns on its own.
	Run(ctx context.Context) error

	// BackingOff: the member waits before its next run.
	BackingOff()
	// Started: a run began; at is the instant the group checked it may.
	Started(at clock.Time)
	// Stopping: the member was asked to stop and is still running.
	Stopping()
	// Ended: a run returned.
	Ended(e End)
	// Finished: the member ended for good in this term; failure is its
	// last run's error, nil when it ended cleanly.
	Finished(failure error)
}

// End says how a run of a member ended.
type End struct {
	// Stopped: the group stopped the run (teardown, removal, or a sibling's
	// restart); Cause says why.
	Stopped bool
	Cause   error
	// Err is the failure of a run that ended on its own; nil when it was
	// stopped, or chose to end for good (suture.ErrDoNotRestart).
	Err error
	// Restart: the failure will be retried.
	Restart bool
}

// A Host is what a group runs for: the node that owns the group during one
// term. Its hooks follow the same rules as Member's.
type Host interface {
	// MayStart reports whether a child may start a run at now: every
	// enclosing term goes on, and every enclosing lease is held and short of
	// its FenceAt. The group checks its own stop first.
	MayStart(now clock.Time) bool
	// Overdue is closed once an enclosing lease's deadline has been
	// enforced on the stuck services under it: teardown stops waiting.
	Overdue() <-chan struct{}
	// ShutdownOverrun: m is still running past its own Shutdown. The host
	// applies its overrun policy, which may end the process.
	ShutdownOverrun(m Member)
	// Escalated: the group exceeded its restart intensity and stops;
	// reason wraps otp.ErrEscalated.
	Escalated(reason error)
	// Paused: a group with suture's backoff pauses its restarts for d.
	Paused(d time.Duration)
	// Removed: a member added at run time was removed and has returned.
	Removed(m Member)
	// Go runs f on a goroutine that the host's owner waits for.
	Go(f func())
}
