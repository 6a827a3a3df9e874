package clock

import (
	"math"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// long bounds waits for things that must happen; only a broken
// implementation (or a wildly overloaded machine) gets near it.
const long = 10 * time.Second

func TestTimeArithmetic(t *testing.T) {
	a := Time(100)
	if got := a.Add(50); got != 150 {
		t.Errorf("Add = %d, want 150", got)
	}
	if got := a.Add(-150); got != -50 {
		t.Errorf("Add negative = %d, want -50", got)
	}
	if got := Time(150).Sub(a); got != 50 {
		t.Errorf("Sub = %v, want 50ns", got)
	}
	if got := a.Sub(150); got != -50 {
		t.Errorf("Sub = %v, want -50ns", got)
	}
	if !a.Before(101) || a.Before(100) || a.Before(99) {
		t.Error("Before wrong")
	}
	if !a.After(99) || a.After(100) || a.After(101) {
		t.Error("After wrong")
	}
	if !Time(0).IsZero() || a.IsZero() {
		t.Error("IsZero wrong")
	}

	// Saturation rather than wrap-around.
	if got := Time(math.MaxInt64 - 1).Add(time.Hour); got != math.MaxInt64 {
		t.Errorf("Add overflow = %d, want MaxInt64", got)
	}
	if got := Time(math.MinInt64 + 1).Add(-time.Hour); got != math.MinInt64 {
		t.Errorf("Add underflow = %d, want MinInt64", got)
	}
	if got := Time(math.MaxInt64).Sub(-1); got != math.MaxInt64 {
		t.Errorf("Sub overflow = %v, want MaxInt64", got)
	}
	if got := Time(math.MinInt64).Sub(1); got != math.MinInt64 {
		t.Errorf("Sub underflow = %v, want MinInt64", got)
	}
}

func TestBootNowMonotonic(t *testing.T) {
	prev := Boot.Now()
	if prev.IsZero() {
		t.Fatal("Boot.Now() is zero")
	}
	for range 10000 {
		now := Boot.Now()
		if now < prev {
			t.Fatalf("Boot.Now() went backwards: %d after %d", now, prev)
		}
		prev = now
	}
}

func TestBootNowTracksMonotonic(t *testing.T) {
	// The Boot readings bracket the monotonic ones, so without a suspend
	// in between the Boot delta is at least the monotonic delta.
	b0 := Boot.Now()
	m0 := time.Now()
	time.Sleep(20 * time.Millisecond)
	md := time.Since(m0)
	bd := Boot.Now().Sub(b0)
	if bd < md-time.Millisecond {
		t.Errorf("Boot advanced %v, less than monotonic %v", bd, md)
	}
	if bd >= long {
		t.Errorf("Boot advanced %v over a 20ms sleep", bd)
	}
}

func TestWall(t *testing.T) {
	d := time.Until(Wall(Boot, Boot.Now()))
	if d < -time.Second || d > time.Second {
		t.Errorf("Wall(Boot, Boot.Now()) is %v from time.Now()", d)
	}
	f := NewFake()
	d = time.Until(Wall(f, f.Now().Add(time.Hour)))
	if d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Errorf("Wall(f, f.Now()+1h) is %v from time.Now(), want about 1h", d)
	}
}

// timerImpls are the real-time Timer implementations: Boot's (a timerfd on
// Linux) and the time.Timer one, which on Linux is only the fallback and
// would otherwise go untested.
var timerImpls = []struct {
	name string
	new  func(at Time) Timer
}{
	{"Boot", Boot.NewTimer},
	{"goTimer", func(at Time) Timer { return newGoTimer(Boot.Now, at) }},
}

// receive waits for tm to fire and checks that Boot has reached target by
// then: a fire from a superseded arming would show up as an early fire.
func receive(t *testing.T, tm Timer, target Time) {
	t.Helper()
	select {
	case <-tm.C():
		if now := Boot.Now(); now < target {
			t.Fatalf("fired %v before target", target.Sub(now))
		}
	case <-time.After(long):
		t.Fatalf("no fire within %v", long)
	}
}

// waitPending waits until a fire is buffered in tm's channel without
// receiving it.
func waitPending(t *testing.T, tm Timer) {
	t.Helper()
	deadline := time.Now().Add(long)
	for len(tm.C()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no fire within %v", long)
		}
		time.Sleep(time.Millisecond)
	}
}

