package supervisor

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leasehold/leasehold/internal/otp"
)

// An Ordered group's one_for_all restart stops the siblings in reverse
// order, then starts them again in declaration order, each once the
// previous is ready again, as at the group's start.
func TestOrderedOneForAllRestartsInOrderOnReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		fail := newGate()
		defer fail.open()
		a := member(j, "a", otp.ChildRules{AwaitReady: true, Backoff: fast}, nil)
		b := member(j, "b", otp.ChildRules{AwaitReady: true, Backoff: fast}, nil)
		c := member(j, "c", otp.ChildRules{Backoff: fast}, func(ctx context.Context, n int) error {
			if n == 1 {
				<-fail.c
				return errBoom
			}
			return untilStopped(ctx, n)
		})
		r := start(t, clk, otp.GroupRules{Ordered: true, Strategy: otp.OneForAll}, newHost(clk, j), a, b, c)
		synctest.Wait()
		r.g.Ready(a)
		synctest.Wait()
		r.g.Ready(b)
		synctest.Wait()
		// c backs off while its siblings start again: leave its backoff out.
		since := func(n int) []string {
			return slices.DeleteFunc(j.all()[n:], func(e string) bool { return e == "c backoff" })
		}
		before := len(j.all())
		fail.open()
		settle(time.Second)
		want := []string{"c ended", "b stopping", "b ended", "a stopping", "a ended", "a started"}
		if got := since(before); !slices.Equal(got, want) {
			t.Fatalf("after c failed: %q; want %q (b waits for a to be ready again)", got, want)
		}
		r.g.Ready(a)
		synctest.Wait()
		want = append(want, "b started")
		if got := since(before); !slices.Equal(got, want) {
			t.Fatalf("after a is ready again: %q; want %q", got, want)
		}
		r.g.Ready(b)
		settle(time.Second)
		want = append(want, "c started")
		if got := since(before); !slices.Equal(got, want) {
			t.Errorf("after b is ready again: %q; want %q", got, want)
		}
	})
}

// A one_for_all restart stops every other child, then starts them again:
// a sibling that stopped promptly waits for one slow to stop.
func TestOneForAllRestartsOnlyOnceEverySiblingStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		fail, slowStop := newGate(), newGate()
		defer fail.open()
		defer slowStop.open()
		slow := member(j, "slow", otp.ChildRules{Backoff: fast}, func(ctx context.Context, n int) error {
			<-ctx.Done()
			if n == 1 {
				<-slowStop.c
			}
			return nil
		})
		prompt := member(j, "prompt", otp.ChildRules{Backoff: fast}, nil)
		failing := member(j, "failing", otp.ChildRules{Backoff: fast}, func(ctx context.Context, n int) error {
			if n == 1 {
				<-fail.c
				return errBoom
			}
			return untilStopped(ctx, n)
		})
		r := start(t, clk, otp.GroupRules{Strategy: otp.OneForAll}, newHost(clk, j), slow, prompt, failing)
		synctest.Wait()
		fail.open()
		settle(time.Second)
		if j.index("prompt ended") < 0 || j.index("slow ended") >= 0 {
			t.Fatalf("journal %q; want prompt stopped, slow still stopping", j.all())
		}
		if n := prompt.Starts(); n != 1 {
			t.Errorf("prompt started %d times while slow was still stopping; want 1", n)
		}
		slowStop.open()
		settle(time.Second)
		if got := [3]int{slow.Starts(), prompt.Starts(), failing.Starts()}; got != [3]int{2, 2, 2} {
			t.Errorf("starts of slow, prompt, failing = %v; want 2 each", got)
		}
		if err := r.stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
