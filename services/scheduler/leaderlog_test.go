package scheduler

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/etcdtest"
)

// LeaderLog returns promptly when stopped while etcd is unreachable: a
// service that waited for its watch to close would overrun its lease.
func TestLeaderLogStopsWhileEtcdUnreachable(t *testing.T) {
	srv := etcdtest.Start(t)
	p := srv.Proxy(t)
	c := p.Client(t)
	logs := newCapture()
	l := &LeaderLog{Client: c, Layout: NewLayout("/ll"), Log: slog.New(logs)}
	for _, partitionAfter := range []time.Duration{0, 50 * time.Millisecond} {
		p.Heal()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Serve(ctx) }()
		time.Sleep(partitionAfter) // vary where Serve is when etcd goes away
		p.Partition()
		pctx, pcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, _ = c.Put(pctx, "/ll/leader/1", "x")
		pcancel()
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("Serve still running 2s after its context ended (partition after %v)", partitionAfter)
		}
	}
}
