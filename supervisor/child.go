package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/thejerf/suture/v4"

	"github.com/leasehold/leasehold/internal/otp"
)

// errReturned marks a run that returned nil without being asked to stop.
var errReturned = errors.New("leasehold: Serve returned without being stopped")

// errGroupRestart is the cause given to siblings stopped for a one-for-all
// or rest-for-one restart; they start again at once.
var errGroupRestart = errors.New("leasehold: restarted with a failed sibling")

// child is one member as a suture.Service within one term of its group.
// suture runs it (one goroutine, one Serve call); the child itself loops
// over the member's runs, so that restarts follow the group's strategy, the
// member's restart type and the group's intensity, and it tracks every run
// until it has returned, which suture does not.
type child struct {
	m Member
	g *Children

	// failures counts consecutive failures for the restart backoff; only
	// the Serve loop touches it.
	failures int

	// mu is never held together with Children.mu.
	mu struct {
		sync.Mutex
		running   bool
		idle      chan struct{}           // made by idleAfter, closed when the current run returns
		runCancel context.CancelCauseFunc // stops the current run only
		ready     bool                    // running and, if AwaitReady, has said so
		done      bool                    // ended for good (temporary, transient success, ErrDoNotRestart)
		// stopped is set by halt (the group's teardown or a removal, never
		// anything else: the parent decides the stop order); stoppedCh, made
		// only for a child that waits (backoff, its turn), closes with it.
		stopped   bool
		stoppedCh chan struct{}
		// hold, set by a sibling's one-for-all or rest-for-one restart
		// before it stops this child, closes once every sibling it stops
		// has stopped.
		hold <-chan struct{}
	}
}

func newChild(m Member, g *Children) *child {
	return &child{m: m, g: g}
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

func (c *child) String() string { return c.m.String() }

// markReady marks the current run ready and reports whether that is news.
func (c *child) markReady() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	news := c.mu.running && !c.mu.ready
	c.mu.ready = c.mu.ready || c.mu.running
	return news
}

// Serve implements suture.Service: it runs the member until the group
// stops it, restarting it as the group's rules say.
func (c *child) Serve(context.Context) error {
	// suture's context is not used: suture cancels it only after the
	// group's teardown or Remove has stopped the child; the group alone
	// decides when a child stops.
	rules := c.m.Rules()
	backoff := rules.Backoff.WithDefaults()
	for {
		if c.failures > 0 {
			c.m.BackingOff()
			// A child waking from its backoff during teardown must not
			// start again: both waits end when the group stops, and begin
			// checks again.
			c.g.sleep(c, backoff.Delay(c.failures))
			c.g.pause(c)
		}
		if !c.g.awaitTurn(c) {
			break
		}
		runCtx, ok := c.begin()
		if !ok {
			break
		}
		started := c.g.cfg.Clock.Now()
		err := c.invoke(runCtx)
		regroup := c.end(runCtx, err)
		if c.isStopped() {
			break
		}
		if regroup {
			// Restarted with a failed sibling: no backoff, no count, but not
			// before every sibling the restart stops has stopped.
			c.awaitRegroup()
			continue
		}
		if !c.restarts(err) {
			c.finish(err)
			break
		}
		if c.g.cfg.Clock.Now().Sub(started) > backoff.Max {
			c.failures = 0
		}
		c.failures++
		if !c.g.failed(c, err) {
			break // the group escalated and is stopping
		}
	}
	// Done for this term, whatever ended it: suture forgets the child at
	// once, instead of holding its goroutine until the whole group stops.
	return suture.ErrDoNotRestart
}

// awaitRegroup waits, after a run was stopped for a group restart, until
// the restart has stopped every sibling it stops (or the child or the group
// is stopped): the group then starts them again together, and an Ordered
// group one at a time in order, as at its start. Without the wait a child
// would start again while an earlier sibling it awaits is still running
// (and ready) but about to be stopped.
func (c *child) awaitRegroup() {
	c.mu.Lock()
	hold := c.mu.hold
	c.mu.hold = nil
	c.mu.Unlock()
	if hold == nil {
		return
	}
	select {
	case <-hold:
	case <-c.stoppedC():
	case <-c.g.live.Done():
	}
}

// holdFor makes the child's next run that a group restart stops wait for
// hold before it starts again (see awaitRegroup).
func (c *child) holdFor(hold <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.hold = hold
}

// restarts applies the restart type to a run that ended on its own.
func (c *child) restarts(err error) bool {
	if errors.Is(err, suture.ErrDoNotRestart) || errors.Is(err, suture.ErrTerminateSupervisorTree) {
		return false
	}
	switch c.m.Rules().Restart {
	case otp.Temporary:
		return false
	case otp.Transient:
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
	if err == suture.ErrDoNotRestart || errors.Is(err, errReturned) {
		err = nil
	}
	c.m.Finished(err)
}

// begin starts a run, unless the child is stopped, its group is stopping or
// the host forbids it. Checking under the lock means that once halt is
// called and the child is idle, no new run can start.
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
	runCtx, cancel := context.WithCancelCause(c.g.base)
	c.mu.running, c.mu.runCancel = true, cancel
	c.mu.ready = !c.m.Rules().AwaitReady
	c.m.Started(at)
	return runCtx, c.mu.ready, true
}

// end records the end of a run and reports whether it was stopped for a
// group restart.
func (c *child) end(runCtx context.Context, err error) bool {
	// The child's lock orders this against halt, so the member hears
	// Stopping before Ended, never after.
	defer c.g.notify() // after the unlock: child.mu and Children.mu are never held together
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.runCancel(nil)
	stopped := c.mu.stopped
	regroup := !stopped && errors.Is(context.Cause(runCtx), errGroupRestart)
	e := End{Stopped: stopped || regroup}
	switch {
	case e.Stopped:
		e.Cause = context.Cause(runCtx)
	case err == nil:
		e.Err, e.Restart = errReturned, c.restarts(errReturned)
	case err != suture.ErrDoNotRestart:
		e.Err, e.Restart = err, c.restarts(err)
	}
	c.m.Ended(e)
	c.mu.running, c.mu.ready = false, false
	if c.mu.idle != nil {
		close(c.mu.idle)
		c.mu.idle = nil
	}
	return regroup
}

// invoke runs the member once, turning a panic into an error so that it is
// recorded and the child restarted like any failure.
func (c *child) invoke(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return c.m.Run(ctx)
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
	c.m.Stopping()
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
