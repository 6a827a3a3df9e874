package leasehold

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/leasehold/leasehold/internal/otp"
)

// Part is a child node or an option of a node; constructors take both, so
// the shape of a tree in code is the shape it has at run time.
type Part interface {
	apply(n *Node)
}

// Node is a node of a tree, built by Lease, Election, Supervisor or Service.
type Node struct {
	spec nodeSpec
	errs []error // options that do not apply to the node's kind
}

func (n *Node) apply(parent *Node) {
	if n == nil {
		parent.spec.Children = append(parent.spec.Children, nil)
		return
	}
	parent.spec.Children = append(parent.spec.Children, &n.spec)
	parent.errs = append(parent.errs, n.errs...)
}

func newNode(kind Kind, name string, parts []Part) *Node {
	n := &Node{spec: nodeSpec{Kind: kind, Name: name}}
	if kind != KindService {
		n.spec.GroupRules = new(otp.GroupRules)
	}
	if kind == KindLease || kind == KindElection {
		n.spec.leaseSpec = new(leaseSpec)
	}
	for _, p := range parts {
		if p == nil {
			n.errs = append(n.errs, fmt.Errorf("%w: %s: a nil part was passed: remove it", ErrInvalidTree, name))
			continue
		}
		p.apply(n)
	}
	return n
}

// Lease declares a node that holds an etcd lease; its children run while
// the lease is held. Options: TTL, RenewInterval, StopBudget, Rho, Guard.
func Lease(name string, parts ...Part) *Node {
	return newNode(KindLease, name, parts)
}

// Election declares a lease node that must also lead the election on
// prefix (etcd's concurrency.Election key layout) before its children start.
// Options: those of Lease, and Identity.
func Election(name, prefix string, parts ...Part) *Node {
	n := newNode(KindElection, name, parts)
	n.spec.Prefix = prefix
	return n
}

// Supervisor declares a group of children under the enclosing lease.
func Supervisor(name string, parts ...Part) *Node {
	return newNode(KindSupervisor, name, parts)
}

// Service declares a leaf running svc. Its Serve must return once its
// context ends: a service is stopped only when Serve has returned.
// Options: Backoff.
func Service(name string, svc suture.Service, parts ...Part) *Node {
	n := newNode(KindService, name, parts)
	n.spec.Service = svc
	return n
}

// Func declares a leaf running fn as a service.
func Func(name string, fn func(ctx context.Context) error, parts ...Part) *Node {
	var svc suture.Service
	if fn != nil {
		svc = funcService{name: name, fn: fn}
	}
	return Service(name, svc, parts...)
}

type funcService struct {
	name string
	fn   func(ctx context.Context) error
}

func (f funcService) Serve(ctx context.Context) error { return f.fn(ctx) }
func (f funcService) String() string                  { return f.name }

// option is a Part that sets fields of the node it is passed to.
type option struct {
	name  string
	kinds []Kind
	set   func(*nodeSpec)
}

func (o option) apply(n *Node) {
	for _, k := range o.kinds {
		if n.spec.Kind == k {
			o.set(&n.spec)
			return
		}
	}
	n.errs = append(n.errs, fmt.Errorf("%w: %s: option %s does not apply to a %s node: move it to a %v node",
		ErrInvalidTree, n.spec.Name, o.name, n.spec.Kind, o.kinds))
}

var leaseKinds = []Kind{KindLease, KindElection}

// TTL sets a lease's time to live in etcd (whole seconds, at least 2s).
func TTL(d time.Duration) Part {
	return option{"TTL", leaseKinds, func(s *nodeSpec) { s.Lease.TTL = d }}
}

// RenewInterval sets the time between renewals (default TTL/3).
func RenewInterval(d time.Duration) Part {
	return option{"RenewInterval", leaseKinds, func(s *nodeSpec) { s.Lease.RenewInterval = d }}
}

// StopBudget sets how long the subtree has to stop after the lease is lost
// locally and before etcd could expire it (default TTL/3).
func StopBudget(d time.Duration) Part {
	return option{"StopBudget", leaseKinds, func(s *nodeSpec) { s.Lease.StopBudget = d }}
}

