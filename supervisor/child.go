package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/thejerf/suture/v4"
)

// errStopped is the cause given to children stopped by their parent's teardown.
var errStopped = errors.New("leasehold: stopped by its parent")

// errReturned marks a service whose Serve returned nil without being asked
// to stop.
var errReturned = errors.New("leasehold: Serve returned without being stopped")

type childKey struct{}

// child is one node as a suture.Service within one term of its parent's
// group. suture runs it (one goroutine, one Serve call); the child itself
// loops over the node's runs, so that restarts follow the group's strategy,
// the child's restart type and the group's intensity, and it tracks every
// run until it has returned, which suture does not.
type child struct {
	n *node
	g *Group
	// base carries the values every run's context has (the child itself,
	// and through the group the lease, term and scope). It cannot be
	// cancelled: halt cancels the current run directly, so a run's context
	// registers with no parent.
	base context.Context

	// failures counts consecutive failures for the restart backoff; only
	// the Serve loop touches it.
	failures int

	// mu is taken before node.mu, never together with Group.mu (see Group).
	mu struct {
		sync.Mutex
		running   bool
		idle      chan struct{}           // made by idleAfter, closed when the current run returns
		runCancel context.CancelCauseFunc // stops the current run only
		ready     bool                    // running and, if AwaitReady, has called Ready
		done      bool                    // ended for good (temporary, transient success, ErrDoNotRestart)
		// stopped is set by halt (the group's teardown or a removal, never
		// anything else: the parent decides the stop order); stoppedCh, made
		// only for a child that waits (backoff, its turn), closes with it.
		stopped   bool
		stoppedCh chan struct{}
	}
}

func newChild(n *node, g *Group) *child {
	c := &child{n: n, g: g}
	c.base = context.WithValue(context.WithoutCancel(g.ctx), childKey{}, c)
	return c
}

// isStopped reports whether halt was called.
func (c *child) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.stopped
}

// stoppedC returns a channel closed once halt is called.
func (c *child) stoppedC() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.stopped {
		return closed
	}
	if c.mu.stoppedCh == nil {
		c.mu.stoppedCh = make(chan struct{})
	}
	return c.mu.stoppedCh
}

func (c *child) String() string { return c.n.path }

// Ready marks the service whose context ctx is as ready, letting an Ordered
// group start its next sibling. It does nothing outside a tree.
func Ready(ctx context.Context) {
	if c, ok := ctx.Value(childKey{}).(*child); ok {
		c.mu.Lock()
		ready := c.mu.running && !c.mu.ready
		c.mu.ready = c.mu.ready || c.mu.running
		c.mu.Unlock()
		if ready {
			c.g.notify()
		}
	}
}

// Serve implements suture.Service: it runs the node until the group stops
// it, restarting it as the group's rules say.
func (c *child) Serve(context.Context) error {
	// suture's context is not used: suture cancels it only after the
	// group's teardown or Remove has stopped the child; the group alone
	// decides when a child stops.
	for {
		if c.failures > 0 {
			c.n.setState(StateBackoff)
			c.n.rt.emit(Event{Kind: EventServiceBackoff, Path: c.n.path, Node: c.n.spec.Kind})
			// A child waking from its backoff during teardown must not
			// start again: both waits end when the group stops, and begin
			// checks again.
			c.g.sleep(c, c.n.spec.Backoff.withDefaults().delay(c.failures))
			c.g.pause(c)
		}
		if !c.g.awaitTurn(c) {
			break
		}
		runCtx, ok := c.begin()
		if !ok {
			break
		}
		started := c.n.rt.opts.Clock.Now()
		err := c.invoke(runCtx)
		regroup := c.end(runCtx, err)
		if c.isStopped() {
			break
		}
		if regroup {
			continue // restarted with a failed sibling: no backoff, no count
		}
		if !c.restarts(err) {
			c.finish(err)
			break
		}
		if c.n.rt.opts.Clock.Now().Sub(started) > c.n.spec.Backoff.withDefaults().Max {
			c.failures = 0
		}
		c.failures++
		c.n.mu.Lock()
		c.n.mu.restarts++
		c.n.mu.Unlock()
		if !c.g.failed(c, err) {
			break // the group escalated and is stopping
		}
	}
	// Done for this term, whatever ended it: suture forgets the child at
	// once, instead of holding its goroutine until the whole group stops.
	return suture.ErrDoNotRestart
}

// restarts applies the restart type to a run that ended on its own.
func (c *child) restarts(err error) bool {
	if errors.Is(err, suture.ErrDoNotRestart) || errors.Is(err, suture.ErrTerminateSupervisorTree) {
		return false
	}
	switch c.n.spec.Restart {
	case Temporary:
		return false
	case Transient:
		return err != nil && !errors.Is(err, errReturned)
	}
	return true
}

