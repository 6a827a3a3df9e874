package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/leases"
	"github.com/leasehold/leasehold/services/guard"
	"github.com/leasehold/leasehold/services/tasks"
)

// Runner watches the assignments of its node and runs one unit per
// assignment made to its current runner term, as a sibling in its group.
type Runner struct {
	Client *clientv3.Client
	Layout Layout
	Node   string
	Tasks  []*tasks.Task
	Log    *slog.Logger
	// Guard is the template of every unit's guard: how to re-execute this
	// binary as the guard, and the kill grace.
	Guard guard.Spec
	// Output, if set, returns where a unit's command output goes.
	Output  Output
	Metrics *Metrics
}

func (r *Runner) String() string { return "assignments" }

// Serve runs units for assignments until ctx ends. Restarting it is safe:
// units already running are found by name.
func (r *Runner) Serve(ctx context.Context) error {
	term, group := leasehold.TermOf(ctx), leasehold.GroupOf(ctx)
	if term == nil || group == nil {
		return errors.New("scheduler: the runner must run under a keyed lease")
	}
	prefix := r.Layout.Assignments(r.Node)
	resp, err := r.Client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("read assignments: %w", err)
	}
	for _, kv := range resp.Kvs {
		r.start(ctx, term, group, string(kv.Key), kv.Value, kv.ModRevision)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	w := r.Client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	return follow(ctx, w, "assignments", func(wr clientv3.WatchResponse) error {
		for _, ev := range wr.Events {
			switch ev.Type {
			case clientv3.EventTypePut:
				r.start(ctx, term, group, string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision)
			case clientv3.EventTypeDelete:
				// Completed by its unit, or taken back by the leader.
				name := unitName(strings.TrimPrefix(string(ev.Kv.Key), prefix))
				if err := group.Remove(ctx, name); err != nil && !errors.Is(err, leasehold.ErrNoChild) && ctx.Err() == nil {
					r.Log.Warn("cannot remove unit", "unit", name, "err", err)
				}
			}
		}
		return nil
	})
}

// unitName names the unit of the assignment key task/slot.
func unitName(taskSlot string) string {
	return "unit:" + strings.Replace(taskSlot, "/", ":", 1)
}

func (r *Runner) start(ctx context.Context, term *leases.Term, group *leasehold.Group, key string, value []byte, rev int64) {
	var a Assignment
	if err := json.Unmarshal(value, &a); err != nil {
		r.Log.Warn("unreadable assignment; ignored", "key", key, "err", err)
		return
	}
	if a.RunnerToken != term.Token() {
		// Made to an earlier term of this runner: the leader reassigns it.
		return
	}
	var task *tasks.Task
	for _, t := range r.Tasks {
		if t.Name == a.Task {
			task = t
		}
	}
	// The leader assigns a run only to a runner term that advertises the
	// task's definition; an assignment that does not match (made by a
	// leader of an older version) is turned down, not left open.
	var why string
	switch {
	case task == nil:
		why = "runner " + r.Node + " does not define task " + a.Task
	case a.Hash != "" && a.Hash != task.Hash():
		why = "runner " + r.Node + " has definition " + task.Hash() + " of task " + a.Task + ", not " + a.Hash
	}
	if why != "" {
		r.decline(ctx, term, key, rev, a, why)
		return
	}
	name := unitName(strings.TrimPrefix(key, r.Layout.Assignments(r.Node)))
	if contains(group.Names(), name) {
		return
	}
	u := &Unit{Client: r.Client, Layout: r.Layout, Node: r.Node, Task: task, Assignment: a, Key: key, Rev: rev,
		Guard: r.Guard, Output: r.Output, Metrics: r.Metrics,
		Log: r.Log.With("task", a.Task, "slot", a.Slot.UTC().Format(time.RFC3339), "attempt", a.Attempt)}
	if err := group.Add(leasehold.Service(name, u)); err != nil && !errors.Is(err, leasehold.ErrGroupStopped) {
		r.Log.Warn("cannot start unit", "unit", name, "err", err)
	}
}

// decline records an assignment this runner cannot run as failed, fenced
// like a unit's report, so that the leader retries it elsewhere.
func (r *Runner) decline(ctx context.Context, term *leases.Term, key string, rev int64, a Assignment, why string) {
	run := Run{Task: a.Task, Slot: a.Slot, Hash: a.Hash, State: StateFailed, Attempt: a.Attempt, Runner: r.Node,
		RunnerToken: a.RunnerToken, LeaderToken: a.LeaderToken, AssignedAt: a.AssignedAt,
		FinishedAt: time.Now().UTC(), ExitCode: -1, Reason: "declined: " + why}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := term.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(r.Layout.Run(a.Task, a.Slot), encode(run)), clientv3.OpDelete(key)).Commit()
	if err != nil {
		r.Log.Warn("cannot decline an assignment; the leader reassigns it once this runner is gone", "task", a.Task, "err", err)
		return
	}
	r.Log.Warn("assignment declined", "task", a.Task, "slot", a.Slot.UTC().Format(time.RFC3339), "why", why)
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}
