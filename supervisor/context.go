package supervisor

import (
	"context"

	"github.com/leasehold/leasehold/leases"
)

type leaseKey struct{}
type termKey struct{}

// LeaseOf returns the lease of the nearest lease or election node enclosing
// the service whose context this is, or nil outside a tree.
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
