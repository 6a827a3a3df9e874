package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/leasehold/leasehold/clock"
)

// sutureSpec makes suture the engine that runs children, while leasehold
// owns restarts (see child.Serve) and stopping (see Group.teardown): suture's
// supervisor-wide failure backoff is disabled, and its stop timeout only
// matters for children an overrun policy chose to abandon.
func (r *Runtime) sutureSpec() suture.Spec {
	return suture.Spec{
		EventHook: func(e suture.Event) {
			r.log.Debug("suture", "event", e.String())
		},
		FailureThreshold: math.MaxFloat64,
		Timeout:          10 * time.Millisecond,
	}
}

type groupKey struct{}

// Group is the set of children of one node during one term: it applies the
// node's strategy, intensity and order. Services reach their own group with
// GroupOf to add and remove siblings at run time (the scheduler's runner
// adds one unit per assigned run). Dynamic children live until they are
// removed or the term ends; they stop with the declared children, and the
// lease's deadline covers them the same way.
type Group struct {
	n         *node
	sup       *suture.Supervisor
	ctx       context.Context // values for the children; never cancelled itself
	live      context.Context // ends when the group stops: no child starts after
	escalate  context.CancelCauseFunc
	scope     scope
	strategy  Strategy
	intensity Intensity

	// Lock order: Group.mu before node.mu; child.mu before node.mu;
	// Group.mu and child.mu are never held together; outbox.mu is a leaf.
	// No runtime lock is held while user code (Serve, OnEvent, the log
	// handler, the overrun policy) runs: events and logs are only queued.
	mu struct {
		sync.Mutex
		stopping bool
		// kids holds every child that may still be running, declared then
		// dynamic, in order; a removed child leaves it only once its Serve
		// has returned, so teardown and the deadline always see it.
		kids     []*child
		dynamic  map[string]*dynamicChild
		restarts []clock.Time // within the intensity period
		changed  chan struct{}
		// suture-style backoff: decayed failure count, and the pause.
		failures    float64
		lastFailure clock.Time
		pausedUntil clock.Time
	}
}

type dynamicChild struct {
	c         *child
	token     suture.ServiceToken
	forgotten sync.Once // dropped from the group once removed and returned
}

// GroupOf returns the group the service whose context ctx is belongs to,
// or nil outside a tree.
func GroupOf(ctx context.Context) *Group {
	g, _ := ctx.Value(groupKey{}).(*Group)
	return g
}

// Path is the path of the node whose children the group holds.
func (g *Group) Path() string { return g.n.path }

// runChildren runs n's children under a new group until ctx ends or the
// group escalates, then tears them down. sc is what the children inherit
// from the enclosing leases. onStop, if set, is called with the cause as
// soon as the group stops, before any child does. It returns an error
// wrapping ErrEscalated when the group gave up.
func (n *node) runChildren(ctx context.Context, sc scope, onStop func(error)) error {
	runCtx, escalate := context.WithCancelCause(ctx)
	defer escalate(nil)
	g := &Group{
		n: n, sup: suture.New(n.path, n.rt.sutureSpec()), live: runCtx, escalate: escalate, scope: sc,
		strategy: n.spec.Strategy, intensity: n.spec.Intensity.withDefaults(),
	}
	if g.strategy == "" {
		g.strategy = OneForOne
	}
	g.ctx = context.WithValue(withScope(ctx, sc), groupKey{}, g)
	g.mu.dynamic = make(map[string]*dynamicChild)
	g.mu.changed = make(chan struct{})
	for _, cn := range n.children {
		c := newChild(cn, g)
		g.mu.kids = append(g.mu.kids, c)
	}
	n.mu.Lock()
	n.mu.group = g
	n.mu.Unlock()
	for _, c := range g.mu.kids {
		g.sup.Add(c)
	}
	supCtx, supCancel := context.WithCancel(context.WithoutCancel(ctx))
	supDone := g.sup.ServeBackground(supCtx)

	select {
	case <-runCtx.Done():
	case err := <-supDone:
		// suture gave up on the tree (a child asked to terminate it).
		supDone = nil
		escalate(fmt.Errorf("%w: %s: %v", ErrEscalated, n.path, err))
	}
	cause := context.Cause(runCtx)
	if onStop != nil {
		onStop(cause)
	}
	g.teardown(cause)
	supCancel()
	if supDone != nil {
		<-supDone
	}
	n.mu.Lock()
	n.mu.dynamic = nil
	n.mu.Unlock()
	if errors.Is(cause, ErrEscalated) {
		return cause
	}
	return nil
}

