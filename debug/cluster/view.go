package cluster

import (
	"time"

	"github.com/leasehold/leasehold"
)

// View is the cluster at one moment, as one node sees it. Its JSON is the
// schema of /debug/cluster.json (see docs/debug.md).
type View struct {
	At        time.Time  `json:"at"`
	From      string     `json:"from"`    // the node that built the view
	Members   string     `json:"members"` // the registry prefix read
	Nodes     []Node     `json:"nodes"`
	Elections []Election `json:"elections"`
	Tasks     []Task     `json:"tasks,omitempty"`
	// TasksError and EtcdError say why a part is missing or stale.
	TasksError string `json:"tasks_error,omitempty"`
	EtcdError  string `json:"etcd_error,omitempty"`
}

// Node statuses.
const (
	StatusUp          = "up"          // its tree was fetched
	StatusUnreachable = "unreachable" // registered and leased, but its endpoint did not answer (Error says how)
	StatusNoEndpoint  = "no_endpoint" // registered without a debug URL (endpoint off, or an older node)
	StatusGone        = "gone"        // its registration vanished, or etcd no longer has its lease
)

// Node is one registered node.
type Node struct {
	ID       string    `json:"id"`
	Status   string    `json:"status"`
	Error    string    `json:"error,omitempty"`
	Key      string    `json:"key"`
	DebugURL string    `json:"debug_url,omitempty"`
	Version  string    `json:"version,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	LeaseID  string    `json:"lease_id,omitempty"` // hex, as etcdctl prints it
	// LeaseTTLMs is the registry lease's time left as etcd counts it
	// (etcd's own expiry; the node's local safety, shorter, is in its tree).
	LeaseTTLMs int64 `json:"lease_ttl_ms,omitempty"`
	// Leads lists the election prefixes this node leads.
	Leads []string `json:"leads,omitempty"`
	// GoneSince is when the view first found the node gone.
	GoneSince time.Time `json:"gone_since,omitzero"`
	// Tree is the node's live tree, as its /debug/tree.json served it when
	// fetched AgeMs before At; kept, marked stale, while a node is
	// unreachable.
	Tree  *leasehold.Snapshot `json:"tree,omitempty"`
	AgeMs int64               `json:"age_ms,omitempty"`
	// FetchMs is how long the last fetch took.
	FetchMs int64 `json:"fetch_ms,omitempty"`
}

// Election is one election's queue as etcd holds it.
type Election struct {
	Prefix  string `json:"prefix"`
	Leader  string `json:"leader,omitempty"` // the leader key's value: its node id; empty when nobody leads
	Token   int64  `json:"token,omitempty"`  // the leader key's create revision: the term's fencing token
	Key     string `json:"key,omitempty"`
	LeaseID string `json:"lease_id,omitempty"`
	// SafetyLeftMs is the leader's local safety left (held_until_ms of its
	// election node) as its tree showed it, AgeMs before the view; -1 when
	// unknown.
	SafetyLeftMs int64 `json:"safety_left_ms"`
	AgeMs        int64 `json:"age_ms,omitempty"`
	// Candidates are the other keys' values, in queue order.
	Candidates []string `json:"candidates"`
}

// Task is one scheduled task's recent history.
type Task struct {
	Name     string    `json:"name"`
	Schedule string    `json:"schedule,omitempty"`
	LastSlot time.Time `json:"last_slot,omitzero"` // the latest slot scheduled
	LastRun  *Run      `json:"last_run,omitempty"` // the latest slot's run
	NextSlot time.Time `json:"next_slot,omitzero"` // the next slot due
	Failures []Run     `json:"failures,omitempty"` // recent failed or lost runs, newest first
}

// Run is one run of a task slot.
type Run struct {
	Slot       time.Time `json:"slot"`
	State      string    `json:"state"`
	Attempt    int       `json:"attempt"`
	Runner     string    `json:"runner,omitempty"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	ExitCode   int       `json:"exit_code,omitempty"`
	Reason     string    `json:"reason,omitempty"`
}
