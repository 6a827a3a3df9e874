package leasehold_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/leases"
)

// short is the lease TTL of these tests: etcd's default minimum.
var short = leasehold.TTL(2 * time.Second)

// A node cut off from etcd stops every service under its lease before
// HeldUntil, and HeldUntil comes before etcd deletes the lease's keys.
func TestPartitionStopsSubtreeBeforeEtcdExpiresLease(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := srv.Proxy(t)
	observer := srv.Client(t)
	ctx := context.Background()

	names := []string{"a", "b", "c"}
	put := make(chan string, len(names))
	node := proxy.Client(t)
	svc := func(name string) *leasehold.Node {
		return leasehold.Func(name, func(ctx context.Context) error {
			if _, err := node.Put(ctx, "/part/"+name, "up", clientv3.WithLease(leasehold.LeaseOf(ctx).ID())); err != nil {
				return err
			}
			put <- name
			<-ctx.Done()
			return nil
		})
	}
	r := start(t, node, leasehold.Lease("node", short, svc("a"), svc("b"), svc("c")), leasehold.Options{})
	for range names {
		recv(t, "key put by a service", put)
	}
	resp, err := observer.Get(ctx, "/part/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != len(names) {
		t.Fatalf("keys before the partition: %v, %v", resp, err)
	}
	watch := observer.Watch(ctx, "/part/", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))

	proxy.Partition()
	lost, lostAt := r.rec.wait(t, "lease lost", is(leasehold.EventLeaseLost, "node"))
	if !errors.Is(lost.Err, leases.ErrExpired) {
		t.Errorf("lost because %v; want ErrExpired", lost.Err)
	}
	deletedAt := clock.Time(0)
	for deleted := 0; deleted < len(names); {
		wr := recv(t, "deletion of the lease's keys", watch)
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				if deleted == 0 {
					deletedAt = clock.Boot.Now()
				}
				deleted++
			}
		}
	}
	// Order: lost < every service returned < HeldUntil < etcd deletes.
	for _, name := range names {
		stopped, at := r.rec.wait(t, "service stopped", is(leasehold.EventServiceStopped, "node/"+name))
		if at < lostAt {
			t.Errorf("%s stopped before the lease was lost", name)
		}
		if !stopped.At.Before(lost.HeldUntil) {
			t.Errorf("%s returned at %v, not before HeldUntil %v", name, stopped.At, lost.HeldUntil)
		}
	}
	t.Logf("lease lost at fence; HeldUntil %v after the loss; etcd deleted the keys %v after HeldUntil",
		lost.HeldUntil.Sub(lost.At), deletedAt.Sub(lost.HeldUntil))
	if !lost.HeldUntil.Before(deletedAt) {
		t.Errorf("HeldUntil %v is not before etcd deleted the keys at %v", lost.HeldUntil, deletedAt)
	}
}

// Three candidates: never two leaders' subtrees at once; a graceful stop
// hands over; tokens grow term over term.
func TestThreeCandidatesHandOver(t *testing.T) {
	srv := etcdtest.Start(t)
	var ledger, most atomic.Int32
	work := func(ctx context.Context) error {
		n := ledger.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-ctx.Done()
		ledger.Add(-1)
		return nil
	}
	type election struct {
		node  int
		event leasehold.Event
	}
	elected := make(chan election, 3)
	nodes := make([]*running, 3)
	for i := range nodes {
		tree := leasehold.Election("leader", "/three", short, leasehold.Func("work", work))
		nodes[i] = start(t, srv.Client(t), tree, leasehold.Options{
			NodeID: fmt.Sprintf("n%d", i),
			OnEvent: func(e leasehold.Event) {
				if e.Kind == leasehold.EventElected {
					elected <- election{i, e}
				}
			},
		})
	}
	var tokens []int64
	for range nodes {
		next := recv(t, "next leader", elected)
		leader := nodes[next.node]
		snap := leader.rt.Snapshot().Tree
		if snap.Role != "leader" || snap.Token != next.event.Token || snap.Leader != fmt.Sprintf("n%d", next.node) {
			t.Errorf("snapshot of the leader: role %q token %d leader %q; want leader, %d, n%d",
				snap.Role, snap.Token, snap.Leader, next.event.Token, next.node)
		}
		tokens = append(tokens, next.event.Token)
		// Its subtree runs before it is stopped (events are delivered on
		// their own goroutine, so the election's may come first).
		leader.rec.wait(t, "work started", is(leasehold.EventServiceStarted, "leader/work"))
		if err := leader.stop(t); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
	}
	select {
	case extra := <-elected:
		t.Errorf("a stopped node was elected again: %+v", extra)
	default:
	}
	if !slices.IsSorted(tokens) || tokens[0] == tokens[1] || tokens[1] == tokens[2] {
		t.Errorf("tokens %v; want strictly increasing", tokens)
	}
	if got := most.Load(); got != 1 {
		t.Errorf("at most %d leader subtrees ran at once; want 1", got)
	}
}

