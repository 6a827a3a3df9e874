package leasehold

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/leases"
)

// Step-down errors, checked with errors.Is.
var (
	// ErrSteppedDown is the cause given to a term ended by StepDown.
	ErrSteppedDown = errors.New("leasehold: stepped down")
	// ErrNotLeader: the election does not lead (or no longer leads in the
	// term the request named).
	ErrNotLeader = errors.New("leasehold: not the leader")
	// ErrNoSuccessor: no other candidate campaigns (or not the one named),
	// so stepping down would leave the election without a leader.
	ErrNoSuccessor = errors.New("leasehold: no successor campaigning")
	// ErrNoSuchNode: the path names no election node of the tree.
	ErrNoSuchNode = errors.New("leasehold: no such election node")
)

// StateSteppedDown is the state of an election that stepped down and stays
// out of the race (see StepDownOptions.StayOut).
const StateSteppedDown = "stepped_down"

// DefaultStayOut is how long a node that stepped down stays out of the race
// at most when StepDownOptions.StayOut is zero.
const DefaultStayOut = 10 * time.Second

// StepDownOptions shape a StepDown. Zero fields take their defaults.
type StepDownOptions struct {
	// Successor, if set, is the identity of the candidate that should lead
	// next. The candidates queued ahead of it are removed from the queue
	// (they campaign again, behind it), in a transaction fenced by the
	// stepping-down term. It must be campaigning, or StepDown fails with
	// ErrNoSuccessor and leadership stays.
	Successor string
	// StayOut is how long the node stays out of the race at most; it
	// campaigns again as soon as another node leads. Default: DefaultStayOut.
	StayOut time.Duration
	// Token, if not zero, is the fencing token of the term to end: a
	// request made for an older term is refused with ErrNotLeader, so a
	// stale request never ends a newer term.
	Token int64
	// Force steps down even when no other candidate campaigns, leaving the
	// election without a leader for up to StayOut.
	Force bool
}

// stepDown is an election node's step-down state. The running term arms it
// while it leads; StepDown asks through it; serveLease reads it once the
// term has ended. Its fields are guarded by mu.
type stepDown struct {
	mu      sync.Mutex
	term    *leases.Term            // the leading term, nil when not leading
	cancel  context.CancelCauseFunc // ends that term
	ended   chan struct{}           // closed once that term has ended and its lease is revoked
	asked   *StepDownOptions        // set when the armed term was asked to step down
	stayOut *StepDownOptions        // the request to honour once the term has ended
	// stayOutKey is that term's election key, which the stay-out ignores.
	stayOutKey string
}

// arm records the leading term; the returned func disarms it when the term
// has ended.
func (sd *stepDown) arm(t *leases.Term, cancel context.CancelCauseFunc) func() {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	sd.term, sd.cancel, sd.ended, sd.asked = t, cancel, make(chan struct{}), nil
	ended := sd.ended
	return func() {
		sd.mu.Lock()
		defer sd.mu.Unlock()
		sd.stayOut, sd.stayOutKey = sd.asked, t.Key()
		sd.term, sd.cancel, sd.asked = nil, nil, nil
		close(ended)
	}
}

