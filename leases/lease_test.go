package leases_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/leases"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var fast = leases.Config{TTL: 2 * time.Second}

func grant(t *testing.T, c *clientv3.Client, cfg leases.Config) *leases.Lease {
	t.Helper()
	l, err := leases.Grant(testCtx(t), c, cfg)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

func TestLeaseRenewsAndMovesHeldUntil(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	l := grant(t, c, fast)
	first := l.HeldUntil()
	if !first.After(clock.Boot.Now()) {
		t.Fatalf("HeldUntil %v is not in the future at grant", first)
	}
	if got := l.FenceAt(); got != first.Add(-l.Config().StopBudget) {
		t.Errorf("FenceAt = %v; want HeldUntil - StopBudget", got)
	}
	// Wait for renewals by watching the counter, not the clock.
	for l.Renewals() < 3 {
		select {
		case <-l.Done():
			t.Fatalf("lease lost while healthy: %v", l.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !l.HeldUntil().After(first) {
		t.Errorf("HeldUntil did not move after %d renewals", l.Renewals())
	}
	// The local deadline is never later than etcd's own.
	ttl, err := c.TimeToLive(testCtx(t), l.ID())
	if err != nil {
		t.Fatal(err)
	}
	serverEnd := clock.Boot.Now().Add(time.Duration(ttl.TTL+1) * time.Second)
	if l.HeldUntil().After(serverEnd) {
		t.Errorf("HeldUntil %v is after etcd's expiry bound %v", l.HeldUntil(), serverEnd)
	}
}

func TestRevokeDeletesKeysAndEndsContext(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	l := grant(t, c, fast)
	ctx := testCtx(t)
	if _, err := c.Put(ctx, "k", "v", clientv3.WithLease(l.ID())); err != nil {
		t.Fatal(err)
	}
	if err := l.Revoke(ctx); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if !errors.Is(l.Err(), leases.ErrRevoked) {
		t.Errorf("Err() = %v; want ErrRevoked", l.Err())
	}
	resp, err := c.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 0 {
		t.Errorf("key after revoke: %v, %v; want gone", resp.Kvs, err)
	}
	if err := l.Revoke(ctx); err != nil {
		t.Errorf("second Revoke: %v; want nil (a lease etcd lacks counts as revoked)", err)
	}
}

func TestLeaseRevokedElsewhereIsLostAtOnce(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	l := grant(t, c, fast)
	if _, err := srv.Client(t).Revoke(testCtx(t), l.ID()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-testCtx(t).Done():
		t.Fatal("lease revoked in etcd was never lost locally")
	}
	if !errors.Is(l.Err(), leases.ErrNotFound) {
		t.Errorf("Err() = %v; want ErrNotFound", l.Err())
	}
}

func TestPartitionedLeaseIsLostBeforeEtcdExpiresIt(t *testing.T) {
	srv := etcdtest.Start(t)
	p := srv.Proxy(t)
	l := grant(t, p.Client(t), fast)
	observer := srv.Client(t)
	ctx := testCtx(t)
	if _, err := observer.Put(ctx, "held", "x", clientv3.WithLease(l.ID())); err != nil {
		t.Fatal(err)
	}
	resp, err := observer.Get(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	deleted := observer.Watch(ctx, "held", clientv3.WithRev(resp.Header.Revision+1))

	p.Partition()
	<-l.Done()
	lostAt := clock.Boot.Now()
	if !errors.Is(l.Err(), leases.ErrExpired) {
		t.Fatalf("Err() = %v; want ErrExpired", l.Err())
	}
	if lostAt.Before(l.FenceAt()) {
		t.Errorf("lost at %v, before FenceAt %v", lostAt, l.FenceAt())
	}
	for wr := range deleted {
		if len(wr.Events) > 0 && wr.Events[0].Type == clientv3.EventTypeDelete {
			break
		}
	}
	expiredAt := clock.Boot.Now()
	if !l.HeldUntil().Before(expiredAt) {
		t.Errorf("HeldUntil %v is not before etcd deleted the lease's key at %v", l.HeldUntil(), expiredAt)
	}
	if l.Failures() == 0 {
		t.Errorf("no stalled stream was counted during the partition")
	}
}

func TestTTLBelowClusterMinimum(t *testing.T) {
	// With a 2s election timeout etcd's minimum lease TTL is 3s.
	srv := etcdtest.Start(t, func(cfg *embed.Config) { cfg.TickMs, cfg.ElectionMs = 100, 2000 })
	_, err := leases.Grant(testCtx(t), srv.Client(t), fast)
	if !errors.Is(err, leases.ErrTTLRaised) {
		t.Fatalf("Grant = %v; want ErrTTLRaised", err)
	}
}