// Losing the outer lease stops the inner subtree, then the outer services,
// and only then revokes the outer lease.
func TestCascadeStopsInnerFirstThenRevokes(t *testing.T) {
	srv := etcdtest.Start(t)
	tree := leasehold.Lease("outer", short,
		leasehold.Func("a", block),
		leasehold.Lease("inner", short, leasehold.Func("b", block)),
	)
	r := start(t, srv.Client(t), tree, leasehold.Options{})
	r.rec.wait(t, "a started", is(leasehold.EventServiceStarted, "outer/a"))
	r.rec.wait(t, "b started", is(leasehold.EventServiceStarted, "outer/inner/b"))
	granted, _ := r.rec.wait(t, "outer granted", is(leasehold.EventLeaseGranted, "outer"))

	if _, err := srv.Client(t).Revoke(context.Background(), granted.LeaseID); err != nil {
		t.Fatal(err)
	}
	r.rec.wait(t, "outer revoked", isTerm(leasehold.EventLeaseRevoked, "outer", 1))
	r.rec.wait(t, "inner revoked", isTerm(leasehold.EventLeaseRevoked, "outer/inner", 1))
	inOrder := func(steps ...func(leasehold.Event) bool) {
		t.Helper()
		last := -1
		for i, match := range steps {
			j, _ := r.rec.find(1, match)
			if j <= last {
				t.Fatalf("step %d of the cascade is out of order (at %d, after %d); events: %v", i, j, last, r.rec.all())
			}
			last = j
		}
	}
	// The inner subtree stops first, then the outer services; each lease
	// is revoked only after its own subtree stopped. The inner revoke runs
	// on its own: it must not hold up outer/a's stop (issue 10, item 1).
	inOrder(
		isTerm(leasehold.EventLeaseLost, "outer", 1),
		is(leasehold.EventServiceStopped, "outer/inner/b"),
		isTerm(leasehold.EventTermStopped, "outer/inner", 1),
		is(leasehold.EventServiceStopped, "outer/a"),
		isTerm(leasehold.EventTermStopped, "outer", 1),
		isTerm(leasehold.EventLeaseRevoked, "outer", 1),
	)
	inOrder(
		is(leasehold.EventServiceStopped, "outer/inner/b"),
		isTerm(leasehold.EventLeaseRevoked, "outer/inner", 1),
	)
}

