package bench

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/version"
)

// Pair holds one measurement for leasehold and for the baseline.
type Pair[T any] struct{ Leasehold, Naive T }

// of is the side's half of p.
func (p *Pair[T]) of(s side) *T {
	if s.name == leaseholdSide.name {
		return &p.Leasehold
	}
	return &p.Naive
}

// Report is everything a run measured.
type Report struct {
	Config  Config
	Machine string // CPU, cores, Go
	Etcd    string // where and which etcd
	Started time.Time
	Took    time.Duration

	Split         Pair[Sample]
	SplitTimings  Pair[[]SplitTiming]
	HandoverLong  Pair[Sample] // the successor waited HandoverWait
	HandoverShort Pair[Sample] // the leader stopped within 100 ms of the successor's key, at random
	HandoverNow   Pair[Sample] // the leader stopped as soon as the successor's key existed
	StepDown      Sample       // StepDown → successor acting
	StepDownStop  Sample       // graceful stop (SIGTERM) → successor acting, measured alongside StepDown
	Floor         Sample
	RoundTrip     Sample // one linearizable read
	Crash         Pair[Sample]
	Teardown      []Pair[Teardown] // Leasehold, and the plain suture floor as Naive
	IdlePerMinute Pair[float64]
	IdleMethods   Pair[[]string]
	Change        []Pair[Ints] // per Config.Candidates
	ChangeMethods []Pair[[]string]
	Overruns      int64
}

// Run runs every measurement and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e, stop, err := startEnv(cfg)
	if err != nil {
		return nil, err
	}
	defer stop()
	r := &Report{Config: cfg, Machine: machine(), Started: time.Now()}
	if r.Etcd, err = e.describe(ctx); err != nil {
		return nil, err
	}
	overruns.Store(0)
	// The steps run in this order, each filling its part of r; the first
	// error ends the run.
	for _, step := range []func(context.Context, *Report) error{
		e.measureIdle,      // 5a
		e.measureSplit,     // 1
		e.measureHandovers, // 2
		e.measureStepDowns, // 2b, and the floor
		e.measureCrashes,   // 3
		e.measureChanges,   // 5b
		e.measureTeardowns, // 4, last: it is the heaviest on memory
	} {
		if err := step(ctx, r); err != nil {
			return nil, err
		}
	}
	r.Overruns = overruns.Load()
	r.Took = time.Since(r.Started)
	return r, nil
}

// sides are the two implementations every paired measurement compares, in
// the order they run.
var sides = []side{leaseholdSide, naiveSide}