// assertQuiet checks that nothing arrives on tm for a while. Use it only
// where a correct timer never fires (target far away, or stopped), so it
// cannot flake.
func assertQuiet(t *testing.T, tm Timer) {
	t.Helper()
	select {
	case <-tm.C():
		t.Fatal("unexpected fire")
	case <-time.After(30 * time.Millisecond):
	}
}

func TestTimer(t *testing.T) {
	for _, impl := range timerImpls {
		t.Run(impl.name, func(t *testing.T) {
			t.Run("Fires", func(t *testing.T) {
				target := Boot.Now().Add(20 * time.Millisecond)
				tm := impl.new(target)
				defer tm.Stop()
				receive(t, tm, target)
				// Exactly one value per arming.
				assertQuiet(t, tm)
			})

			t.Run("Past", func(t *testing.T) {
				for _, at := range []Time{Boot.Now(), Boot.Now().Add(-time.Second), 1, 0, -1, math.MinInt64} {
					tm := impl.new(at)
					receive(t, tm, at)
					tm.Stop()
				}
			})

			t.Run("FarFuture", func(t *testing.T) {
				tm := impl.new(math.MaxInt64)
				defer tm.Stop()
				assertQuiet(t, tm)
			})

			t.Run("ResetLaterAfterFire", func(t *testing.T) {
				tm := impl.new(Boot.Now())
				defer tm.Stop()
				receive(t, tm, 0)
				target := Boot.Now().Add(20 * time.Millisecond)
				tm.Reset(target)
				receive(t, tm, target)
			})

			t.Run("ResetDiscardsPending", func(t *testing.T) {
				tm := impl.new(Boot.Now())
				defer tm.Stop()
				waitPending(t, tm)
				target := Boot.Now().Add(20 * time.Millisecond)
				tm.Reset(target)
				if len(tm.C()) != 0 {
					t.Fatal("stale fire still pending after Reset")
				}
				receive(t, tm, target)
			})

			t.Run("ResetFarDiscardsInFlight", func(t *testing.T) {
				// Reset right after arming for the past races the
				// in-flight expiry with Reset; it must never leak
				// through.
				tm := impl.new(math.MaxInt64)
				defer tm.Stop()
				for range 100 {
					tm.Reset(Boot.Now())
					tm.Reset(math.MaxInt64)
				}
				assertQuiet(t, tm)
			})

			t.Run("ResetRace", func(t *testing.T) {
				tm := impl.new(math.MaxInt64)
				defer tm.Stop()
				for range 50 {
					tm.Reset(Boot.Now())
					target := Boot.Now().Add(time.Millisecond)
					tm.Reset(target)
					receive(t, tm, target)
				}
			})

			t.Run("ResetEarlier", func(t *testing.T) {
				tm := impl.new(Boot.Now().Add(time.Hour))
				defer tm.Stop()
				target := Boot.Now().Add(10 * time.Millisecond)
				tm.Reset(target)
				receive(t, tm, target)
			})

			t.Run("Stop", func(t *testing.T) {
				tm := impl.new(Boot.Now())
				waitPending(t, tm)
				tm.Stop()
				if len(tm.C()) != 0 {
					t.Fatal("fire still pending after Stop")
				}
				tm.Stop() // idempotent
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(tm.Stop)
				}
				wg.Wait()
				tm.Reset(Boot.Now()) // no-op after Stop
				assertQuiet(t, tm)
				goleak.VerifyNone(t)
			})

			t.Run("StopWhileWaiting", func(t *testing.T) {
				tm := impl.new(Boot.Now().Add(time.Hour))
				tm.Stop()
				goleak.VerifyNone(t)
			})

			t.Run("Concurrent", func(t *testing.T) {
				tm := impl.new(math.MaxInt64)
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						for range 100 {
							tm.Reset(Boot.Now().Add(time.Microsecond))
						}
					})
				}
				wg.Go(func() {
					for range 100 {
						select {
						case <-tm.C():
						default:
						}
					}
				})
				wg.Wait()
				tm.Stop()
				goleak.VerifyNone(t)
			})
		})
	}
}

