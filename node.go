package leasehold

import (
	"context"
	"slices"
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

// node is the live state of one node of the tree; it outlives the node's
// terms. It is a member of its parent's group (see member.go).
type node struct {
	rt       *Runtime
	spec     *nodeSpec // resolved: every default filled in
	path     string
	parent   *node
	children []*node
	// stepDown is an election's step-down state (see StepDown); nil for
	// other kinds, so that a service's node stays small.
	stepDown *stepDown

	// mu is a leaf lock (the engine calls the node's hooks under its own
	// child lock, so mu is taken after it); a parent's and a child's are
	// never held together: snapshots lock one node at a time.
	mu struct {
		sync.Mutex
		state    string
		since    int64 // Unix nanoseconds: a node per service, kept small
		restarts int
		lastErr  string
		running  int // Serve calls in flight; at most one for a service
		// ready: running, and past Ready if the node awaits readiness (see
		// AwaitReady); what snapshots show.
		ready bool
		// sub is the state of a node with children; nil for a service, so
		// that a service's node stays small.
		sub *subtree
	}
}

// subtree is the state only a node with children has; the node's mu guards
// it.
type subtree struct {
	// group is the node's group of children in the current term.
	group *Group
	// dynamic holds the children added at run time by Group.Add, in the
	// order they were added; they live for one term.
	dynamic []*node

	// Lease and election nodes: the current term.
	term     int
	lease    *leases.Lease
	election *leases.Election
	token    int64
	// unrevoked are earlier terms' leases whose revoke failed (etcd
	// unreachable); they are revoked once a grant succeeds.
	unrevoked []*leases.Lease
}

// allChildren is the node's declared children followed by its dynamic ones.
func (n *node) allChildren() []*node {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.sub == nil {
		return n.children // fixed once built
	}
	return append(append([]*node(nil), n.children...), n.mu.sub.dynamic...)
}

// build makes the live nodes of a resolved tree (see resolved).
// listDynamic adds c, a child added at run time, to n's children.
func (n *node) listDynamic(c *node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.sub.dynamic = append(n.mu.sub.dynamic, c)
}

// unlistDynamic removes c from n's children added at run time.
func (n *node) unlistDynamic(c *node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.sub.dynamic = slices.DeleteFunc(n.mu.sub.dynamic, func(d *node) bool { return d == c })
}

func (r *Runtime) build(s *nodeSpec, parent *node) *node {
	n := &node{rt: r, spec: s, parent: parent, path: s.Name}
	if parent != nil {
		n.path = parent.path + "/" + s.Name
	}
	n.mu.state = StateStopped
	n.mu.since = time.Now().UnixNano()
	if s.Kind != KindService {
		n.mu.sub = new(subtree)
	}
	if s.Kind == KindElection {
		n.stepDown = new(stepDown)
	}
	for _, c := range s.Children {
		n.children = append(n.children, r.build(c, n))
	}
	return n
}

func (n *node) setState(state string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.setStateLocked(state)
}

func (n *node) setStateLocked(state string) {
	if n.mu.state != state {
		n.mu.state, n.mu.since = state, time.Now().UnixNano()
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
		err := n.runChildren(ctx, scopeOf(ctx), nil)
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
