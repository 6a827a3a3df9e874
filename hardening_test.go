package leasehold_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/leases"
)

// Regression tests for issue 10: the tree shapes on which the core used to
// break its promise. Each failed on the main of 2026-11-26.

// returnsAt is a service body that returns once its context ends and
// records the instant it returned on clock.Boot.
func returnsAt(at *atomic.Int64) func(context.Context) error {
	return func(ctx context.Context) error {
		<-ctx.Done()
		at.Store(int64(clock.Boot.Now()))
		return nil
	}
}

// Item 1: with etcd partitioned, the nested lease's revoke cannot complete;
// it used to hold up the outer lease's own services until past HeldUntil,
// so the overrun policy fired on a service that returns the moment it is
// asked.
func TestNestedRevokeNeverHoldsUpSiblings(t *testing.T) {
	srv := etcdtest.Start(t)
	p := srv.Proxy(t)
	var aReturned, bReturned atomic.Int64
	tree := leasehold.Lease("outer", short,
		leasehold.Func("a", returnsAt(&aReturned)),
		leasehold.Lease("inner", short, leasehold.Func("b", returnsAt(&bReturned))),
	)
	r := start(t, p.Client(t), tree, leasehold.Options{}) // an overrun fails the test
	r.rec.wait(t, "a started", is(leasehold.EventServiceStarted, "outer/a"))
	r.rec.wait(t, "b started", is(leasehold.EventServiceStarted, "outer/inner/b"))
	p.Partition()
	lost, _ := r.rec.wait(t, "outer lost", isTerm(leasehold.EventLeaseLost, "outer", 1))
	r.rec.wait(t, "outer's term stopped", isTerm(leasehold.EventTermStopped, "outer", 1))
	if at := clock.Time(aReturned.Load()); at == 0 || !at.Before(lost.HeldUntil) {
		t.Errorf("outer/a returned at %v, not before the outer lease's HeldUntil %v", at, lost.HeldUntil)
	}
	if at := clock.Time(bReturned.Load()); at == 0 || !at.Before(lost.HeldUntil) {
		t.Errorf("outer/inner/b returned at %v, not before HeldUntil %v", at, lost.HeldUntil)
	}
	p.Heal()
}

