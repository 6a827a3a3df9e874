package leasehold

import (
	"context"

	"github.com/leasehold/leasehold/leases"
)

type leaseKey struct{}
type termKey struct{}
type scopeKey struct{}

// LeaseOf returns the lease of the nearest lease or election node enclosing
// the service whose context this is, or nil outside a tree. Its HeldUntil and
// Deadline are the earliest of every enclosing lease's: the service's
// effective deadline.
func LeaseOf(ctx context.Context) *leases.Lease {
	l, _ := ctx.Value(leaseKey{}).(*leases.Lease)
	return l
}

// TermOf returns the term of the nearest enclosing election or keyed lease:
// its fencing token and fenced transactions. It is nil when there is none.
func TermOf(ctx context.Context) *leases.Term {
	t, _ := ctx.Value(termKey{}).(*leases.Term)
	return t
}

func withLease(ctx context.Context, l *leases.Lease, t *leases.Term) context.Context {
	ctx = context.WithValue(ctx, leaseKey{}, l)
	if t != nil {
		ctx = context.WithValue(ctx, termKey{}, t)
	}
	return ctx
}

// scope is what a group's children inherit from the leases enclosing them.
type scope struct {
	// leases are the enclosing leases of the current terms, outermost
	// first: no child starts once any of them is lost or past its FenceAt.
	leases []*leases.Lease
	// terms are those terms' contexts: they also end when an election's key
	// goes (leadership lost while the lease lives) or the term escalates,
	// and no child starts anywhere below a term that has ended.
	terms []context.Context
	// overdue ends once an enclosing lease's watchdog has applied the
	// overrun policy: teardowns under it stop waiting for stuck services.
	overdue context.Context
}

var rootScope = scope{overdue: context.Background()}

func scopeOf(ctx context.Context) scope {
	if sc, ok := ctx.Value(scopeKey{}).(scope); ok {
		return sc
	}
	return rootScope
}

func withScope(ctx context.Context, sc scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, sc)
}

// nearest is the innermost enclosing lease, or nil.
func (sc scope) nearest() *leases.Lease {
	if len(sc.leases) == 0 {
		return nil
	}
	return sc.leases[len(sc.leases)-1]
}

// within is sc with l as the innermost lease, term as its term's context and
// overdue as its watchdog's.
func (sc scope) within(l *leases.Lease, term, overdue context.Context) scope {
	return scope{
		leases:  append(append([]*leases.Lease(nil), sc.leases...), l),
		terms:   append(append([]context.Context(nil), sc.terms...), term),
		overdue: overdue,
	}
}