// bothSides runs f for each side in turn, so that the sides alternate trial
// by trial and share the machine's state; an error names its side.
func bothSides(f func(s side) error) error {
	for _, s := range sides {
		if err := f(s); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// measureIdle counts the idle etcd cost of both sides at once, each on its
// own client, so that the count takes Idle once rather than twice.
func (e *env) measureIdle(ctx context.Context, r *Report) error {
	cfg := r.Config
	e.logf("idle etcd cost for %s", cfg.Idle)
	idle := make(chan error, 2)
	for _, s := range sides {
		go func() {
			perMin, methods, err := e.idleCost(ctx, s, cfg.Idle)
			*r.IdlePerMinute.of(s), *r.IdleMethods.of(s) = perMin, methods
			if err != nil {
				err = fmt.Errorf("idle cost, %s: %w", s.name, err)
			}
			idle <- err
		}()
	}
	var idleErr error
	for range sides {
		if err := <-idle; err != nil && idleErr == nil {
			idleErr = err
		}
	}
	return idleErr
}

// measureSplit measures the split-brain window under a partition; the
// sides alternate trial by trial.
func (e *env) measureSplit(ctx context.Context, r *Report) error {
	cfg := r.Config
	for i := range cfg.SplitTrials {
		if err := bothSides(func(s side) error {
			st, err := e.splitTrial(ctx, s)
			if err != nil {
				return fmt.Errorf("split-brain trial %d: %w", i+1, err)
			}
			p, pt := r.Split.of(s), r.SplitTimings.of(s)
			*p, *pt = append(*p, st.Window), append(*pt, st)
			e.logf("split-brain %d/%d %s: window %s ms (after the partition: old leader's last act %s ms, successor's first %s ms)",
				i+1, cfg.SplitTrials, s.name, signedMs(st.Window), ms(st.OldLast), ms(st.NewFirst))
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// measureHandovers measures graceful handovers phase by phase: how long
// the leader waits before stopping decides which of etcd's paths the
// successor's watch takes.
func (e *env) measureHandovers(ctx context.Context, r *Report) error {
	cfg := r.Config
	for _, ph := range []struct {
		name string
		wait func() time.Duration
		into *Pair[Sample]
	}{
		{"successor waiting long", func() time.Duration { return cfg.HandoverWait }, &r.HandoverLong},
		{"leader stops within 100 ms", func() time.Duration { return rand.N(100 * time.Millisecond) }, &r.HandoverShort},
		{"leader stops at once", func() time.Duration { return 0 }, &r.HandoverNow},
	} {
		if err := bothSides(func(s side) error {
			got, err := e.handovers(ctx, s, cfg.Handovers, ph.wait)
			if err != nil {
				return fmt.Errorf("handovers (%s): %w", ph.name, err)
			}
			*ph.into.of(s) = got
			e.logf("handovers, %s, %s: p50 %s ms, p99 %s ms, %d over 50 ms", ph.name, s.name, ms(got.Percentile(50)), ms(got.Percentile(99)), got.Above(50*time.Millisecond))
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// measureStepDowns measures leadership moved on purpose next to a graceful
// stop, then the physical floor the handovers are compared with.
func (e *env) measureStepDowns(ctx context.Context, r *Report) error {
	cfg := r.Config
	var err error
	if r.StepDown, r.StepDownStop, err = e.stepDowns(ctx, min(cfg.Handovers, 50), cfg.HandoverWait); err != nil {
		return fmt.Errorf("step-downs: %w", err)
	}
	e.logf("step-down: p50 %s ms, p99 %s ms; graceful stop: p50 %s ms, p99 %s ms",
		ms(r.StepDown.Percentile(50)), ms(r.StepDown.Percentile(99)), ms(r.StepDownStop.Percentile(50)), ms(r.StepDownStop.Percentile(99)))
	if r.Floor, r.RoundTrip, err = e.floor(ctx, cfg.FloorTrials); err != nil {
		return fmt.Errorf("handover floor: %w", err)
	}
	e.logf("handover floor: p50 %s ms; one read: p50 %s ms", ms(r.Floor.Percentile(50)), ms(r.RoundTrip.Percentile(50)))
	return nil
}

// measureCrashes measures failover after a SIGKILLed leader, the sides
// alternating trial by trial.
func (e *env) measureCrashes(ctx context.Context, r *Report) error {
	cfg := r.Config
	for i := range cfg.CrashTrials {
		if err := bothSides(func(s side) error {
			d, err := e.crashTrial(ctx, s)
			if err != nil {
				return fmt.Errorf("crash trial %d: %w", i+1, err)
			}
			p := r.Crash.of(s)
			*p = append(*p, d)
			e.logf("crash failover %d/%d %s: %s ms", i+1, cfg.CrashTrials, s.name, ms(d))
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// measureChanges counts the etcd requests of one leader change for each
// number of waiting candidates, to show whether the cost grows with them.
func (e *env) measureChanges(ctx context.Context, r *Report) error {
	cfg := r.Config
	for _, n := range cfg.Candidates {
		var p Pair[Ints]
		var pm Pair[[]string]
		if err := bothSides(func(s side) error {
			got, methods, err := e.leaderChangeCost(ctx, s, n, cfg.Changes)
			if err != nil {
				return fmt.Errorf("leader change with %d candidates: %w", n, err)
			}
			*p.of(s), *pm.of(s) = got, methods
			e.logf("leader change, %d candidates, %s: %v requests", n, s.name, got)
			return nil
		}); err != nil {
			return err
		}
		r.Change = append(r.Change, p)
		r.ChangeMethods = append(r.ChangeMethods, pm)
	}
	return nil
}

// measureTeardowns tears down subtrees of each size, leasehold against a
// plain suture supervisor: TeardownTrials times each with instant services,
// the sides alternating, keeping the median trial; then once each with slow
// services.
func (e *env) measureTeardowns(ctx context.Context, r *Report) error {
	cfg := r.Config
	for _, n := range cfg.TeardownSizes {
		var lh, su []Teardown
		for range cfg.TeardownTrials {
			for _, m := range []struct {
				impl string
				into *[]Teardown
			}{{"leasehold", &lh}, {"suture", &su}} {
				t, err := e.teardown(ctx, m.impl, n, 0)
				if err != nil {
					return fmt.Errorf("%s teardown of %d services: %w", m.impl, n, err)
				}
				overruns.Add(t.Overruns)
				*m.into = append(*m.into, t)
			}
		}
		p := Pair[Teardown]{Leasehold: medianTeardown(lh), Naive: medianTeardown(su)}
		for _, m := range []struct {
			impl string
			into *Teardown
		}{{"leasehold", &p.Leasehold}, {"suture", &p.Naive}} {
			t, err := e.teardown(ctx, m.impl, n, cfg.SlowStop)
			if err != nil {
				return fmt.Errorf("%s teardown of %d services (stopping in %s): %w", m.impl, n, cfg.SlowStop, err)
			}
			overruns.Add(t.Overruns)
			m.into.SlowTook = t.Took
		}
		r.Teardown = append(r.Teardown, p)
		e.logf("teardown of %d: leasehold %s ms (slow %s ms), suture %s ms (slow %s ms); medians of %d",
			n, ms(p.Leasehold.Took), ms(p.Leasehold.SlowTook), ms(p.Naive.Took), ms(p.Naive.SlowTook), cfg.TeardownTrials)
	}
	return nil
}

// medianTeardown is the trial with the median teardown time (the lower
// middle one of an even count), with its own footprint.
func medianTeardown(ts []Teardown) Teardown {
	s := slices.SortedFunc(slices.Values(ts), func(a, b Teardown) int { return cmp.Compare(a.Took, b.Took) })
	return s[(len(s)-1)/2]
}

// floor measures the physical floor of a handover, and the round trip of
// one linearizable read, n times each.
func (e *env) floor(ctx context.Context, n int) (floor, rtt Sample, err error) {
	c1, err := e.client(nil)
	if err != nil {
		return nil, nil, err
	}
	defer c1.Close()
	c2, err := e.client(nil)
	if err != nil {
		return nil, nil, err
	}
	defer c2.Close()
	for range n {
		d, err := e.floorTrial(ctx, c1, c2)
		if err != nil {
			return nil, nil, err
		}
		floor = append(floor, d)
		start := time.Now()
		if _, err := c2.Get(ctx, e.prefix+"/rtt"); err != nil {
			return nil, nil, err
		}
		rtt = append(rtt, time.Since(start))
	}
	return floor, rtt, nil
}

// describe says which etcd is measured.
func (e *env) describe(ctx context.Context) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := e.obs.Status(sctx, e.endpoints[0])
	if err != nil {
		return "", fmt.Errorf("etcd at %s: %w", e.endpoints[0], err)
	}
	if e.embedded {
		return fmt.Sprintf("etcd %s, embedded single member on loopback with fast settings (TickMs 10, ElectionMs 100, UnsafeNoFsync: no fsync); client %s",
			st.Version, version.Version), nil
	}
	return fmt.Sprintf("etcd %s at %s (partitions through a local proxy to %s); client %s",
		st.Version, strings.Join(e.endpoints, ","), e.endpoints[0], version.Version), nil
}

// machine describes the CPU, cores and Go version.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores (GOMAXPROCS %d), %s %s/%s", cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
