package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/internal/etcdtest"
)

// Config sizes a benchmark run. DefaultConfig is the published run;
// QuickConfig is CI's smoke run.
type Config struct {
	// Endpoints of the etcd to measure against; empty starts an embedded
	// single-member etcd on loopback.
	Endpoints []string
	// SplitTrials is the number of partition trials per side.
	SplitTrials int
	// Handovers is the number of graceful handovers per phase and side.
	Handovers int
	// HandoverWait is how long the successor waits before the leader stops
	// in the first handover phase; it must exceed etcd's 100 ms catch-up
	// loop for unsynced watchers.
	HandoverWait time.Duration
	// FloorTrials is the number of raw revoke-watch-read measurements.
	FloorTrials int
	// CrashTrials is the number of SIGKILL trials per side.
	CrashTrials int
	// TeardownSizes are the numbers of services in the teardown runs.
	TeardownSizes []int
	// TeardownTrials is how many times each side tears down each size (the
	// sides alternating); the table shows the median trial. One teardown of
	// thousands of services varies by half between runs on a small machine.
	TeardownTrials int
	// SlowStop is how long each service of the slow teardown variant takes
	// to return once asked to stop.
	SlowStop time.Duration
	// Idle is how long the idle etcd cost is counted.
	Idle time.Duration
	// Candidates are the numbers of waiting candidates in the leader-change
	// cost runs; Changes leader changes are counted for each.
	Candidates []int
	Changes    int
	// Quick marks a smoke run in the output.
	Quick bool
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
}

// DefaultConfig is the run the README publishes.
func DefaultConfig() Config {
	return Config{
		SplitTrials:    20,
		Handovers:      200,
		HandoverWait:   200 * time.Millisecond,
		FloorTrials:    100,
		CrashTrials:    10,
		TeardownSizes:  []int{10, 1000, 10000},
		TeardownTrials: 5,
		SlowStop:       50 * time.Millisecond,
		Idle:           20 * time.Second,
		Candidates:     []int{1, 10, 100},
		Changes:        5,
	}
}

// QuickConfig is a tiny run that exercises every measurement, for CI.
func QuickConfig() Config {
	return Config{
		SplitTrials:    1,
		Handovers:      5,
		HandoverWait:   150 * time.Millisecond,
		FloorTrials:    5,
		CrashTrials:    1,
		TeardownSizes:  []int{10, 100},
		TeardownTrials: 1,
		SlowStop:       50 * time.Millisecond,
		Idle:           2 * time.Second,
		Candidates:     []int{1, 3},
		Changes:        1,
		Quick:          true,
	}
}

// Validate reports the first size that cannot be run.
func (c Config) Validate() error {
	switch {
	case c.SplitTrials < 1, c.Handovers < 1, c.FloorTrials < 1, c.CrashTrials < 1, c.Changes < 1, c.TeardownTrials < 1:
		return errors.New("every trial count must be at least 1")
	case len(c.TeardownSizes) == 0 || len(c.Candidates) == 0:
		return errors.New("give at least one teardown size and one candidate count")
	case c.Idle < time.Second:
		return errors.New("the idle cost needs at least 1s")
	case c.HandoverWait < 0 || c.SlowStop < 0:
		return errors.New("durations must not be negative")
	}
	for _, n := range append(append([]int(nil), c.TeardownSizes...), c.Candidates...) {
		if n < 1 {
			return fmt.Errorf("sizes must be at least 1, not %d", n)
		}
	}
	return nil
}

// env is the etcd under measurement and the run's bookkeeping.
type env struct {
	cfg       Config
	endpoints []string
	embedded  bool
	obs       *clientv3.Client // observer: reads on behalf of the driver
	prefix    string
	seq       atomic.Int64
}

// startEnv starts the embedded etcd unless endpoints were given. The stop
// func closes the observer and the embedded server.
func startEnv(cfg Config) (*env, func(), error) {
	e := &env{cfg: cfg, endpoints: cfg.Endpoints, prefix: fmt.Sprintf("/leasehold-bench/%08x", rand.Uint32())}
	stopServer := func() {}
	if len(e.endpoints) == 0 {
		dir, err := os.MkdirTemp("", "leasehold-bench-etcd")
		if err != nil {
			return nil, nil, err
		}
		srv, stop, err := etcdtest.StartServer(dir)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, nil, err
		}
		e.endpoints, e.embedded = []string{srv.Endpoint}, true
		stopServer = func() { stop(); _ = os.RemoveAll(dir) }
	}
	obs, err := newClient(e.endpoints, nil)
	if err != nil {
		stopServer()
		return nil, nil, err
	}
	e.obs = obs
	return e, func() { _ = obs.Close(); stopServer() }, nil
}

func (e *env) logf(format string, args ...any) {
	if e.cfg.Progress != nil {
		fmt.Fprintf(e.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

// newPrefix is a fresh election prefix under the run's own prefix.
func (e *env) newPrefix(what string) string {
	return fmt.Sprintf("%s/%s-%d", e.prefix, what, e.seq.Add(1))
}

// client is a new client to the etcd under measurement.
func (e *env) client(ctr *Counter) (*clientv3.Client, error) {
	return newClient(e.endpoints, ctr)
}

// waitTimeout bounds every wait of the benchmark: far beyond any healthy
// step, it turns a hang into an error.
const waitTimeout = 60 * time.Second

// await waits for ch to close.
func await(ctx context.Context, ch <-chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(waitTimeout):
		return fmt.Errorf("timed out after %s waiting for %s", waitTimeout, what)
	}
}

// awaitKeys polls until at least n election keys exist under prefix: the
// n-th candidate has put its key and is about to wait (or lead).
func (e *env) awaitKeys(ctx context.Context, prefix string, n int) error {
	deadline := time.Now().Add(waitTimeout)
	for {
		resp, err := e.obs.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count >= int64(n) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %d candidates under %s (last error: %v)", n, prefix, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
