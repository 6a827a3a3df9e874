package leasehold

import (
	"fmt"
	"time"

	"github.com/leasehold/leasehold/leases"
)

// Snapshot is the live state of a tree at one moment. Its JSON form is the
// schema the debug endpoint serves.
type Snapshot struct {
	Node string       `json:"node"`
	At   time.Time    `json:"at"`
	Tree NodeSnapshot `json:"tree"`
}

// NodeSnapshot is one node of a Snapshot. Fields that do not apply to a
// node's kind are left out of its JSON.
type NodeSnapshot struct {
	Name      string         `json:"name"`
	Path      string         `json:"path"`
	Kind      Kind           `json:"kind"`
	State     string         `json:"state"`
	Since     time.Time      `json:"since"`
	LastError string         `json:"last_error,omitempty"`
	Children  []NodeSnapshot `json:"children"`

	// Lease and election nodes.
	LeaseID     string `json:"lease_id,omitempty"` // hex, as etcdctl prints it
	TTLMillis   int64  `json:"ttl_ms,omitempty"`
	HeldUntilMs int64  `json:"held_until_ms,omitempty"` // milliseconds of local safety left; 0 when lost
	Term        int    `json:"term,omitempty"`
	Renewals    int64  `json:"renewals,omitempty"`         // acknowledged renewals of the current lease
	RenewalFail int64  `json:"renewal_failures,omitempty"` // its renewal streams that broke or stalled
	Held        bool   `json:"held,omitempty"`             // the current lease is held

	// Election nodes.
	Prefix string `json:"prefix,omitempty"`
	Key    string `json:"key,omitempty"`   // a keyed lease's key
	Role   string `json:"role,omitempty"`  // leader or candidate
	Token  int64  `json:"token,omitempty"` // also of a keyed lease
	Leader string `json:"leader,omitempty"`

	// Nodes with children: how their group restarts and orders them.
	Strategy  RestartStrategy    `json:"strategy,omitempty"`
	Ordered   bool               `json:"ordered,omitempty"`
	Intensity *IntensitySnapshot `json:"intensity,omitempty"`

	// Every node as a child (restart type, readiness, shutdown timeout),
	// and services' restarts.
	Restart    RestartType `json:"restart_type,omitempty"`
	Ready      bool        `json:"ready,omitempty"`
	ShutdownMs int64       `json:"shutdown_ms,omitempty"`
	Restarts   int         `json:"restarts"`
}

// IntensitySnapshot is a group's restart intensity and how much of it the
// current period has used.
type IntensitySnapshot struct {
	MaxRestarts int   `json:"max_restarts"` // negative: no limit
	PeriodMs    int64 `json:"period_ms"`
	Used        int   `json:"used"` // restarts within the current period
}

// Snapshot returns the live state of the tree. It is cheap and safe to call
// at any time, from any goroutine; it never waits for the tree's work.
func (r *Runtime) Snapshot() Snapshot {
	return Snapshot{Node: r.opts.NodeID, At: time.Now(), Tree: r.root.snapshot()}
}

func (n *node) snapshot() NodeSnapshot {
	n.mu.Lock()
	s := NodeSnapshot{
		Name:      n.spec.Name,
		Path:      n.path,
		Kind:      n.spec.Kind,
		State:     n.mu.state,
		Since:     time.Unix(0, n.mu.since),
		LastError: n.mu.lastErr,
		Restarts:  n.mu.restarts,
		Ready:     n.mu.ready,
		Children:  []NodeSnapshot{},
	}
	var (
		lease    *leases.Lease
		election *leases.Election
		token    int64
		group    *Group
	)
	if sub := n.mu.sub; sub != nil {
		s.Term = sub.term
		lease, election, token, group = sub.lease, sub.election, sub.token, sub.group
	}
	n.mu.Unlock()
	s.Restart, s.ShutdownMs = n.spec.Restart, n.spec.Shutdown.Milliseconds()
	if n.spec.Kind != KindService {
		s.Strategy, s.Ordered = n.spec.Strategy, n.spec.Ordered
		in := n.spec.Intensity
		s.Intensity = &IntensitySnapshot{MaxRestarts: in.MaxRestarts, PeriodMs: in.Period.Milliseconds()}
		if group != nil {
			s.Intensity.Used = group.kids.IntensityUsed()
		}
	}

	if lease != nil {
		s.LeaseID = fmt.Sprintf("%x", int64(lease.ID()))
		s.TTLMillis = lease.TTL().Milliseconds()
		if lease.Err() == nil {
			s.HeldUntilMs = max(0, lease.HeldUntil().Sub(n.rt.opts.Clock.Now()).Milliseconds())
			s.Held = true
		}
		s.Renewals, s.RenewalFail = lease.Renewals(), lease.Failures()
	}
	if n.spec.Kind == KindElection {
		s.Prefix = n.spec.Prefix
		s.Role = "candidate"
		if s.State == StateLeading {
			s.Role, s.Token = "leader", token
		}
		if election != nil {
			s.Leader = election.Leader()
		}
		if s.Role == "leader" {
			s.Leader = n.identity()
		}
	} else if n.spec.Kind == KindLease && n.spec.Key != "" {
		s.Key = n.spec.Key
		if s.State == StateHeld {
			s.Token = token
		}
	}
	for _, c := range n.allChildren() {
		s.Children = append(s.Children, c.snapshot())
	}
	return s
}
