package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const (
	// dialTimeout is clientv3's DialTimeout for clients made here.
	dialTimeout = 5 * time.Second

	// healthKey is read, never written, by AwaitHealthy.
	healthKey = "etcdtest/health"
	// healthAttemptTimeout bounds one AwaitHealthy probe. A connection
	// whose bytes were dropped by a partition can stay open but useless,
	// so a probe must give up and let the next one try again.
	healthAttemptTimeout = 500 * time.Millisecond
	// healthRetryInterval is the pause between failed probes.
	healthRetryInterval = 20 * time.Millisecond
)

// NewClient returns a client for endpoints, without a testing.TB. The
// caller closes it, before closing the server or proxy it talks to.
// Endpoints are http://host:port or, for a Proxy, unix:///path.
func NewClient(endpoints ...string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return c, nil
}

// newTestClient returns a client closed in t.Cleanup.
func newTestClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := NewClient(endpoints...)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() {
		// context.Canceled means the test already closed it itself.
		if err := c.Close(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("etcdtest: close client for %v: %v", endpoints, err)
		}
	})
	return c
}

// AwaitHealthy polls a cheap linearizable read until it succeeds or ctx
// ends. A linearizable Get needs the leader to confirm it still leads, so
// success means the client reaches a working server, not merely an open
// socket. Use it after Proxy.Heal, whose first request may fail with
// codes.Unavailable while gRPC replaces the connection the partition
// corrupted.
func AwaitHealthy(ctx context.Context, c *clientv3.Client) error {
	var lastErr error
	for {
		actx, cancel := context.WithTimeout(ctx, healthAttemptTimeout)
		_, err := c.Get(actx, healthKey)
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err

		select {
		case <-ctx.Done():
			return fmt.Errorf("etcdtest: not healthy: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(healthRetryInterval):
		}
	}
}
