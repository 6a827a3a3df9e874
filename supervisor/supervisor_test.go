package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thejerf/suture/v4"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/internal/evtest"
	"github.com/leasehold/leasehold/leases"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	for n, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 50 * time.Millisecond, 40: 50 * time.Millisecond} {
		if got := b.delay(n); got != want {
			t.Errorf("delay(%d) = %s; want %s", n, got, want)
		}
	}
	if d := (Backoff{}).withDefaults(); d.Min != 100*time.Millisecond || d.Max != 10*time.Second {
		t.Errorf("defaults = %+v", d)
	}
}

type serviceFunc func(ctx context.Context) error

func (f serviceFunc) Serve(ctx context.Context) error { return f(ctx) }

func lease(name string, children ...*Spec) *Spec {
	return &Spec{Kind: KindLease, Name: name, Lease: leases.Config{TTL: 2 * time.Second}, Children: children}
}

func service(name string, f serviceFunc) *Spec {
	return &Spec{Kind: KindService, Name: name, Service: f, Backoff: Backoff{Min: time.Millisecond, Max: time.Millisecond}}
}

// events records a runtime's events; await is evtest's Next: the first
// matching event after the last one awaited.
type events struct{ *evtest.Log[Event] }

func (e events) on(ev Event) { e.Add(ev) }

func (e events) await(t *testing.T, kind EventKind, path string) Event {
	t.Helper()
	ev, _ := e.Next(t, fmt.Sprintf("%s on %s", kind, path), func(ev Event) bool { return ev.Kind == kind && ev.Path == path })
	return ev
}

// awaitAny is await without order: any matching event so far or to come.
func (e events) awaitAny(t *testing.T, kind EventKind, path string) Event {
	t.Helper()
	ev, _ := e.First(t, fmt.Sprintf("%s on %s", kind, path), func(ev Event) bool { return ev.Kind == kind && ev.Path == path })
	return ev
}

func run(t *testing.T, srv *etcdtest.Server, root *Spec) (*Runtime, events, func() error) {
	t.Helper()
	ev := events{evtest.New[Event]()}
	rt, err := New(srv.Client(t), root, Options{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: ev.on,
		Overrun: func(o Overrun) { t.Errorf("overrun: %+v", o) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	var result error
	stop := func() error {
		once.Do(func() { cancel(); result = <-done })
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return rt, ev, stop
}

// A panicking service is recorded and restarted, like any failure.
func TestPanicIsRestarted(t *testing.T) {
	srv := etcdtest.Start(t)
	var once sync.Once
	rt, ev, _ := run(t, srv, lease("l", service("p", func(ctx context.Context) error {
		once.Do(func() { panic("kaboom") })
		<-ctx.Done()
		return nil
	})))
	failed := ev.await(t, EventServiceFailed, "l/p")
	if failed.Err == nil || !strings.Contains(failed.Err.Error(), "panic: kaboom") {
		t.Errorf("failure = %v; want the panic", failed.Err)
	}
	ev.await(t, EventServiceStarted, "l/p")
	if s := rt.Snapshot().Tree.Children[0]; s.Restarts != 1 || !strings.Contains(s.LastError, "kaboom") {
		t.Errorf("snapshot = %+v; want one restart after the panic", s)
	}
}

// A service returning an error wrapping ErrDoNotRestart stays down, shown as
// failed, while its siblings and lease go on; one returning ErrDoNotRestart
// itself is done, shown as stopped.
func TestDoNotRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	rt, ev, stop := run(t, srv, lease("l",
		service("once", func(context.Context) error { return fmt.Errorf("bad config: %w", suture.ErrDoNotRestart) }),
		service("done", func(context.Context) error { return suture.ErrDoNotRestart }),
		service("steady", func(ctx context.Context) error { <-ctx.Done(); return nil }),
	))
	ev.awaitAny(t, EventServiceFailed, "l/once")
	ev.awaitAny(t, EventServiceStopped, "l/done")
	ev.awaitAny(t, EventServiceStarted, "l/steady")
	tree := rt.Snapshot().Tree
	if tree.Children[0].State != StateFailed || tree.Children[1].State != StateStopped || tree.State != StateHeld {
		t.Errorf("states: once %q, done %q, lease %q; want failed, stopped, held", tree.Children[0].State, tree.Children[1].State, tree.State)
	}
	if tree.Children[1].LastError != "" || tree.Children[1].Restarts != 0 {
		t.Errorf("done: %+v; want no error and no restart", tree.Children[1])
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// The snapshot's JSON has the field names outside tools rely on.
func TestSnapshotJSON(t *testing.T) {
	srv := etcdtest.Start(t)
	root := &Spec{Kind: KindElection, Name: "e", Prefix: "/snap", Lease: leases.Config{TTL: 2 * time.Second},
		Children: []*Spec{service("s", func(ctx context.Context) error { <-ctx.Done(); return nil })}}
	rt, ev, _ := run(t, srv, root)
	ev.await(t, EventServiceStarted, "e/s")
	raw, err := json.Marshal(rt.Snapshot())
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
	if got.Node != rt.NodeID() || got.At == "" || tr.Kind != "election" || tr.Role != "leader" || tr.Leader != rt.NodeID() ||
		tr.LeaseIDJSON == "" || tr.TTL != 2000 || tr.HeldUntil <= 0 || tr.Term != 1 || tr.Token <= 0 {
		t.Errorf("tree JSON = %s", raw)
	}
	if len(tr.Children) != 1 || tr.Children[0].Kind != "service" || tr.Children[0].State != StateRunning ||
		tr.Children[0].Restarts == nil || tr.Children[0].Since == "" {
		t.Errorf("service JSON = %s", raw)
	}
}

// A TTL below the cluster's minimum ends the run with a clear error before
// anything under the lease starts.
func TestTTLRaisedIsFatal(t *testing.T) {
	srv := etcdtest.Start(t, func(cfg *embed.Config) { cfg.TickMs, cfg.ElectionMs = 100, 2000 })
	started := false
	rt, err := New(srv.Client(t), lease("l", service("s", func(ctx context.Context) error {
		started = true
		<-ctx.Done()
		return nil
	})), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Run returns by itself, with the error.
	done := make(chan error, 1)
	go func() { done <- rt.Run(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not end on a rejected TTL")
	}
	if !errors.Is(err, leases.ErrTTLRaised) {
		t.Fatalf("Run = %v; want ErrTTLRaised", err)
	}
	if started {
		t.Error("a service started under a rejected lease")
	}
}

func TestRunOnlyOnce(t *testing.T) {
	srv := etcdtest.Start(t)
	rt, ev, stop := run(t, srv, lease("l"))
	ev.await(t, EventLeaseGranted, "l")
	if err := rt.Run(context.Background()); !errors.Is(err, ErrAlreadyRun) {
		t.Errorf("second Run = %v; want ErrAlreadyRun", err)
	}
	_ = stop()
}
