package leases

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Hold puts key, with value, under lease and returns the Term of holding it:
// its token is the key's create revision, and the term ends when the lease
// is lost or the key deleted. While another lease holds the key (for
// example this node's previous lease, not yet expired), Hold waits for it
// to go, so two terms never hold one key at once.
func Hold(ctx context.Context, c *clientv3.Client, lease *Lease, key, value string) (*Term, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(lease.Ctx(), func() { cancel(context.Cause(lease.Ctx())) })
	defer stop()
	for {
		resp, err := c.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, value, clientv3.WithLease(lease.ID()))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, fmt.Errorf("leases: hold %s: %w", key, err)
		}
		rev := resp.Header.Revision
		if resp.Succeeded {
			return newTerm(c, lease, key, rev, rev), nil
		}
		kv := resp.Responses[0].GetResponseRange().Kvs[0]
		if kv.Lease == int64(lease.ID()) {
			return newTerm(c, lease, key, kv.CreateRevision, rev), nil
		}
		if err := waitDelete(ctx, c, key, rev); err != nil {
			return nil, err
		}
	}
}
