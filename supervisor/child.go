package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/thejerf/suture/v4"
)

// errStopped is the cause given to children stopped by their parent's teardown.
var errStopped = errors.New("leasehold: stopped by its parent")

// errReturned marks a service whose Serve returned nil without being asked
// to stop; suture restarts it like a failure.
var errReturned = errors.New("leasehold: Serve returned without being stopped")

// child is one node as a suture.Service within one term of its parent. It
// runs the node under a context that only the parent's teardown cancels, so
// the parent decides the stop order, and it tracks every Serve call until it
// has returned, which suture does not.
type child struct {
	n    *node
	ctx  context.Context
	stop context.CancelCauseFunc

	// failures counts consecutive failures for the restart backoff; only
	// Serve touches it, and suture never runs two Serve calls of one service
	// at once.
	failures int

	mu struct {
		sync.Mutex
		running bool
		idle    chan struct{} // closed when the current Serve call returns
	}
}

// newChild prepares n to run with the values of parent but a cancellation of
// its own.
func newChild(n *node, parent context.Context) *child {
	c := &child{n: n}
	c.ctx, c.stop = context.WithCancelCause(context.WithoutCancel(parent))
	return c
}

func (c *child) String() string { return c.n.path }

// Serve implements suture.Service. Once the parent has stopped the child it
// only waits for suture to let go, so suture never restarts it.
func (c *child) Serve(supCtx context.Context) error {
	// suture cancels supCtx only after the parent's teardown, or when it
	// gives up on the tree; either way the child must stop too.
	unbind := context.AfterFunc(supCtx, func() { c.stop(errStopped) })
	defer unbind()

	if c.failures > 0 {
		wait := c.n.spec.Backoff.withDefaults().delay(c.failures)
		c.n.setState(StateBackoff)
		c.n.rt.emit(Event{Kind: EventServiceBackoff, Path: c.n.path, Node: c.n.spec.Kind})
		sleep(c.ctx, wait)
	}
	idle, ok := c.begin()
	if !ok {
		<-supCtx.Done()
		return nil
	}
	started := time.Now()
	err := c.invoke()
	c.end(idle, err)
	if c.ctx.Err() != nil {
		<-supCtx.Done()
		return nil
	}
	if err == nil {
		err = errReturned
	}
	if errors.Is(err, suture.ErrDoNotRestart) || errors.Is(err, suture.ErrTerminateSupervisorTree) {
		// end recorded the outcome; suture forgets the child.
		return err
	}
	if time.Since(started) > c.n.spec.Backoff.withDefaults().Max {
		c.failures = 0
	}
	c.failures++
	c.n.mu.Lock()
	c.n.mu.restarts++
	c.n.mu.Unlock()
	return err
}

// begin marks a Serve call in flight, unless the child is already stopped.
// Checking under the lock means that once stop is called and the child is
// idle, no new call can start.
func (c *child) begin() (chan struct{}, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return nil, false
	}
	c.mu.running = true
	c.mu.idle = make(chan struct{})
	c.n.rt.inflight.Add(1)
	c.n.mu.Lock()
	c.n.mu.running++
	c.n.mu.Unlock()
	if c.n.spec.Kind == KindService {
		c.n.setState(StateRunning)
		c.n.rt.emit(Event{Kind: EventServiceStarted, Path: c.n.path, Node: KindService})
	}
	return c.mu.idle, true
}

func (c *child) end(idle chan struct{}, err error) {
	// The child's lock orders this against halt, so the node's state ends at
	// stopped, never at a late "stopping".
	c.mu.Lock()
	defer c.mu.Unlock()
	stopped := c.ctx.Err() != nil
	c.n.mu.Lock()
	c.n.mu.running--
	if err != nil && !stopped && err != suture.ErrDoNotRestart {
		c.n.mu.lastErr = err.Error()
	}
	c.n.mu.Unlock()
	if c.n.spec.Kind == KindService {
		switch {
		case stopped:
			c.n.setState(StateStopped)
			c.n.rt.emit(Event{Kind: EventServiceStopped, Path: c.n.path, Node: KindService, Err: err})
		case err == suture.ErrDoNotRestart:
			// Done for good, by its own choice (a finished unit of work).
			c.n.setState(StateStopped)
			c.n.rt.emit(Event{Kind: EventServiceStopped, Path: c.n.path, Node: KindService})
		case errors.Is(err, suture.ErrDoNotRestart), errors.Is(err, suture.ErrTerminateSupervisorTree):
			c.n.setState(StateFailed)
			c.n.rt.emit(Event{Kind: EventServiceFailed, Path: c.n.path, Node: KindService, Err: err})
			c.n.rt.log.Warn("service failed; not restarting", "service", c.n.path, "err", err)
		default:
			c.n.setState(StateFailed)
			c.n.rt.emit(Event{Kind: EventServiceFailed, Path: c.n.path, Node: KindService, Err: err})
			c.n.rt.log.Warn("service failed; restarting", "service", c.n.path, "err", err)
		}
	}
	c.mu.running = false
	close(idle)
	c.n.rt.inflight.Done()
}

// invoke runs the node once, turning a panic into an error so that it is
// recorded and the service restarted like any failure.
func (c *child) invoke() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return c.n.serve(c.ctx)
}

// halt asks the child to stop and returns a channel closed once it is idle.
func (c *child) halt(cause error) <-chan struct{} {
	c.stop(cause)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.running {
		done := make(chan struct{})
		close(done)
		return done
	}
	if c.n.spec.Kind == KindService {
		c.n.setState(StateStopping)
	}
	return c.mu.idle
}
