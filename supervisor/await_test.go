package supervisor

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/leasehold/leasehold/clock"
)

// The group's await on a fake clock, without etcd: a child past its own
// Shutdown triggers the overrun policy at exactly that instant of the
// runtime's clock, and one that returns in time does not.

func fakeGroup(t *testing.T, clk *clock.Fake, overruns chan Overrun, children ...*Spec) (*Group, []*child) {
	t.Helper()
	r := &Runtime{opts: Options{Clock: clk, Overrun: func(o Overrun) { overruns <- o }}, out: newOutbox(nil)}
	r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	n := r.build(&Spec{Kind: KindSupervisor, Name: "g", Children: children}, nil)
	live, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	g := &Group{n: n, live: live, scope: rootScope}
	g.ctx = context.Background()
	var kids []*child
	for _, cn := range n.children {
		kids = append(kids, newChild(cn, g))
	}
	return g, kids
}

// startRun marks c running, as begin does, without suture.
func startRun(c *child) (context.Context, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithCancelCause(c.base)
	c.mu.running, c.mu.runCancel, c.mu.idle = true, cancel, make(chan struct{})
	c.n.mu.Lock()
	c.n.mu.running++
	c.n.mu.Unlock()
	idle := c.mu.idle
	return ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.n.mu.Lock()
		c.n.mu.running--
		c.n.mu.Unlock()
		c.mu.running = false
		close(idle)
	}
}

func TestAwaitAppliesTheOverrunPolicyAtShutdownOnTheClock(t *testing.T) {
	clk := clock.NewFake()
	overruns := make(chan Overrun, 2)
	g, kids := fakeGroup(t, clk, overruns,
		&Spec{Kind: KindService, Name: "prompt", Shutdown: time.Second},
		&Spec{Kind: KindService, Name: "stuck", Shutdown: 2 * time.Second},
	)
	promptCtx, promptReturn := startRun(kids[0])
	_, stuckReturn := startRun(kids[1])
	go func() { <-promptCtx.Done(); promptReturn() }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.await(kids, func(c *child) <-chan struct{} { return c.halt(errStopped) })
	}()
	// The stuck child's Shutdown timer is armed once await has asked both
	// to stop; advance in steps until the policy fires, which happens at
	// exactly asked + 2s of the fake clock.
	start := clk.Now()
	var o Overrun
	for o.Path == "" {
		select {
		case o = <-overruns:
		case <-time.After(time.Millisecond):
			clk.Advance(100 * time.Millisecond)
		}
		if clk.Now().Sub(start) > time.Minute {
			t.Fatal("no overrun after a minute of fake time")
		}
	}
	if o.Path != "g/stuck" || len(o.Stuck) != 1 || o.Stuck[0] != "g/stuck" || o.Shutdown != 2*time.Second {
		t.Errorf("overrun %+v; want g/stuck past its 2s Shutdown", o)
	}
	if elapsed := clk.Now().Sub(start); elapsed < 2*time.Second {
		t.Errorf("overrun after %s of the runtime's clock; want no earlier than the 2s Shutdown", elapsed)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("await did not go on after the policy returned")
	}
	select {
	case extra := <-overruns:
		t.Errorf("a second overrun %+v: the prompt child returned within its Shutdown", extra)
	default:
	}
	stuckReturn()
}
