package leasehold

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/leasehold/leasehold/leases"
)

// serveLease runs a lease or election node: one term after another, each
// with a new lease (and, for an election, a won campaign) and a new
// supervisor, until ctx ends.
func (n *node) serveLease(ctx context.Context) error {
	cfg := n.spec.Lease
	attempt := 0
	for ctx.Err() == nil {
		n.setState(StateAcquiring)
		lease, err := n.grant(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, leases.ErrTTLRaised) || errors.Is(err, leases.ErrInvalidConfig) {
				n.rt.fail(err)
				break
			}
			attempt++
			wait := n.rt.opts.Reacquire.Delay(attempt)
			n.recordErr(err)
			n.rt.emit(Event{Kind: EventAcquireFailed, Path: n.path, Node: n.spec.Kind, Err: err})
			n.rt.log.Warn("cannot acquire lease; retrying", "node", n.path, "attempt", attempt, "retry_in", wait, "err", err)
			n.rt.sleep(wait, ctx.Done())
			continue
		}
		started := n.rt.opts.Clock.Now()
		lost := n.runTerm(ctx, lease)
		if !lost {
			break
		}
		if n.afterStepDown(ctx) {
			attempt = 0
			continue
		}
		// Lost: begin a new term after a backoff that grows while terms keep
		// ending early.
		if n.rt.opts.Clock.Now().Sub(started) > n.rt.opts.Reacquire.Max {
			attempt = 0
		}
		attempt++
		n.rt.sleep(n.rt.opts.Reacquire.Delay(attempt), ctx.Done())
	}
	n.setState(StateStopped)
	return nil
}

// grant grants a lease, nested within the enclosing one, giving up after
// GrantTimeout.
func (n *node) grant(ctx context.Context, cfg leases.Config) (*leases.Lease, error) {
	gctx, cancel := context.WithTimeout(ctx, n.rt.opts.GrantTimeout)
	defer cancel()
	var opts []leases.GrantOption
	if outer := scopeOf(ctx).nearest(); outer != nil {
		opts = append(opts, leases.Within(outer))
	}
	return leases.Grant(gctx, n.rt.client, cfg, opts...)
}

func (n *node) recordErr(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.lastErr = err.Error()
}

// runTerm runs one term under lease: campaign (elections), children, then
// teardown and revoke. It reports whether the term ended because the lease
// or the leadership was lost (rather than because ctx ended).
func (n *node) runTerm(ctx context.Context, lease *leases.Lease) (lost bool) {
	n.mu.Lock()
	n.mu.sub.term++
	term := n.mu.sub.term
	n.mu.sub.lease, n.mu.sub.token = lease, 0
	n.mu.Unlock()
	ev := func(kind EventKind, token int64, err error) {
		n.rt.emit(Event{Kind: kind, Path: n.path, Node: n.spec.Kind, Term: term, LeaseID: lease.ID(), Token: token, Err: err, HeldUntil: lease.HeldUntil()})
	}
	ev(EventLeaseGranted, 0, nil)
	n.rt.log.Debug("lease granted", "node", n.path, "lease_id", int64(lease.ID()), "term", term)
	n.rt.background(n.revokeUnrevoked) // this term's claim waits for the old key to go

	// The term's context ends when the parent stops this node or the lease
	// is lost; an election's also when its key goes.
	termCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	unbind := context.AfterFunc(lease.Ctx(), func() { cancel(context.Cause(lease.Ctx())) })
	defer unbind()

	t, err := n.claim(termCtx, lease, ev)
	if err != nil {
		lost = ctx.Err() == nil
		if lost {
			n.recordErr(err)
			ev(EventLeaseLost, 0, err)
		}
		n.revokeLater(lease, ev)
		return lost
	}
	if t != nil {
		defer t.Close()
		unbindTerm := context.AfterFunc(t.Ctx(), func() { cancel(context.Cause(t.Ctx())) })
		defer unbindTerm()
		n.mu.Lock()
		n.mu.sub.token = t.Token()
		n.mu.Unlock()
	}
	if n.spec.Kind == KindElection {
		n.setState(StateLeading)
		defer n.stepDown.arm(t, cancel)()
		ev(EventElected, t.Token(), nil)
		n.rt.log.Info("elected", "node", n.path, "token", t.Token(), "term", term)
	} else {
		n.setState(StateHeld)
	}

	sc := scopeOf(ctx)
	overdue, stopWatch := n.watch(lease, sc.overdue)
	defer stopWatch()
	steppedDown := false
	_ = n.runChildren(withLease(termCtx, lease, t), sc.within(lease, termCtx, overdue), func(cause error) {
		lost = ctx.Err() == nil
		n.setState(StateStopping)
		switch {
		case lost && errors.Is(cause, ErrSteppedDown):
			// On purpose: StepDown has logged it; not a loss.
			steppedDown = true
		case lost && errors.Is(cause, ErrEscalated):
			// Too many restarts: give the lease (or the leadership) up so
			// a healthy peer can take over; a new term follows a backoff.
			n.recordErr(cause)
			n.rt.log.Warn("giving the lease up after too many restarts", "node", n.path, "term", term)
		case lost:
			n.recordErr(cause)
			ev(EventLeaseLost, n.tokenOf(t), cause)
			n.rt.log.Warn("lease lost; stopping its subtree", "node", n.path, "cause", cause, "term", term)
		}
	})
	ev(EventTermStopped, n.tokenOf(t), nil)
	stopWatch()
	revoked := n.revokeLater(lease, ev)
	if steppedDown {
		// StepDown returns once the lease is revoked (the successor is in):
		// the term ends after the revoke, which gives up within the TTL.
		<-revoked
	}
	return lost
}

