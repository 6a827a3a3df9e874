package scheduler

import (
	"context"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// LeaderLog logs who leads whenever that changes, so that every node's log
// (a follower's too) says where the scheduler runs.
type LeaderLog struct {
	Client *clientv3.Client
	Layout Layout
	Log    *slog.Logger
}

func (l *LeaderLog) String() string { return "leader-log" }

// Serve logs the leader until ctx ends.
func (l *LeaderLog) Serve(ctx context.Context) error {
	last := ""
	report := func() error {
		resp, err := l.Client.Get(ctx, l.Layout.Leader()+"/", clientv3.WithFirstCreate()...)
		if err != nil {
			return err
		}
		now := "(none)"
		if len(resp.Kvs) > 0 {
			now = string(resp.Kvs[0].Value)
		}
		if now != last {
			l.Log.Info("scheduler leader", "leader", now)
			last = now
		}
		return nil
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	w := l.Client.Watch(wctx, l.Layout.Leader()+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err := report(); err != nil {
		return fmt.Errorf("read leader: %w", err)
	}
	return follow(ctx, w, "leader", func(clientv3.WatchResponse) error {
		if err := report(); err != nil {
			return fmt.Errorf("read leader: %w", err)
		}
		return nil
	})
}