// teardown stops every child and waits for each to return. Ordered groups
// stop one child at a time in reverse order; others stop subtrees together,
// then services together. A child still running past its Shutdown triggers
// the overrun policy; the enclosing leases' deadlines are enforced apart
// from teardown, by each lease node's watchdog (see node.watch).
func (g *Group) teardown(cause error) {
	g.mu.Lock()
	g.mu.stopping = true
	kids := slices.Clone(g.mu.kids)
	g.mu.Unlock()
	if g.n.spec.Ordered {
		for i := len(kids) - 1; i >= 0; i-- {
			g.await(kids[i:i+1], func(c *child) <-chan struct{} { return c.halt(cause) })
		}
		return
	}
	var subtrees, services []*child
	for _, c := range kids {
		if c.n.spec.Kind == KindService {
			services = append(services, c)
		} else {
			subtrees = append(subtrees, c)
		}
	}
	g.await(subtrees, func(c *child) <-chan struct{} { return c.halt(cause) })
	g.await(services, func(c *child) <-chan struct{} { return c.halt(cause) })
}

// await stops children together with stop and waits until each has
// returned, applying the overrun policy to any that outlives its own
// Shutdown. It stops waiting once an enclosing lease's watchdog has applied
// the overrun policy (which, if it returns, lets teardown go on as if the
// stuck services had stopped; they stay tracked).
func (g *Group) await(children []*child, stop func(*child) <-chan struct{}) {
	if len(children) == 0 {
		return
	}
	clk := g.n.rt.opts.Clock
	asked := clk.Now()
	idle := make([]<-chan struct{}, len(children))
	for i, c := range children {
		idle[i] = stop(c)
	}
	for i, c := range children {
		var own <-chan struct{}
		if d := c.n.spec.Shutdown; d > 0 {
			t := clk.NewTimer(asked.Add(d))
			own = t.C()
			defer t.Stop()
		}
		select {
		case <-idle[i]:
		case <-own:
			if stuck := c.n.stuck(); len(stuck) > 0 {
				g.n.rt.overrun(Overrun{Path: c.n.path, Shutdown: c.n.spec.Shutdown, Stuck: stuck}, overrunLogWait)
			}
		case <-g.scope.overdue.Done():
			return
		}
	}
}

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

// mayStart reports whether a child may start a run now: the group is live,
// every enclosing term goes on (an election's leadership may end while its
// lease lives), and every enclosing lease is held and short of its FenceAt.
// It returns the instant it checked, which the start is recorded at.
func (g *Group) mayStart() (clock.Time, bool) {
	now := g.n.rt.opts.Clock.Now()
	if g.live.Err() != nil {
		return now, false
	}
	for _, term := range g.scope.terms {
		if term.Err() != nil {
			return now, false
		}
	}
	for _, l := range g.scope.leases {
		if l.Err() != nil || !now.Before(l.FenceAt()) {
			return now, false
		}
	}
	return now, true
}

// sleep waits d on the runtime's clock for c, or until c or the whole group
// is stopped.
func (g *Group) sleep(c *child, d time.Duration) {
	if d > 0 {
		g.n.rt.sleep(d, c.stoppedC(), g.live.Done())
	}
}

// notify wakes children waiting for their turn to start (only an Ordered
// group's children ever wait).
func (g *Group) notify() {
	if !g.n.spec.Ordered {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.mu.changed)
	g.mu.changed = make(chan struct{})
}

