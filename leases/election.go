package leases

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Election campaigns for leadership under a prefix, holding its key under a
// Lease. Keys are prefix/leaseIDhex as in etcd's concurrency.Election, and
// candidates queue by create revision; each watches only its predecessor, so
// a leader change wakes one candidate, not all of them.
type Election struct {
	client *clientv3.Client
	lease  *Lease
	prefix string // with the trailing "/"
	value  string

	mu struct {
		sync.Mutex
		leader string // value of the earliest key, as last seen
	}
}

// NewElection returns a candidate for prefix whose key, under lease, holds
// value (its identity, shown to observers as the leader).
func NewElection(c *clientv3.Client, lease *Lease, prefix, value string) *Election {
	return &Election{client: c, lease: lease, prefix: prefix + "/", value: value}
}

// Key is this candidate's key.
func (e *Election) Key() string { return fmt.Sprintf("%s%x", e.prefix, int64(e.lease.ID())) }

// Leader is the identity of the leader as this candidate last saw it, or ""
// when it has not looked yet or nobody leads.
func (e *Election) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.leader
}

func (e *Election) sawLeader(kvs []*mvccpb.KeyValue) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.leader = ""
	if len(kvs) > 0 {
		e.mu.leader = string(kvs[0].Value)
	}
}

// Campaign puts this candidate's key (if absent), waits until every key
// created before it is gone, then checks that its own key is still the
// first, and returns the new Term. It fails when ctx or the lease ends first,
// and with ErrKeyLost when the key vanished while waiting (so a candidate
// whose lease expired meanwhile never believes it leads).
func (e *Election) Campaign(ctx context.Context) (*Term, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(e.lease.Ctx(), func() { cancel(context.Cause(e.lease.Ctx())) })
	defer stop()
	fail := func(err error) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err
	}

	key := e.Key()
	resp, err := e.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, e.value, clientv3.WithLease(e.lease.ID()))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, fail(fmt.Errorf("leases: campaign %s: %w", key, err))
	}
	token := resp.Header.Revision
	if !resp.Succeeded {
		token = resp.Responses[0].GetResponseRange().Kvs[0].CreateRevision
	}

	for {
		// One read at one revision: the current leader, and our predecessor.
		resp, err := e.client.Txn(ctx).Then(
			clientv3.OpGet(e.prefix, clientv3.WithFirstCreate()...),
			clientv3.OpGet(e.prefix, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(token-1))...),
		).Commit()
		if err != nil {
			return nil, fail(fmt.Errorf("leases: campaign %s: %w", key, err))
		}
		first := resp.Responses[0].GetResponseRange().Kvs
		before := resp.Responses[1].GetResponseRange().Kvs
		e.sawLeader(first)
		rev := resp.Header.Revision
		if len(before) == 0 {
			if len(first) == 0 || string(first[0].Key) != key || first[0].CreateRevision != token {
				return nil, fail(fmt.Errorf("%w: %s vanished while campaigning", ErrKeyLost, key))
			}
			return newTerm(e.client, e.lease, key, token, rev), nil
		}
		if err := waitDelete(ctx, e.client, string(before[0].Key), rev); err != nil {
			return nil, fail(err)
		}
	}
}

// waitDelete waits until key is deleted after revision rev. It watches from
// rev+1: etcd serves a watch that starts in the future from its synced group
// at once, instead of catching it up on a 100 ms loop. If the store moved
// past rev before the watch was registered, the key may already be gone and
// the watch is a catching-up one: a read settles that at once.
func waitDelete(ctx context.Context, c *clientv3.Client, key string, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range c.Watch(wctx, key, clientv3.WithRev(rev+1), clientv3.WithFilterPut(), clientv3.WithCreatedNotify()) {
		if err := resp.Err(); err != nil {
			// Compacted or interrupted: the caller reads the queue again.
			return nil
		}
		if resp.Created {
			if resp.Header.Revision > rev {
				now, err := c.Get(ctx, key, clientv3.WithCountOnly())
				if err != nil || now.Count == 0 {
					return nil // gone already, or unknown: the caller reads the queue again
				}
			}
			continue
		}
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return errors.New("leases: watch ended")
}
