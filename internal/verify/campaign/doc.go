// Package campaign runs split-brain campaigns, the way Jepsen checks such
// claims: real node processes (this very executable, re-run with RoleEnv
// set) against a real etcd cluster of separate processes, faults chosen by a
// seed (SIGKILL, SIGSTOP past the TTL, partitions, latency, a stubborn
// service, etcd restarts and leader loss), a history per process (package
// history) and a check of them all (package checker). It runs the same
// campaign against leasehold nodes and against naive nodes built the usual
// way (concurrency.Session + Election), whose overlaps prove the checker can
// fail. cmd/splitbrain is its command.
//
// internal/verify holds everything that verifies the promises from outside:
// this package, history, checker and faults (the fault-injecting proxy,
// process groups, etcd members as processes).
package campaign