// awaitTurn blocks an Ordered group's child until every child before it is
// ready or ended for good. It reports false when the child is stopped first.
func (g *Group) awaitTurn(c *child) bool {
	if !g.n.spec.Ordered {
		return !c.isStopped()
	}
	for {
		g.mu.Lock()
		changed := g.mu.changed
		at := slices.Index(g.mu.kids, c)
		if at < 0 {
			// Removed (and forgotten) before its turn came.
			g.mu.Unlock()
			return false
		}
		before := slices.Clone(g.mu.kids[:at])
		g.mu.Unlock()
		clear := true
		for _, b := range before {
			if !b.settled() {
				clear = false
				break
			}
		}
		if clear {
			return !c.isStopped()
		}
		select {
		case <-changed:
		case <-c.stoppedC():
			return false
		}
	}
}

// failed applies the intensity and the strategy after c failed (or
// returned) on its own and is about to restart. It reports false when the
// group escalated instead.
func (g *Group) failed(c *child, err error) bool {
	now := g.n.rt.opts.Clock.Now()
	g.mu.Lock()
	if g.mu.stopping {
		g.mu.Unlock()
		return false
	}
	g.mu.restarts = append(slices.DeleteFunc(g.mu.restarts, func(t clock.Time) bool {
		return now.Sub(t) > g.intensity.Period
	}), now)
	if sb := g.n.spec.Suture; sb != nil {
		// suture's rule: decay, count, and past the threshold pause the
		// whole group instead of escalating.
		if g.mu.lastFailure != 0 {
			g.mu.failures *= math.Pow(0.5, now.Sub(g.mu.lastFailure).Seconds()/sb.Decay.Seconds())
		}
		g.mu.failures++
		g.mu.lastFailure = now
		if g.mu.failures > sb.Threshold {
			g.mu.failures, g.mu.pausedUntil = 0, now.Add(sb.Backoff)
			defer g.n.rt.log.Warn("too many failures; pausing restarts", "node", g.n.path, "for", sb.Backoff)
			defer g.n.rt.emit(Event{Kind: EventPaused, Path: g.n.path, Node: g.n.spec.Kind})
		}
	} else if max := g.intensity.MaxRestarts; max >= 0 && len(g.mu.restarts) > max {
		g.mu.Unlock()
		reason := fmt.Errorf("%w: %s: %d restarts within %s, the last of %s: %v",
			ErrEscalated, g.n.path, len(g.mu.restarts), g.intensity.Period, c.n.path, err)
		g.n.rt.emit(Event{Kind: EventEscalated, Path: g.n.path, Node: g.n.spec.Kind, Err: reason})
		g.n.rt.log.Error("too many restarts; giving up", "node", g.n.path, "err", reason)
		g.escalate(reason)
		return false
	}
	at := slices.Index(g.mu.kids, c)
	if at < 0 {
		g.mu.Unlock()
		return false // removed meanwhile: nothing to restart
	}
	var affected []*child
	switch g.strategy {
	case OneForAll:
		affected = slices.Concat(g.mu.kids[:at], g.mu.kids[at+1:])
	case RestForOne:
		affected = slices.Clone(g.mu.kids[at+1:])
	}
	g.mu.Unlock()
	if len(affected) == 0 {
		return true
	}
	// Stop the affected siblings as a teardown would, then let them start
	// again (in order, for an Ordered group).
	if g.n.spec.Ordered {
		for i := len(affected) - 1; i >= 0; i-- {
			g.await(affected[i:i+1], (*child).interrupt)
		}
	} else {
		g.await(affected, (*child).interrupt)
	}
	return true
}

// pause waits out a suture-style backoff pause of the group, or until the
// child or the group is stopped.
func (g *Group) pause(c *child) {
	g.mu.Lock()
	until := g.mu.pausedUntil
	g.mu.Unlock()
	g.sleep(c, until.Sub(g.n.rt.opts.Clock.Now()))
}

// intensityUsed is the number of restarts within the current period.
func (g *Group) intensityUsed() int {
	now := g.n.rt.opts.Clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, t := range g.mu.restarts {
		if now.Sub(t) <= g.intensity.Period {
			n++
		}
	}
	return n
}
