package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/etcdtest"
)

// SplitTiming is one partition trial: the window, and when the old leader
// last acted and the successor first acted, after the partition began.
type SplitTiming struct {
	Window, OldLast, NewFirst time.Duration
}

// splitTrial measures the split-brain window once: leader A is cut off
// from etcd by a partition while successor B waits; the window is B's first
// act minus A's last act (positive: a gap, negative: both acted at once).
func (e *env) splitTrial(ctx context.Context, s side) (SplitTiming, error) {
	prefix := e.newPrefix("split-" + s.name)
	pa, err := etcdtest.StartProxy(e.endpoints[0])
	if err != nil {
		return SplitTiming{}, err
	}
	defer func() { _ = pa.Close() }()
	pb, err := etcdtest.StartProxy(e.endpoints[0])
	if err != nil {
		return SplitTiming{}, err
	}
	defer func() { _ = pb.Close() }()
	ca, err := newClient([]string{pa.Endpoint()}, nil)
	if err != nil {
		return SplitTiming{}, err
	}
	closeA := onceFunc(func() { _ = ca.Close() })
	defer closeA()
	cb, err := newClient([]string{pb.Endpoint()}, nil)
	if err != nil {
		return SplitTiming{}, err
	}
	defer cb.Close()

	a, err := s.start(ca, prefix, "A")
	if err != nil {
		return SplitTiming{}, err
	}
	var b candidate
	defer func() {
		// A is cut off: abandon it, then close its client so its
		// hanging requests end, and wait for it.
		a.abandon()
		closeA()
		_ = a.stop()
		if b != nil {
			_ = b.stop()
		}
	}()
	if err := await(ctx, a.actor().first, "the first leader to act"); err != nil {
		return SplitTiming{}, err
	}
	if b, err = s.start(cb, prefix, "B"); err != nil {
		return SplitTiming{}, err
	}
	if err := e.awaitKeys(ctx, prefix, 2); err != nil {
		return SplitTiming{}, err
	}
	// Let B's watch settle, as a long-waiting standby's would be, and cut A
	// off at a random point of its renewal cycle (leasehold renews every
	// 667 ms; the baseline's client about every second, and checks its
	// deadline every second).
	if err := sleepCtx(ctx, 300*time.Millisecond+rand.N(time.Second)); err != nil {
		return SplitTiming{}, err
	}
	select {
	case <-b.actor().first:
		return SplitTiming{}, errors.New("the successor acted before the partition")
	default:
	}

	pa.Partition()
	cut := clock.Boot.Now()
	if err := await(ctx, b.actor().first, "the successor to act after the partition"); err != nil {
		return SplitTiming{}, err
	}
	if err := await(ctx, a.actor().stopped, "the partitioned leader to stop acting"); err != nil {
		return SplitTiming{}, err
	}
	_, aLast := a.actor().times()
	bFirst, _ := b.actor().times()
	pa.Heal()
	return SplitTiming{Window: bFirst.Sub(aLast), OldLast: aLast.Sub(cut), NewFirst: bFirst.Sub(cut)}, nil
}

func onceFunc(f func()) func() {
	done := false
	return func() {
		if !done {
			done = true
			f()
		}
	}
}

// floorTrial measures the physical floor of a handover on this etcd: a
// revoke, the delete event on a synced watcher, and a read.
func (e *env) floorTrial(ctx context.Context, c1, c2 *clientv3.Client) (time.Duration, error) {
	key := e.newPrefix("floor")
	g, err := c1.Grant(ctx, int64(benchTTL/time.Second))
	if err != nil {
		return 0, err
	}
	put, err := c1.Put(ctx, key, "x", clientv3.WithLease(g.ID))
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := c2.Watch(wctx, key, clientv3.WithRev(put.Header.Revision+1), clientv3.WithCreatedNotify())
	if resp, ok := <-w; !ok || !resp.Created {
		return 0, fmt.Errorf("floor watch not created: %v", resp.Err())
	}
	start := time.Now()
	if _, err := c1.Revoke(ctx, g.ID); err != nil {
		return 0, err
	}
	for deleted := false; !deleted; {
		resp, ok := <-w
		if !ok {
			return 0, errors.New("floor watch ended")
		}
		for _, ev := range resp.Events {
			deleted = deleted || ev.Type == clientv3.EventTypeDelete
		}
	}
	if _, err := c2.Get(ctx, key); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
