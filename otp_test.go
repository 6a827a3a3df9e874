package leasehold_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/etcdtest"
)

// failAfter returns a service body whose first run fails once ready is
// closed; later runs block.
func failAfter(ready <-chan struct{}) func(context.Context) error {
	var runs atomic.Int32
	return func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			<-ready
			return errors.New("first run fails")
		}
		return block(ctx)
	}
}

// signalStart returns a service body that closes started on its first run.
func signalStart(started chan struct{}) func(context.Context) error {
	var once sync.Once
	return func(ctx context.Context) error {
		once.Do(func() { close(started) })
		return block(ctx)
	}
}

// failOnce returns a service body that fails its first run, then blocks.
func failOnce() func(context.Context) error {
	var runs atomic.Int32
	return func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			return errors.New("first run fails")
		}
		return block(ctx)
	}
}

var fastRestart = leasehold.Backoff(time.Millisecond, time.Millisecond)

// step is the nth event (from 1) that matches.
type step struct {
	match func(leasehold.Event) bool
	nth   int
}

func first(match func(leasehold.Event) bool) step { return step{match, 1} }

// positions returns the index of each step's event, failing the test when
// one does not come.
func positions(t *testing.T, r *recorder, steps ...step) []int {
	t.Helper()
	out := make([]int, len(steps))
	for i, s := range steps {
		_, out[i] = r.waitNth(t, "event", s.nth, s.match)
	}
	return out
}

func ascending(t *testing.T, what string, at []int) {
	t.Helper()
	for i := 1; i < len(at); i++ {
		if at[i] <= at[i-1] {
			t.Errorf("%s: step %d (event %d) is not after step %d (event %d)", what, i, at[i], i-1, at[i-1])
		}
	}
}

func started(path string, nth int) step { return step{is(leasehold.EventServiceStarted, path), nth} }

func TestOneForOneRestartsOnlyTheFailed(t *testing.T) {
	srv := etcdtest.Start(t)
	r := start(t, srv.Client(t), leasehold.Lease("l", short,
		leasehold.Func("a", block), leasehold.Func("b", failOnce(), fastRestart), leasehold.Func("c", block)), leasehold.Options{})
	r.rec.waitNth(t, "b restarted", 2, is(leasehold.EventServiceStarted, "l/b"))
	for _, p := range []string{"l/a", "l/c"} {
		if n := r.rec.count(is(leasehold.EventServiceStarted, p)); n != 1 {
			t.Errorf("%s started %d times; want 1", p, n)
		}
	}
}

// One-for-all: the others stop in reverse order, then all start in order.
func TestOneForAllRestartsEveryoneInOrder(t *testing.T) {
	srv := etcdtest.Start(t)
	cUp := make(chan struct{})
	r := start(t, srv.Client(t), leasehold.Lease("l", short, leasehold.Ordered(), leasehold.Strategy(leasehold.OneForAll),
		leasehold.Func("a", block), leasehold.Func("b", failAfter(cUp), fastRestart), leasehold.Func("c", signalStart(cUp))), leasehold.Options{})
	_, failed := r.rec.wait(t, "b failed", is(leasehold.EventServiceFailed, "l/b"))
	at := positions(t, r.rec,
		first(is(leasehold.EventServiceStopped, "l/c")),
		first(is(leasehold.EventServiceStopped, "l/a")),
		started("l/a", 2), started("l/b", 2), started("l/c", 2))
	ascending(t, "one-for-all", append([]int{failed}, at...))
}

// Rest-for-one: only the later siblings stop; they and the failed one start
// again in order; earlier ones are untouched.
func TestRestForOneRestartsTheRest(t *testing.T) {
	srv := etcdtest.Start(t)
	cUp := make(chan struct{})
	r := start(t, srv.Client(t), leasehold.Lease("l", short, leasehold.Ordered(), leasehold.Strategy(leasehold.RestForOne),
		leasehold.Func("a", block), leasehold.Func("b", failAfter(cUp), fastRestart), leasehold.Func("c", signalStart(cUp))), leasehold.Options{})
	_, failed := r.rec.wait(t, "b failed", is(leasehold.EventServiceFailed, "l/b"))
	at := positions(t, r.rec, first(is(leasehold.EventServiceStopped, "l/c")), started("l/b", 2), started("l/c", 2))
	ascending(t, "rest-for-one", append([]int{failed}, at...))
	if n := r.rec.count(is(leasehold.EventServiceStarted, "l/a")); n != 1 {
		t.Errorf("a started %d times; want 1", n)
	}
	if n := r.rec.count(is(leasehold.EventServiceStopped, "l/a")); n != 0 {
		t.Errorf("a stopped %d times; want 0", n)
	}
}

