package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/otp"
)

// Config is what a group is made of, besides its host and members.
type Config struct {
	// Name is the owning node's path, for suture and logs.
	Name string
	// Rules are the group's strategy, intensity and order. Zero fields
	// take otp's defaults (one_for_one, DefaultIntensity), as suture's
	// zero Spec fields do.
	Rules *otp.GroupRules
	// Clock paces backoffs and Shutdown timers and dates intensity.
	Clock clock.Clock
	// Log receives suture's own events, at debug level.
	Log *slog.Logger
	// Values carries what every child's context holds; the engine never
	// cancels it (a child's runs are stopped through their own contexts).
	Values context.Context
}

// Children are the children of one node during one term: the group applies
// the node's strategy, intensity and order to them, and stops them in the
// tree's order, tracking every run until it has returned. Members may be
// added and removed while it runs; they live until removed or the term ends.
type Children struct {
	cfg       Config
	host      Host
	intensity otp.Intensity
	sup       *suture.Supervisor
	// base carries the values every run's context has. It cannot be
	// cancelled: halt cancels the current run directly, so a run's context
	// registers with no parent.
	base     context.Context
	live     context.Context // ends when the group stops: no child starts after
	escalate context.CancelCauseFunc

	// Lock order: Children.mu and child.mu are never held together; hooks
	// are called under child.mu only. No lock of the engine is held while
	// user code runs.
	mu struct {
		sync.Mutex
		stopping bool
		// kids holds every child that may still be running, declared then
		// added, in order; a removed child leaves it only once its run has
		// returned, so teardown and the deadline always see it.
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
	forgotten sync.Once // dropped from the group once removed and returned
}

// NewChildren prepares a group of members, in declaration order. Nothing starts
// until Run.
func NewChildren(cfg Config, host Host, members []Member) *Children {
	g := &Children{cfg: cfg, host: host, intensity: cfg.Rules.Intensity.OrDefault(), base: context.WithoutCancel(cfg.Values)}
	g.mu.dynamic = make(map[string]*dynamicChild)
	g.mu.changed = make(chan struct{})
	g.mu.kids = make([]*child, 0, len(members))
	for _, m := range members {
		g.mu.kids = append(g.mu.kids, newChild(m, g))
	}
	return g
}

// suture runs the children, while the group owns restarts (see child.Serve)
// and stopping (see teardown): suture's supervisor-wide failure backoff is
// disabled, and its stop, which comes first, waits only briefly for members
// that the group then stops in its own order.
func (g *Children) sutureSpec() suture.Spec {
	return suture.Spec{
		EventHook: func(e suture.Event) {
			if g.cfg.Log.Enabled(context.Background(), slog.LevelDebug) {
				g.cfg.Log.Debug("suture", "event", e.String())
			}
		},
		FailureThreshold: math.MaxFloat64,
		Timeout:          10 * time.Millisecond,
	}
}

// Run runs the children until ctx ends or the group escalates, then tears
// them down and returns once every one has returned (or an enclosing
// deadline was enforced on the stuck ones). onStop, if set, is called with
// the cause as soon as the group stops, before any child does. It returns
// an error wrapping otp.ErrEscalated when the group gave up.
func (g *Children) Run(ctx context.Context, onStop func(error)) error {
	runCtx, escalate := context.WithCancelCause(ctx)
	defer escalate(nil)
	g.live, g.escalate = runCtx, escalate
	g.sup = suture.New(g.cfg.Name, g.sutureSpec())
	g.mu.Lock()
	kids := slices.Clone(g.mu.kids)
	g.mu.Unlock()
	for _, c := range kids {
		g.sup.Add(c)
	}
	supCtx, supCancel := context.WithCancel(context.WithoutCancel(ctx))
	supDone := g.sup.ServeBackground(supCtx)

	select {
	case <-runCtx.Done():
	case err := <-supDone:
		// suture gave up on the tree (a child asked to terminate it).
		supDone = nil
		escalate(fmt.Errorf("%w: %s: %v", otp.ErrEscalated, g.cfg.Name, err))
	}
	cause := context.Cause(runCtx)
	if onStop != nil {
		onStop(cause)
	}
	// suture stops first: the group's teardown alone decides when each
	// member stops (members ignore suture's context), and a member that
	// returns to a stopped suture does not wait for its loop, which
	// otherwise handles every ending member one at a time.
	supCancel()
	g.teardown(cause)
	if supDone != nil {
		<-supDone
	}
	if errors.Is(cause, otp.ErrEscalated) {
		return cause
	}
	return nil
}

// teardown stops every child and waits for each to return. Ordered groups
// stop one child at a time in reverse order; others stop subtrees together,
// then services together. A child still running past its Shutdown is
// reported to the host; the enclosing leases' deadlines are enforced apart
// from teardown, by the host (see Host.Overdue).
func (g *Children) teardown(cause error) {
	g.mu.Lock()
	g.mu.stopping = true
	kids := slices.Clone(g.mu.kids)
	g.mu.Unlock()
	halt := func(c *child) <-chan struct{} { return c.halt(cause) }
	if g.cfg.Rules.Ordered {
		for i := len(kids) - 1; i >= 0; i-- {
			g.await(kids[i:i+1], halt)
		}
		return
	}
	var subtrees, services []*child
	for _, c := range kids {
		if c.m.Subtree() {
			subtrees = append(subtrees, c)
		} else {
			services = append(services, c)
		}
	}
	g.await(subtrees, halt)
	g.await(services, halt)
}

// await stops children together with stop and waits until each has
// returned, reporting any that outlives its own Shutdown. It stops waiting
// once the host's deadline enforcement has run (which, if the process
// lives on, lets teardown go on as if the stuck services had stopped; they
// stay tracked).
func (g *Children) await(children []*child, stop func(*child) <-chan struct{}) {
	if len(children) == 0 {
		return
	}
	clk := g.cfg.Clock
	asked := clk.Now()
	idle := make([]<-chan struct{}, len(children))
	for i, c := range children {
		idle[i] = stop(c)
	}
	for i, c := range children {
		select {
		case <-idle[i]:
			continue // returned already: no timer, no select over three cases
		default:
		}
		var own <-chan struct{}
		if d := c.m.Rules().Shutdown; d > 0 {
			t := clk.NewTimer(asked.Add(d))
			own = t.C()
			defer t.Stop()
		}
		select {
		case <-idle[i]:
		case <-own:
			// Its Shutdown may have passed while await waited for an
			// earlier child: one that has returned is not overrunning.
			select {
			case <-idle[i]:
			default:
				g.host.ShutdownOverrun(c.m)
			}
		case <-g.host.Overdue():
			return
		}
	}
}

// mayStart reports whether a child may start a run now: the group is live
// and the host allows it. It returns the instant it checked, which the
// start is recorded at.
func (g *Children) mayStart() (clock.Time, bool) {
	now := g.cfg.Clock.Now()
	if g.live.Err() != nil {
		return now, false
	}
	return now, g.host.MayStart(now)
}

// sleep waits d on the group's clock for c, or until c or the whole group
// is stopped.
func (g *Children) sleep(c *child, d time.Duration) {
	clock.Sleep(g.cfg.Clock, d, c.stoppedC(), g.live.Done())
}

// notify wakes children waiting for their turn to start (only an Ordered
// group's children ever wait).
func (g *Children) notify() {
	if !g.cfg.Rules.Ordered {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.mu.changed)
	g.mu.changed = make(chan struct{})
}

// awaitTurn blocks an Ordered group's child until every child before it is
// ready or ended for good. It reports false when the child is stopped first.
func (g *Children) awaitTurn(c *child) bool {
	if !g.cfg.Rules.Ordered {
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
func (g *Children) failed(c *child, err error) bool {
	now := g.cfg.Clock.Now()
	g.mu.Lock()
	if g.mu.stopping {
		g.mu.Unlock()
		return false
	}
	g.mu.restarts = append(slices.DeleteFunc(g.mu.restarts, func(t clock.Time) bool {
		return now.Sub(t) > g.intensity.Period
	}), now)
	if sb := g.cfg.Rules.Suture; sb != nil {
		// suture's rule: decay, count, and past the threshold pause the
		// whole group instead of escalating.
		if g.mu.lastFailure != 0 {
			g.mu.failures *= math.Pow(0.5, now.Sub(g.mu.lastFailure).Seconds()/sb.Decay.Seconds())
		}
		g.mu.failures++
		g.mu.lastFailure = now
		if g.mu.failures > sb.Threshold {
			g.mu.failures, g.mu.pausedUntil = 0, now.Add(sb.Backoff)
			defer g.host.Paused(sb.Backoff) // after the unlock
		}
	} else if max := g.intensity.MaxRestarts; max >= 0 && len(g.mu.restarts) > max {
		g.mu.Unlock()
		reason := fmt.Errorf("%w: %s: %d restarts within %s, the last of %s: %v",
			otp.ErrEscalated, g.cfg.Name, len(g.mu.restarts), g.intensity.Period, c.m, err)
		g.host.Escalated(reason)
		g.escalate(reason)
		return false
	}
	at := slices.Index(g.mu.kids, c)
	if at < 0 {
		g.mu.Unlock()
		return false // removed meanwhile: nothing to restart
	}
	var affected []*child
	switch g.cfg.Rules.Strategy {
	case otp.OneForAll:
		affected = slices.Concat(g.mu.kids[:at], g.mu.kids[at+1:])
	case otp.RestForOne:
		affected = slices.Clone(g.mu.kids[at+1:])
	}
	g.mu.Unlock()
	if len(affected) == 0 {
		return true
	}
	// Stop the affected siblings as a teardown would, then let them start
	// again together (in order, for an Ordered group).
	hold := make(chan struct{})
	defer close(hold)
	for _, s := range affected {
		s.holdFor(hold)
	}
	if g.cfg.Rules.Ordered {
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
func (g *Children) pause(c *child) {
	g.mu.Lock()
	until := g.mu.pausedUntil
	g.mu.Unlock()
	g.sleep(c, until.Sub(g.cfg.Clock.Now()))
}

// IntensityUsed is the number of restarts within the current period.
func (g *Children) IntensityUsed() int {
	now := g.cfg.Clock.Now()
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

// find is the child of m, or nil.
func (g *Children) find(m Member) *child {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.mu.kids {
		if c.m == m {
			return c
		}
	}
	return nil
}

// Ready marks m's current run as ready, letting an Ordered group start the
// next sibling. It does nothing for a member that is not running here.
func (g *Children) Ready(m Member) {
	if c := g.find(m); c != nil && c.markReady() {
		g.notify()
	}
}
