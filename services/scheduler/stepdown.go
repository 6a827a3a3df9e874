package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
)

// StepDownKey is the key of the step-down request (see RequestStepDown).
func (l Layout) StepDownKey() string { return l.Prefix + "/step-down" }

// StepDownRequest is the value of the step-down key: a request to the
// leader of one term. Only that term's leader acts on it, so a request left
// over from an earlier term is ignored.
type StepDownRequest struct {
	Token     int64     `json:"token"`                 // the term asked to step down
	Leader    string    `json:"leader"`                // its leader, as the requester saw it
	To        string    `json:"to,omitempty"`          // the preferred successor
	StayOutMs int64     `json:"stay_out_ms,omitempty"` // see leasehold.StepDownOptions.StayOut
	At        time.Time `json:"at"`
	// Error is set by the leader when it refused the request.
	Error string `json:"error,omitempty"`
}

// StepDownListener is a service that makes this node's election step down
// when the step-down key names its current term. It runs beside the
// election (not under it), since a step-down waits for the election's
// subtree to stop.
type StepDownListener struct {
	Client *clientv3.Client
	Layout Layout
	// Election is the path of the election node, e.g. "registry/election".
	Election string
	Log      *slog.Logger
}

func (s *StepDownListener) String() string { return "step-down" }

// Serve watches the step-down key until ctx ends.
func (s *StepDownListener) Serve(ctx context.Context) error {
	rt := leasehold.RuntimeOf(ctx)
	if rt == nil {
		return errors.New("scheduler: step-down listener outside a tree")
	}
	key := s.Layout.StepDownKey()
	resp, err := s.Client.Get(ctx, key)
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		s.handle(ctx, rt, kv.Value, kv.ModRevision)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range s.Client.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1), clientv3.WithFilterDelete()) {
		if err := wr.Err(); err != nil {
			return err // restarted by the tree
		}
		for _, ev := range wr.Events {
			s.handle(ctx, rt, ev.Kv.Value, ev.Kv.ModRevision)
		}
	}
	return ctx.Err()
}

func (s *StepDownListener) handle(ctx context.Context, rt *leasehold.Runtime, value []byte, rev int64) {
	var req StepDownRequest
	if err := json.Unmarshal(value, &req); err != nil || req.Token == 0 || req.Error != "" {
		return
	}
	err := rt.StepDown(ctx, s.Election, leasehold.StepDownOptions{
		Token: req.Token, Successor: req.To, StayOut: time.Duration(req.StayOutMs) * time.Millisecond,
	})
	switch {
	case err == nil, errors.Is(err, leasehold.ErrNotLeader), ctx.Err() != nil:
		return // done, or addressed to another node or term
	}
	s.Log.Warn("step-down request refused", "token", req.Token, "to", req.To, "err", err)
	// Tell the requester why, unless the request changed meanwhile.
	req.Error = err.Error()
	if _, err := s.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(s.Layout.StepDownKey()), "=", rev)).
		Then(clientv3.OpPut(s.Layout.StepDownKey(), encode(req))).Commit(); err != nil {
		s.Log.Warn("cannot report the refusal", "err", err)
	}
}

// ErrNoLeader: nobody leads, so there is nobody to step down.
var ErrNoLeader = errors.New("scheduler: nobody leads")

// StepDownResult is what RequestStepDown saw.
type StepDownResult struct {
	From      string
	FromToken int64
	To        string
	ToToken   int64
	Took      time.Duration // from the request's commit to the new leader's key
}

// RequestStepDown asks the current leader to step down, optionally in
// favour of to, by writing the step-down key in a transaction that commits
// only while that leader's term lasts; then it waits, until ctx ends, for
// another term to lead or for the leader's refusal. It uses c's
// credentials, so etcd's auth decides who may do this.
func RequestStepDown(ctx context.Context, c *clientv3.Client, l Layout, to string, stayOut time.Duration) (StepDownResult, error) {
	var res StepDownResult
	prefix := l.Leader() + "/"
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return res, err
	}
	if len(resp.Kvs) == 0 {
		return res, fmt.Errorf("%w under %s", ErrNoLeader, prefix)
	}
	lead := resp.Kvs[0]
	res.From, res.FromToken = string(lead.Value), lead.CreateRevision
	if to != "" {
		if to == res.From {
			return res, fmt.Errorf("--to %s: %s already leads (token %d)", to, to, res.FromToken)
		}
		found := false
		for _, kv := range resp.Kvs[1:] {
			found = found || string(kv.Value) == to
		}
		if !found {
			return res, fmt.Errorf("--to %s: %s is not campaigning under %s (is it running?)", to, to, prefix)
		}
	} else if len(resp.Kvs) == 1 {
		return res, fmt.Errorf("%s is the only candidate under %s: stepping down would leave the scheduler without a leader", res.From, prefix)
	}
	req := StepDownRequest{Token: res.FromToken, Leader: res.From, To: to, StayOutMs: stayOut.Milliseconds(), At: time.Now().UTC()}
	key := l.StepDownKey()
	put, err := c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(string(lead.Key)), "=", res.FromToken)).
		Then(clientv3.OpPut(key, encode(req))).Commit()
	if err != nil {
		return res, err
	}
	if !put.Succeeded {
		return res, fmt.Errorf("leadership moved before the request was written (%s no longer leads in term %d): nothing to do", res.From, res.FromToken)
	}
	asked := time.Now()
	rev := put.Header.Revision
	// Clean up the request once answered, unless someone changed it.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = c.Txn(cctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpDelete(key)).Commit()
	}()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	leaders := c.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	answers := c.Watch(wctx, key, clientv3.WithRev(rev+1), clientv3.WithFilterDelete())
	for {
		first, err := c.Get(ctx, prefix, clientv3.WithFirstCreate()...)
		if err != nil {
			return res, err
		}
		if kvs := first.Kvs; len(kvs) > 0 && kvs[0].CreateRevision != res.FromToken {
			res.To, res.ToToken, res.Took = string(kvs[0].Value), kvs[0].CreateRevision, time.Since(asked)
			return res, nil
		}
		select {
		case wr, ok := <-leaders:
			if !ok || wr.Err() != nil {
				return res, fmt.Errorf("watching %s: %v", prefix, errors.Join(wr.Err(), context.Cause(ctx)))
			}
		case wr, ok := <-answers:
			if !ok || wr.Err() != nil {
				return res, fmt.Errorf("watching %s: %v", key, errors.Join(wr.Err(), context.Cause(ctx)))
			}
			for _, ev := range wr.Events {
				var got StepDownRequest
				if json.Unmarshal(ev.Kv.Value, &got) == nil && got.Error != "" {
					rev = ev.Kv.ModRevision
					return res, fmt.Errorf("%s refused: %s", res.From, got.Error)
				}
			}
		}
	}
}
