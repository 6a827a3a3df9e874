package leasehold

import (
	"context"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/otp"
	"github.com/leasehold/leasehold/supervisor"
)

// A node is a supervisor.Member of its parent's group: the engine runs it
// and tells it what happened, and the node keeps its state, counts, events
// and logs. The hooks run under the engine's child lock: they take only
// the node's own lock and queue events.

func (n *node) Name() string           { return n.spec.Name }
func (n *node) String() string         { return n.path }
func (n *node) Rules() *otp.ChildRules { return &n.spec.ChildRules }
func (n *node) Subtree() bool          { return n.spec.Kind != KindService }

func (n *node) Run(ctx context.Context) error {
	if n.spec.AwaitReady {
		ctx = context.WithValue(ctx, readyKey{}, n) // for Ready
	}
	return n.serve(ctx)
}

func (n *node) BackingOff() {
	n.setState(StateBackoff)
	n.rt.emit(Event{Kind: EventServiceBackoff, Path: n.path, Node: n.spec.Kind})
}

func (n *node) Started(at clock.Time) {
	n.rt.inflight.Add(1) // Run waits for every run
	service := n.spec.Kind == KindService
	n.mu.Lock()
	n.mu.running++
	n.mu.ready = !n.spec.AwaitReady
	if service {
		n.setStateLocked(StateRunning)
	}
	n.mu.Unlock()
	if service {
		n.rt.emit(Event{At: at, Kind: EventServiceStarted, Path: n.path, Node: KindService})
	}
}

func (n *node) Stopping() {
	if n.spec.Kind == KindService {
		n.setState(StateStopping)
	}
}

func (n *node) Ended(e supervisor.End) {
	defer n.rt.inflight.Done()
	service := n.spec.Kind == KindService
	n.mu.Lock()
	n.mu.running--
	n.mu.ready = false
	if e.Err != nil {
		n.mu.lastErr = e.Err.Error()
	}
	if e.Restart {
		n.mu.restarts++
	}
	if service && e.Err == nil {
		n.setStateLocked(StateStopped)
	} else if service {
		n.setStateLocked(StateFailed)
	}
	n.mu.Unlock()
	if !service {
		return
	}
	switch {
	case e.Stopped:
		n.rt.emit(Event{Kind: EventServiceStopped, Path: n.path, Node: KindService, Err: e.Cause})
	case e.Err == nil:
		// Done for good, by its own choice (a finished unit of work).
		n.rt.emit(Event{Kind: EventServiceStopped, Path: n.path, Node: KindService})
	default:
		n.rt.emit(Event{Kind: EventServiceFailed, Path: n.path, Node: KindService, Err: e.Err})
		if e.Restart {
			n.rt.log.Warn("service failed; restarting", "service", n.path, "err", e.Err)
		}
	}
}

func (n *node) Finished(failure error) {
	if n.spec.Kind == KindService {
		if failure != nil {
			n.setState(StateFailed)
		} else {
			n.setState(StateStopped)
		}
	}
	if failure != nil {
		n.rt.log.Warn("child failed; not restarting", "child", n.path, "err", failure)
	}
}
