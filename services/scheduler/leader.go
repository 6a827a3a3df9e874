package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/leases"
	"github.com/leasehold/leasehold/services/tasks"
)

// Scheduler is the leader's service: every Tick it reassigns the runs of
// runners that are gone, retries failed runs, and assigns due slots. Every
// write is fenced by the election term it runs under.
type Scheduler struct {
	Client *clientv3.Client
	Layout Layout
	Tasks  []*tasks.Task
	Log    *slog.Logger
	// Tick is the time between rounds. Default 250ms.
	Tick time.Duration
	// Grace is how late a slot may be started without counting as missed.
	// Default 2s.
	Grace time.Duration
	// Now is the wall clock slots are computed on. Default time.Now.
	Now func() time.Time
}

func (s *Scheduler) String() string { return "scheduler" }

// Serve schedules until ctx ends.
func (s *Scheduler) Serve(ctx context.Context) error {
	term := leasehold.TermOf(ctx)
	if term == nil {
		return errors.New("scheduler: not under an election")
	}
	tick := cmp.Or(s.Tick, 250*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	s.Log.Info("leading: scheduling", "token", term.Token(), "tasks", len(s.Tasks))
	for {
		if err := s.round(ctx, term); err != nil && ctx.Err() == nil {
			if errors.Is(err, leases.ErrFenced) {
				// The term is over; its context ends at once.
				s.Log.Warn("fenced: leadership has moved on", "token", term.Token())
			} else {
				s.Log.Warn("scheduling round failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// view is the cluster as one read at one revision shows it.
type view struct {
	runners map[string]int64 // node -> runner token
	runs    map[string]seen  // run key -> record
	last    map[string]time.Time
	load    map[string]int // runner -> assigned runs
}

type seen struct {
	run Run
	rev int64 // mod revision of the run key
}

func (s *Scheduler) read(ctx context.Context) (*view, error) {
	resp, err := s.Client.Txn(ctx).Then(
		clientv3.OpGet(s.Layout.Runners(), clientv3.WithPrefix()),
		clientv3.OpGet(s.Layout.Runs(), clientv3.WithPrefix()),
		clientv3.OpGet(s.Layout.Schedules(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, err
	}
	v := &view{runners: map[string]int64{}, runs: map[string]seen{}, last: map[string]time.Time{}, load: map[string]int{}}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		v.runners[strings.TrimPrefix(string(kv.Key), s.Layout.Runners())] = kv.CreateRevision
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var r Run
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			s.Log.Warn("unreadable run record; ignored", "key", string(kv.Key), "err", err)
			continue
		}
		v.runs[string(kv.Key)] = seen{run: r, rev: kv.ModRevision}
		if r.State == StateAssigned && v.runners[r.Runner] == r.RunnerToken {
			v.load[r.Runner]++
		}
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		if slot, err := tasks.ParseSlotKey(string(kv.Value)); err == nil {
			v.last[strings.TrimPrefix(string(kv.Key), s.Layout.Schedules())] = slot
		}
	}
	return v, nil
}

func (s *Scheduler) round(ctx context.Context, term *leases.Term) error {
	v, err := s.read(ctx)
	if err != nil {
		return err
	}
	byName := make(map[string]*tasks.Task, len(s.Tasks))
	for _, t := range s.Tasks {
		byName[t.Name] = t
	}
	// Runs whose runner term is gone, and failed runs: retry or close them.
	keys := make([]string, 0, len(v.runs))
	for k := range v.runs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		r := v.runs[key]
		task := byName[r.run.Task]
		if task == nil {
			continue
		}
		switch {
		case r.run.State == StateAssigned && v.runners[r.run.Runner] != r.run.RunnerToken:
			if err := s.retry(ctx, term, v, task, key, r, StateLost, "runner "+r.run.Runner+" is gone"); err != nil {
				return err
			}
		case r.run.State == StateFailed && r.run.Attempt <= task.Retries:
			why := fmt.Sprintf("attempt %d failed: exit code %d (%s)", r.run.Attempt, r.run.ExitCode, r.run.Reason)
			if err := s.retry(ctx, term, v, task, key, r, StateFailed, why); err != nil {
				return err
			}
		}
	}
	// Due slots.
	now := s.now()
	grace := cmp.Or(s.Grace, 2*time.Second)
	for _, task := range s.Tasks {
		last := v.last[task.Name]
		if last.IsZero() {
			// A task never scheduled starts now: the slots of its past are
			// not missed, they were never due.
			last = now.Add(-2 * cmp.Or(s.Tick, 250*time.Millisecond))
		}
		for _, slot := range task.Due(last, now, grace) {
			key := s.Layout.Run(task.Name, slot)
			if _, exists := v.runs[key]; !exists {
				runner, ok := pick(v, task.Name, slot, "")
				if !ok {
					break // no live runner: the slot stays due
				}
				if err := s.assign(ctx, term, v, task, slot, runner); err != nil {
					return err
				}
				continue
			}
			if err := s.advance(ctx, term, task.Name, slot); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// pick chooses the least loaded live runner, other than avoid when there is
// a choice; ties are spread by a hash of the slot.
func pick(v *view, task string, slot time.Time, avoid string) (string, bool) {
	var nodes []string
	for node := range v.runners {
		if node != avoid {
			nodes = append(nodes, node)
		}
	}
	if len(nodes) == 0 {
		if _, ok := v.runners[avoid]; ok && avoid != "" {
			nodes = []string{avoid}
		} else {
			return "", false
		}
	}
	spread := func(node string) uint32 {
		h := fnv.New32a()
		fmt.Fprintf(h, "%s/%d/%s", task, slot.Unix(), node)
		return h.Sum32()
	}
	slices.SortFunc(nodes, func(a, b string) int {
		return cmp.Or(cmp.Compare(v.load[a], v.load[b]), cmp.Compare(spread(a), spread(b)), strings.Compare(a, b))
	})
	return nodes[0], true
}

// assign records a new run of slot and its assignment to runner, and moves
// the task's schedule to slot, in one fenced transaction that also checks
// the slot has no run yet and the runner term is still the one seen.
func (s *Scheduler) assign(ctx context.Context, term *leases.Term, v *view, task *tasks.Task, slot time.Time, runner string) error {
	run := Run{
		Task: task.Name, Slot: slot, State: StateAssigned, Attempt: 1,
		Runner: runner, RunnerToken: v.runners[runner], LeaderToken: term.Token(), AssignedAt: s.now(),
	}
	runKey := s.Layout.Run(task.Name, slot)
	resp, err := term.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(runKey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(s.Layout.Runner(runner)), "=", run.RunnerToken)).
		Then(clientv3.OpPut(runKey, encode(run)),
			clientv3.OpPut(s.Layout.Assign(runner, task.Name, slot), encode(run.assignment())),
			clientv3.OpPut(s.Layout.Schedule(task.Name), tasks.SlotKey(slot))).
		Commit()
	if err != nil {
		return fmt.Errorf("assign %s: %w", runKey, err)
	}
	if resp.Succeeded {
		v.load[runner]++
		v.runs[runKey] = seen{run: run}
		s.Log.Info("assigned", "task", task.Name, "slot", slot.Format(time.RFC3339), "runner", runner, "token", term.Token())
	}
	return nil
}

// advance moves the task's schedule to slot when it is later.
func (s *Scheduler) advance(ctx context.Context, term *leases.Term, task string, slot time.Time) error {
	_, err := term.Txn(ctx).Then(clientv3.OpPut(s.Layout.Schedule(task), tasks.SlotKey(slot))).Commit()
	return err
}

// retry gives a lost or failed run a new attempt on a live runner, or, with
// no retries left, closes it as final. Fenced by the term and by the run's
// revision, so it never overwrites a report it has not seen.
func (s *Scheduler) retry(ctx context.Context, term *leases.Term, v *view, task *tasks.Task, key string, r seen, final State, why string) error {
	old := r.run
	ops := []clientv3.Op{}
	if old.State == StateAssigned {
		ops = append(ops, clientv3.OpDelete(s.Layout.Assign(old.Runner, old.Task, old.Slot)))
	}
	next := old
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", r.rev)}
	runner, ok := pick(v, old.Task, old.Slot, old.Runner)
	switch retries := old.Attempt <= task.Retries; {
	case retries && ok:
		next.State, next.Attempt, next.Runner = StateAssigned, old.Attempt+1, runner
		next.RunnerToken, next.LeaderToken, next.AssignedAt = v.runners[runner], term.Token(), s.now()
		next.FinishedAt, next.ExitCode, next.Reason = time.Time{}, 0, ""
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.Layout.Runner(runner)), "=", next.RunnerToken))
		ops = append(ops, clientv3.OpPut(s.Layout.Assign(runner, old.Task, old.Slot), encode(next.assignment())))
	case retries:
		return nil // no live runner: the next round tries again
	case old.State == StateAssigned:
		next.State, next.Reason, next.FinishedAt, next.LeaderToken = final, why, s.now(), term.Token()
	default:
		return nil // failed with no retries left: already final
	}
	ops = append(ops, clientv3.OpPut(key, encode(next)))
	resp, err := term.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("retry %s: %w", key, err)
	}
	if resp.Succeeded {
		if next.State == StateAssigned {
			v.load[next.Runner]++
			s.Log.Warn("reassigned", "task", old.Task, "slot", old.Slot.Format(time.RFC3339), "attempt", next.Attempt, "runner", next.Runner, "why", why)
		} else {
			s.Log.Warn("run given up", "task", old.Task, "slot", old.Slot.Format(time.RFC3339), "state", next.State, "why", why)
		}
	}
	return nil
}
