package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrGroupStopped is returned by Group.Add once the group's term is ending.
var ErrGroupStopped = errors.New("leasehold: the group is stopping")

// ErrNoChild is returned by Group.Remove for a name it does not hold.
var ErrNoChild = errors.New("leasehold: no such dynamic child")

var errRemoved = errors.New("leasehold: removed from its group")

// Add validates spec and starts it as the group's last child. Its name must
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
	if slices.ContainsFunc(g.mu.kids, func(c *child) bool { return c.n.spec.Name == spec.Name }) {
		return fmt.Errorf("%w: %s: a child named %q is already running: names must be unique", ErrInvalidTree, g.n.path, spec.Name)
	}
	cn := g.n.rt.build(spec, g.n)
	g.n.mu.Lock()
	g.n.mu.dynamic = append(g.n.mu.dynamic, cn)
	g.n.mu.Unlock()
	c := newChild(cn, g)
	g.mu.kids = append(g.mu.kids, c)
	g.mu.dynamic[spec.Name] = &dynamicChild{c: c, token: g.sup.Add(c)}
	return nil
}

// Remove stops the named dynamic child and returns once it has returned
// (its whole subtree, for a subtree), or when ctx ends first. Either way
// the child stays in the group, tracked by teardown and by the lease's
// deadline, until its Serve has returned: a Remove that gives up waiting
// never lets a running child out of sight.
func (g *Group) Remove(ctx context.Context, name string) error {
	g.mu.Lock()
	d, ok := g.mu.dynamic[name]
	g.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s/%s", ErrNoChild, g.n.path, name)
	}
	idle := d.c.halt(errRemoved)
	g.n.rt.background(func() {
		<-idle
		d.forgotten.Do(func() { g.forget(d) })
	})
	if err := waitIdle(ctx, idle); err != nil {
		return err
	}
	d.forgotten.Do(func() { g.forget(d) })
	return nil
}

// forget drops a removed child that has returned. During teardown the
// term's end does that, and suture is stopping anyway.
func (g *Group) forget(d *dynamicChild) {
	g.mu.Lock()
	stopping := g.mu.stopping
	if g.mu.dynamic[d.c.n.spec.Name] == d {
		delete(g.mu.dynamic, d.c.n.spec.Name)
	}
	g.mu.kids = slices.DeleteFunc(g.mu.kids, func(c *child) bool { return c == d.c })
	g.mu.Unlock()
	if !stopping {
		// The child has returned and waits for suture to let go of it (or
		// suture already has, for a child that ended for good).
		_ = g.sup.RemoveAndWait(d.token, time.Second)
	}
	g.n.mu.Lock()
	g.n.mu.dynamic = slices.DeleteFunc(g.n.mu.dynamic, func(c *node) bool { return c == d.c.n })
	g.n.mu.Unlock()
	g.notify()
}

// Names lists the group's dynamic children.
func (g *Group) Names() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make([]string, 0, len(g.mu.dynamic))
	for name := range g.mu.dynamic {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func waitIdle(ctx context.Context, idle <-chan struct{}) error {
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
