// Package faults holds the fault-injection machinery of the split-brain
// campaign (cmd/splitbrain), usable outside tests: a blackholing proxy on a
// unix socket, child processes in process groups of their own that are
// always cleaned up, and etcd members run as separate processes.
package faults
