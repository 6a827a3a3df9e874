package bench

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/clock"
)

// handovers measures n graceful handovers in a chain: each successor
// becomes the leader the next one takes over from. The successor starts,
// its key appears, the driver waits wait() (0: stop at once), then asks the
// leader to stop; a handover lasts from that request to the successor's
// first act.
func (e *env) handovers(ctx context.Context, s side, n int, wait func() time.Duration) (Sample, error) {
	prefix := e.newPrefix("handover-" + s.name)
	var clients [2]*clientv3.Client
	for i := range clients {
		c, err := e.client(nil)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients[i] = c
	}
	leader, err := s.start(clients[0], prefix, "h0")
	if err != nil {
		return nil, err
	}
	defer func() { _ = leader.stop() }()
	if err := await(ctx, leader.actor().first, "the first leader to act"); err != nil {
		return nil, err
	}
	out := make(Sample, 0, n)
	for i := 1; i <= n; i++ {
		succ, err := s.start(clients[i%2], prefix, fmt.Sprintf("h%d", i))
		if err != nil {
			return nil, err
		}
		if err := e.awaitKeys(ctx, prefix, 2); err != nil {
			_ = succ.stop()
			return nil, err
		}
		if err := sleepCtx(ctx, wait()); err != nil {
			_ = succ.stop()
			return nil, err
		}
		old := leader
		stopped := make(chan error, 1)
		asked := clock.Boot.Now()
		go func() { stopped <- old.stop() }()
		leader = succ
		if err := await(ctx, succ.actor().first, "the successor to act"); err != nil {
			return nil, err
		}
		first, _ := succ.actor().times()
		if err := <-stopped; err != nil {
			return nil, fmt.Errorf("stopping leader %d: %w", i-1, err)
		}
		out = append(out, first.Sub(asked))
	}
	return out, nil
}
