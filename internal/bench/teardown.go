package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thejerf/suture/v4"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/clock"
)

// Teardown is one teardown measurement.
type Teardown struct {
	Services   int
	Slow       time.Duration // each service's time to return once stopped
	Took       time.Duration // stop -> every service returned
	SlowTook   time.Duration // the same when every service takes SlowStop to return
	Goroutines float64       // per service, while running
	HeapBytes  float64       // per service, while running, after GC
	Overruns   int64         // leasehold overruns in the measuring process
}

// footprint is the live goroutines and heap after a GC.
func footprint() (int, uint64) {
	// Twice: the first cycle may leave objects that finalizers or pools
	// release for the second.
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapAlloc
}

func perService(before, after int, hb, ha uint64, n int) (float64, float64) {
	return float64(after-before) / float64(n), (float64(ha) - float64(hb)) / float64(n)
}

// serviceBody blocks until stopped, then takes slow to return.
func serviceBody(started func(), slow time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		started()
		<-ctx.Done()
		if slow > 0 {
			time.Sleep(slow)
		}
		return nil
	}
}

// countdown closes done after n calls of tick.
type countdown struct {
	left atomic.Int64
	done chan struct{}
}

func newCountdown(n int) *countdown {
	c := &countdown{done: make(chan struct{})}
	c.left.Store(int64(n))
	return c
}

func (c *countdown) tick() {
	if c.left.Add(-1) == 0 {
		close(c.done)
	}
}

// teardown measures one teardown in a child process of its own, so that
// neither the embedded etcd nor the rest of the benchmark disturbs its
// goroutine and heap counts. impl is "leasehold" or "suture".
func (e *env) teardown(ctx context.Context, impl string, n int, slow time.Duration) (Teardown, error) {
	child, err := e.startChild("teardown", fmt.Sprintf("%s=%s,%d,%s", childTeardownEnv, impl, n, slow))
	if err != nil {
		return Teardown{}, err
	}
	defer child.kill()
	line, err := child.await(ctx, "RESULT ")
	if err != nil {
		return Teardown{}, err
	}
	var t Teardown
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "RESULT ")), &t); err != nil {
		return Teardown{}, fmt.Errorf("teardown child's result %q: %w", line, err)
	}
	return t, nil
}

// runTeardownChild is the teardown child role: spec is impl,services,slow.
func runTeardownChild(endpoints []string, spec string) int {
	f := strings.Split(spec, ",")
	if len(f) != 3 {
		fmt.Println("ERROR bad teardown spec", spec)
		return 2
	}
	n, err1 := strconv.Atoi(f[1])
	slow, err2 := time.ParseDuration(f[2])
	if err := errors.Join(err1, err2); err != nil {
		fmt.Println("ERROR bad teardown spec", spec, err)
		return 2
	}
	ctx := context.Background()
	var t Teardown
	var err error
	switch f[0] {
	case "leasehold":
		t, err = teardownLeasehold(ctx, endpoints, n, slow)
	case "suture":
		t, err = teardownSuture(ctx, n, slow)
	default:
		err = fmt.Errorf("unknown teardown %q", f[0])
	}
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	t.Overruns = overruns.Load()
	b, _ := json.Marshal(t)
	fmt.Printf("RESULT %s\n", b)
	return 0
}

// teardownLeasehold runs one lease holding n services, revokes the lease
// from a second client, and measures from the lease loss (EventLeaseLost)
// to every service having returned (EventTermStopped).
func teardownLeasehold(ctx context.Context, endpoints []string, n int, slow time.Duration) (Teardown, error) {
	res := Teardown{Services: n, Slow: slow}
	c, err := newClient(endpoints, nil)
	if err != nil {
		return res, err
	}
	defer c.Close()
	revoker, err := newClient(endpoints, nil)
	if err != nil {
		return res, err
	}
	defer revoker.Close()
	// Connect both clients before the baseline footprint is taken.
	for _, cl := range []*clientv3.Client{c, revoker} {
		if _, err := cl.Get(ctx, "leasehold-bench/warm-up"); err != nil {
			return res, err
		}
	}

	g0, h0 := footprint()
	started := newCountdown(n)
	parts := make([]leasehold.Part, 0, n+1)
	parts = append(parts, leasehold.TTL(benchTTL))
	body := serviceBody(started.tick, slow)
	for i := range n {
		parts = append(parts, leasehold.Func(fmt.Sprintf("s%d", i), body))
	}
	var (
		mu             sync.Mutex
		lostAt, stopAt clock.Time
		granted        = make(chan leasehold.Event, 1)
		stopped        = make(chan struct{})
	)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rt, err := leasehold.New(c, leasehold.Lease("teardown", parts...), leasehold.Options{
		Logger: quiet,
		OnEvent: func(ev leasehold.Event) {
			if ev.Path != "teardown" || ev.Term != 1 {
				return
			}
			switch ev.Kind {
			case leasehold.EventLeaseGranted:
				granted <- ev
			case leasehold.EventLeaseLost:
				mu.Lock()
				lostAt = ev.At
				mu.Unlock()
			case leasehold.EventTermStopped:
				mu.Lock()
				stopAt = ev.At
				mu.Unlock()
				// No second term: the run ends here.
				cancel()
				close(stopped)
			}
		},
		Overrun: func(leasehold.Overrun) { overruns.Add(1) },
	})
	if err != nil {
		return res, err
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(rctx) }()
	ran := false
	defer func() {
		if !ran {
			cancel()
			<-done
		}
	}()

	var lease leasehold.Event
	select {
	case lease = <-granted:
	case <-time.After(waitTimeout):
		return res, fmt.Errorf("teardown lease not granted")
	}
	if err := await(ctx, started.done, "every service to start"); err != nil {
		return res, err
	}
	g1, h1 := footprint()
	res.Goroutines, res.HeapBytes = perService(g0, g1, h0, h1, n)

	if _, err := revoker.Revoke(ctx, lease.LeaseID); err != nil {
		return res, fmt.Errorf("revoke the teardown lease: %w", err)
	}
	if err := await(ctx, stopped, "the teardown"); err != nil {
		return res, err
	}
	mu.Lock()
	res.Took = stopAt.Sub(lostAt)
	mu.Unlock()
	ran = true
	if err := <-done; err != nil {
		return res, err
	}
	return res, nil
}

// teardownSuture is the floor: a plain suture supervisor holding the same
// services, cancelled, until its Serve has returned.
func teardownSuture(ctx context.Context, n int, slow time.Duration) (Teardown, error) {
	res := Teardown{Services: n, Slow: slow}
	g0, h0 := footprint()
	started := newCountdown(n)
	sup := suture.New("floor", suture.Spec{EventHook: func(suture.Event) {}})
	body := serviceBody(started.tick, slow)
	for range n {
		sup.Add(sutureFunc(body))
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := sup.ServeBackground(sctx)
	if err := await(ctx, started.done, "every suture service to start"); err != nil {
		return res, err
	}
	g1, h1 := footprint()
	res.Goroutines, res.HeapBytes = perService(g0, g1, h0, h1, n)
	t0 := clock.Boot.Now()
	cancel()
	<-done
	res.Took = clock.Boot.Now().Sub(t0)
	return res, nil
}

type sutureFunc func(ctx context.Context) error

func (f sutureFunc) Serve(ctx context.Context) error { return f(ctx) }