func TestRestartTypes(t *testing.T) {
	srv := etcdtest.Start(t)
	var permanentRuns atomic.Int32
	boom := errors.New("boom")
	r := start(t, srv.Client(t), leasehold.Lease("l", short,
		leasehold.Func("transient-ok", func(context.Context) error { return nil }, leasehold.Restart(leasehold.Transient)),
		leasehold.Func("transient-err", failOnce(), leasehold.Restart(leasehold.Transient), fastRestart),
		leasehold.Func("temporary", func(context.Context) error { return boom }, leasehold.Restart(leasehold.Temporary)),
		leasehold.Func("permanent", func(ctx context.Context) error {
			if permanentRuns.Add(1) == 1 {
				return nil // even a clean return restarts a permanent child
			}
			return block(ctx)
		}, fastRestart),
	), leasehold.Options{})
	r.rec.waitNth(t, "transient restarted after an error", 2, is(leasehold.EventServiceStarted, "l/transient-err"))
	r.rec.waitNth(t, "permanent restarted after nil", 2, is(leasehold.EventServiceStarted, "l/permanent"))
	r.rec.wait(t, "temporary failed", is(leasehold.EventServiceFailed, "l/temporary"))
	r.rec.wait(t, "transient-ok returned", is(leasehold.EventServiceFailed, "l/transient-ok"))
	// Let any wrongful restart happen before counting: stop the tree first.
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"l/transient-ok": 1, "l/temporary": 1, "l/transient-err": 2, "l/permanent": 2} {
		if n := r.rec.count(is(leasehold.EventServiceStarted, path)); n != want {
			t.Errorf("%s started %d times; want %d", path, n, want)
		}
	}
}

