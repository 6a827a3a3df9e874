package supervisor

import (
	"context"
	"errors"
	"slices"
)

// Errors of Add and Remove; the front door wraps them in its own.
var (
	// ErrStopping: the group is stopping and takes no new member.
	ErrStopping = errors.New("the group is stopping")
	// ErrDuplicate: a member of that name is still in the group.
	ErrDuplicate = errors.New("a member of that name is still in the group")
	// ErrUnknown: no member of that name was added.
	ErrUnknown = errors.New("no member of that name was added")
)

var errRemoved = errors.New("leasehold: removed from its group")

// Add starts m as the group's last child, until Remove or the end of the
// term. Its name must be unique among the group's children.
func (g *Children) Add(m Member) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.stopping {
		return ErrStopping
	}
	if slices.ContainsFunc(g.mu.kids, func(c *child) bool { return c.m.Name() == m.Name() }) {
		return ErrDuplicate
	}
	c := newChild(m, g)
	g.mu.kids = append(g.mu.kids, c)
	g.mu.dynamic[m.Name()] = &dynamicChild{c: c}
	g.sup.Add(c)
	return nil
}

// Remove stops the named member added by Add and returns once it has
// returned (its whole subtree, for a subtree), or when ctx ends first.
// Either way the member stays in the group, tracked by teardown and by the
// host's deadline, until its run has returned: a Remove that gives up
// waiting never lets a running member out of sight.
func (g *Children) Remove(ctx context.Context, name string) error {
	g.mu.Lock()
	d, ok := g.mu.dynamic[name]
	g.mu.Unlock()
	if !ok {
		return ErrUnknown
	}
	idle := d.c.halt(errRemoved)
	g.host.Go(func() {
		<-idle
		d.forgotten.Do(func() { g.forget(d) })
	})
	select {
	case <-idle:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	d.forgotten.Do(func() { g.forget(d) })
	return nil
}

// forget drops a removed member that has returned. suture needs no word:
// the member's goroutine returns suture.ErrDoNotRestart, and suture lets go
// of it by itself. (Asking suture to remove it could block suture's loop
// for good: it notifies RemoveAndWait on an unbuffered channel, which no
// one reads once suture's own stop has made RemoveAndWait give up.)
func (g *Children) forget(d *dynamicChild) {
	name := d.c.m.Name()
	g.mu.Lock()
	if g.mu.dynamic[name] == d {
		delete(g.mu.dynamic, name)
	}
	g.mu.kids = slices.DeleteFunc(g.mu.kids, func(c *child) bool { return c == d.c })
	g.mu.Unlock()
	g.host.Removed(d.c.m)
	g.notify()
}

// Names lists the members added by Add that are still in the group.
func (g *Children) Names() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make([]string, 0, len(g.mu.dynamic))
	for name := range g.mu.dynamic {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
