package leasehold

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/leases"
	"github.com/leasehold/leasehold/supervisor"
)

type (
	// Runtime runs one tree; see supervisor.Runtime.
	Runtime = supervisor.Runtime
	// Options configure a Runtime; see supervisor.Options.
	Options = supervisor.Options
	// Event is something that happened in a running tree.
	Event = supervisor.Event
	// Snapshot is the live state of a tree.
	Snapshot = supervisor.Snapshot
	// Overrun describes services that outlived their lease's safe time.
	Overrun = supervisor.Overrun
)

// The restart strategies and types (see Strategy and Restart).
const (
	OneForOne  = supervisor.OneForOne
	OneForAll  = supervisor.OneForAll
	RestForOne = supervisor.RestForOne
	Permanent  = supervisor.Permanent
	Transient  = supervisor.Transient
	Temporary  = supervisor.Temporary
)

// Ready tells an Ordered parent that the service whose context ctx is has
// finished starting, so its next sibling may start (see AwaitReady).
func Ready(ctx context.Context) { supervisor.Ready(ctx) }

// ExitCodeOverrun is the exit status of the default overrun policy.
const ExitCodeOverrun = supervisor.ExitCodeOverrun

// New validates tree and prepares it to run on client. Nothing starts
// until Runtime.Run.
func New(client *clientv3.Client, tree *Node, opts Options) (*Runtime, error) {
	spec, err := tree.built()
	if err != nil {
		return nil, err
	}
	return supervisor.New(client, spec, opts) // validates the whole tree, once
}

// Run validates tree, runs it until ctx ends, and returns only after
// everything it started has returned: nil after a stop through ctx, or the
// error that ended the tree.
func Run(ctx context.Context, client *clientv3.Client, tree *Node) error {
	rt, err := New(client, tree, Options{})
	if err != nil {
		return err
	}
	return rt.Run(ctx)
}

// LeaseOf returns the lease of the nearest lease or election enclosing the
// service whose context ctx is, or nil.
func LeaseOf(ctx context.Context) *leases.Lease { return supervisor.LeaseOf(ctx) }

// TermOf returns the term of the nearest enclosing election, whose Token is
// the fencing token and whose Txn commits only during the term; or nil.
func TermOf(ctx context.Context) *leases.Term { return supervisor.TermOf(ctx) }

// Group is the set of children of one node during one term.
type Group struct{ g *supervisor.Group }

// GroupOf returns the group of the service whose context ctx is: its
// siblings, to which it can add children at run time; or nil.
func GroupOf(ctx context.Context) *Group {
	g := supervisor.GroupOf(ctx)
	if g == nil {
		return nil
	}
	return &Group{g: g}
}

// Add validates child and starts it in the group, until Remove or the end
// of the term. Its name must be unique in the group.
func (g *Group) Add(child *Node) error {
	spec, err := child.built()
	if err != nil {
		return err
	}
	return g.g.Add(spec)
}

// Remove stops the named child added by Add and returns once it has
// returned, or when ctx ends first.
func (g *Group) Remove(ctx context.Context, name string) error { return g.g.Remove(ctx, name) }

// Names lists the children added by Add that are still in the group.
func (g *Group) Names() []string { return g.g.Names() }
