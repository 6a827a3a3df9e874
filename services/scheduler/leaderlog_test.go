package scheduler

import (
	"context"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

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

// Every node, a follower too, logs who leads.
func TestFollowerLogsTheLeader(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	layout := NewLayout("/follower")
	ts := mustTask(t, "tasks:\n  - name: t\n    schedule: \"@every 1h\"\n    command: \"true\"\n")
	startTestNode(t, c, Config{Layout: layout, NodeID: "n1", Tasks: ts})
	await(t, "n1 leads", func() bool {
		resp, err := c.Get(context.Background(), layout.Leader()+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 1
	})
	logs := newCapture()
	startTestNode(t, c, Config{Layout: layout, NodeID: "n2", Tasks: ts, Log: slog.New(logs)})
	await(t, "n2 to log the leader", func() bool {
		for _, l := range logs.lines("scheduler leader") {
			if l["leader"] == "n1" && l["node"] == "n2" {
				return true
			}
		}
		return false
	})
}
