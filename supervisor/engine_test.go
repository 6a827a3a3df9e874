package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/thejerf/suture/v4"

	"github.com/leasehold/leasehold/internal/otp"
)

// fast is a restart backoff that passes at once in a bubble.
var fast = otp.Backoff{Min: time.Millisecond, Max: time.Millisecond}

var errBoom = errors.New("boom")

// failFirst fails its first run, then runs until stopped.
func failFirst(ctx context.Context, n int) error {
	if n == 1 {
		return errBoom
	}
	return untilStopped(ctx, n)
}

func TestOrderedStartsOneAtATimeOnReadinessAndStopsInReverse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		a := member(j, "a", otp.ChildRules{AwaitReady: true}, nil)
		b := member(j, "b", otp.ChildRules{AwaitReady: true}, nil)
		c := member(j, "c", otp.ChildRules{}, nil)
		r := start(t, clk, otp.GroupRules{Ordered: true}, newHost(clk, j), a, b, c)
		synctest.Wait()
		if got := j.all(); !slices.Equal(got, []string{"a started"}) {
			t.Fatalf("before a is ready: %q; want only a started", got)
		}
		r.g.Ready(b) // not running yet: no effect
		r.g.Ready(a)
		synctest.Wait()
		if got := j.all(); !slices.Equal(got, []string{"a started", "b started"}) {
			t.Fatalf("after a is ready: %q; want a then b started, c waiting for b", got)
		}
		r.g.Ready(b)
		synctest.Wait()
		if got := j.all(); !slices.Equal(got, []string{"a started", "b started", "c started"}) {
			t.Fatalf("after b is ready: %q; want a, b, c started", got)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		want := []string{"a started", "b started", "c started", "group stopping",
			"c stopping", "c ended", "b stopping", "b ended", "a stopping", "a ended"}
		if got := j.all(); !slices.Equal(got, want) {
			t.Errorf("journal %q; want %q", got, want)
		}
	})
}

func TestUnorderedStopsSubtreesBeforeServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		var ms []*fakeMember
		for _, name := range []string{"s1", "t1", "s2", "t2"} {
			m := member(j, name, otp.ChildRules{}, nil)
			m.subtree = strings.HasPrefix(name, "t")
			ms = append(ms, m)
		}
		r := start(t, clk, otp.GroupRules{}, newHost(clk, j), ms...)
		synctest.Wait()
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		got := j.all()
		lastSubtree := max(slices.Index(got, "t1 ended"), slices.Index(got, "t2 ended"))
		for _, s := range []string{"s1 stopping", "s2 stopping"} {
			if i := slices.Index(got, s); i < lastSubtree || lastSubtree < 0 {
				t.Errorf("journal %q: %s before both subtrees ended", got, s)
			}
		}
	})
}

func TestStrategiesRestartTheirSiblings(t *testing.T) {
	for _, tc := range []struct {
		strategy otp.Strategy
		runs     [3]int // of a, b (fails once), c
	}{
		{otp.OneForOne, [3]int{1, 2, 1}},
		{"", [3]int{1, 2, 1}},
		{otp.OneForAll, [3]int{2, 2, 2}},
		{otp.RestForOne, [3]int{1, 2, 2}},
	} {
		t.Run(string(tc.strategy.OrDefault())+fmt.Sprintf("/%q", tc.strategy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk, j := newBubbleClock(), &journal{}
				a := member(j, "a", otp.ChildRules{Backoff: fast}, nil)
				fail := make(chan struct{})
				b := member(j, "b", otp.ChildRules{Backoff: fast}, func(ctx context.Context, n int) error {
					if n == 1 {
						<-fail
						return errBoom
					}
					return untilStopped(ctx, n)
				})
				c := member(j, "c", otp.ChildRules{Backoff: fast}, nil)
				r := start(t, clk, otp.GroupRules{Strategy: tc.strategy}, newHost(clk, j), a, b, c)
				synctest.Wait() // all three run
				close(fail)
				settle(time.Second)
				got := [3]int{a.Runs(), b.Runs(), c.Runs()}
				if got != tc.runs {
					t.Errorf("runs of a, b, c = %v; want %v", got, tc.runs)
				}
				// A sibling's restart is a stop, not a failure: only b counts.
				if n := r.g.IntensityUsed(); n != 1 {
					t.Errorf("IntensityUsed = %d; want 1 (b's failure)", n)
				}
				for _, m := range []*fakeMember{a, c} {
					if ends := m.Ends(); len(ends) > 0 && (!ends[0].Stopped || !errors.Is(ends[0].Cause, errGroupRestart)) {
						t.Errorf("%s's first end %+v; want stopped for a group restart", m.name, ends[0])
					}
				}
				if err := r.stop(); err != nil {
					t.Errorf("Run = %v", err)
				}
			})
		})
	}
}