// StepDown makes the election node at path (as in snapshots, e.g.
// "registry/election") resign gracefully: it stops the election's subtree,
// revokes its lease so that the next candidate takes over at once, and
// stays out of the race for opts.StayOut or until another node leads. It
// returns once the lease is revoked, or when ctx ends first (the step-down
// then still proceeds).
//
// It fails with ErrNotLeader when the node does not lead (in opts.Token's
// term, if given), and with ErrNoSuccessor when no other candidate
// campaigns (unless opts.Force) or opts.Successor is not campaigning.
func (r *Runtime) StepDown(ctx context.Context, path string, opts StepDownOptions) error {
	n := r.root.find(path)
	if n == nil || n.spec.Kind != KindElection {
		return fmt.Errorf("%w: %q (pass the path of an election, as /debug/tree.json shows it)", ErrNoSuchNode, path)
	}
	if opts.StayOut < 0 {
		return fmt.Errorf("leasehold: StepDownOptions.StayOut %s is negative: leave it zero for %s", opts.StayOut, DefaultStayOut)
	}
	if opts.StayOut == 0 {
		opts.StayOut = DefaultStayOut
	}
	sd := n.stepDown
	sd.mu.Lock()
	t, cancel, ended, asked := sd.term, sd.cancel, sd.ended, sd.asked != nil
	sd.mu.Unlock()
	switch {
	case t == nil:
		return fmt.Errorf("%w: %s is not leading", ErrNotLeader, path)
	case opts.Token != 0 && t.Token() != opts.Token:
		return fmt.Errorf("%w: %s leads in term %d, not in term %d", ErrNotLeader, path, t.Token(), opts.Token)
	}
	if !asked {
		if err := r.clearWay(ctx, n, t, opts); err != nil {
			return err
		}
		sd.mu.Lock()
		if sd.term == t && sd.asked == nil {
			sd.asked = &opts
		}
		sd.mu.Unlock()
		r.log.Info("stepping down: stopping the subtree, then revoking the lease", "node", path, "token", t.Token(), "successor", opts.Successor, "stay_out", opts.StayOut)
		cancel(ErrSteppedDown)
	}
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// clearWay checks that a successor campaigns and, when one is named,
// removes the candidates queued ahead of it, fenced by term t.
func (r *Runtime) clearWay(ctx context.Context, n *node, t *leases.Term, opts StepDownOptions) error {
	resp, err := r.client.Get(ctx, n.spec.Prefix+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return fmt.Errorf("leasehold: step down %s: reading the candidates: %w", n.path, err)
	}
	var ahead []clientv3.Op
	found := false
	for _, kv := range resp.Kvs {
		if string(kv.Key) == t.Key() {
			continue
		}
		if opts.Successor == "" || string(kv.Value) == opts.Successor {
			found = true
			break
		}
		ahead = append(ahead, clientv3.OpDelete(string(kv.Key)))
	}
	switch {
	case !found && opts.Successor != "":
		return fmt.Errorf("%w: %q is not campaigning under %s (candidates are named by their election key's value)", ErrNoSuccessor, opts.Successor, n.spec.Prefix)
	case !found && !opts.Force:
		return fmt.Errorf("%w: nobody else campaigns under %s; stepping down would leave it leaderless (use Force)", ErrNoSuccessor, n.spec.Prefix)
	case len(ahead) == 0:
		return nil
	}
	if _, err := t.Txn(ctx).Then(ahead...).Commit(); err != nil {
		return fmt.Errorf("leasehold: step down %s: clearing the way for %q: %w", n.path, opts.Successor, err)
	}
	return nil
}

// afterStepDown is called by serveLease when a term has ended. If the term
// stepped down, it keeps the node out of the race for the requested time,
// or until another node leads, and reports true.
func (n *node) afterStepDown(ctx context.Context) bool {
	sd := n.stepDown
	if sd == nil {
		return false // not an election
	}
	sd.mu.Lock()
	opts, ownKey := sd.stayOut, sd.stayOutKey
	sd.stayOut = nil
	sd.mu.Unlock()
	if opts == nil {
		return false
	}
	n.setState(StateSteppedDown)
	n.rt.emit(Event{Kind: EventSteppedDown, Path: n.path, Node: n.spec.Kind})
	wctx, cancel := context.WithTimeout(ctx, opts.StayOut)
	defer cancel()
	awaitLeader(wctx, n.rt.client, n.spec.Prefix+"/", ownKey)
	return true
}

// EventSteppedDown: an election stepped down and stays out of the race.
const EventSteppedDown EventKind = "election.stepped_down"

// awaitLeader returns once a key other than own exists under prefix
// (another node campaigns or leads), or ctx ends. own, the stepped-down
// term's key, is normally revoked by then; it is ignored in case the revoke
// failed and etcd has yet to expire it.
func awaitLeader(ctx context.Context, c *clientv3.Client, prefix, own string) {
	for ctx.Err() == nil {
		resp, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(2))
		if err != nil {
			t := time.NewTimer(100 * time.Millisecond) // etcd unreachable: retry, not spin
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		if slices.ContainsFunc(resp.Kvs, func(kv *mvccpb.KeyValue) bool { return string(kv.Key) != own }) {
			return
		}
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range c.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1), clientv3.WithFilterDelete()) {
			if wr.Err() != nil || slices.ContainsFunc(wr.Events, func(e *clientv3.Event) bool { return string(e.Kv.Key) != own }) {
				break
			}
		}
		wcancel()
	}
}

// find returns the node at path, or nil.
func (n *node) find(path string) *node {
	name, rest, more := strings.Cut(path, "/")
	if name != n.spec.Name {
		return nil
	}
	if !more {
		return n
	}
	for _, c := range n.children {
		if f := c.find(rest); f != nil {
			return f
		}
	}
	return nil
}

// RuntimeOf returns the runtime running the service whose context ctx is,
// or nil outside a tree: a service can ask it to StepDown another node
// (never its own enclosing election, whose stop waits for the service).
func RuntimeOf(ctx context.Context) *Runtime {
	if g := GroupOf(ctx); g != nil {
		return g.n.rt
	}
	return nil
}
