// Package supervisor runs trees of services whose lifetimes are scoped by etcd
// leases. Every lease or election node owns one suture supervisor per term:
// its children run only while the lease is held (and, for an election, while
// it leads). Losing the lease stops the whole subtree, deepest first, and the
// lease is revoked only after every service under it has returned from Serve.
//
// What "stopped" means: a service is stopped when its Serve method has
// returned. suture gives up on a service that ignores cancellation after a
// timeout and forgets it; this package never does. It tracks every Serve call
// until it returns, and if a service under a lost lease is still running when
// the lease's HeldUntil arrives, it applies the overrun policy: by default it
// logs the stuck services and exits the process with ExitCodeOverrun, because
// a dead process cannot act after its lease could have expired.
//
// Teardown order within one node: children that are themselves subtrees
// (leases, elections, supervisors) stop first, each depth-first; then the
// node's services stop together. A lease node then revokes its lease, which
// lets a successor in at once instead of after the TTL.
//
// A failing service is restarted inside its lease with exponential backoff;
// the lease is not touched. A lost lease is re-acquired, with backoff, as a
// new term with a new supervisor (a suture.Supervisor serves only once).
//
// What suture does here, and what it does not. suture runs the children:
// one goroutine per child, started when the group starts or a child is added
// at run time, removed with RemoveAndWait, and every child is a plain
// suture.Service, so any suture service works unchanged. leasehold does not
// use suture's restart policy or its stop, on purpose:
//   - suture counts failures per supervisor with a decaying score and pauses
//     the whole supervisor past a threshold; OTP semantics (strategies,
//     restart types, intensity and escalation, ordered start) need per-child
//     decisions, so each child loops over its own runs (child.Serve) and asks
//     its Group what to do. suture's failure threshold is set to infinity.
//   - suture's stop gives every child one shared timeout and then abandons
//     the ones still running; a lease's promise needs every Serve tracked
//     until it has returned, stopped in the tree's order, with the overrun
//     policy at the lease's deadline. suture's timeout only ever applies to
//     children the overrun policy already chose to abandon.
//   - suture's timers are not on an injectable clock; leasehold's deadlines,
//     backoffs and intensity windows all are (clock.Clock).
//
// Users who want suture's own failure rule get it, on leasehold's clock, with
// Spec.Suture (SutureBackoff).
//
// Events and logs reach user code (Options.OnEvent, the Logger's handler) on
// one goroutine of the runtime's own, in order, never under a lock; a lease's
// deadline is enforced by a watchdog per term that waits for no user code and
// no etcd call.
package supervisor