func TestIntensityExceededEscalates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		failing := member(j, "failing", otp.ChildRules{Backoff: fast}, func(context.Context, int) error { return errBoom })
		sib := member(j, "sib", otp.ChildRules{}, nil)
		host := newHost(clk, j)
		r := start(t, clk, otp.GroupRules{Intensity: otp.Intensity{MaxRestarts: 2, Period: time.Minute}}, host, failing, sib)
		err := r.wait() // no stop: the group ends by itself
		if !errors.Is(err, otp.ErrEscalated) {
			t.Fatalf("Run = %v; want an error wrapping otp.ErrEscalated", err)
		}
		// Two restarts are allowed; the third failure escalates.
		if n := failing.Runs(); n != 3 {
			t.Errorf("failing ran %d times; want 3", n)
		}
		if esc := host.Escalations(); len(esc) != 1 || !errors.Is(esc[0], otp.ErrEscalated) {
			t.Errorf("Host.Escalated calls %v; want one wrapping otp.ErrEscalated", esc)
		}
		if ends := sib.Ends(); len(ends) != 1 || !ends[0].Stopped || !errors.Is(ends[0].Cause, otp.ErrEscalated) {
			t.Errorf("sibling's ends %+v; want one, stopped by the escalation", ends)
		}
		r.cancel()
	})
}

func TestFailuresSpreadBeyondThePeriodDoNotEscalate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		sixth := make(chan struct{})
		slow := member(j, "slow", otp.ChildRules{Backoff: fast}, func(ctx context.Context, n int) error {
			if n == 6 {
				close(sixth)
				return untilStopped(ctx, n)
			}
			select {
			case <-time.After(time.Minute + time.Second):
				return errBoom
			case <-ctx.Done():
				return nil
			}
		})
		host := newHost(clk, j)
		r := start(t, clk, otp.GroupRules{Intensity: otp.Intensity{MaxRestarts: 1, Period: time.Minute}}, host, slow)
		select {
		case <-sixth:
		case <-r.ended:
			t.Fatalf("Run = %v before the sixth run; want no escalation", r.err)
		}
		if err := r.stop(); err != nil {
			t.Errorf("Run = %v; want nil: one failure a minute never exceeds 1 restart a minute", err)
		}
		if esc := host.Escalations(); len(esc) != 0 {
			t.Errorf("Host.Escalated calls %v; want none", esc)
		}
	})
}

func TestRestartTypes(t *testing.T) {
	for _, tc := range []struct {
		restart  otp.RestartType
		err      error
		runs     int
		finished []error // Finished's calls, nil: not finished
	}{
		{otp.Temporary, errBoom, 1, []error{errBoom}},
		{otp.Temporary, nil, 1, []error{nil}},
		{otp.Transient, nil, 1, []error{nil}},
		{otp.Transient, errBoom, 2, nil},
		{otp.Permanent, nil, 2, nil},
		{otp.Permanent, errBoom, 2, nil},
		{otp.Permanent, suture.ErrDoNotRestart, 1, []error{nil}},
	} {
		t.Run(fmt.Sprintf("%s/%v", tc.restart, tc.err), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk, j := newBubbleClock(), &journal{}
				m := member(j, "m", otp.ChildRules{Restart: tc.restart, Backoff: fast}, func(ctx context.Context, n int) error {
					if n == 1 {
						return tc.err
					}
					return untilStopped(ctx, n)
				})
				r := start(t, clk, otp.GroupRules{}, newHost(clk, j), m)
				settle(time.Second)
				if n := m.Runs(); n != tc.runs {
					t.Errorf("runs = %d; want %d", n, tc.runs)
				}
				if got := m.Finishes(); !slices.EqualFunc(got, tc.finished, func(a, b error) bool { return errors.Is(a, b) }) {
					t.Errorf("Finished calls %v; want %v", got, tc.finished)
				}
				if ends := m.Ends(); len(ends) == 0 || ends[0].Restart != (tc.runs == 2) {
					t.Errorf("ends %+v; want the first with Restart %v", ends, tc.runs == 2)
				}
				if err := r.stop(); err != nil {
					t.Errorf("Run = %v", err)
				}
			})
		})
	}
}

func TestNoStartOnceTheHostForbidsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		fail := make(chan struct{})
		m := member(j, "m", otp.ChildRules{Backoff: fast}, func(ctx context.Context, n int) error {
			select {
			case <-fail:
				return errBoom
			case <-ctx.Done():
				return nil
			}
		})
		other := member(j, "other", otp.ChildRules{}, nil)
		host := newHost(clk, j)
		r := start(t, clk, otp.GroupRules{}, host, m, other)
		synctest.Wait()
		host.forbid()
		close(fail)
		settle(time.Second) // well past m's backoff
		if n := m.Starts(); n != 1 {
			t.Errorf("m started %d times; want 1: the host forbade its restart", n)
		}
		if j.index("m backoff") < 0 {
			t.Errorf("journal %q: m never backed off to restart", j.all())
		}
		if err := r.stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
		if n := other.Starts(); n != 1 {
			t.Errorf("other started %d times; want 1", n)
		}
	})
}

func TestAStoppedGroupStartsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		a := member(j, "a", otp.ChildRules{}, nil)
		b := member(j, "b", otp.ChildRules{}, nil)
		ms := []Member{a, b}
		g := NewChildren(Config{Name: "g", Rules: &otp.GroupRules{}, Clock: clk, Log: discard, Values: context.Background()}, newHost(clk, j), ms)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := g.Run(ctx, nil); err != nil {
			t.Errorf("Run = %v", err)
		}
		synctest.Wait()
		if got := j.all(); len(got) != 0 {
			t.Errorf("a group stopped before it ran: %q; want nothing started", got)
		}
	})
}

// Between the group's stop and its teardown halting each child, a child
// whose backoff ends (every wait ends when the group stops) must not start
// again: the group checks its own stop before the host's permission.
func TestNoRestartOnceTheGroupStoppedBeforeTeardownHaltsTheChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		m := member(j, "m", otp.ChildRules{Backoff: otp.Backoff{Min: time.Hour, Max: time.Hour}}, failFirst)
		host := newHost(clk, j)
		host.stopGate = make(chan struct{})
		r := start(t, clk, otp.GroupRules{}, host, m)
		synctest.Wait()
		if j.index("m backoff") < 0 {
			t.Fatalf("journal %q; want m backing off", j.all())
		}
		r.cancel()
		synctest.Wait() // the group is stopped, teardown held at the gate
		if j.index("group stopping") < 0 {
			t.Fatalf("journal %q; want the group stopping", j.all())
		}
		close(host.stopGate)
		if err := r.wait(); err != nil {
			t.Errorf("Run = %v", err)
		}
		if n := m.Starts(); n != 1 {
			t.Errorf("m started %d times; want 1: its group stopped during its backoff", n)
		}
	})
}

func TestRemoveTracksAMemberUntilItReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		host := newHost(clk, j)
		r := start(t, clk, otp.GroupRules{}, host, member(j, "a", otp.ChildRules{}, nil))
		synctest.Wait()

		if err := r.g.Add(member(j, "a", otp.ChildRules{}, nil)); !errors.Is(err, ErrDuplicate) {
			t.Errorf("Add of a declared name = %v; want ErrDuplicate", err)
		}
		if err := r.g.Remove(context.Background(), "nope"); !errors.Is(err, ErrUnknown) {
			t.Errorf("Remove of an unknown name = %v; want ErrUnknown", err)
		}
		// A prompt member: Remove returns once it has, and it is gone.
		prompt := member(j, "prompt", otp.ChildRules{}, nil)
		if err := r.g.Add(prompt); err != nil {
			t.Fatal(err)
		}
		if err := r.g.Add(member(j, "prompt", otp.ChildRules{}, nil)); !errors.Is(err, ErrDuplicate) {
			t.Errorf("Add of an added name = %v; want ErrDuplicate", err)
		}
		synctest.Wait()
		if err := r.g.Remove(context.Background(), "prompt"); err != nil {
			t.Fatalf("Remove = %v", err)
		}
		synctest.Wait()
		if names := r.g.Names(); len(names) != 0 {
			t.Errorf("Names = %v after removing prompt; want none", names)
		}
		if rm := host.Removals(); len(rm) != 1 || rm[0] != prompt {
			t.Errorf("Host.Removed calls %v; want prompt once", rm)
		}
		if ends := prompt.Ends(); prompt.Starts() != 1 || len(ends) != 1 || !errors.Is(ends[0].Cause, errRemoved) {
			t.Errorf("prompt: %d starts, ends %+v; want one run stopped by the removal", prompt.Starts(), ends)
		}

		// A member that ignores its context: Remove gives up, the member
		// stays tracked until its run returns.
		release := newGate()
		defer release.open()
		stuck := member(j, "stuck", otp.ChildRules{}, func(context.Context, int) error { <-release.c; return nil })
		if err := r.g.Add(stuck); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := r.g.Remove(ctx, "stuck")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Remove of a member ignoring its context = %v; want the deadline", err)
		}
		if names := r.g.Names(); !slices.Equal(names, []string{"stuck"}) {
			t.Errorf("Names = %v; want stuck still tracked", names)
		}
		r.cancel()
		synctest.Wait()
		if r.returned() {
			t.Error("Run returned while a removed member still runs")
		}
		if err := r.g.Add(member(j, "late", otp.ChildRules{}, nil)); !errors.Is(err, ErrStopping) {
			t.Errorf("Add during teardown = %v; want ErrStopping", err)
		}
		if rm := host.Removals(); len(rm) != 1 {
			t.Errorf("Host.Removed calls %v before stuck returned; want prompt only", rm)
		}
		release.open()
		if err := r.wait(); err != nil {
			t.Errorf("Run = %v", err)
		}
		synctest.Wait()
		if rm := host.Removals(); len(rm) != 2 || rm[1] != stuck {
			t.Errorf("Host.Removed calls %v; want prompt, then stuck once it returned", rm)
		}
		if stuck.Starts() != 1 {
			t.Errorf("stuck started %d times; want 1", stuck.Starts())
		}
	})
}

func TestAPanicIsAFailureAndRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		m := member(j, "m", otp.ChildRules{Backoff: fast}, func(ctx context.Context, n int) error {
			if n == 1 {
				panic("kaboom")
			}
			return untilStopped(ctx, n)
		})
		r := start(t, clk, otp.GroupRules{}, newHost(clk, j), m)
		settle(time.Second)
		ends := m.Ends()
		if len(ends) != 1 || ends[0].Stopped || ends[0].Err == nil || !strings.Contains(ends[0].Err.Error(), "panic: kaboom") || !ends[0].Restart {
			t.Errorf("ends %+v; want one failure naming the panic, to be restarted", ends)
		}
		if n := m.Starts(); n != 2 {
			t.Errorf("started %d times; want 2", n)
		}
		if err := r.stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// With suture's rule a crash loop pauses the whole group past the threshold
// instead of escalating, however many restarts the intensity would allow.
func TestSutureBackoffPausesInsteadOfEscalating(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		seventh := newGate()
		defer seventh.open()
		m := member(j, "m", otp.ChildRules{Backoff: fast}, func(ctx context.Context, n int) error {
			if n == 7 {
				seventh.open()
				return untilStopped(ctx, n)
			}
			return errBoom
		})
		host := newHost(clk, j)
		rules := otp.GroupRules{
			Intensity: otp.Intensity{MaxRestarts: 1, Period: time.Hour},
			Suture:    &otp.SutureBackoff{Threshold: 2, Decay: time.Hour, Backoff: time.Minute},
		}
		r := start(t, clk, rules, host, m)
		select {
		case <-seventh.c:
		case <-r.ended:
			t.Fatalf("Run = %v before the seventh run; want no escalation", r.err)
		}
		if err := r.stop(); err != nil {
			t.Errorf("Run = %v", err)
		}
		if p := host.Pauses(); !slices.Equal(p, []time.Duration{time.Minute, time.Minute}) {
			t.Errorf("Host.Paused calls %v; want 1m twice (after the 3rd and the 6th failure)", p)
		}
		at := m.StartedAt()
		for i := 1; i < len(at); i++ {
			gap := at[i].Sub(at[i-1])
			if paused := i == 3 || i == 6; paused != (gap >= time.Minute) {
				t.Errorf("start %d came %s after the previous; want the pause only before starts 4 and 7", i+1, gap)
			}
		}
		if len(host.Escalations()) != 0 {
			t.Errorf("Host.Escalated called: %v", host.Escalations())
		}
	})
}

// Regression: a Remove whose member had already returned, racing the
// group's stop, could leave suture's loop blocked for good on a
// notification that RemoveAndWait had stopped waiting for (it gave up when
// suture's context ended), so the group's Run never returned. Removal no
// longer calls into suture: a member done for the term returns to suture,
// which lets go of it by itself.
func TestRemoveRacingTheStopNeverHangsTheGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk, j := newBubbleClock(), &journal{}
		for i := range 5000 {
			host := newHost(clk, j)
			r := start(t, clk, otp.GroupRules{}, host)
			// As a runtime does while any of its services runs (and Remove
			// is called by one), the host has work in flight: its Go may
			// be called while the group stops.
			inFlight := make(chan struct{})
			host.Go(func() { <-inFlight })
			synctest.Wait() // running: Add needs suture started
			if err := r.g.Add(member(j, "d", otp.ChildRules{}, nil)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if i%2 == 0 {
				go func() { _ = r.g.Remove(context.Background(), "d") }()
				r.cancel()
			} else {
				go r.cancel()
				_ = r.g.Remove(context.Background(), "d")
			}
			synctest.Wait()
			if !r.returned() {
				t.Fatalf("iteration %d: the group's Run did not return after a Remove raced its stop", i)
			}
			close(inFlight)
		}
	})
}
