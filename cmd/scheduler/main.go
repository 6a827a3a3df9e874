// Command scheduler is a split-brain-free distributed task scheduler: a
// cluster-wide cron on leasehold. Run it with no flags to start a node with
// an embedded etcd; start more nodes with --endpoints to share the work.
// See the README for flags, the etcd key layout and a failover walk-through.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