// Rho bounds the clock-rate difference to the etcd leader (default 1e-3).
func Rho(rho float64) Part {
	return option{"Rho", leaseKinds, func(s *nodeSpec) { s.Lease.Rho = rho }}
}

// Guard is subtracted from the held time for timer jitter (default 50ms).
func Guard(d time.Duration) Part {
	return option{"Guard", leaseKinds, func(s *nodeSpec) { s.Lease.Guard = d }}
}

// Identity sets the value of an election's key, shown as the leader, or of
// a lease's Key (default: the runtime's node ID).
func Identity(id string) Part {
	return option{"Identity", leaseKinds, func(s *nodeSpec) { s.Identity = id }}
}

// Key makes a lease node hold key under its lease each term, waiting while
// an earlier lease still holds it. The key's create revision is the term's
// fencing token, reachable through TermOf like an election's.
func Key(key string) Part {
	return option{"Key", []Kind{KindLease}, func(s *nodeSpec) { s.Key = key }}
}

// Backoff sets a child's restart delay: min after the first failure,
// doubling up to max (defaults 100ms and 10s).
func Backoff(min, max time.Duration) Part {
	return option{"Backoff", allKinds, func(s *nodeSpec) {
		s.Backoff = otp.Backoff{Min: min, Max: max}
	}}
}

var groupKinds = []Kind{KindLease, KindElection, KindSupervisor}

var allKinds = append([]Kind{KindService}, groupKinds...)

// Strategy sets which siblings restart when a child fails: one_for_one
// (the default), one_for_all or rest_for_one, as in OTP.
func Strategy(s RestartStrategy) Part {
	return option{"Strategy", groupKinds, func(sp *nodeSpec) { sp.Strategy = s }}
}

// Intensity sets how many restarts a node's children may make within period
// before the node gives up and escalates (default 5 in 10s; a negative max
// means no limit). Under a lease that gives the lease up; an election
// resigns so a healthy peer can lead.
func Intensity(max int, period time.Duration) Part {
	return option{"Intensity", groupKinds, func(sp *nodeSpec) {
		sp.Intensity = otp.Intensity{MaxRestarts: max, Period: period}
	}}
}

// SutureBackoff replaces a node's Intensity with suture's failure backoff:
// past threshold failures (decaying by half every decay), all restarts of
// its children pause for backoff; the node never escalates.
func SutureBackoff(threshold float64, decay, backoff time.Duration) Part {
	return option{"SutureBackoff", groupKinds, func(sp *nodeSpec) {
		sp.Suture = &otp.SutureBackoff{Threshold: threshold, Decay: decay, Backoff: backoff}
	}}
}

// Ordered starts a node's children one at a time in declaration order and
// stops them one at a time in reverse order, as OTP does.
func Ordered() Part {
	return option{"Ordered", groupKinds, func(sp *nodeSpec) { sp.Ordered = true }}
}

// Restart sets when a child that returned on its own restarts: permanent
// (the default), transient (only after an error) or temporary (never).
func Restart(r RestartType) Part {
	return option{"Restart", allKinds, func(sp *nodeSpec) { sp.Restart = r }}
}

// Shutdown sets how long a child has to return once asked to stop, before
// the overrun policy applies (default: until the lease's deadline).
func Shutdown(d time.Duration) Part {
	return option{"Shutdown", allKinds, func(sp *nodeSpec) { sp.Shutdown = d }}
}

// AwaitReady makes an Ordered parent start the next sibling only once this
// child has called Ready.
func AwaitReady() Part {
	return option{"AwaitReady", allKinds, func(sp *nodeSpec) { sp.AwaitReady = true }}
}

// built returns n's spec, or the errors of its construction.
func (n *Node) built() (*nodeSpec, error) {
	if n == nil {
		return nil, validateTree(nil)
	}
	if len(n.errs) > 0 {
		return nil, errors.Join(n.errs...)
	}
	return &n.spec, nil
}
