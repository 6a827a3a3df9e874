package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/thejerf/suture/v4"
)

// ErrGroupStopped is returned by Group.Add once the group's term is ending.
var ErrGroupStopped = errors.New("leasehold: the group is stopping")

// ErrNoChild is returned by Group.Remove for a name it does not hold.
var ErrNoChild = errors.New("leasehold: no such dynamic child")

type groupKey struct{}

// Group is the set of children of one node during one term. Services reach
// their own group with GroupOf to add and remove siblings at run time (the
// scheduler's runner adds one unit per assigned run). Dynamic children live
// until they are removed or the term ends; they stop with the declared
// children, and the lease's deadline covers them the same way.
type Group struct {
	n   *node
	sup *suture.Supervisor
	ctx context.Context // values for the children; never cancelled itself

	mu struct {
		sync.Mutex
		stopping bool
		kids     map[string]*dynamicChild
	}
}

type dynamicChild struct {
	c     *child
	token suture.ServiceToken
}

// GroupOf returns the group the service whose context ctx is belongs to,
// or nil outside a tree.
func GroupOf(ctx context.Context) *Group {
	g, _ := ctx.Value(groupKey{}).(*Group)
	return g
}

// Path is the path of the node whose children the group holds.
func (g *Group) Path() string { return g.n.path }

// Add validates spec and starts it as a child of the group. Its name must
// be unique among the group's children.
func (g *Group) Add(spec *Spec) error {
	if spec == nil {
		return fmt.Errorf("%w: %s: the added child is nil", ErrInvalidTree, g.n.path)
	}
	if err := validate(spec, g.n.path, true); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.stopping {
		return fmt.Errorf("%w: cannot add %s/%s", ErrGroupStopped, g.n.path, spec.Name)
	}
	if _, dup := g.mu.kids[spec.Name]; dup || slices.ContainsFunc(g.n.children, func(c *node) bool { return c.spec.Name == spec.Name }) {
		return fmt.Errorf("%w: %s: a child named %q is already running: names must be unique", ErrInvalidTree, g.n.path, spec.Name)
	}
	cn := g.n.rt.build(spec, g.n)
	g.n.mu.Lock()
	g.n.mu.dynamic = append(g.n.mu.dynamic, cn)
	g.n.mu.Unlock()
	c := newChild(cn, g.ctx)
	g.mu.kids[spec.Name] = &dynamicChild{c: c, token: g.sup.Add(c)}
	return nil
}

// Remove stops the named dynamic child and returns once it has returned
// (its whole subtree, for a subtree), or when ctx ends first.
func (g *Group) Remove(ctx context.Context, name string) error {
	g.mu.Lock()
	d, ok := g.mu.kids[name]
	if ok && !g.mu.stopping {
		delete(g.mu.kids, name)
	}
	stopping := g.mu.stopping
	g.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s/%s", ErrNoChild, g.n.path, name)
	}
	if stopping {
		// The term's teardown owns it now; wait for that.
		return waitIdle(ctx, d.c.halt(errRemoved))
	}
	if err := waitIdle(ctx, d.c.halt(errRemoved)); err != nil {
		return err
	}
	// The child has returned and waits for suture to let go of it.
	_ = g.sup.RemoveAndWait(d.token, time.Second)
	g.n.mu.Lock()
	g.n.mu.dynamic = slices.DeleteFunc(g.n.mu.dynamic, func(c *node) bool { return c == d.c.n })
	g.n.mu.Unlock()
	return nil
}

// Names lists the group's dynamic children.
func (g *Group) Names() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make([]string, 0, len(g.mu.kids))
	for name := range g.mu.kids {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// close marks the group stopping and hands its dynamic children to the
// teardown.
func (g *Group) close() []*dynamicChild {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.stopping = true
	out := make([]*dynamicChild, 0, len(g.mu.kids))
	for _, d := range g.mu.kids {
		out = append(out, d)
	}
	return out
}

var errRemoved = errors.New("leasehold: removed from its group")

func waitIdle(ctx context.Context, idle <-chan struct{}) error {
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
