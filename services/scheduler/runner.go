package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/services/guard"
	"github.com/leasehold/leasehold/services/tasks"
	"github.com/leasehold/leasehold/supervisor"
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
	Output func(task string) io.Writer
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
		r.start(group, term.Token(), string(kv.Key), kv.Value, kv.ModRevision)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range r.Client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch assignments: %w", err)
		}
		for _, ev := range wr.Events {
			switch ev.Type {
			case clientv3.EventTypePut:
				r.start(group, term.Token(), string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision)
			case clientv3.EventTypeDelete:
				// Completed by its unit, or taken back by the leader.
				name := unitName(strings.TrimPrefix(string(ev.Kv.Key), prefix))
				if err := group.Remove(ctx, name); err != nil && !errors.Is(err, supervisor.ErrNoChild) && ctx.Err() == nil {
					r.Log.Warn("cannot remove unit", "unit", name, "err", err)
				}
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("watch assignments ended")
}

// unitName names the unit of the assignment key task/slot.
func unitName(taskSlot string) string {
	return "unit:" + strings.Replace(taskSlot, "/", ":", 1)
}

func (r *Runner) start(group *leasehold.Group, token int64, key string, value []byte, rev int64) {
	var a Assignment
	if err := json.Unmarshal(value, &a); err != nil {
		r.Log.Warn("unreadable assignment; ignored", "key", key, "err", err)
		return
	}
	if a.RunnerToken != token {
		// Made to an earlier term of this runner: the leader reassigns it.
		return
	}
	var task *tasks.Task
	for _, t := range r.Tasks {
		if t.Name == a.Task {
			task = t
		}
	}
	if task == nil {
		r.Log.Warn("assignment of a task this node does not know; ignored", "task", a.Task)
		return
	}
	name := unitName(strings.TrimPrefix(key, r.Layout.Assignments(r.Node)))
	if contains(group.Names(), name) {
		return
	}
	u := &Unit{Client: r.Client, Layout: r.Layout, Node: r.Node, Task: task, Assignment: a, Key: key, Rev: rev,
		Guard: r.Guard, Log: r.Log.With("unit", name)}
	if r.Output != nil {
		u.Output = r.Output(task.Name)
	}
	if err := group.Add(leasehold.Service(name, u)); err != nil && !errors.Is(err, supervisor.ErrGroupStopped) {
		r.Log.Warn("cannot start unit", "unit", name, "err", err)
	}
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}
