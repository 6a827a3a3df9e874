package leases

import "errors"

// Causes of a lost lease or term, reported by context.Cause on their contexts,
// and errors of this package. Check them with errors.Is.
var (
	// ErrExpired: no renewal was acknowledged before FenceAt.
	ErrExpired = errors.New("leases: lease reached its fence time without an acknowledged renewal")
	// ErrNotFound: etcd answered a renewal with TTL 0: the lease no longer exists.
	ErrNotFound = errors.New("leases: etcd no longer has the lease")
	// ErrRevoked: the lease was revoked through Revoke.
	ErrRevoked = errors.New("leases: lease revoked")
	// ErrClosed: the lease was released locally through Close.
	ErrClosed = errors.New("leases: lease closed")
	// ErrKeyLost: the term's key was deleted or replaced in etcd.
	ErrKeyLost = errors.New("leases: the term's key is gone from etcd")
	// ErrResigned: the term ended through Term.Resign.
	ErrResigned = errors.New("leases: term resigned")
	// ErrFenced: a fenced transaction did not commit because its term's key
	// no longer exists with the term's token: leadership has moved on.
	ErrFenced = errors.New("leases: fenced: the term is over")
	// ErrTTLRaised: etcd granted a longer TTL than requested, which it does
	// when the request is below the cluster's minimum lease TTL.
	ErrTTLRaised = errors.New("leases: TTL is below the etcd cluster's minimum")
	// ErrInvalidConfig wraps every validation error of Config.
	ErrInvalidConfig = errors.New("leases: invalid config")
)
