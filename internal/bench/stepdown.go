package bench

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/clock"
)

// sdNode is a leasehold election whose service records the start of each
// of its terms, so that one runtime can lead several times.
type sdNode struct {
	rt     *leasehold.Runtime
	client *clientv3.Client
	cancel context.CancelFunc
	done   chan error
	led    chan clock.Time // the start of each term's service
}

func startSD(c *clientv3.Client, prefix, id string) (*sdNode, error) {
	n := &sdNode{client: c, done: make(chan error, 1), led: make(chan clock.Time, 16)}
	tree := leasehold.Election("leader", prefix, leasehold.TTL(benchTTL), leasehold.Identity(id),
		leasehold.Func("work", func(ctx context.Context) error {
			n.led <- clock.Boot.Now()
			<-ctx.Done()
			return nil
		}))
	rt, err := leasehold.New(c, tree, leasehold.Options{NodeID: id, Logger: quiet, Overrun: func(leasehold.Overrun) { overruns.Add(1) }})
	if err != nil {
		return nil, err
	}
	n.rt = rt
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- rt.Run(ctx) }()
	return n, nil
}

// stop stops the node gracefully, as SIGTERM stops the scheduler binary.
func (n *sdNode) stop() error {
	n.cancel()
	err := <-n.done
	n.done <- err
	return err
}

func (n *sdNode) awaitLead(ctx context.Context) (clock.Time, error) {
	select {
	case t := <-n.led:
		return t, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(waitTimeout):
		return 0, fmt.Errorf("timed out after %s waiting for a successor to lead", waitTimeout)
	}
}

// stepDowns measures, alternately in one run, n handovers by StepDown (the
// leader resigns and rejoins behind its successor) and n by a graceful
// stop of the leader (what SIGTERM does; a fresh node then replaces it):
// from the request to the successor's service starting. Before each, the
// successor's key has existed for wait, so its watch has synced.
func (e *env) stepDowns(ctx context.Context, n int, wait time.Duration) (stepped, stopped Sample, err error) {
	prefix := e.newPrefix("step-down")
	var nodes [2]*sdNode
	var clients []*clientv3.Client
	defer func() {
		// The nodes stop before their clients close.
		for _, nd := range nodes {
			if nd != nil {
				_ = nd.stop()
			}
		}
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range nodes {
		c, err := e.client(nil)
		if err != nil {
			return nil, nil, err
		}
		clients = append(clients, c)
		if nodes[i], err = startSD(c, prefix, fmt.Sprintf("sd%d", i)); err != nil {
			return nil, nil, err
		}
		if i == 0 {
			if _, err := nodes[0].awaitLead(ctx); err != nil {
				return nil, nil, err
			}
		}
	}
	leader, other := 0, 1
	handover := func(ask func(*sdNode) error) (time.Duration, error) {
		if err := e.awaitKeys(ctx, prefix, 2); err != nil {
			return 0, err
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return 0, err
		}
		asked := clock.Boot.Now()
		errc := make(chan error, 1)
		go func() { errc <- ask(nodes[leader]) }()
		led, err := nodes[other].awaitLead(ctx)
		if askErr := <-errc; askErr != nil && err == nil {
			err = askErr
		}
		leader, other = other, leader
		return led.Sub(asked), err
	}
	for i := range n {
		d, err := handover(func(l *sdNode) error { return l.rt.StepDown(ctx, "leader", leasehold.StepDownOptions{}) })
		if err != nil {
			return nil, nil, fmt.Errorf("step-down %d: %w", i+1, err)
		}
		stepped = append(stepped, d)
		d, err = handover(func(l *sdNode) error { return l.stop() })
		if err != nil {
			return nil, nil, fmt.Errorf("graceful stop %d: %w", i+1, err)
		}
		stopped = append(stopped, d)
		// A fresh node replaces the stopped one (now at index other).
		if nodes[other], err = startSD(nodes[other].client, prefix, fmt.Sprintf("sd%d", 2+i)); err != nil {
			return nil, nil, err
		}
	}
	return stepped, stopped, nil
}
