package leasehold

import (
	"log/slog"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/clock"
)

// ExitCodeOverrun is the process exit status of ExitOnOverrun (EX_TEMPFAIL:
// a process supervisor such as systemd or Kubernetes should restart it).
const ExitCodeOverrun = 75

// Overrun describes services still running when the lease they run under
// reached HeldUntil (after which etcd may expire it and a successor may
// act), or when a child outlived its own Shutdown timeout.
type Overrun struct {
	Path      string // the lease or election node, or the child past its Shutdown
	LeaseID   clientv3.LeaseID
	HeldUntil clock.Time
	Shutdown  time.Duration // set when a child's own Shutdown passed
	Stuck     []string      // paths of the services that had not returned
}

// OverrunPolicy decides what happens on an overrun. It runs after the
// overrun is logged. If it returns, teardown goes on as if the stuck
// services had stopped (they stay tracked, and Run still waits for them).
type OverrunPolicy func(Overrun)

// ExitOnOverrun is the default policy: exit the process at once with
// ExitCodeOverrun. A dead process cannot act after its lease could have
// expired; its own supervisor restarts it.
func ExitOnOverrun(Overrun) { os.Exit(ExitCodeOverrun) }

// AbandonOnOverrun lets the stuck services run on and the tree go on. It is
// UNSAFE: those services may act after a successor has taken over. Use it
// only for services whose actions are all fenced.
func AbandonOnOverrun(Overrun) {}

func logOverrun(log *slog.Logger, o Overrun) {
	log.Error("services did not stop before their lease could expire",
		"lease", o.Path, "lease_id", int64(o.LeaseID), "stuck", o.Stuck)
}
