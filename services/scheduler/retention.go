package scheduler

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/leases"
	"github.com/leasehold/leasehold/services/tasks"
)

// Retention is how long the leader keeps the records of finished runs.
// A record is deleted once it is beyond the newest Keep of its task, or
// older than KeepFor; records of runs still open are never deleted.
type Retention struct {
	// Keep is how many finished runs are kept per task. Default 100.
	Keep int
	// KeepFor is how long a finished run is kept, counted from its slot.
	// Default 7 days.
	KeepFor time.Duration
}

// Retention defaults.
const (
	DefaultKeep    = 100
	DefaultKeepFor = 7 * 24 * time.Hour
)

// txnBatch bounds the operations of one transaction, well inside etcd's
// default --max-txn-ops of 128.
const txnBatch = 64

// prune deletes the run records the retention policy no longer keeps, in
// fenced batches. Deleting a record cannot make its slot run again: only
// slots at or before the task's schedule key are deleted, and the leader
// schedules only slots after it.
func (s *Scheduler) prune(ctx context.Context, term *leases.Term, v *view, byName map[string]*tasks.Task, now time.Time) error {
	keep := cmp.Or(s.Retention.Keep, DefaultKeep)
	keepFor := cmp.Or(s.Retention.KeepFor, DefaultKeepFor)
	type rec struct {
		key string
		seen
	}
	perTask := map[string][]rec{}
	for key, r := range v.runs {
		retries := 0
		if t := byName[r.run.Task]; t != nil {
			retries = t.Retries
		}
		last, scheduled := v.last[r.run.Task]
		if !r.run.Final(retries) || !scheduled || r.run.Slot.After(last) {
			continue
		}
		perTask[r.run.Task] = append(perTask[r.run.Task], rec{key, r})
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, recs := range perTask {
		// Newest first.
		slices.SortFunc(recs, func(a, b rec) int { return b.run.Slot.Compare(a.run.Slot) })
		for i, r := range recs {
			if i < keep && now.Sub(r.run.Slot) <= keepFor {
				continue
			}
			// Only the record as seen: a record rewritten since is left
			// for the next round to judge.
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.key), "=", r.rev))
			ops = append(ops, clientv3.OpDelete(r.key))
		}
	}
	deleted := 0
	for len(ops) > 0 {
		n := min(len(ops), txnBatch)
		resp, err := term.Txn(ctx).If(cmps[:n]...).Then(ops[:n]...).Commit()
		if err != nil {
			return fmt.Errorf("delete old run records: %w", err)
		}
		if resp.Succeeded {
			deleted += n
			for _, op := range ops[:n] {
				delete(v.runs, string(op.KeyBytes()))
			}
		}
		cmps, ops = cmps[n:], ops[n:]
	}
	if deleted > 0 {
		s.Log.Debug("old run records deleted", "records", deleted, "keep", keep, "keep_for", keepFor.String())
	}
	return nil
}
