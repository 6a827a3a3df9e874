package leasehold_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/evtest"
)

// waitLimit bounds every wait in these tests: far beyond any healthy run,
// it turns a hang into a failure.
const waitLimit = 60 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder keeps a runtime's events in the order they happened and lets a
// test await one: wait and waitNth look anywhere in the log (evtest's
// First and Nth); the log's Next awaits a sequence.
type recorder struct{ log *evtest.Log[leasehold.Event] }

func newRecorder() *recorder { return &recorder{log: evtest.New[leasehold.Event]()} }

func (r *recorder) on(e leasehold.Event) { r.log.Add(e) }

// find returns the index of the nth event (from 1) that matches, or -1.
func (r *recorder) find(nth int, match func(leasehold.Event) bool) (int, <-chan struct{}) {
	for i, e := range r.all() {
		if match(e) {
			if nth--; nth == 0 {
				return i, nil
			}
		}
	}
	return -1, nil
}

// wait waits for the first event that matches and returns it with its index.
func (r *recorder) wait(t *testing.T, what string, match func(leasehold.Event) bool) (leasehold.Event, int) {
	t.Helper()
	return r.log.First(t, what, match)
}

// waitNth waits for the nth event (from 1) that matches.
func (r *recorder) waitNth(t *testing.T, what string, nth int, match func(leasehold.Event) bool) (leasehold.Event, int) {
	t.Helper()
	return r.log.Nth(t, fmt.Sprintf("%s (#%d)", what, nth), nth, match)
}

func (r *recorder) all() []leasehold.Event { return r.log.All() }

func (r *recorder) count(match func(leasehold.Event) bool) int { return r.log.Count(match) }

func is(kind leasehold.EventKind, path string) func(leasehold.Event) bool {
	return func(e leasehold.Event) bool { return e.Kind == kind && e.Path == path }
}

func isTerm(kind leasehold.EventKind, path string, term int) func(leasehold.Event) bool {
	return func(e leasehold.Event) bool { return e.Kind == kind && e.Path == path && e.Term == term }
}

// running is a tree started by start.
type running struct {
	rt     *leasehold.Runtime
	rec    *recorder
	cancel context.CancelFunc
	done   chan error
}

// stop stops the tree and waits for Run to return.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup's stop
		return err
	case <-time.After(waitLimit):
		t.Fatalf("Run did not return %s after its context ended", waitLimit)
		return nil
	}
}

// start runs tree on c until the test ends. Events go to a new recorder
// (and to opts.OnEvent, if set), and a nil Overrun fails the test.
func start(t *testing.T, c *clientv3.Client, tree *leasehold.Node, opts leasehold.Options) *running {
	t.Helper()
	rec := newRecorder()
	if also := opts.OnEvent; also != nil {
		opts.OnEvent = func(e leasehold.Event) { rec.on(e); also(e) }
	} else {
		opts.OnEvent = rec.on
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.Overrun == nil {
		opts.Overrun = func(o leasehold.Overrun) { t.Errorf("unexpected overrun: %+v", o) }
	}
	rt, err := leasehold.New(c, tree, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{rt: rt, rec: rec, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("Run = %v; want nil after a stop", err)
		}
	})
	return r
}

// block is a service body that runs until stopped.
func block(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("no %s after %s", what, waitLimit)
		var zero T
		return zero
	}
}
