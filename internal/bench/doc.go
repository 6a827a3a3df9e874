// Package bench measures leasehold side by side with the naive baseline, a
// plain etcd election (concurrency.Session + concurrency.Election, acting
// from Campaign's return until Session.Done()), on the same etcd in the
// same run. cmd/bench is its command line.
//
// Every leader "acts" every 5 ms and records the CLOCK_BOOTTIME instant of
// each act (clock.Boot, comparable across processes); an act counts only
// if the leader was still entitled to it by its own rule afterwards (its
// service context live for leasehold, Session.Done() not closed for the
// baseline). Both sides use a 2 s lease TTL, etcd's default minimum.
//
//   - Split-brain window: leader and successor talk to etcd through proxies
//     of their own; the leader's is partitioned (traffic blackholed,
//     connections kept). Window = successor's first act − old leader's
//     last act: positive is a gap, negative is two leaders acting at once.
//   - Graceful handover: a chain of candidates; the leader is asked to stop
//     after the successor's key appears (after a long wait, after 0–100 ms,
//     at once), and the handover lasts until the successor acts. The floor
//     is a raw revoke, the delete event on a synced watch, and a read.
//   - Crash failover: the leader is a child process (this binary
//     re-executed, see Child) killed with SIGKILL; the failover lasts from
//     the kill to the successor's first act.
//   - Teardown: one lease holding N services that block until stopped,
//     lost by a revoke from a second client; from EventLeaseLost to
//     EventTermStopped (every Serve returned). The floor is a plain suture
//     supervisor holding the same services, cancelled. Each measurement runs
//     in a child process, so its goroutine and heap counts are its own.
//   - etcd cost: a gRPC interceptor counts the requests (unary calls and
//     stream messages) of each client; an idle leader's per minute, and a
//     leader change's across every candidate's client.
package bench
