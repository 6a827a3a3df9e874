package scheduler

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// follow hands each response of w to each until ctx ends (nil), the watch
// fails or each does (that error), or the watch closes on its own. The
// watch channel may close only long after ctx ends while etcd is
// unreachable: ctx, not the channel, is what bounds the stop.
func follow(ctx context.Context, w clientv3.WatchChan, what string, each func(clientv3.WatchResponse) error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case wr, ok := <-w:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watch %s ended", what)
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch %s: %w", what, err)
			}
			if err := each(wr); err != nil {
				return err
			}
		}
	}
}
