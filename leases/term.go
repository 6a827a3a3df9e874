package leases

import (
	"context"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Term is one tenure of a key held under a Lease, such as one leadership of
// an Election. Its Token, the key's create revision, grows with every term
// on the cluster, so resources outside etcd can reject a stale holder.
type Term struct {
	lease  *Lease
	client *clientv3.Client
	key    string
	token  int64

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
}

// newTerm starts a term for key created at token, seen at revision rev. Its
// context ends when the lease is lost or when the key is deleted or replaced.
func newTerm(c *clientv3.Client, l *Lease, key string, token, rev int64) *Term {
	ctx, cancel := context.WithCancelCause(l.Ctx())
	t := &Term{lease: l, client: c, key: key, token: token, ctx: ctx, cancel: cancel}
	t.wg.Add(1)
	go t.watchKey(rev)
	return t
}

// Lease is the lease the term's key is held under.
func (t *Term) Lease() *Lease { return t.lease }

// Key is the term's key in etcd.
func (t *Term) Key() string { return t.key }

// Token is the term's fencing token: its key's create revision.
func (t *Term) Token() int64 { return t.token }

// Ctx ends when the term ends; context.Cause tells why (a lease cause,
// ErrKeyLost or ErrResigned).
func (t *Term) Ctx() context.Context { return t.ctx }

// Done is Ctx().Done().
func (t *Term) Done() <-chan struct{} { return t.ctx.Done() }

// Fence is the comparison that holds only during this term. Add it to a
// transaction to make the transaction fenced.
func (t *Term) Fence() clientv3.Cmp { return Fence(t.key, t.token) }

// Fence is the comparison that holds only while key exists with the create
// revision token.
func Fence(key string, token int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", token)
}

// Resign ends the term and deletes its key, so the next candidate takes
// over without waiting for the lease to expire. The lease stays held.
func (t *Term) Resign(ctx context.Context) error {
	t.end(ErrResigned)
	_, err := t.client.Txn(ctx).If(t.Fence()).Then(clientv3.OpDelete(t.key)).Commit()
	if err != nil {
		return fmt.Errorf("leases: resign %s: %w", t.key, err)
	}
	return nil
}

// end ends the term's context with cause (unless it had ended) and waits for
// its key watch to stop.
func (t *Term) end(cause error) {
	t.cancel(cause)
	t.wg.Wait()
}

// Close ends the term locally, leaving its key to the lease.
func (t *Term) Close() { t.end(ErrResigned) }

// watchKey ends the term when its key is deleted or re-created. It watches
// from the revision after the one the term was established at, so it misses
// nothing and etcd places it among synced watchers at once.
func (t *Term) watchKey(rev int64) {
	defer t.wg.Done()
	for t.ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(t.ctx))
		for resp := range t.client.Watch(wctx, t.key, clientv3.WithRev(rev+1)) {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete || ev.Kv.CreateRevision != t.token {
					cancel()
					t.cancel(ErrKeyLost)
					return
				}
			}
			rev = resp.Header.Revision
		}
		cancel()
		if t.ctx.Err() != nil {
			return
		}
		// The watch ended (compaction, lost etcd leader): look at the key
		// itself before watching again.
		resp, err := t.client.Get(t.ctx, t.key)
		if err != nil {
			continue
		}
		if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != t.token {
			t.cancel(ErrKeyLost)
			return
		}
		rev = resp.Header.Revision
	}
}

// Txn starts a transaction fenced by the term: it commits only while the
// term's key exists with the term's token.
func (t *Term) Txn(ctx context.Context) *FencedTxn {
	return &FencedTxn{ctx: ctx, client: t.client, fence: t.Fence()}
}

// FencedTxn is a transaction that commits only within its term. Its own If,
// Then and Else keep their usual meaning inside the fence; when the fence
// fails, Commit returns an error wrapping ErrFenced and nothing is applied.
type FencedTxn struct {
	ctx    context.Context
	client *clientv3.Client
	fence  clientv3.Cmp
	cmps   []clientv3.Cmp
	thens  []clientv3.Op
	elses  []clientv3.Op
}

// If adds comparisons to the transaction's own condition.
func (f *FencedTxn) If(cs ...clientv3.Cmp) *FencedTxn { f.cmps = append(f.cmps, cs...); return f }

// Then adds operations applied when the condition holds.
func (f *FencedTxn) Then(ops ...clientv3.Op) *FencedTxn { f.thens = append(f.thens, ops...); return f }

// Else adds operations applied when the condition does not hold.
func (f *FencedTxn) Else(ops ...clientv3.Op) *FencedTxn { f.elses = append(f.elses, ops...); return f }

// Commit sends the transaction. Without If or Else it is a single flat
// transaction; otherwise the caller's transaction nests inside the fence,
// and the returned response is the inner one.
func (f *FencedTxn) Commit() (*clientv3.TxnResponse, error) {
	nested := len(f.cmps) > 0 || len(f.elses) > 0
	then := f.thens
	if nested {
		then = []clientv3.Op{clientv3.OpTxn(f.cmps, f.thens, f.elses)}
	}
	resp, err := f.client.Txn(f.ctx).If(f.fence).Then(then...).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%w (at revision %d)", ErrFenced, resp.Header.Revision)
	}
	if !nested {
		return resp, nil
	}
	inner := (*clientv3.TxnResponse)(resp.Responses[0].GetResponseTxn())
	inner.Header = resp.Header
	return inner, nil
}