// Ordered start: b starts only after a calls Ready. Reverse-order stop: c,
// b, a, each after the previous returned.
func TestOrderedStartAndReverseStop(t *testing.T) {
	srv := etcdtest.Start(t)
	release := make(chan struct{})
	var ledger struct {
		sync.Mutex
		marks []string
	}
	mark := func(m string) {
		ledger.Lock()
		ledger.marks = append(ledger.marks, m)
		ledger.Unlock()
	}
	a := leasehold.Func("a", func(ctx context.Context) error {
		<-release
		mark("a ready")
		leasehold.Ready(ctx)
		return block(ctx)
	}, leasehold.AwaitReady())
	b := leasehold.Func("b", func(ctx context.Context) error { mark("b started"); return block(ctx) })
	r := start(t, srv.Client(t), leasehold.Lease("l", short, leasehold.Ordered(), a, b, leasehold.Func("c", block)), leasehold.Options{})
	r.rec.wait(t, "a started", is(leasehold.EventServiceStarted, "l/a"))
	if snap := r.rt.Snapshot().Tree; snap.Children[0].Ready {
		t.Error("snapshot: a ready before it called Ready")
	}
	close(release)
	r.rec.wait(t, "c started", is(leasehold.EventServiceStarted, "l/c"))
	ledger.Lock()
	got := strings.Join(ledger.marks, ", ")
	ledger.Unlock()
	if got != "a ready, b started" {
		t.Errorf("start order %q; want b only after a is ready", got)
	}
	if snap := r.rt.Snapshot().Tree; !snap.Ordered || !snap.Children[0].Ready {
		t.Errorf("snapshot: ordered %v, a ready %v; want both", snap.Ordered, snap.Children[0].Ready)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	at := positions(t, r.rec, first(is(leasehold.EventServiceStopped, "l/c")), first(is(leasehold.EventServiceStopped, "l/b")),
		first(is(leasehold.EventServiceStopped, "l/a")), first(isTerm(leasehold.EventLeaseRevoked, "l", 1)))
	ascending(t, "reverse-order stop", at)
}

// A child that outlives its own Shutdown triggers the overrun policy.
func TestShutdownOverrunTriggersPolicy(t *testing.T) {
	srv := etcdtest.Start(t)
	release := make(chan struct{})
	overruns := make(chan leasehold.Overrun, 1)
	slow := leasehold.Func("slow", func(ctx context.Context) error {
		<-release // ignores ctx
		return nil
	}, leasehold.Shutdown(50*time.Millisecond))
	r := start(t, srv.Client(t), leasehold.Lease("l", short, slow), leasehold.Options{Overrun: func(o leasehold.Overrun) {
		overruns <- o
		close(release)
	}})
	r.rec.wait(t, "started", is(leasehold.EventServiceStarted, "l/slow"))
	go r.cancel()
	o := recv(t, "overrun", overruns)
	if o.Path != "l/slow" || o.Shutdown != 50*time.Millisecond || len(o.Stuck) != 1 || o.Stuck[0] != "l/slow" {
		t.Errorf("overrun = %+v; want l/slow past its 50ms shutdown", o)
	}
}

// A crash loop under an election makes that node resign; a peer takes over;
// the sick node campaigns again after a backoff, as a candidate.
func TestCrashLoopUnderElectionResigns(t *testing.T) {
	srv := etcdtest.Start(t)
	tree := func(work func(context.Context) error) *leasehold.Node {
		return leasehold.Election("e", "/crashloop", short, leasehold.Intensity(2, 10*time.Second),
			leasehold.Func("work", work, fastRestart))
	}
	crash := func(context.Context) error { return errors.New("crash") }
	sick := start(t, srv.Client(t), tree(crash), leasehold.Options{NodeID: "sick"})
	sick.rec.wait(t, "sick elected", isTerm(leasehold.EventElected, "e", 1))
	healthy := start(t, srv.Client(t), tree(block), leasehold.Options{NodeID: "healthy"})
	escalated, _ := sick.rec.wait(t, "escalation", is(leasehold.EventEscalated, "e"))
	if !errors.Is(escalated.Err, leasehold.ErrEscalated) {
		t.Errorf("escalation error %v", escalated.Err)
	}
	healthy.rec.wait(t, "healthy elected", is(leasehold.EventElected, "e"))
	sick.rec.wait(t, "sick campaigns again", isTerm(leasehold.EventCampaigning, "e", 2))
	// The candidate learns the leader from its first look at the queue.
	deadline := time.Now().Add(waitLimit)
	for snap := sick.rt.Snapshot().Tree; snap.Role != "candidate" || snap.Leader != "healthy"; snap = sick.rt.Snapshot().Tree {
		if time.Now().After(deadline) {
			t.Fatalf("sick node: role %q, leader %q; want candidate under healthy", snap.Role, snap.Leader)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A nested supervisor that exceeds its intensity fails in its parent, which
// restarts it.
func TestNestedEscalationRestartsTheSupervisor(t *testing.T) {
	srv := etcdtest.Start(t)
	r := start(t, srv.Client(t), leasehold.Lease("l", short,
		leasehold.Supervisor("g", leasehold.Intensity(1, 10*time.Second), leasehold.Func("flaky", failOnceEach(2), fastRestart)),
	), leasehold.Options{})
	r.rec.wait(t, "g escalates", is(leasehold.EventEscalated, "l/g"))
	// The lease's group restarted g: flaky runs again under a new g.
	r.rec.waitNth(t, "flaky under the restarted g", 3, is(leasehold.EventServiceStarted, "l/g/flaky"))
	if n := r.rec.count(is(leasehold.EventLeaseGranted, "l")); n != 1 {
		t.Errorf("lease granted %d times; the escalation must stop at g's parent", n)
	}
}

// failOnceEach fails the first n runs, then blocks.
func failOnceEach(n int32) func(context.Context) error {
	var runs atomic.Int32
	return func(ctx context.Context) error {
		if runs.Add(1) <= n {
			return errors.New("fails")
		}
		return block(ctx)
	}
}

// With suture's backoff instead of an intensity, a crash loop pauses the
// group's restarts rather than escalating.
func TestSutureBackoffPausesInsteadOfEscalating(t *testing.T) {
	srv := etcdtest.Start(t)
	r := start(t, srv.Client(t), leasehold.Lease("l", short, leasehold.SutureBackoff(2, time.Minute, 100*time.Millisecond),
		leasehold.Func("crash", func(context.Context) error { return errors.New("crash") }, fastRestart)), leasehold.Options{})
	_, paused := r.rec.wait(t, "the pause", is(leasehold.EventPaused, "l"))
	_, after := r.rec.waitNth(t, "restarts after the pause", 6, is(leasehold.EventServiceStarted, "l/crash"))
	if after < paused {
		t.Error("no restart came after the pause")
	}
	if n := r.rec.count(is(leasehold.EventEscalated, "l")); n != 0 {
		t.Errorf("escalated %d times; suture's backoff never escalates", n)
	}
	if n := r.rec.count(is(leasehold.EventLeaseGranted, "l")); n != 1 {
		t.Errorf("lease granted %d times; want 1", n)
	}
}
