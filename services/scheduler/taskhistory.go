package scheduler

import (
	"context"
	"encoding/json"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/services/tasks"
)

// TaskHistory is one task's recent history, as etcd records it.
type TaskHistory struct {
	Task     *tasks.Task
	LastSlot time.Time // the latest slot the leader scheduled; zero if none
	LastRun  *Run      // the run of the latest slot that has one
	NextSlot time.Time // the first slot after now (or after LastSlot, if later)
	Failures []Run     // recent failed or lost runs, newest first
}

// historyRuns is how many of a task's latest runs TaskHistories reads.
const historyRuns = 20

// TaskHistories reads each task's schedule key and its latest runs: one read per
// task, bounded to its historyRuns newest records, so it is cheap enough for
// a page refreshed every second.
func TaskHistories(ctx context.Context, c *clientv3.Client, l Layout, list []*tasks.Task) ([]TaskHistory, error) {
	out := make([]TaskHistory, 0, len(list))
	now := time.Now().UTC()
	for _, t := range list {
		resp, err := c.Txn(ctx).Then(
			clientv3.OpGet(l.Schedule(t.Name)),
			clientv3.OpGet(l.Runs()+t.Name+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(historyRuns)),
		).Commit()
		if err != nil {
			return out, err
		}
		st := TaskHistory{Task: t}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			st.LastSlot, _ = tasks.ParseSlotKey(string(kvs[0].Value))
		}
		for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
			var r Run
			if json.Unmarshal(kv.Value, &r) != nil {
				continue
			}
			if st.LastRun == nil {
				st.LastRun = &r
			}
			if r.State == StateFailed || r.State == StateLost {
				st.Failures = append(st.Failures, r)
			}
		}
		after := now
		if st.LastSlot.After(now) {
			after = st.LastSlot
		}
		st.NextSlot = t.Next(after)
		out = append(out, st)
	}
	return out, nil
}
