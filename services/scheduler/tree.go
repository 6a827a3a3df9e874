package scheduler

import (
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
	// Output, if set, returns where a unit's command output goes.
	Output Output
	// Metrics, if set, receives the per-task metrics.
	Metrics *Metrics
	// Tick and Grace tune the leader's rounds (see Scheduler).
	Tick, Grace time.Duration
	// Retention is how long finished run records are kept.
	Retention Retention
	// Info is the node key's value; zero means NewNodeInfo(NodeID). Give
	// the same Info to an IDWatch.
	Info NodeInfo
}

// NewAdvert returns what a runner with these tasks advertises.
func NewAdvert(node string, ts []*tasks.Task) Advert {
	ad := Advert{Node: node, Tasks: make(map[string]string, len(ts))}
	for _, t := range ts {
		ad.Tasks[t.Name] = t.Hash()
	}
	return ad
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
	// node is the node id in every record of this tree's services.
	log = log.With("node", cfg.NodeID)
	info := cfg.Info
	if info.Instance == "" {
		info = NewNodeInfo(cfg.NodeID)
	}
	return leasehold.Lease("registry", ttl, leasehold.Key(cfg.Layout.Node(cfg.NodeID)), leasehold.Identity(encode(info)),
		leasehold.Election("election", cfg.Layout.Leader(), ttl, leasehold.Identity(cfg.NodeID),
			leasehold.Service("scheduler", &Scheduler{
				Client: cfg.Client, Layout: cfg.Layout, Tasks: cfg.Tasks, Log: log.With("service", "scheduler"),
				Tick: cfg.Tick, Grace: cfg.Grace, Metrics: cfg.Metrics, Retention: cfg.Retention,
			})),
		leasehold.Service("step-down", &StepDownListener{
			Client: cfg.Client, Layout: cfg.Layout, Election: "registry/election", Log: log.With("service", "step-down"),
		}),
		// The runner key's value advertises the tasks this term can run.
		leasehold.Lease("runner", ttl, leasehold.Key(cfg.Layout.Runner(cfg.NodeID)),
			leasehold.Identity(encode(NewAdvert(cfg.NodeID, cfg.Tasks))),
			leasehold.Service("assignments", &Runner{
				Client: cfg.Client, Layout: cfg.Layout, Node: cfg.NodeID, Tasks: cfg.Tasks,
				Log: log.With("service", "runner"), Guard: cfg.Guard, Output: cfg.Output, Metrics: cfg.Metrics,
			}),
			// Under the runner lease, beside services only: a registry
			// teardown stops its lease children (and waits for their
			// revoke) before its services.
			leasehold.Service("leader-log", &LeaderLog{Client: cfg.Client, Layout: cfg.Layout, Log: log})),
	)
}
