package scheduler

import (
	"io"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/services/guard"
	"github.com/leasehold/leasehold/services/tasks"
)

// Config configures one scheduler node.
type Config struct {
	Client *clientv3.Client
	Layout Layout
	NodeID string
	// TTL of the node's leases. Default 10s.
	TTL   time.Duration
	Tasks []*tasks.Task
	Log   *slog.Logger
	// Guard is the template of the units' guard processes.
	Guard guard.Spec
	// Output, if set, returns where a task's command output goes.
	Output func(task string) io.Writer
	// Tick and Grace tune the leader's rounds (see Scheduler).
	Tick, Grace time.Duration
}

// Tree is the tree every scheduler node runs (see the package doc).
func Tree(cfg Config) *leasehold.Node {
	ttl := leasehold.TTL(cfg.TTL)
	if cfg.TTL == 0 {
		ttl = leasehold.TTL(10 * time.Second)
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return leasehold.Lease("registry", ttl, leasehold.Key(cfg.Layout.Node(cfg.NodeID)),
		leasehold.Election("election", cfg.Layout.Leader(), ttl,
			leasehold.Service("scheduler", &Scheduler{
				Client: cfg.Client, Layout: cfg.Layout, Tasks: cfg.Tasks, Log: log.With("service", "scheduler"),
				Tick: cfg.Tick, Grace: cfg.Grace,
			})),
		leasehold.Lease("runner", ttl, leasehold.Key(cfg.Layout.Runner(cfg.NodeID)),
			leasehold.Service("assignments", &Runner{
				Client: cfg.Client, Layout: cfg.Layout, Node: cfg.NodeID, Tasks: cfg.Tasks,
				Log: log.With("service", "runner"), Guard: cfg.Guard, Output: cfg.Output,
			})),
	)
}