// A service that ignores cancellation triggers the overrun policy at the
// lease's HeldUntil (never before: a service has until then to return; the
// Guard inside HeldUntil is the margin for the policy to act before etcd
// could expire the lease).
func TestOverrunPolicyRunsAtHeldUntil(t *testing.T) {
	srv := etcdtest.Start(t)
	release := make(chan struct{})
	overruns := make(chan leasehold.Overrun, 1)
	var calledAt clock.Time
	policy := func(o leasehold.Overrun) {
		calledAt = clock.Boot.Now()
		overruns <- o
		close(release)
	}
	stubborn := leasehold.Func("stubborn", func(ctx context.Context) error {
		<-release // ignores ctx
		return nil
	})
	r := start(t, srv.Client(t), leasehold.Lease("l", short, stubborn), leasehold.Options{Overrun: policy})
	r.rec.wait(t, "started", is(leasehold.EventServiceStarted, "l/stubborn"))
	granted, _ := r.rec.wait(t, "granted", is(leasehold.EventLeaseGranted, "l"))
	if _, err := srv.Client(t).Revoke(context.Background(), granted.LeaseID); err != nil {
		t.Fatal(err)
	}
	o := recv(t, "overrun", overruns)
	if !slices.Equal(o.Stuck, []string{"l/stubborn"}) || o.Path != "l" || o.LeaseID != granted.LeaseID {
		t.Errorf("overrun = %+v; want l/stubborn stuck under lease l %x", o, granted.LeaseID)
	}
	if calledAt.Before(o.HeldUntil) {
		t.Errorf("policy ran at %v, before HeldUntil %v: the service had until then", calledAt, o.HeldUntil)
	}
	if lost, _ := r.rec.wait(t, "lost", isTerm(leasehold.EventLeaseLost, "l", 1)); lost.HeldUntil != o.HeldUntil {
		t.Errorf("overrun HeldUntil %v; want the lost lease's %v", o.HeldUntil, lost.HeldUntil)
	}
	// The abandoned service is still tracked: it is reported stopped once it returns.
	r.rec.wait(t, "stubborn returned", is(leasehold.EventServiceStopped, "l/stubborn"))
}

// After a loss the node takes a new lease and leads again under a new term
// with a larger token; its services restart under it.
func TestReacquireAfterLoss(t *testing.T) {
	srv := etcdtest.Start(t)
	tokens := make(chan int64, 4)
	svc := leasehold.Func("svc", func(ctx context.Context) error {
		tokens <- leasehold.TermOf(ctx).Token()
		<-ctx.Done()
		return nil
	})
	r := start(t, srv.Client(t), leasehold.Election("e", "/reacquire", short, svc), leasehold.Options{})
	first, _ := r.rec.wait(t, "elected", isTerm(leasehold.EventElected, "e", 1))
	if got := recv(t, "service token", tokens); got != first.Token {
		t.Errorf("service saw token %d; want %d", got, first.Token)
	}
	if _, err := srv.Client(t).Revoke(context.Background(), first.LeaseID); err != nil {
		t.Fatal(err)
	}
	second, _ := r.rec.wait(t, "elected again", isTerm(leasehold.EventElected, "e", 2))
	if second.LeaseID == first.LeaseID || second.Token <= first.Token {
		t.Errorf("second term lease %x token %d; want a new lease and a token above %d", second.LeaseID, second.Token, first.Token)
	}
	if got := recv(t, "service token in term 2", tokens); got != second.Token {
		t.Errorf("restarted service saw token %d; want %d", got, second.Token)
	}
}

// A failing service is restarted with backoff inside its lease; the lease
// is untouched.
func TestFailingServiceRestartsInsideLease(t *testing.T) {
	srv := etcdtest.Start(t)
	var calls atomic.Int32
	healthy := make(chan struct{})
	flaky := leasehold.Func("flaky", func(ctx context.Context) error {
		if calls.Add(1) <= 3 {
			return errors.New("boom")
		}
		close(healthy)
		<-ctx.Done()
		return nil
	}, leasehold.Backoff(10*time.Millisecond, 40*time.Millisecond))
	r := start(t, srv.Client(t), leasehold.Lease("l", short, flaky), leasehold.Options{})
	recv(t, "healthy run", healthy)

	if got := r.rec.count(is(leasehold.EventServiceBackoff, "l/flaky")); got != 3 {
		t.Errorf("%d backoffs; want 3", got)
	}
	if got := r.rec.count(is(leasehold.EventLeaseGranted, "l")); got != 1 {
		t.Errorf("%d leases granted; want 1: restarts must not touch the lease", got)
	}
	if got := r.rec.count(is(leasehold.EventLeaseLost, "l")); got != 0 {
		t.Errorf("lease lost %d times", got)
	}
	snap := r.rt.Snapshot().Tree
	svc := snap.Children[0]
	if svc.Restarts != 3 || !strings.Contains(svc.LastError, "boom") || svc.State != leasehold.StateRunning {
		t.Errorf("snapshot of flaky: %+v; want 3 restarts, last error boom, running", svc)
	}
	if snap.State != leasehold.StateHeld || snap.Term != 1 {
		t.Errorf("snapshot of the lease: state %q term %d; want held, 1", snap.State, snap.Term)
	}
}