// finish records a child that ended for good.
func (c *child) finish(err error) {
	c.mu.Lock()
	c.mu.done = true
	c.mu.Unlock()
	c.g.notify()
	failed := err != nil && err != suture.ErrDoNotRestart && !errors.Is(err, errReturned)
	if c.n.spec.Kind == KindService {
		if failed {
			c.n.setState(StateFailed)
		} else {
			c.n.setState(StateStopped)
		}
	}
	if failed {
		c.n.rt.log.Warn("child failed; not restarting", "child", c.n.path, "err", err)
	}
}

// begin starts a run, unless the child is stopped, its group is stopping or
// an enclosing lease is lost or past its FenceAt. Checking under the lock
// means that once stop is called and the child is idle, no new run can
// start.
func (c *child) begin() (context.Context, bool) {
	runCtx, ready, ok := c.beginLocked()
	if ready {
		c.g.notify()
	}
	return runCtx, ok
}

func (c *child) beginLocked() (context.Context, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.stopped {
		return nil, false, false
	}
	at, ok := c.g.mayStart()
	if !ok {
		return nil, false, false
	}
	runCtx, cancel := context.WithCancelCause(c.base)
	c.mu.running, c.mu.runCancel = true, cancel
	c.mu.ready = !c.n.spec.AwaitReady
	c.n.rt.inflight.Add(1)
	c.n.mu.Lock()
	c.n.mu.running++
	c.n.mu.Unlock()
	if c.n.spec.Kind == KindService {
		c.n.setState(StateRunning)
		c.n.rt.emit(Event{At: at, Kind: EventServiceStarted, Path: c.n.path, Node: KindService})
	}
	return runCtx, c.mu.ready, true
}

// end records the end of a run and reports whether it was stopped for a
// group restart.
func (c *child) end(runCtx context.Context, err error) bool {
	// The child's lock orders this against halt, so the node's state ends at
	// stopped, never at a late "stopping".
	defer c.g.notify() // after the unlock: child.mu and Group.mu are never held together
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.runCancel(nil)
	stopped := c.mu.stopped
	regroup := !stopped && errors.Is(context.Cause(runCtx), errGroupRestart)
	if err == nil && !stopped && !regroup {
		err = errReturned
	}
	c.n.mu.Lock()
	c.n.mu.running--
	if err != nil && !stopped && !regroup && err != suture.ErrDoNotRestart {
		c.n.mu.lastErr = err.Error()
	}
	c.n.mu.Unlock()
	if c.n.spec.Kind == KindService {
		switch {
		case stopped || regroup:
			c.n.setState(StateStopped)
			c.n.rt.emit(Event{Kind: EventServiceStopped, Path: c.n.path, Node: KindService, Err: context.Cause(runCtx)})
		case err == suture.ErrDoNotRestart:
			// Done for good, by its own choice (a finished unit of work).
			c.n.setState(StateStopped)
			c.n.rt.emit(Event{Kind: EventServiceStopped, Path: c.n.path, Node: KindService})
		default:
			c.n.setState(StateFailed)
			c.n.rt.emit(Event{Kind: EventServiceFailed, Path: c.n.path, Node: KindService, Err: err})
			if c.restarts(err) {
				c.n.rt.log.Warn("service failed; restarting", "service", c.n.path, "err", err)
			}
		}
	}
	c.mu.running, c.mu.ready = false, false
	if c.mu.idle != nil {
		close(c.mu.idle)
		c.mu.idle = nil
	}
	c.n.rt.inflight.Done()
	return regroup
}

// invoke runs the node once, turning a panic into an error so that it is
// recorded and the child restarted like any failure.
func (c *child) invoke(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return c.n.serve(ctx)
}

// halt stops the child for good (teardown or removal) and returns a channel
// closed once it is idle.
func (c *child) halt(cause error) <-chan struct{} {
	c.mu.Lock()
	// begin, under c.mu, starts no run after this.
	if !c.mu.stopped {
		c.mu.stopped = true
		if c.mu.stoppedCh != nil {
			close(c.mu.stoppedCh)
		}
	}
	if c.mu.running {
		c.mu.runCancel(cause)
	}
	c.mu.Unlock()
	return c.idleAfter()
}

// interrupt stops the child's current run for a group restart and returns a
// channel closed once it is idle; the child then starts again.
func (c *child) interrupt() <-chan struct{} {
	c.mu.Lock()
	if c.mu.running {
		c.mu.runCancel(errGroupRestart)
	}
	c.mu.Unlock()
	return c.idleAfter()
}

func (c *child) idleAfter() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.running {
		return closed
	}
	if c.n.spec.Kind == KindService {
		c.n.setState(StateStopping)
	}
	if c.mu.idle == nil {
		// Made only when someone waits: a running child costs no channel.
		c.mu.idle = make(chan struct{})
	}
	return c.mu.idle
}

// closed is a closed channel: an idle child's.
var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// settled reports whether an Ordered group may start the children after
// this one: it is ready, or it has ended for good.
func (c *child) settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.ready || c.mu.done
}
