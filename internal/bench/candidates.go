package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/clock"
)

// actEvery is how often a leader acts.
const actEvery = 5 * time.Millisecond

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// actor stands for a leader's work. It acts once at once and then every
// actEvery, recording the time of each act, for as long as none of its done
// channels is closed. It acts for one leadership only.
type actor struct {
	claimed atomic.Bool
	first   chan struct{} // closed after the first act
	stopped chan struct{} // closed when the act loop has returned

	mu          sync.Mutex
	firstAt     clock.Time
	lastAt      clock.Time
	onFirstOnce sync.Once
}

func newActor() *actor {
	return &actor{first: make(chan struct{}), stopped: make(chan struct{})}
}

// run is the act loop. An act at time t counts only if the loop saw every
// done channel open after reading t, so every recorded act happened while
// the leader was entitled to act by its own rule. A second call (a later
// leadership) does not act; it returns when done closes.
func (a *actor) run(done1, done2 <-chan struct{}) {
	if !a.claimed.CompareAndSwap(false, true) {
		select {
		case <-done1:
		case <-done2:
		}
		return
	}
	defer close(a.stopped)
	tick := time.NewTicker(actEvery)
	defer tick.Stop()
	for {
		now := clock.Boot.Now()
		select {
		case <-done1:
			return
		case <-done2:
			return
		default:
		}
		a.mu.Lock()
		if a.firstAt == 0 {
			a.firstAt = now
		}
		a.lastAt = now
		a.mu.Unlock()
		a.onFirstOnce.Do(func() { close(a.first) })
		select {
		case <-done1:
			return
		case <-done2:
			return
		case <-tick.C:
		}
	}
}

func (a *actor) times() (first, last clock.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.firstAt, a.lastAt
}

// candidate is one contender in an election, leasehold's or the baseline's.
type candidate interface {
	actor() *actor
	// stop stops it gracefully: it stops acting, then gives up its lease,
	// and returns when it has done both.
	stop() error
	// abandon stops it without touching etcd (its client is about to be
	// closed or cut off); wait for it with stop after closing the client.
	abandon()
}

// side is how to make candidates of one implementation.
type side struct {
	name  string // "leasehold" or "naive"
	start func(c *clientv3.Client, prefix, id string) (candidate, error)
}

var (
	leaseholdSide = side{"leasehold", startLeasehold}
	naiveSide     = side{"naive", startNaive}
)

// lhCandidate runs a leasehold tree: an election whose one service acts.
type lhCandidate struct {
	act    *actor
	cancel context.CancelFunc
	done   chan error
}

// benchTTL is the lease TTL on both sides: etcd's default minimum.
const benchTTL = 2 * time.Second

// overruns counts overruns of every leasehold runtime in this process: the
// benchmark records them instead of exiting, and reports them.
var overruns atomic.Int64

func startLeasehold(c *clientv3.Client, prefix, id string) (candidate, error) {
	lc := &lhCandidate{act: newActor(), done: make(chan error, 1)}
	tree := leasehold.Election("leader", prefix, leasehold.TTL(benchTTL), leasehold.Identity(id),
		leasehold.Func("work", func(ctx context.Context) error {
			lc.act.run(ctx.Done(), nil)
			<-ctx.Done()
			return nil
		}))
	rt, err := leasehold.New(c, tree, leasehold.Options{
		NodeID:  id,
		Logger:  quiet,
		Overrun: func(leasehold.Overrun) { overruns.Add(1) },
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	lc.cancel = cancel
	go func() { lc.done <- rt.Run(ctx) }()
	return lc, nil
}

func (lc *lhCandidate) actor() *actor { return lc.act }

func (lc *lhCandidate) stop() error {
	lc.cancel()
	err := <-lc.done
	lc.done <- err
	return err
}

func (lc *lhCandidate) abandon() { lc.cancel() }

// naiveCandidate is the baseline: a concurrency.Session and Election, acting
// from Campaign's return until Session.Done().
type naiveCandidate struct {
	act      *actor
	session  *concurrency.Session
	cancel   context.CancelFunc
	quit     chan struct{} // closed to stop acting
	quitOnce sync.Once
	done     chan struct{} // closed when campaign and act loop returned
	err      error

	stopOnce  sync.Once
	stopErr   error
	abandoned atomic.Bool // stop leaves the session's lease to expire
}

func startNaive(c *clientv3.Client, prefix, id string) (candidate, error) {
	s, err := concurrency.NewSession(c, concurrency.WithTTL(int(benchTTL/time.Second)))
	if err != nil {
		return nil, fmt.Errorf("baseline session: %w", err)
	}
	nc := &naiveCandidate{act: newActor(), session: s, quit: make(chan struct{}), done: make(chan struct{})}
	e := concurrency.NewElection(s, prefix)
	cctx, ccancel := context.WithCancel(context.Background())
	nc.cancel = ccancel
	go func() {
		defer close(nc.done)
		if err := e.Campaign(cctx, id); err != nil {
			nc.err = err
			return
		}
		nc.act.run(s.Done(), nc.quit)
	}()
	return nc, nil
}

func (nc *naiveCandidate) actor() *actor { return nc.act }

func (nc *naiveCandidate) stop() error {
	nc.stopOnce.Do(func() {
		nc.quitOnce.Do(func() { close(nc.quit) })
		nc.cancel()
		<-nc.done
		if nc.abandoned.Load() {
			nc.session.Orphan()
		} else {
			nc.stopErr = nc.session.Close()
		}
		if errors.Is(nc.stopErr, context.Canceled) {
			nc.stopErr = nil
		}
	})
	return nc.stopErr
}

func (nc *naiveCandidate) abandon() {
	nc.abandoned.Store(true)
	nc.quitOnce.Do(func() { close(nc.quit) })
	nc.cancel()
}
