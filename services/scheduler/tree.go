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
	// Member is the value of the node's registry key, e.g. a cluster.Member
	// as JSON (id, debug URL, version, start time). Default: NodeID.
	Member string
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
	member := cfg.Member
	if member == "" {
		member = cfg.NodeID
	}
	return leasehold.Lease("registry", ttl, leasehold.Key(cfg.Layout.Node(cfg.NodeID)), leasehold.Identity(member),
		leasehold.Election("election", cfg.Layout.Leader(), ttl, leasehold.Identity(cfg.NodeID),
			leasehold.Service("scheduler", &Scheduler{
				Client: cfg.Client, Layout: cfg.Layout, Tasks: cfg.Tasks, Log: log.With("service", "scheduler"),
				Tick: cfg.Tick, Grace: cfg.Grace,
			})),
		leasehold.Service("step-down", &StepDownListener{
			Client: cfg.Client, Layout: cfg.Layout, Election: "registry/election", Log: log.With("service", "step-down"),
		}),
		leasehold.Lease("runner", ttl, leasehold.Key(cfg.Layout.Runner(cfg.NodeID)),
			leasehold.Service("assignments", &Runner{
				Client: cfg.Client, Layout: cfg.Layout, Node: cfg.NodeID, Tasks: cfg.Tasks,
				Log: log.With("service", "runner"), Guard: cfg.Guard, Output: cfg.Output,
			})),
	)
}