// watch enforces lease's deadline on n's subtree apart from the teardown
// and from user code: once the lease is lost and its HeldUntil arrives with
// services under n still running, it applies the overrun policy, then ends
// the returned context, which tells teardowns under n to stop waiting for
// them. outer is the enclosing lease's; stop ends the watch once the subtree
// has returned.
func (n *node) watch(lease *leases.Lease, outer context.Context) (context.Context, func()) {
	overdue, markOverdue := context.WithCancel(outer)
	quit := make(chan struct{})
	n.rt.background(func() {
		defer markOverdue()
		select {
		case <-lease.Done():
		case <-quit:
			return
		}
		clk := n.rt.opts.Clock
		t := clk.NewTimer(lease.HeldUntil())
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C():
			}
			// An enclosing lease still renewed moves the deadline later.
			if at := lease.HeldUntil(); clk.Now().Before(at) {
				t.Reset(at)
				continue
			}
			break
		}
		if stuck := n.stuck(); len(stuck) > 0 {
			n.rt.overrun(Overrun{Path: n.path, LeaseID: lease.ID(), HeldUntil: lease.HeldUntil(), Stuck: stuck}, lease.Config().Guard/4)
		}
	})
	return overdue, sync.OnceFunc(func() { close(quit) })
}

// claim wins the term's key under lease: an election's campaign, or a keyed
// lease's Hold. A plain lease has no key and no term.
func (n *node) claim(ctx context.Context, lease *leases.Lease, ev func(EventKind, int64, error)) (*leases.Term, error) {
	switch {
	case n.spec.Kind == KindElection:
		el := leases.NewElection(n.rt.client, lease, n.spec.Prefix, n.identity())
		n.mu.Lock()
		n.mu.sub.election = el
		n.mu.Unlock()
		n.setState(StateCampaigning)
		ev(EventCampaigning, 0, nil)
		return el.Campaign(ctx)
	case n.spec.Key != "":
		return leases.Hold(ctx, n.rt.client, lease, n.spec.Key, n.identity())
	}
	return nil, nil
}

func (n *node) identity() string {
	if n.spec.Identity != "" {
		return n.spec.Identity
	}
	return n.rt.opts.NodeID
}

func (n *node) tokenOf(t *leases.Term) int64 {
	if t == nil {
		return 0
	}
	return t.Token()
}

// revokeLater revokes the lease, once its subtree has stopped, so that a
// successor can take over at once. Revoking is an optimisation for the
// successor and etcd may be unreachable, so it runs on its own goroutine
// (which Run waits for): it never holds up a parent's or a sibling's
// teardown. It gives up after the TTL; a lease it could not revoke is
// revoked after the node's next grant (see revokeUnrevoked).
func (n *node) revokeLater(lease *leases.Lease, ev func(EventKind, int64, error)) <-chan struct{} {
	done := make(chan struct{})
	n.rt.background(func() {
		defer close(done)
		err := revokeWithinTTL(lease)
		if err != nil {
			n.rt.log.Warn("cannot revoke lease; etcd will expire it", "node", n.path, "lease_id", fmt.Sprintf("%x", int64(lease.ID())), "err", err)
			n.mu.Lock()
			n.mu.sub.unrevoked = append(n.mu.sub.unrevoked, lease)
			n.mu.Unlock()
		}
		ev(EventLeaseRevoked, 0, err)
	})
	return done
}

// revokeUnrevoked revokes the lease of an earlier term that could not be
// revoked when it ended, now that a grant shows etcd answers. An etcd that
// restarted pushes its leases' expiry a TTL later, so otherwise the old
// term's keys would block this term's claim until then. Its subtree
// stopped long ago (revoke runs only after that).
func (n *node) revokeUnrevoked() {
	n.mu.Lock()
	old := n.mu.sub.unrevoked
	n.mu.sub.unrevoked = nil
	n.mu.Unlock()
	for _, l := range old {
		if err := revokeWithinTTL(l); err != nil {
			n.rt.log.Debug("cannot revoke an earlier lease; etcd will expire it", "node", n.path, "lease_id", fmt.Sprintf("%x", int64(l.ID())), "err", err)
		}
	}
}

// revokeWithinTTL revokes l, giving up after its TTL, when etcd will have
// expired it anyway.
func revokeWithinTTL(l *leases.Lease) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.TTL())
	defer cancel()
	return l.Revoke(ctx)
}
