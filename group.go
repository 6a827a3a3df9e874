package leasehold

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/supervisor"
)

// ErrGroupStopped is returned by Group.Add once the group's term is ending.
var ErrGroupStopped = errors.New("leasehold: the group is stopping")

// ErrNoChild is returned by Group.Remove for a name it does not hold.
var ErrNoChild = errors.New("leasehold: no such dynamic child")

type groupKey struct{}
type readyKey struct{}

// Group is the set of children of one node during one term. A service
// reaches its own group with GroupOf to add and remove siblings at run time
// (the scheduler's runner adds one child per assigned run). Added children
// live until they are removed or the term ends; they stop with the declared
// children, and the lease's deadline covers them the same way.
type Group struct {
	n    *node
	kids *supervisor.Children
}

// GroupOf returns the group of the service whose context ctx is (its
// siblings), or nil outside a tree.
func GroupOf(ctx context.Context) *Group {
	g, _ := ctx.Value(groupKey{}).(*Group)
	return g
}

// Path is the path of the node whose children the group holds.
func (g *Group) Path() string { return g.n.path }

// Add validates child and starts it as the group's last child, until Remove
// or the end of the term. Its name must be unique in the group.
func (g *Group) Add(child *Node) error {
	spec, err := child.built()
	if err != nil {
		return err
	}
	if err := validate(spec, g.n.path, true); err != nil {
		return err
	}
	// Listed before it can start, so that the deadline's watchdog and
	// snapshots see it from its first run.
	cn := g.n.rt.build(resolved(spec, g.n.rt.opts.Clock), g.n)
	g.n.listDynamic(cn)
	err = g.kids.Add(cn)
	if err == nil {
		return nil
	}
	g.n.unlistDynamic(cn)
	if errors.Is(err, supervisor.ErrStopping) {
		return fmt.Errorf("%w: cannot add %s", ErrGroupStopped, cn.path)
	}
	return fmt.Errorf("%w: %s: a child named %q is already running: names must be unique", ErrInvalidTree, g.n.path, spec.Name)
}

// Remove stops the named child added by Add and returns once it has
// returned (its whole subtree, for a subtree), or when ctx ends first.
// Either way the child stays in the group, tracked by teardown and by the
// lease's deadline, until it has returned.
func (g *Group) Remove(ctx context.Context, name string) error {
	err := g.kids.Remove(ctx, name)
	if errors.Is(err, supervisor.ErrUnknown) {
		return fmt.Errorf("%w: %s/%s", ErrNoChild, g.n.path, name)
	}
	return err
}

// Names lists the children added by Add that are still in the group.
func (g *Group) Names() []string { return g.kids.Names() }

// Ready tells an Ordered parent that the service whose context ctx is has
// finished starting, so its next sibling may start (see AwaitReady). It
// does nothing outside a tree or for a service without AwaitReady.
func Ready(ctx context.Context) {
	n, _ := ctx.Value(readyKey{}).(*node)
	g := GroupOf(ctx)
	if n == nil || g == nil {
		return
	}
	n.mu.Lock()
	n.mu.ready = n.mu.running > 0
	n.mu.Unlock()
	g.kids.Ready(n)
}

// runChildren runs n's children under a new group until ctx ends or the
// group escalates, then tears them down. sc is what the children inherit
// from the enclosing leases; onStop, if set, hears the cause as soon as the
// group stops. It returns an error wrapping ErrEscalated when the group
// gave up.
func (n *node) runChildren(ctx context.Context, sc scope, onStop func(error)) error {
	g := &Group{n: n}
	members := make([]supervisor.Member, len(n.children))
	for i, c := range n.children {
		members[i] = c
	}
	g.kids = supervisor.NewChildren(supervisor.Config{
		Name:   n.path,
		Rules:  n.spec.GroupRules,
		Clock:  n.rt.opts.Clock,
		Log:    n.rt.log,
		Values: context.WithValue(withScope(ctx, sc), groupKey{}, g),
	}, &termHost{n: n, sc: sc}, members)
	n.mu.Lock()
	n.mu.sub.group = g
	n.mu.Unlock()
	err := g.kids.Run(ctx, onStop)
	n.mu.Lock()
	n.mu.sub.dynamic = nil
	n.mu.Unlock()
	return err
}

// termHost is a node during one term, as the host of its group.
type termHost struct {
	n  *node
	sc scope
}

// MayStart: every enclosing term goes on (an election's leadership may end
// while its lease lives), and every enclosing lease is held and short of
// its FenceAt.
func (h *termHost) MayStart(now clock.Time) bool {
	for _, term := range h.sc.terms {
		if term.Err() != nil {
			return false
		}
	}
	for _, l := range h.sc.leases {
		if l.Err() != nil || !now.Before(l.FenceAt()) {
			return false
		}
	}
	return true
}

func (h *termHost) Overdue() <-chan struct{} { return h.sc.overdue.Done() }

func (h *termHost) ShutdownOverrun(m supervisor.Member) {
	c := m.(*node)
	if stuck := c.stuck(); len(stuck) > 0 {
		h.n.rt.overrun(Overrun{Path: c.path, Shutdown: c.spec.Shutdown, Stuck: stuck}, overrunLogWait)
	}
}

func (h *termHost) Escalated(reason error) {
	n := h.n
	n.rt.emit(Event{Kind: EventEscalated, Path: n.path, Node: n.spec.Kind, Err: reason})
	n.rt.log.Error("too many restarts; giving up", "node", n.path, "err", reason)
}

func (h *termHost) Paused(d time.Duration) {
	n := h.n
	n.rt.emit(Event{Kind: EventPaused, Path: n.path, Node: n.spec.Kind})
	n.rt.log.Warn("too many failures; pausing restarts", "node", n.path, "for", d)
}

func (h *termHost) Removed(m supervisor.Member) { h.n.unlistDynamic(m.(*node)) }

func (h *termHost) Go(f func()) { h.n.rt.background(f) }

// overrunLogWait is how long a child's Shutdown overrun waits for its log
// line to be written before applying the policy (the default policy exits
// the process); a lease's overrun waits a quarter of its Guard, the margin
// left before etcd could expire the lease.
const overrunLogWait = 20 * time.Millisecond

func (r *Runtime) overrun(o Overrun, logWait time.Duration) {
	logOverrun(r.log, o)
	r.emit(Event{Kind: EventOverrun, Path: o.Path, LeaseID: o.LeaseID, HeldUntil: o.HeldUntil, Stuck: o.Stuck})
	r.out.flush(logWait)
	r.opts.Overrun(o)
}
