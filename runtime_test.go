package leasehold_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thejerf/suture/v4"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/leases"
)

// next awaits the first event of kind on path after the last one next
// returned (evtest's Next), so a sequence is awaited in order.
func (r *recorder) next(t *testing.T, kind leasehold.EventKind, path string) leasehold.Event {
	t.Helper()
	e, _ := r.log.Next(t, fmt.Sprintf("%s on %s", kind, path), is(kind, path))
	return e
}

// A panicking service is recorded and restarted, like any failure.
func TestPanicIsRestarted(t *testing.T) {
	srv := etcdtest.Start(t)
	var once sync.Once
	r := start(t, srv.Client(t), leasehold.Lease("l", short, leasehold.Func("p", func(ctx context.Context) error {
		once.Do(func() { panic("kaboom") })
		<-ctx.Done()
		return nil
	}, fastRestart)), leasehold.Options{})
	failed := r.rec.next(t, leasehold.EventServiceFailed, "l/p")
	if failed.Err == nil || !strings.Contains(failed.Err.Error(), "panic: kaboom") {
		t.Errorf("failure = %v; want the panic", failed.Err)
	}
	r.rec.next(t, leasehold.EventServiceStarted, "l/p")
	if s := r.rt.Snapshot().Tree.Children[0]; s.Restarts != 1 || !strings.Contains(s.LastError, "kaboom") {
		t.Errorf("snapshot = %+v; want one restart after the panic", s)
	}
}

