package supervisor

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/otp"
)

// The group's teardown on a fake clock: a child past its own Shutdown makes
// the host's ShutdownOverrun fire at exactly the instant teardown asked it to
// stop plus its Shutdown, and a child that returned in time is never
// reported.

func TestAwaitAppliesTheOverrunPolicyAtShutdownOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		j := &journal{}
		release := newGate()
		defer release.open()
		prompt := member(j, "prompt", otp.ChildRules{Shutdown: time.Second}, nil)
		stuck := member(j, "stuck", otp.ChildRules{Shutdown: 2 * time.Second}, func(context.Context, int) error {
			<-release.c
			return nil
		})
		host := newHost(clk, j)
		r := start(t, clk, otp.GroupRules{}, host, prompt, stuck)
		synctest.Wait()
		if prompt.Starts() != 1 || stuck.Starts() != 1 {
			t.Fatalf("starts: prompt %d, stuck %d; want 1 each", prompt.Starts(), stuck.Starts())
		}

		asked := clk.Now()
		r.cancel()
		synctest.Wait() // prompt returned; stuck ignores its context
		if j.index("prompt ended") < 0 || j.index("stuck ended") >= 0 {
			t.Fatalf("after the stop: %q; want prompt ended, stuck still running", j.all())
		}
		clk.Advance(2*time.Second - time.Nanosecond)
		synctest.Wait()
		if o := host.Overruns(); len(o) != 0 {
			t.Fatalf("overruns %v before asked+Shutdown", o)
		}
		clk.Advance(time.Nanosecond)
		synctest.Wait()
		o := host.Overruns()
		if len(o) != 1 || o[0].m != stuck || o[0].at != asked.Add(2*time.Second) {
			t.Fatalf("overruns %+v; want only stuck, at asked+2s = %d", o, asked.Add(2*time.Second))
		}
		release.open()
		if err := r.wait(); err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
		synctest.Wait()
		if ends := stuck.Ends(); len(ends) != 1 || !ends[0].Stopped {
			t.Errorf("stuck's ends %+v; want one, stopped", ends)
		}
	})
}

// Teardown waits for children one after another: by the time it turns to a
// child that returned within its Shutdown, that Shutdown may have passed
// while it waited for an earlier, stuck one. The child returned; it must not
// be reported (the timer and the return are both ready then, and a select
// between them picked either).
func TestAwaitReportsNoChildThatReturnedWhileAnEarlierOneOverran(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake()
		j := &journal{}
		release := newGate()
		defer release.open()
		stuck := member(j, "stuck", otp.ChildRules{Shutdown: 2 * time.Second}, func(context.Context, int) error {
			<-release.c
			return nil
		})
		members := []*fakeMember{stuck}
		for _, name := range []string{"p1", "p2", "p3", "p4", "p5", "p6"} {
			members = append(members, member(j, name, otp.ChildRules{Shutdown: time.Second}, nil))
		}
		host := newHost(clk, j)
		r := start(t, clk, otp.GroupRules{}, host, members...)
		synctest.Wait()
		r.cancel()
		synctest.Wait()
		clk.Advance(2 * time.Second)
		synctest.Wait()
		if o := host.Overruns(); len(o) != 1 || o[0].m != stuck {
			names := make([]string, len(o))
			for i := range o {
				names[i] = o[i].m.Name()
			}
			t.Errorf("overruns of %v; want only stuck", names)
		}
		release.open()
		r.wait()
	})
}
