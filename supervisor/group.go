package supervisor

import (
	"context"
	"math"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/leases"
)

// sutureSpec lets leasehold own restart pacing (per service, see Backoff)
// and stopping (see runChildren): suture's supervisor-wide failure backoff is
// disabled, and its stop timeout only matters for services an overrun
// policy chose to abandon.
func (r *Runtime) sutureSpec() suture.Spec {
	return suture.Spec{
		EventHook: func(e suture.Event) {
			r.log.Debug("suture", "event", e.String())
		},
		FailureThreshold: math.MaxFloat64,
		Timeout:          10 * time.Millisecond,
	}
}

// runChildren runs n's children under a new suture supervisor until ctx
// ends, then tears them down: subtrees first, then services, each phase
// waited for until the enclosing lease's HeldUntil. onStop, if set, is
// called with the cause as soon as ctx ends, before any child stops.
func (n *node) runChildren(ctx context.Context, deadline func() (leaseInfo, bool), onStop func(error)) {
	g := &Group{n: n, sup: suture.New(n.path, n.rt.sutureSpec())}
	g.ctx = context.WithValue(ctx, groupKey{}, g)
	g.mu.kids = make(map[string]*dynamicChild)
	var subtrees, services []*child
	for _, cn := range n.children {
		c := newChild(cn, g.ctx)
		if cn.spec.Kind == KindService {
			services = append(services, c)
		} else {
			subtrees = append(subtrees, c)
		}
		g.sup.Add(c)
	}
	supCtx, supCancel := context.WithCancel(context.WithoutCancel(ctx))
	supDone := g.sup.ServeBackground(supCtx)

	var supErr error
	select {
	case <-ctx.Done():
	case supErr = <-supDone:
		// suture gave up on the tree (a child asked to terminate it).
		supDone = nil
		n.rt.log.Error("supervisor ended on its own; stopping its children", "node", n.path, "err", supErr)
	}
	cause := context.Cause(ctx)
	if cause == nil {
		cause = supErr
	}
	if onStop != nil {
		onStop(cause)
	}
	// From here Add fails; the dynamic children stop with the declared ones.
	for _, d := range g.close() {
		if d.c.n.spec.Kind == KindService {
			services = append(services, d.c)
		} else {
			subtrees = append(subtrees, d.c)
		}
	}
	n.stopAll(subtrees, cause, deadline)
	n.stopAll(services, cause, deadline)
	supCancel()
	if supDone != nil {
		<-supDone
	}
	n.mu.Lock()
	n.mu.dynamic = nil
	n.mu.Unlock()
}

// stopAll stops children together and waits until each has returned, or
// until the enclosing lease reaches HeldUntil, when the overrun policy
// applies to those still running.
func (n *node) stopAll(children []*child, cause error, deadline func() (leaseInfo, bool)) {
	if len(children) == 0 {
		return
	}
	idle := make([]<-chan struct{}, len(children))
	for i, c := range children {
		idle[i] = c.halt(cause)
	}
	var expired <-chan struct{}
	var timer clock.Timer
	var lease leaseInfo
	if deadline != nil {
		if l, ok := deadline(); ok {
			lease = l
			timer = n.rt.opts.Clock.NewTimer(overrunAt(l.lease))
			defer timer.Stop()
			expired = timer.C()
		}
	}
	for i := 0; i < len(idle); {
		select {
		case <-idle[i]:
			i++
		case <-expired:
			// HeldUntil moves later while the lease is renewed (a graceful
			// stop under a healthy lease): only its real arrival counts.
			if at := overrunAt(lease.lease); n.rt.opts.Clock.Now().Before(at) {
				timer.Reset(at)
				continue
			}
			var stuck []string
			for _, c := range children[i:] {
				stuck = append(stuck, c.n.stuck()...)
			}
			if len(stuck) == 0 {
				// They returned as the deadline fired.
				continue
			}
			n.rt.overrun(Overrun{Path: lease.path, LeaseID: lease.lease.ID(), HeldUntil: lease.lease.HeldUntil(), Stuck: stuck})
			return
		}
	}
}

// overrunAt is when the overrun policy applies: one Guard before HeldUntil,
// so that even the default policy's exit completes before HeldUntil.
func overrunAt(l *leases.Lease) clock.Time {
	return l.HeldUntil().Add(-l.Config().Guard)
}

func (r *Runtime) overrun(o Overrun) {
	logOverrun(r.log, o)
	r.emit(Event{Kind: EventOverrun, Path: o.Path, LeaseID: o.LeaseID, Stuck: o.Stuck})
	r.opts.Overrun(o)
}
