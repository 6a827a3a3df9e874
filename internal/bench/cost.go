package bench

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// idleCost counts the requests of one elected leader, doing nothing else,
// over d, scaled to one minute.
func (e *env) idleCost(ctx context.Context, s side, d time.Duration) (float64, []string, error) {
	var ctr Counter
	c, err := e.client(&ctr)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	cand, err := s.start(c, e.newPrefix("idle-"+s.name), "idle")
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = cand.stop() }()
	if err := await(ctx, cand.actor().first, "the idle leader to act"); err != nil {
		return 0, nil, err
	}
	// Let the campaign's own requests pass.
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return 0, nil, err
	}
	before, methods := ctr.Total(), ctr.methods()
	start := time.Now()
	if err := sleepCtx(ctx, d); err != nil {
		return 0, nil, err
	}
	n := ctr.Total() - before
	return float64(n) * float64(time.Minute) / float64(time.Since(start)), ctr.methodsSince(methods, false), nil
}

// leaderChangeCost runs a leader and n waiting candidates, each on a client
// of its own, and counts the requests of all of them (lease renewals
// excluded) from the leader's graceful stop until the successor acts and
// 100 ms more have passed; once per change, a new candidate joining at the
// back after each.
//
// It also returns the requests by method of the first change.
func (e *env) leaderChangeCost(ctx context.Context, s side, n, changes int) (Ints, []string, error) {
	prefix := e.newPrefix(fmt.Sprintf("change-%s-%d", s.name, n))
	type member struct {
		cand candidate
		c    *clientv3.Client
		ctr  *Counter
	}
	var queue []*member
	join := func(id int) error {
		m := &member{ctr: new(Counter)}
		c, err := e.client(m.ctr)
		if err != nil {
			return err
		}
		m.c = c
		if m.cand, err = s.start(c, prefix, fmt.Sprintf("c%d", id)); err != nil {
			_ = c.Close()
			return err
		}
		queue = append(queue, m)
		return nil
	}
	defer func() {
		for _, m := range queue {
			_ = m.cand.stop()
			_ = m.c.Close()
		}
	}()
	if err := join(0); err != nil {
		return nil, nil, err
	}
	if err := await(ctx, queue[0].cand.actor().first, "the first leader to act"); err != nil {
		return nil, nil, err
	}
	next := 1
	var out Ints
	var methods []string
	for range changes {
		for len(queue) < n+1 {
			if err := join(next); err != nil {
				return nil, nil, err
			}
			next++
			// One at a time, so they queue in order.
			if err := e.awaitKeys(ctx, prefix, len(queue)); err != nil {
				return nil, nil, err
			}
		}
		// Every watch is synced and the campaigns' requests have passed.
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return nil, nil, err
		}
		counters := make([]*Counter, len(queue))
		for i, m := range queue {
			counters[i] = m.ctr
		}
		before := sumNonRenewal(counters)
		perMethod := make([]map[string]int64, len(counters))
		for i, c := range counters {
			perMethod[i] = c.methods()
		}
		old := queue[0]
		stopped := make(chan error, 1)
		go func() { stopped <- old.cand.stop() }()
		if err := await(ctx, queue[1].cand.actor().first, "the next in line to act"); err != nil {
			return nil, nil, err
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, nil, err
		}
		if err := <-stopped; err != nil {
			return nil, nil, err
		}
		out = append(out, sumNonRenewal(counters)-before)
		if methods == nil {
			for i, c := range counters {
				for _, m := range c.methodsSince(perMethod[i], true) {
					methods = append(methods, fmt.Sprintf("c%d:%s", i, m))
				}
			}
		}
		_ = old.c.Close()
		queue = queue[1:]
	}
	return out, methods, nil
}
