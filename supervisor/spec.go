package supervisor

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/leasehold/leasehold/leases"
)

// Kind is the kind of a tree node.
type Kind string

// The kinds of tree nodes.
const (
	// KindLease owns an etcd lease; its children run while it is held.
	KindLease Kind = "lease"
	// KindElection is a lease that must also win an election before its
	// children start.
	KindElection Kind = "election"
	// KindSupervisor groups children under the enclosing lease.
	KindSupervisor Kind = "supervisor"
	// KindService is a leaf: a suture.Service.
	KindService Kind = "service"
)

// Spec declares one node of a tree. Build trees with the root package's
// constructors; Spec is the validated form they produce.
type Spec struct {
	Kind Kind
	// Name identifies the node among its siblings: non-empty, without "/".
	Name string
	// Service is the leaf's service (KindService only).
	Service suture.Service
	// Children are started under the node (not for KindService).
	Children []*Spec
	// Lease configures the lease of a KindLease or KindElection node.
	Lease leases.Config
	// Prefix is the election's key prefix (KindElection only), as given to
	// `etcdctl elect`.
	Prefix string
	// Identity is the value of the election key, shown as the leader, or
	// of a lease node's Key. Default: the runtime's node ID.
	Identity string
	// Key, for a KindLease node, is a key the node holds under its lease
	// each term (see leases.Hold): its create revision is the term's
	// fencing token, and services see the term through TermOf.
	Key string
	// Backoff paces the restarts of a failing service. Zero fields default.
	Backoff Backoff
}

// Backoff is an exponential restart delay: Min after the first failure,
// doubling up to Max. A service that ran for longer than Max before failing
// starts over at Min.
type Backoff struct {
	Min time.Duration // default 100ms
	Max time.Duration // default 10s
}

func (b Backoff) withDefaults() Backoff {
	if b.Min == 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max == 0 {
		b.Max = 10 * time.Second
	}
	return b
}

// delay is the wait before restart number n (n >= 1).
func (b Backoff) delay(n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// ErrInvalidTree wraps every error of Validate.
var ErrInvalidTree = errors.New("leasehold: invalid tree")

// Validate checks a whole tree before anything starts. Its error names the
// node's path, the field, and the fix.
func Validate(root *Spec) error {
	if root == nil {
		return fmt.Errorf("%w: the tree is nil: pass a tree built with leasehold.Lease or leasehold.Election", ErrInvalidTree)
	}
	return validate(root, "", false)
}

func validate(s *Spec, parent string, leased bool) error {
	path := joinPath(parent, s.Name)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidTree, describe(parent, s.Name), fmt.Sprintf(format, args...))
	}
	switch {
	case s.Name == "":
		return bad("Name is empty: give every node a name")
	case strings.Contains(s.Name, "/"):
		return bad("Name %q contains \"/\", which separates paths: rename it", s.Name)
	}
	switch s.Kind {
	case KindService:
		if s.Service == nil {
			return bad("Service is nil: pass a suture.Service (or services.Func)")
		}
		if len(s.Children) > 0 {
			return bad("a service has no Children: put them in a supervisor beside it")
		}
		if !leased {
			return bad("service is not under a lease: wrap it in leasehold.Lease or leasehold.Election")
		}
		if s.Backoff.Min < 0 || s.Backoff.Max < 0 || (s.Backoff.Max != 0 && s.Backoff.Min > s.Backoff.Max) {
			return bad("Backoff %v is invalid: Min and Max must be positive with Min <= Max", s.Backoff)
		}
		return nil
	case KindElection:
		if s.Prefix == "" {
			return bad("Prefix is empty: an election needs a key prefix such as /myapp/leader")
		}
		fallthrough
	case KindLease:
		if s.Kind == KindLease && s.Prefix != "" {
			return bad("Prefix is set on a lease: only elections have a prefix")
		}
		if s.Kind == KindElection && s.Key != "" {
			return bad("Key is set on an election: its key is prefix/leaseID")
		}
		if err := s.Lease.Validate(); err != nil {
			return bad("%v", err)
		}
		leased = true
	case KindSupervisor:
	default:
		return bad("Kind %q is unknown: use lease, election, supervisor or service", s.Kind)
	}
	seen := make(map[string]bool, len(s.Children))
	for i, c := range s.Children {
		if c == nil {
			return fmt.Errorf("%w: %s: child %d is nil", ErrInvalidTree, describe(parent, s.Name), i)
		}
		if seen[c.Name] && c.Name != "" {
			return fmt.Errorf("%w: %s: two children are named %q: sibling names must be unique", ErrInvalidTree, describe(parent, s.Name), c.Name)
		}
		seen[c.Name] = true
		if err := validate(c, path, leased); err != nil {
			return err
		}
	}
	return nil
}

func describe(parent, name string) string {
	if name == "" {
		if parent == "" {
			return "the root node"
		}
		return "a child of " + parent
	}
	return joinPath(parent, name)
}

func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}
