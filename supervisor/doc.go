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
package supervisor
