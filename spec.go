package leasehold

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/otp"
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

// nodeSpec is one node of a tree, as the constructors (Lease, Election,
// Supervisor, Service) declare it.
type nodeSpec struct {
	Kind Kind
	// Name identifies the node among its siblings: non-empty, without "/".
	Name string
	// Service is the leaf's service (KindService only).
	Service suture.Service
	// Children are started under the node (not for KindService).
	Children []*nodeSpec
	// How the node behaves as a child: restart type, Shutdown, restart
	// Backoff, AwaitReady. Shutdowns must fit the lease's StopBudget.
	otp.ChildRules

	// The parts only some kinds have are behind pointers, set by newNode
	// for those kinds only, so that a service's spec stays small (a tree
	// may hold many thousands): read them only for those kinds.

	// How a node with children (lease, election, supervisor) restarts and
	// orders them: strategy, intensity, suture's backoff, order.
	*otp.GroupRules
	// The lease of a lease or election node.
	*leaseSpec
}

// leaseSpec is what a lease or election node has beyond other nodes.
type leaseSpec struct {
	// Lease configures the node's lease.
	Lease leases.Config
	// Prefix is the election's key prefix (KindElection only), as given to
	// `etcdctl elect`.
	Prefix string
	// Identity is the value of the election key, shown as the leader, or
	// of a lease node's Key. Default: the runtime's node ID.
	Identity string
	// Key, for a KindLease node, is a key the node holds under its lease
	// each term (see leases.Hold).
	Key string
}

// ErrInvalidTree wraps every error of Validate.
var ErrInvalidTree = errors.New("leasehold: invalid tree")

// resolved is a copy of the validated tree s with every default filled in,
// once: the runtime, the engine and snapshots read only the values in
// force. The lease's clock is the runtime's.
func resolved(s *nodeSpec, clk clock.Clock) *nodeSpec {
	r := *s
	r.Restart = r.Restart.OrDefault()
	r.Backoff = r.Backoff.WithDefaults()
	if s.GroupRules != nil {
		gr := *s.GroupRules
		gr.Strategy, gr.Intensity = gr.Strategy.OrDefault(), gr.Intensity.OrDefault()
		r.GroupRules = &gr
	}
	if s.leaseSpec != nil {
		ls := *s.leaseSpec
		ls.Lease.Clock = clk
		ls.Lease = ls.Lease.WithDefaults()
		r.leaseSpec = &ls
	}
	if len(s.Children) > 0 {
		r.Children = make([]*nodeSpec, len(s.Children))
		for i, c := range s.Children {
			r.Children[i] = resolved(c, clk)
		}
	}
	return &r
}

// validateTree checks a whole tree before anything starts. Its error names
// the node's path, the field, and the fix.
func validateTree(root *nodeSpec) error {
	if root == nil {
		return fmt.Errorf("%w: the tree is nil: pass a tree built with leasehold.Lease or leasehold.Election", ErrInvalidTree)
	}
	return validate(root, "", false)
}

func validate(s *nodeSpec, parent string, leased bool) error {
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
	if err := validateGroupRules(s, bad); err != nil {
		return err
	}
	switch {
	case !s.Restart.Valid():
		return bad("Restart %q is unknown: use permanent, transient or temporary", s.Restart)
	case s.Shutdown < 0:
		return bad("Shutdown %s is negative: leave it zero to allow until the lease's deadline", s.Shutdown)
	case s.Backoff.Min < 0 || s.Backoff.Max < 0 || (s.Backoff.Max != 0 && s.Backoff.Min > s.Backoff.Max):
		return bad("Backoff %v is invalid: Min and Max must be positive with Min <= Max", s.Backoff)
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
		cfg := s.Lease.WithDefaults()
		if err := cfg.Validate(); err != nil {
			return bad("%v", err)
		}
		if worst, how := stopTime(s); !fitsStopBudget(cfg, worst) {
			return bad("StopBudget %s cannot fit the children's Shutdown timeouts (%s = %s) plus one Guard (%s) for the teardown's own latency: raise StopBudget or lower the Shutdowns",
				cfg.StopBudget, how, worst, cfg.Guard)
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

// validateGroupRules checks the rules of a node with children.
func validateGroupRules(s *nodeSpec, bad func(string, ...any) error) error {
	if s.GroupRules == nil {
		return nil
	}
	switch {
	case !s.Strategy.Valid():
		return bad("Strategy %q is unknown: use one_for_one, one_for_all or rest_for_one", s.Strategy)
	case s.Intensity.MaxRestarts > 0 && s.Intensity.Period <= 0:
		return bad("Intensity %d restarts needs a positive Period, e.g. 10s", s.Intensity.MaxRestarts)
	case s.Suture != nil && (s.Suture.Threshold <= 0 || s.Suture.Decay <= 0 || s.Suture.Backoff <= 0):
		return bad("Suture backoff %+v needs a positive Threshold, Decay and Backoff (suture's defaults: 5, 30s, 15s)", *s.Suture)
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

// fitsStopBudget is the rule that makes a child's own Shutdown timer fire
// before its lease's deadline. Teardown starts at FenceAt, StopBudget before
// HeldUntil, where the lease's watchdog applies the overrun policy; a child
// asked to stop a little after FenceAt (the teardown's own latency, at most
// one Guard) must reach the end of its Shutdown by then.
func fitsStopBudget(cfg leases.Config, worst time.Duration) bool {
	return worst+cfg.Guard <= cfg.StopBudget
}

// stopTime is the longest a node's teardown can take by its children's
// Shutdown timeouts (unset ones count as zero: they are bounded by the
// lease's deadline instead), with a description of the sum.
func stopTime(s *nodeSpec) (time.Duration, string) {
	var total time.Duration
	var parts []string
	if s.Ordered {
		// One at a time.
		for _, c := range s.Children {
			if c == nil {
				continue
			}
			d, how := childStopTime(c)
			if d > 0 {
				total += d
				parts = append(parts, how)
			}
		}
		return total, strings.Join(parts, " + ")
	}
	// Subtrees together, then services together.
	var sub, svc time.Duration
	var subHow, svcHow string
	for _, c := range s.Children {
		if c == nil {
			continue
		}
		d, how := childStopTime(c)
		if c.Kind == KindService && d > svc {
			svc, svcHow = d, how
		} else if c.Kind != KindService && d > sub {
			sub, subHow = d, how
		}
	}
	for _, p := range []string{subHow, svcHow} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return sub + svc, strings.Join(parts, " + ")
}

func childStopTime(c *nodeSpec) (time.Duration, string) {
	inner, how := time.Duration(0), ""
	if c.Kind != KindService {
		inner, how = stopTime(c)
	}
	if c.Shutdown > inner {
		return c.Shutdown, fmt.Sprintf("%s %s", c.Name, c.Shutdown)
	}
	return inner, how
}
