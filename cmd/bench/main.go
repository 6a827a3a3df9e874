// Command bench measures leasehold side by side with a plain etcd election
// (concurrency.Session + Election, acting until Session.Done()) on the same
// etcd in the same run, and prints one markdown table: the split-brain
// window under a partition, graceful handover, crash failover, teardown of
// large subtrees, and etcd requests. See the README's Benchmarks section.
//
//	go run ./cmd/bench            # the published run, on an embedded etcd (< 10 minutes)
//	go run ./cmd/bench --quick    # a tiny run, as CI does
//	go run ./cmd/bench soak       # the scheduler's storage over minutes (docs/scheduler.md)
package main

import (
	"os"

	"github.com/leasehold/leasehold/internal/bench"
	"github.com/leasehold/leasehold/services/guard"
)

func main() {
	// The crash trials re-execute this binary as a child leader.
	if code, ok := bench.Child(); ok {
		os.Exit(code)
	}
	// The soak's units re-execute this binary as their guard.
	if len(os.Args) > 1 && os.Args[1] == "guard" {
		os.Exit(guard.Main(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
