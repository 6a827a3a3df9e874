package supervisor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/internal/evtest"
	"github.com/leasehold/leasehold/leases"
)

// runAs runs an election "e" on /stepdown as node id until the test ends.
func runAs(t *testing.T, srv *etcdtest.Server, id string) (*Runtime, events) {
	t.Helper()
	ev := events{evtest.New[Event]()}
	root := &Spec{Kind: KindElection, Name: "e", Prefix: "/stepdown", Lease: leases.Config{TTL: 2 * time.Second},
		Children: []*Spec{service("s", func(ctx context.Context) error { <-ctx.Done(); return nil })}}
	rt, err := New(srv.Client(t), root, Options{
		NodeID: id, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnEvent: ev.on,
		Overrun: func(o Overrun) { t.Errorf("overrun: %+v", o) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run = %v", id, err)
		}
	})
	return rt, ev
}

func leaderOf(t *testing.T, c *clientv3.Client) (string, int64) {
	t.Helper()
	resp, err := c.Get(context.Background(), "/stepdown/", clientv3.WithFirstCreate()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].CreateRevision
}

// StepDown hands leadership to the named successor past the candidates
// queued ahead of it; stale or misdirected requests change nothing.
func TestStepDownToSuccessor(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()

	a, aev := runAs(t, srv, "a")
	if err := a.StepDown(ctx, "e", StepDownOptions{}); !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoSuccessor) {
		t.Errorf("alone: StepDown = %v; want ErrNotLeader or ErrNoSuccessor", err)
	}
	elected := aev.await(t, EventElected, "e")
	if err := a.StepDown(ctx, "e", StepDownOptions{}); !errors.Is(err, ErrNoSuccessor) {
		t.Errorf("alone: StepDown = %v; want ErrNoSuccessor", err)
	}
	b, bev := runAs(t, srv, "b")
	_, cev := runAs(t, srv, "c")
	bev.await(t, EventCampaigning, "e")
	cev.await(t, EventCampaigning, "e")
	pollKeys(t, c, 3)

	for name, tc := range map[string]struct {
		rt   *Runtime
		path string
		opts StepDownOptions
		want error
	}{
		"not the leader":    {b, "e", StepDownOptions{}, ErrNotLeader},
		"stale token":       {a, "e", StepDownOptions{Token: elected.Token - 1}, ErrNotLeader},
		"unknown successor": {a, "e", StepDownOptions{Successor: "nobody"}, ErrNoSuccessor},
		"not an election":   {a, "e/s", StepDownOptions{}, ErrNoSuchNode},
		"no such path":      {a, "x", StepDownOptions{}, ErrNoSuchNode},
	} {
		if err := tc.rt.StepDown(ctx, tc.path, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: StepDown = %v; want %v", name, err, tc.want)
		}
	}
	if who, token := leaderOf(t, c); who != "a" || token != elected.Token {
		t.Fatalf("after refused requests the leader is %q (token %d); want a (%d)", who, token, elected.Token)
	}

	if err := a.StepDown(ctx, "e", StepDownOptions{Successor: "c", Token: elected.Token}); err != nil {
		t.Fatalf("StepDown to c: %v", err)
	}
	aev.await(t, EventSteppedDown, "e")
	next := cev.await(t, EventElected, "e")
	if next.Token <= elected.Token {
		t.Errorf("c's token %d is not above a's %d", next.Token, elected.Token)
	}
	if who, _ := leaderOf(t, c); who != "c" {
		t.Errorf("leader %q; want c", who)
	}
	for _, e := range bev.All() {
		if e.Kind == EventElected {
			t.Errorf("b was elected although c was named: %+v", e)
		}
	}
	// a campaigns again once c leads.
	pollKeys(t, c, 3)
}

func pollKeys(t *testing.T, c *clientv3.Client, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := c.Get(context.Background(), "/stepdown/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never %d candidates", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A lone leader forced to step down stays out of the race for StayOut,
// then leads again in a new term.
func TestStepDownForcedStaysOut(t *testing.T) {
	srv := etcdtest.Start(t)
	a, aev := runAs(t, srv, "a")
	first := aev.await(t, EventElected, "e")
	if err := a.StepDown(context.Background(), "e", StepDownOptions{Force: true, StayOut: 300 * time.Millisecond}); err != nil {
		t.Fatalf("forced StepDown: %v", err)
	}
	aev.await(t, EventSteppedDown, "e")
	if st := a.Snapshot().Tree.State; st != StateSteppedDown && st != StateAcquiring && st != StateCampaigning && st != StateLeading {
		t.Errorf("state after stepping down: %s", st)
	}
	// The next election comes after the step-down (the cursor is past
	// it), with a larger token.
	again := aev.await(t, EventElected, "e")
	if again.Token <= first.Token {
		t.Errorf("token %d after stepping down; want above %d", again.Token, first.Token)
	}
	if again.Term <= first.Term {
		t.Errorf("terms %d then %d; want a new term", first.Term, again.Term)
	}
}