// Item 2: Remove with a context that ends while the child still runs used to
// drop the child from tracking: the lease was then revoked under it and no
// overrun fired past HeldUntil.
func TestRemoveGivingUpKeepsTheChildTracked(t *testing.T) {
	srv := etcdtest.Start(t)
	groups := make(chan *leasehold.Group, 1)
	release := make(chan struct{})
	overruns := make(chan leasehold.Overrun, 4)
	manager := leasehold.Func("manager", func(ctx context.Context) error {
		groups <- leasehold.GroupOf(ctx)
		return block(ctx)
	})
	r := start(t, srv.Client(t), leasehold.Lease("l", short, manager), leasehold.Options{
		Overrun: func(o leasehold.Overrun) { overruns <- o },
	})
	g := recv(t, "the manager's group", groups)
	stubborn := func(context.Context) error { <-release; return nil } // ignores cancellation
	if err := g.Add(leasehold.Func("unit", stubborn)); err != nil {
		t.Fatal(err)
	}
	r.rec.wait(t, "unit started", is(leasehold.EventServiceStarted, "l/unit"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Remove(ctx, "unit"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Remove with an ended context = %v; want context.Canceled", err)
	}
	if names := g.Names(); len(names) != 1 || names[0] != "unit" {
		t.Errorf("Names after a Remove that gave up = %v; want [unit]: it still runs", names)
	}
	// Lose the lease: the still-running unit must be named by the overrun.
	granted, _ := r.rec.wait(t, "granted", is(leasehold.EventLeaseGranted, "l"))
	if _, err := srv.Client(t).Revoke(context.Background(), granted.LeaseID); err != nil {
		t.Fatal(err)
	}
	o := recv(t, "overrun", overruns)
	if len(o.Stuck) != 1 || o.Stuck[0] != "l/unit" {
		t.Errorf("overrun names %v; want [l/unit]", o.Stuck)
	}
	if n := r.rec.count(isTerm(leasehold.EventLeaseRevoked, "l", 1)); n != 0 {
		t.Errorf("the lease was revoked while l/unit still ran")
	}
	close(release)
	r.rec.wait(t, "revoked", isTerm(leasehold.EventLeaseRevoked, "l", 1))
}

// Item 3: an OnEvent handler that calls Snapshot used to deadlock the
// teardown (events were emitted under the locks Snapshot takes).
func TestSnapshotFromOnEvent(t *testing.T) {
	srv := etcdtest.Start(t)
	var rt atomic.Pointer[leasehold.Runtime]
	var snapshots atomic.Int64
	onEvent := func(leasehold.Event) {
		if r := rt.Load(); r != nil {
			_ = r.Snapshot()
			snapshots.Add(1)
		}
	}
	groups := make(chan *leasehold.Group, 1)
	tree := leasehold.Lease("l", short,
		leasehold.Func("manager", func(ctx context.Context) error { groups <- leasehold.GroupOf(ctx); return block(ctx) }),
		leasehold.Supervisor("sup", leasehold.Func("a", block), leasehold.Func("b", block)),
	)
	rec := newRecorder()
	r, err := leasehold.New(srv.Client(t), tree, leasehold.Options{
		Logger:  quiet,
		OnEvent: func(e leasehold.Event) { onEvent(e); rec.on(e) },
		Overrun: func(o leasehold.Overrun) { t.Errorf("overrun: %+v", o) },
	})
	if err != nil {
		t.Fatal(err)
	}
	rt.Store(r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	g := recv(t, "group", groups)
	if err := g.Add(leasehold.Func("dyn", block)); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "dyn started", is(leasehold.EventServiceStarted, "l/dyn"))
	granted, _ := rec.wait(t, "granted", is(leasehold.EventLeaseGranted, "l"))
	if _, err := srv.Client(t).Revoke(context.Background(), granted.LeaseID); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "term stopped", isTerm(leasehold.EventTermStopped, "l", 1))
	rec.wait(t, "second term", isTerm(leasehold.EventLeaseGranted, "l", 2))
	if snapshots.Load() == 0 {
		t.Error("the handler never took a snapshot")
	}
	cancel()
	if err := recv(t, "Run's return", done); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// Item 4: the teardown used to run the logger and the event handler before
// cancelling anything: a blocked log writer or handler meant nothing was
// stopped and no overrun fired.
func TestBlockedLoggerAndHandlerNeverDelayTeardown(t *testing.T) {
	srv := etcdtest.Start(t)
	w := &blockingWriter{release: make(chan struct{})}
	handlerBlocked := make(chan struct{})
	var blockOnce sync.Once
	returned := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	ids := make(chan clientv3.LeaseID, 1)
	tree := leasehold.Lease("l", short, leasehold.Func("s", func(ctx context.Context) error {
		ids <- leasehold.LeaseOf(ctx).ID()
		<-ctx.Done()
		close(returned)
		return nil
	}))
	r, err := leasehold.New(srv.Client(t), tree, leasehold.Options{
		Logger: slog.New(slog.NewTextHandler(w, nil)),
		OnEvent: func(e leasehold.Event) {
			if e.Kind == leasehold.EventServiceStarted {
				blockOnce.Do(func() { <-handlerBlocked }) // blocks every later event
			}
		},
		Overrun: func(o leasehold.Overrun) { t.Errorf("overrun: %+v", o) },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	if _, err := srv.Client(t).Revoke(context.Background(), recv(t, "the lease", ids)); err != nil {
		t.Fatal(err)
	}
	recv(t, "the service's return while the logger and the handler are blocked", returned)
	cancel()
	close(handlerBlocked)
	close(w.release)
	if err := recv(t, "Run's return", done); err != nil {
		t.Errorf("Run = %v", err)
	}
	if !bytes.Contains(w.buf.Bytes(), []byte("lease lost")) {
		t.Errorf("the queued log lines were not written once the writer moved: %q", w.buf.String())
	}
}

// Item 5: a child waking from its restart backoff while its group was being
// torn down used to start again, with a live context, after the lease was
// lost.
func TestNoRestartDuringTeardown(t *testing.T) {
	srv := etcdtest.Start(t)
	crash := leasehold.Func("crash", func(context.Context) error { return errors.New("boom") },
		leasehold.Backoff(100*time.Millisecond, 100*time.Millisecond))
	slowStop := func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(400 * time.Millisecond) // a service that takes a while to stop (not synchronisation)
		return nil
	}
	tree := leasehold.Lease("l", leasehold.TTL(3*time.Second), leasehold.StopBudget(1500*time.Millisecond),
		leasehold.Intensity(-1, time.Second),
		crash,
		leasehold.Lease("inner", short, leasehold.StopBudget(time.Second), leasehold.Func("slow", slowStop, leasehold.Shutdown(800*time.Millisecond))),
	)
	r := start(t, srv.Client(t), tree, leasehold.Options{})
	r.rec.waitNth(t, "crash restarted", 2, is(leasehold.EventServiceStarted, "l/crash"))
	granted, _ := r.rec.wait(t, "granted", is(leasehold.EventLeaseGranted, "l"))
	if _, err := srv.Client(t).Revoke(context.Background(), granted.LeaseID); err != nil {
		t.Fatal(err)
	}
	_, lostAt := r.rec.wait(t, "lost", isTerm(leasehold.EventLeaseLost, "l", 1))
	_, stoppedAt := r.rec.wait(t, "term stopped", isTerm(leasehold.EventTermStopped, "l", 1))
	for i, e := range r.rec.all()[lostAt:stoppedAt] {
		if e.Kind == leasehold.EventServiceStarted {
			t.Errorf("%s started during the teardown (event %d after the loss)", e.Path, i)
		}
	}
}

// Item 6: under nested leases a service's deadline is the earliest of every
// enclosing lease's, not only the nearest one's. (Item 7: the command guard
// and the overrun policy both act at that HeldUntil, one margin for both.)
func TestLeaseOfIsTheEarliestEnclosingDeadline(t *testing.T) {
	srv := etcdtest.Start(t)
	outers, inners := make(chan *leases.Lease, 1), make(chan *leases.Lease, 1)
	tree := leasehold.Lease("outer", short,
		leasehold.Func("o", func(ctx context.Context) error { outers <- leasehold.LeaseOf(ctx); return block(ctx) }),
		leasehold.Lease("inner", leasehold.TTL(10*time.Second), leasehold.Func("i", func(ctx context.Context) error {
			inners <- leasehold.LeaseOf(ctx)
			return block(ctx)
		})),
	)
	start(t, srv.Client(t), tree, leasehold.Options{})
	out, inner := recv(t, "the outer lease", outers), recv(t, "the inner lease", inners)
	if h, o := inner.HeldUntil(), out.HeldUntil(); h.After(o) {
		t.Errorf("inner HeldUntil %v is after the outer lease's %v: a 10 s lease nested in a 2 s one", h, o)
	}
}

// Found by the property test: in an Ordered group, a dynamic child removed
// while it waited for its turn made its waiting goroutine index past the
// group's children with the group's lock held; the panic (recovered by
// suture) left the lock held, and the tree could never stop again.
func TestRemoveBeforeItsTurnInAnOrderedGroup(t *testing.T) {
	srv := etcdtest.Start(t)
	groups := make(chan *leasehold.Group, 1)
	tree := leasehold.Lease("l", short, leasehold.Ordered(),
		leasehold.Func("manager", func(ctx context.Context) error { groups <- leasehold.GroupOf(ctx); return block(ctx) }),
		leasehold.Func("gate", block, leasehold.AwaitReady()), // never ready: later children wait
	)
	r := start(t, srv.Client(t), tree, leasehold.Options{})
	g := recv(t, "the group", groups)
	r.rec.wait(t, "gate started", is(leasehold.EventServiceStarted, "l/gate"))
	if err := g.Add(leasehold.Func("waiting", block)); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(context.Background(), "waiting"); err != nil {
		t.Fatalf("Remove of a child waiting for its turn = %v", err)
	}
	if err := g.Add(leasehold.Func("another", block)); err != nil {
		t.Fatalf("Add after the Remove = %v", err)
	}
	if err := r.stop(t); err != nil { // fails the test if Run never returns
		t.Errorf("Run = %v", err)
	}
	if n := r.rec.count(is(leasehold.EventServiceStarted, "l/waiting")); n != 0 {
		t.Errorf("the removed child started %d times", n)
	}
}

// Found by the property test: when an election's key was deleted (its
// leadership lost while its lease lived), a nested election deeper in the
// tree, not yet reached by the ordered teardown, went on restarting its
// children under the lost leadership. No child starts below an ended term.
func TestNoStartBelowALostLeadership(t *testing.T) {
	srv := etcdtest.Start(t)
	crashy := leasehold.Func("crashy", func(context.Context) error { return errors.New("boom") },
		leasehold.Backoff(20*time.Millisecond, 20*time.Millisecond))
	slowStop := func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(300 * time.Millisecond) // the work of stopping (not synchronisation)
		return nil
	}
	tree := leasehold.Election("r", "/nostart/r", short,
		leasehold.Supervisor("sup", leasehold.Ordered(),
			leasehold.Election("e1", "/nostart/e1", short, leasehold.Intensity(-1, time.Second), crashy),
			leasehold.Func("slow", slowStop, leasehold.Shutdown(400*time.Millisecond)),
		),
	)
	r := start(t, srv.Client(t), tree, leasehold.Options{})
	r.rec.waitNth(t, "crashy restarted", 3, is(leasehold.EventServiceStarted, "r/sup/e1/crashy"))
	r.rec.wait(t, "slow started", is(leasehold.EventServiceStarted, "r/sup/slow"))
	if _, err := srv.Client(t).Delete(context.Background(), "/nostart/r/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	_, lostAt := r.rec.wait(t, "r lost", isTerm(leasehold.EventLeaseLost, "r", 1))
	_, stoppedAt := r.rec.wait(t, "r's term stopped", isTerm(leasehold.EventTermStopped, "r", 1))
	for _, e := range r.rec.all()[lostAt:stoppedAt] {
		if e.Kind == leasehold.EventServiceStarted {
			t.Errorf("%s started after r's leadership was lost", e.Path)
		}
	}
}