func TestInvalidTrees(t *testing.T) {
	svc := leasehold.Func("s", block)
	for _, tc := range []struct {
		name string
		tree *leasehold.Node
		want string
	}{
		{"nil tree", nil, "the tree is nil"},
		{"empty name", leasehold.Lease("l", leasehold.Func("", block)), "a child of l: Name is empty"},
		{"duplicate names", leasehold.Lease("l", svc, leasehold.Func("s", block)), `two children are named "s"`},
		{"nil service", leasehold.Lease("l", leasehold.Service("s", nil)), "l/s: Service is nil"},
		{"ttl too short", leasehold.Lease("l", leasehold.TTL(time.Second), svc), "l: leases: invalid config: TTL 1s is below"},
		{"budget too big", leasehold.Lease("l", leasehold.TTL(3*time.Second), leasehold.StopBudget(3*time.Second), svc), "StopBudget 3s does not fit inside TTL 3s"},
		{"election without prefix", leasehold.Election("e", "", svc), "e: Prefix is empty"},
		{"service outside a lease", leasehold.Supervisor("g", svc), "g/s: service is not under a lease"},
		{"option on the wrong kind", leasehold.Lease("l", leasehold.Func("s", block, short)), "option TTL does not apply to a service node"},
		{"slash in name", leasehold.Lease("a/b", svc), `Name "a/b" contains "/"`},
		{"shutdowns beyond the budget", leasehold.Lease("l", leasehold.TTL(3*time.Second), leasehold.Ordered(),
			leasehold.Func("a", block, leasehold.Shutdown(800*time.Millisecond)), leasehold.Func("b", block, leasehold.Shutdown(800*time.Millisecond))),
			"StopBudget 1s cannot fit the children's Shutdown timeouts (a 800ms + b 800ms = 1.6s)"},
		{"unknown strategy", leasehold.Lease("l", leasehold.Strategy("all_for_none"), svc), `Strategy "all_for_none" is unknown`},
		{"unknown restart type", leasehold.Lease("l", leasehold.Func("s", block, leasehold.Restart("sometimes"))), `Restart "sometimes" is unknown`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := leasehold.New(nil, tc.tree, leasehold.Options{})
			if !errors.Is(err, leasehold.ErrInvalidTree) {
				t.Fatalf("New = %v; want ErrInvalidTree", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %q; want it to contain %q", err, tc.want)
			}
		})
	}
}