// A service returning an error wrapping ErrDoNotRestart stays down, shown as
// failed, while its siblings and lease go on; one returning ErrDoNotRestart
// itself is done, shown as stopped.
func TestDoNotRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	r := start(t, srv.Client(t), leasehold.Lease("l", short,
		leasehold.Func("once", func(context.Context) error { return fmt.Errorf("bad config: %w", suture.ErrDoNotRestart) }, fastRestart),
		leasehold.Func("done", func(context.Context) error { return suture.ErrDoNotRestart }, fastRestart),
		leasehold.Func("steady", block, fastRestart),
	), leasehold.Options{})
	r.rec.wait(t, "once failed", is(leasehold.EventServiceFailed, "l/once"))
	r.rec.wait(t, "done stopped", is(leasehold.EventServiceStopped, "l/done"))
	r.rec.wait(t, "steady started", is(leasehold.EventServiceStarted, "l/steady"))
	tree := r.rt.Snapshot().Tree
	if tree.Children[0].State != leasehold.StateFailed || tree.Children[1].State != leasehold.StateStopped || tree.State != leasehold.StateHeld {
		t.Errorf("states: once %q, done %q, lease %q; want failed, stopped, held", tree.Children[0].State, tree.Children[1].State, tree.State)
	}
	if tree.Children[1].LastError != "" || tree.Children[1].Restarts != 0 {
		t.Errorf("done: %+v; want no error and no restart", tree.Children[1])
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// The snapshot's JSON has the field names outside tools rely on.
func TestSnapshotJSON(t *testing.T) {
	srv := etcdtest.Start(t)
	r := start(t, srv.Client(t), leasehold.Election("e", "/snap", short, leasehold.Func("s", block, fastRestart)), leasehold.Options{})
	r.rec.next(t, leasehold.EventServiceStarted, "e/s")
	raw, err := json.Marshal(r.rt.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Node string `json:"node"`
		At   string `json:"at"`
		Tree struct {
			Name, Kind, State, Role, Leader, LeaseID string
			LeaseIDJSON                              string `json:"lease_id"`
			TTL                                      int64  `json:"ttl_ms"`
			HeldUntil                                int64  `json:"held_until_ms"`
			Term                                     int    `json:"term"`
			Token                                    int64  `json:"token"`
			Children                                 []struct {
				Name, Kind, State string
				Restarts          *int    `json:"restarts"`
				LastError         *string `json:"last_error"`
				Since             string  `json:"since"`
			} `json:"children"`
		} `json:"tree"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	tr := got.Tree
	if got.Node != r.rt.NodeID() || got.At == "" || tr.Kind != "election" || tr.Role != "leader" || tr.Leader != r.rt.NodeID() ||
		tr.LeaseIDJSON == "" || tr.TTL != 2000 || tr.HeldUntil <= 0 || tr.Term != 1 || tr.Token <= 0 {
		t.Errorf("tree JSON = %s", raw)
	}
	if len(tr.Children) != 1 || tr.Children[0].Kind != "service" || tr.Children[0].State != leasehold.StateRunning ||
		tr.Children[0].Restarts == nil || tr.Children[0].Since == "" {
		t.Errorf("service JSON = %s", raw)
	}
}

// A TTL below the cluster's minimum ends the run with a clear error before
// anything under the lease starts.
func TestTTLRaisedIsFatal(t *testing.T) {
	// A 100ms tick and a 2s election timeout raise etcd's minimum TTL to 3s.
	srv := etcdtest.Start(t, func(cfg *embed.Config) { cfg.TickMs, cfg.ElectionMs = 100, 2000 })
	var started atomic.Bool
	rt, err := leasehold.New(srv.Client(t), leasehold.Lease("l", short, leasehold.Func("s", func(ctx context.Context) error {
		started.Store(true)
		<-ctx.Done()
		return nil
	}, fastRestart)), leasehold.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// Run returns by itself, with the error.
	done := make(chan error, 1)
	go func() { done <- rt.Run(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(waitLimit):
		t.Fatal("Run did not end on a rejected TTL")
	}
	if !errors.Is(err, leases.ErrTTLRaised) {
		t.Fatalf("Run = %v; want ErrTTLRaised", err)
	}
	if started.Load() {
		t.Error("a service started under a rejected lease")
	}
}

func TestRunOnlyOnce(t *testing.T) {
	srv := etcdtest.Start(t)
	r := start(t, srv.Client(t), leasehold.Lease("l", short), leasehold.Options{})
	r.rec.next(t, leasehold.EventLeaseGranted, "l")
	if err := r.rt.Run(context.Background()); !errors.Is(err, leasehold.ErrAlreadyRun) {
		t.Errorf("second Run = %v; want ErrAlreadyRun", err)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// Shutdowns that add up to exactly the stop budget could never fire their own
// timers (the lease's deadline comes first): New refuses them, before
// anything starts, and accepts them once they leave one Guard for the
// teardown's own latency, the same rule the runtime's timeline follows
// (FenceAt + Guard + Shutdowns <= HeldUntil).
func TestShutdownsMustLeaveOneGuardOfTheStopBudget(t *testing.T) {
	// New needs a client but uses it only in Run: one that reaches nothing
	// will do.
	c, err := etcdtest.NewClient("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tree := func(shutdown time.Duration) *leasehold.Node {
		return leasehold.Lease("l",
			leasehold.TTL(3*time.Second), leasehold.StopBudget(time.Second), leasehold.Guard(100*time.Millisecond),
			leasehold.Func("a", block, leasehold.Shutdown(shutdown/2)),
			leasehold.Supervisor("s", leasehold.Func("b", block, leasehold.Shutdown(shutdown/2))),
		)
	}
	// The supervisor stops first, then the service: the worst case is the sum.
	if _, err := leasehold.New(c, tree(time.Second), leasehold.Options{}); !errors.Is(err, leasehold.ErrInvalidTree) || !strings.Contains(err.Error(), "plus one Guard") {
		t.Errorf("Shutdowns summing to the whole StopBudget: New = %v; want an error naming the Guard", err)
	}
	if _, err := leasehold.New(c, tree(900*time.Millisecond), leasehold.Options{}); err != nil {
		t.Errorf("Shutdowns summing to StopBudget - Guard: New = %v; want nil", err)
	}
}
