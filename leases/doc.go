// Package leases holds etcd leases conservatively: a Lease is considered held
// locally only until the send time of its last acknowledged renewal plus the
// granted TTL, shrunk for clock-rate drift and timer jitter. That instant,
// HeldUntil, is never later than the moment etcd may expire the lease, because
// etcd starts its own countdown when it processes the renewal, which is after
// the request was sent.
//
// A Lease is lost locally at FenceAt, a stop budget before HeldUntil, so that
// the work it guards has time to stop before anyone else can take over.
// Loss is exposed as a context (Lease.Ctx) whose cause says why.
//
// An Election campaigns on top of a Lease with the key layout of etcd's
// concurrency.Election (prefix/leaseIDhex, value = identity), so
// `etcdctl elect --listen prefix` sees the same leader. Unlike
// concurrency.Election.Campaign it re-checks its own key once its
// predecessors are gone, and it watches its key while it leads, so a deleted
// key ends the Term at once. A Term's Token (the key's create revision) is a
// fencing token: writes made through Term.Txn commit only while that key
// exists, in etcd's linearizable order, whatever pauses the caller suffered.
package leases