// An unreachable etcd gives logged retries with backoff, never a silent
// hang, and nothing under the lease starts.
func TestUnreachableEtcdRetries(t *testing.T) {
	c, err := etcdtest.NewClient("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var started atomic.Bool
	tree := leasehold.Lease("l", short, leasehold.Func("s", func(ctx context.Context) error {
		started.Store(true)
		return block(ctx)
	}))
	r := start(t, c, tree, leasehold.Options{Reacquire: leasehold.BackoffRange{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	r.rec.wait(t, "first failure", is(leasehold.EventAcquireFailed, "l"))
	second, _ := r.rec.waitNth(t, "second failure", 2, is(leasehold.EventAcquireFailed, "l"))
	if second.Err == nil {
		t.Error("acquire failure without its error")
	}
	if snap := r.rt.Snapshot().Tree; snap.State != leasehold.StateAcquiring || snap.LastError == "" {
		t.Errorf("snapshot: state %q, last error %q; want acquiring with the error", snap.State, snap.LastError)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
	if started.Load() {
		t.Error("a service started without a lease")
	}
}

// Children added at run time run under the lease, show in the snapshot,
// stop on Remove (which waits for them), and stop with the term.
func TestDynamicChildren(t *testing.T) {
	srv := etcdtest.Start(t)
	groups := make(chan *leasehold.Group, 1)
	manager := leasehold.Func("manager", func(ctx context.Context) error {
		groups <- leasehold.GroupOf(ctx)
		return block(ctx)
	})
	r := start(t, srv.Client(t), leasehold.Lease("l", short, manager), leasehold.Options{})
	g := recv(t, "the manager's group", groups)
	var aReturned atomic.Bool
	units := map[string]func(context.Context) error{
		"unit:a": func(ctx context.Context) error { defer aReturned.Store(true); return block(ctx) },
		"unit:b": block,
	}
	for _, name := range []string{"unit:a", "unit:b"} {
		if err := g.Add(leasehold.Func(name, units[name])); err != nil {
			t.Fatalf("Add(%s): %v", name, err)
		}
	}
	for _, bad := range []*leasehold.Node{leasehold.Func("unit:a", block), leasehold.Func("", block), leasehold.Func("manager", block)} {
		if err := g.Add(bad); !errors.Is(err, leasehold.ErrInvalidTree) {
			t.Errorf("Add of a duplicate or unnamed child = %v; want ErrInvalidTree", err)
		}
	}
	r.rec.wait(t, "a started", is(leasehold.EventServiceStarted, "l/unit:a"))
	r.rec.wait(t, "b started", is(leasehold.EventServiceStarted, "l/unit:b"))
	names := func() []string {
		var out []string
		for _, c := range r.rt.Snapshot().Tree.Children {
			out = append(out, c.Name)
		}
		return out
	}
	if got := names(); !slices.Equal(got, []string{"manager", "unit:a", "unit:b"}) {
		t.Errorf("children %v; want manager, unit:a, unit:b", got)
	}
	if err := g.Remove(context.Background(), "unit:a"); err != nil {
		t.Fatal(err)
	}
	if !aReturned.Load() {
		t.Error("Remove returned before unit:a did")
	}
	if got := names(); !slices.Equal(got, []string{"manager", "unit:b"}) {
		t.Errorf("children after Remove %v; want manager, unit:b", got)
	}
	if err := g.Remove(context.Background(), "unit:a"); !errors.Is(err, leasehold.ErrNoChild) {
		t.Errorf("second Remove = %v; want ErrNoChild", err)
	}
	// Losing the lease stops unit:b before the lease is revoked.
	granted, _ := r.rec.wait(t, "granted", is(leasehold.EventLeaseGranted, "l"))
	if _, err := srv.Client(t).Revoke(context.Background(), granted.LeaseID); err != nil {
		t.Fatal(err)
	}
	_, revoked := r.rec.wait(t, "revoked", isTerm(leasehold.EventLeaseRevoked, "l", 1))
	_, stopped := r.rec.wait(t, "b stopped", is(leasehold.EventServiceStopped, "l/unit:b"))
	if stopped > revoked {
		t.Error("the lease was revoked before its dynamic child stopped")
	}
	if err := g.Add(leasehold.Func("late", block)); !errors.Is(err, leasehold.ErrGroupStopped) {
		t.Errorf("Add after the term = %v; want ErrGroupStopped", err)
	}
}

// A keyed lease holds its key each term; the key's create revision is the
// term's token.
func TestKeyedLease(t *testing.T) {
	srv := etcdtest.Start(t)
	tokens := make(chan int64, 2)
	tree := leasehold.Lease("runner", short, leasehold.Key("/runners/n1"), leasehold.Func("s", func(ctx context.Context) error {
		tokens <- leasehold.TermOf(ctx).Token()
		return block(ctx)
	}))
	r := start(t, srv.Client(t), tree, leasehold.Options{NodeID: "n1"})
	token := recv(t, "token", tokens)
	resp, err := srv.Client(t).Get(context.Background(), "/runners/n1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("runner key: %v, %v", resp, err)
	}
	if kv := resp.Kvs[0]; kv.CreateRevision != token || string(kv.Value) != "n1" {
		t.Errorf("key created at %d holding %q; service saw token %d, want n1", kv.CreateRevision, kv.Value, token)
	}
	if snap := r.rt.Snapshot().Tree; snap.Key != "/runners/n1" || snap.Token != token {
		t.Errorf("snapshot key %q token %d; want /runners/n1 %d", snap.Key, snap.Token, token)
	}
	// Deleting the key ends the term; the next term holds a new key.
	if _, err := srv.Client(t).Delete(context.Background(), "/runners/n1"); err != nil {
		t.Fatal(err)
	}
	if next := recv(t, "next token", tokens); next <= token {
		t.Errorf("next term's token %d; want above %d", next, token)
	}
}
