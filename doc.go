// Package leasehold runs supervision trees scoped by etcd leases, so that
// work guarded by a lease or a leadership stops before etcd can expire that
// lease and let a successor act.
//
// A tree is declared with Lease, Election, Supervisor and Service and run
// with Run:
//
//	tree := leasehold.Lease("registry", leasehold.TTL(10*time.Second),
//		leasehold.Election("election", "/myapp/scheduler",
//			leasehold.Service("scheduler", scheduler)),
//		leasehold.Lease("runner",
//			leasehold.Service("runner", runner)),
//	)
//	err := leasehold.Run(ctx, etcdClient, tree)
//
// Every lease node owns one suture supervisor per term. Its children run only
// while the lease is held locally, which is never longer than etcd holds it;
// teardown starts a stop budget before that and must finish in time, or the
// overrun policy applies (by default the process exits). A lease is revoked
// only after its subtree has stopped. Inside a service, TermOf(ctx) gives the
// enclosing election's fencing token and fenced transactions.
//
// A service is stopped only when its Serve has returned: every run is
// tracked until then, never abandoned after a timeout. Events
// (Options.OnEvent) and log records reach user code on one goroutine of the
// runtime's own, in order and never under a lock, so a handler may call
// anything on the Runtime. The full semantics, beside Erlang/OTP's and
// suture's, are in docs/semantics.md.
//
// # One front door
//
// Everything a user names is exported here, once: the tree's constructors
// and options, Run, New and Runtime (Snapshot, StepDown), Options, Event and
// its kinds, node states and kinds, the overrun policies, Group (GroupOf),
// LeaseOf, TermOf, RuntimeOf and Ready, and the errors. The fencing types
// (leases.Lease, leases.Term) stay in package leases, which can also be used
// on its own. Package supervisor is the engine that runs each node's
// children with OTP semantics; it exports only its contract with this
// package, and no name exported here is exported there.
package leasehold
