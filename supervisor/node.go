package supervisor

import (
	"context"
	"sync"
	"time"

	"github.com/leasehold/leasehold/leases"
)

// States of nodes, as shown in snapshots.
const (
	StateStarting    = "starting"
	StateRunning     = "running"
	StateBackoff     = "backoff"
	StateStopping    = "stopping"
	StateStopped     = "stopped"
	StateFailed      = "failed"
	StateAcquiring   = "acquiring"
	StateCampaigning = "campaigning"
	StateHeld        = "held"
	StateLeading     = "leading"
)

// node is the live state of one Spec node; it outlives the node's terms.
type node struct {
	rt       *Runtime
	spec     *Spec
	path     string
	parent   *node
	children []*node

	mu struct {
		sync.Mutex
		state    string
		since    time.Time
		restarts int
		lastErr  string
		running  int // Serve calls in flight; at most one for a service
		term     int
		lease    *leases.Lease
		election *leases.Election
		token    int64
		// dynamic holds the children added at run time by Group.Add, in
		// the order they were added; they live for one term.
		dynamic []*node
		// group is the node's group of children in the current term.
		group *Group
		// unrevoked is an earlier term's lease whose revoke failed
		// (etcd unreachable); it is revoked once a grant succeeds.
		unrevoked *leases.Lease
	}
}

// allChildren is the node's declared children followed by its dynamic ones.
func (n *node) allChildren() []*node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append(append([]*node(nil), n.children...), n.mu.dynamic...)
}

func (r *Runtime) build(s *Spec, parent *node) *node {
	n := &node{rt: r, spec: s, parent: parent, path: s.Name}
	if parent != nil {
		n.path = parent.path + "/" + s.Name
	}
	n.mu.state = StateStopped
	n.mu.since = time.Now()
	for _, c := range s.Children {
		n.children = append(n.children, r.build(c, n))
	}
	return n
}

func (n *node) setState(state string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.state != state {
		n.mu.state, n.mu.since = state, time.Now()
	}
}

// stuck lists the services under n (n included) whose Serve has not returned.
func (n *node) stuck() []string {
	n.mu.Lock()
	running := n.mu.running
	n.mu.Unlock()
	if n.spec.Kind == KindService {
		if running > 0 {
			return []string{n.path}
		}
		return nil
	}
	var out []string
	for _, c := range n.allChildren() {
		out = append(out, c.stuck()...)
	}
	return out
}

// serve runs the node until ctx ends and its whole subtree has returned.
func (n *node) serve(ctx context.Context) error {
	switch n.spec.Kind {
	case KindLease, KindElection:
		return n.serveLease(ctx)
	case KindSupervisor:
		n.setState(StateRunning)
		err := n.runChildren(ctx, n.deadline(), nil)
		n.setState(StateStopped)
		return err
	default:
		return n.spec.Service.Serve(ctx)
	}
}

// serveRoot runs the root node directly: it is never a service, and lease
// and election nodes retry on their own, so nothing restarts it.
func (n *node) serveRoot(ctx context.Context) {
	n.rt.inflight.Add(1)
	defer n.rt.inflight.Done()
	if err := n.serve(ctx); err != nil && ctx.Err() == nil {
		// A root supervisor that escalated has no parent to restart it.
		n.rt.fail(err)
	}
}

// deadline returns the HeldUntil of the lease enclosing n as a function, or
// nil when no lease encloses it.
func (n *node) deadline() func() (leaseInfo, bool) {
	for p := n; p != nil; p = p.parent {
		if p.spec.Kind == KindLease || p.spec.Kind == KindElection {
			return p.currentLease
		}
	}
	return nil
}

type leaseInfo struct {
	path  string
	lease *leases.Lease
}

func (n *node) currentLease() (leaseInfo, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return leaseInfo{path: n.path, lease: n.mu.lease}, n.mu.lease != nil
}

// parentChild is n as a child of its parent's current group, if any.
func (n *node) parentChild() *child {
	if n.parent == nil {
		return nil
	}
	n.parent.mu.Lock()
	g := n.parent.mu.group
	n.parent.mu.Unlock()
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.mu.kids {
		if c.n == n {
			return c
		}
	}
	return nil
}
