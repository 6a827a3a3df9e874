// Package supervisor is leasehold's engine: it runs the children of one
// node during one term with Erlang/OTP's supervision semantics, on suture.
// Users do not import it; they build, run and inspect trees with package
// leasehold, which owns every name a user needs. This package exports only
// the engine's side of the contract with leasehold: Children, the Member
// and Host interfaces its owner implements, and the errors of Add and
// Remove.
//
// What the engine does: start the members (in order, each once the
// previous is ready, for an Ordered group); restart a member that returned
// on its own as its restart type, the group's strategy (one_for_one,
// one_for_all, rest_for_one) and the group's intensity say, escalating when
// the intensity is exceeded; stop the members in the tree's order (ordered:
// one at a time in reverse; otherwise subtrees together, then services
// together), and track every run until it has returned, telling the host
// about any that outlives its own Shutdown. It never starts a run unless
// the host allows it at that instant (Host.MayStart: the enclosing leases
// are held and short of their fence), and once a member is stopped no run
// of it starts again.
//
// What it does not do: leases, terms, deadlines, events and logs belong to
// the host. The engine reports what happened through the hooks, which run
// in order and never wait for user code.
//
// What suture does here, and what it does not. suture runs the members:
// one goroutine per member, started when the group starts or a member is
// added, and let go when the member returns suture.ErrDoNotRestart, which
// it does once done for the term (removed, stopped, or ended for good);
// every service is a plain suture.Service, so any suture service works
// unchanged. The engine does
// not use suture's restart policy or its stop, on purpose:
//   - suture counts failures per supervisor with a decaying score and pauses
//     the whole supervisor past a threshold; OTP semantics (strategies,
//     restart types, intensity and escalation, ordered start) need
//     per-member decisions, so each member's goroutine loops over its runs
//     (child.Serve) and asks its group what to do. suture's failure
//     threshold is set to infinity. Groups that want suture's own rule get
//     it, on leasehold's clock, with otp.SutureBackoff.
//   - suture's stop gives every service one shared timeout and then
//     abandons the ones still running; a lease's promise needs every run
//     tracked until it has returned, stopped in the tree's order, with the
//     overrun policy at the lease's deadline. So the group stops suture
//     first (members ignore suture's context, and suture soon stops
//     waiting for them), then tears the members down itself; a member
//     that returns afterwards costs suture nothing.
//   - suture's timers are not on an injectable clock; the engine's backoffs,
//     Shutdown timers and intensity windows all are (clock.Clock).
package supervisor