func TestFake(t *testing.T) {
	f := NewFake()
	start := f.Now()
	if start.IsZero() {
		t.Fatal("NewFake().Now() is zero")
	}

	t1 := f.NewTimer(start.Add(time.Second))
	t2 := f.NewTimer(start.Add(2 * time.Second))
	defer t1.Stop()
	defer t2.Stop()

	f.Advance(999 * time.Millisecond)
	if len(t1.C()) != 0 || len(t2.C()) != 0 {
		t.Fatal("timer fired before its instant")
	}
	f.Advance(time.Millisecond)
	if len(t1.C()) != 1 {
		t.Fatal("t1 did not fire at its instant")
	}
	if len(t2.C()) != 0 {
		t.Fatal("t2 fired early")
	}
	<-t1.C()

	// Fires once per arming, even when time moves on.
	f.Advance(500 * time.Millisecond)
	if len(t1.C()) != 0 {
		t.Fatal("t1 fired twice")
	}

	// Advancing past several instants fires all of them.
	f.Advance(time.Hour)
	if len(t2.C()) != 1 {
		t.Fatal("t2 did not fire")
	}
	if got, want := f.Now(), start.Add(time.Hour+1500*time.Millisecond); got != want {
		t.Fatalf("Now = %d, want %d", got, want)
	}

	// A past instant fires before NewTimer returns.
	t3 := f.NewTimer(start)
	defer t3.Stop()
	if len(t3.C()) != 1 {
		t.Fatal("timer for a past instant did not fire at once")
	}
}

func TestFakeReset(t *testing.T) {
	f := NewFake()
	tm := f.NewTimer(f.Now().Add(time.Second))
	defer tm.Stop()

	// Later.
	tm.Reset(f.Now().Add(2 * time.Second))
	f.Advance(time.Second)
	if len(tm.C()) != 0 {
		t.Fatal("fired at the superseded instant")
	}
	f.Advance(time.Second)
	if len(tm.C()) != 1 {
		t.Fatal("did not fire at the new instant")
	}

	// Reset discards the pending fire.
	tm.Reset(f.Now().Add(time.Second))
	if len(tm.C()) != 0 {
		t.Fatal("stale fire pending after Reset")
	}

	// Earlier.
	tm.Reset(f.Now().Add(time.Hour))
	tm.Reset(f.Now().Add(time.Millisecond))
	f.Advance(time.Millisecond)
	if len(tm.C()) != 1 {
		t.Fatal("did not fire after Reset to earlier")
	}
	<-tm.C()

	// To the past: fires at once.
	tm.Reset(f.Now().Add(-time.Second))
	if len(tm.C()) != 1 {
		t.Fatal("Reset to the past did not fire at once")
	}
}

func TestFakeStop(t *testing.T) {
	f := NewFake()
	tm := f.NewTimer(f.Now())
	tm2 := f.NewTimer(f.Now().Add(time.Second))
	tm.Stop()
	tm2.Stop()
	tm.Stop()
	if len(tm.C()) != 0 {
		t.Fatal("fire pending after Stop")
	}
	tm.Reset(f.Now())
	tm2.Reset(f.Now())
	f.Advance(time.Hour)
	if len(tm.C()) != 0 || len(tm2.C()) != 0 {
		t.Fatal("stopped timer fired")
	}
	if len(f.timers) != 0 {
		t.Fatalf("%d stopped timers still registered", len(f.timers))
	}
}

func TestFakeSet(t *testing.T) {
	f := NewFake()
	start := f.Now()
	tm := f.NewTimer(start.Add(time.Minute))
	defer tm.Stop()
	f.Set(start.Add(-time.Minute))
	if f.Now() != start.Add(-time.Minute) {
		t.Fatal("Set did not move the clock back")
	}
	f.Set(start.Add(time.Minute - 1))
	if len(tm.C()) != 0 {
		t.Fatal("fired early")
	}
	f.Set(start.Add(time.Minute))
	if len(tm.C()) != 1 {
		t.Fatal("Set did not fire a due timer")
	}
}

func TestFakeAdvanceNegativePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Advance(-1) did not panic")
		}
	}()
	NewFake().Advance(-1)
}

func TestFakeZeroValue(t *testing.T) {
	var f Fake
	tm := f.NewTimer(f.Now().Add(time.Second))
	defer tm.Stop()
	f.Advance(time.Second)
	if len(tm.C()) != 1 {
		t.Fatal("zero Fake timer did not fire")
	}
}

func TestFakeConcurrent(t *testing.T) {
	f := NewFake()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			tm := f.NewTimer(f.Now().Add(time.Millisecond))
			defer tm.Stop()
			for range 200 {
				target := f.Now().Add(time.Millisecond)
				tm.Reset(target)
				select {
				case <-tm.C():
					if f.Now() < target {
						t.Error("fired before target")
						return
					}
				default:
				}
			}
		})
	}
	wg.Go(func() {
		for range 1000 {
			f.Advance(time.Millisecond)
		}
	})
	wg.Wait()
}
