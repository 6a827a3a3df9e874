package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/leases"
	"github.com/leasehold/leasehold/services/tasks"
)

// Scheduler is the leader's service: every Tick it reassigns the runs of
// runners that are gone, retries failed runs, assigns due slots to runners
// that have the task's definition, records as missed the slots no runner
// can take, and deletes old run records. Every write is fenced by the
// election term it runs under.
type Scheduler struct {
	Client *clientv3.Client
	Layout Layout
	Tasks  []*tasks.Task
	Log    *slog.Logger
	// Metrics, if set, counts missed slots and given-up runs.
	Metrics *Metrics
	// Tick is the time between rounds. Default 250ms.
	Tick time.Duration
	// Grace is how late a slot may be started without counting as missed.
	// Default 2s.
	Grace time.Duration
	// Retention is how many final run records are kept per task, and for
	// how long (see Retention).
	Retention Retention
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
	st := &termState{unrunnable: map[string]string{}}
	defer func() {
		for name := range st.unrunnable {
			s.Metrics.setUnrunnable(name, false)
		}
	}()
	for {
		if err := s.round(ctx, term, st); err != nil && ctx.Err() == nil {
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

// termState is what one term of the leader remembers between rounds.
type termState struct {
	unrunnable map[string]string // task -> why no live runner can run it, as last reported
}

// view is the cluster as one read at one revision shows it.
type view struct {
	runners   map[string]runner // node -> its current term
	runs      map[string]seen   // run key -> record
	last      map[string]time.Time
	load      map[string]int    // runner -> assigned runs
	published map[string]string // task -> value of its task key
}

// runner is one runner term: its token and the task definitions it has.
type runner struct {
	token int64
	tasks map[string]string // name -> hash; nil if the advert is unreadable
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
		clientv3.OpGet(s.Layout.Tasks(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, err
	}
	v := &view{runners: map[string]runner{}, runs: map[string]seen{}, last: map[string]time.Time{}, load: map[string]int{},
		published: map[string]string{}}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var ad Advert
		// A runner of an older version advertises no tasks (its value is
		// its node id): it is given no runs.
		_ = json.Unmarshal(kv.Value, &ad)
		v.runners[strings.TrimPrefix(string(kv.Key), s.Layout.Runners())] = runner{token: kv.CreateRevision, tasks: ad.Tasks}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var r Run
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			s.Log.Warn("unreadable run record; ignored", "key", string(kv.Key), "err", err)
			continue
		}
		v.runs[string(kv.Key)] = seen{run: r, rev: kv.ModRevision}
		if r.State == StateAssigned && v.runners[r.Runner].token == r.RunnerToken {
			v.load[r.Runner]++
		}
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		if slot, err := tasks.ParseSlotKey(string(kv.Value)); err == nil {
			v.last[strings.TrimPrefix(string(kv.Key), s.Layout.Schedules())] = slot
		}
	}
	for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
		v.published[strings.TrimPrefix(string(kv.Key), s.Layout.Tasks())] = string(kv.Value)
	}
	return v, nil
}

func (s *Scheduler) round(ctx context.Context, term *leases.Term, st *termState) error {
	v, err := s.read(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	byName := make(map[string]*tasks.Task, len(s.Tasks))
	for _, t := range s.Tasks {
		byName[t.Name] = t
	}
	if err := s.publish(ctx, term, v, st); err != nil {
		return err
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
			if err := s.orphan(ctx, term, v, key, r); err != nil {
				return err
			}
			continue
		}
		switch {
		case r.run.State == StateAssigned && v.runners[r.run.Runner].token != r.run.RunnerToken:
			if err := s.retry(ctx, term, v, task, key, r, StateLost, "runner "+r.run.Runner+" is gone", st.unrunnable[task.Name]); err != nil {
				return err
			}
		case r.run.State == StateFailed && r.run.Attempt <= task.Retries:
			if now.Before(r.run.FinishedAt.Add(task.RetryDelay(r.run.Attempt))) {
				continue // backing off
			}
			why := fmt.Sprintf("attempt %d failed: exit code %d (%s)", r.run.Attempt, r.run.ExitCode, r.run.Reason)
			if err := s.retry(ctx, term, v, task, key, r, StateFailed, why, ""); err != nil {
				return err
			}
		}
	}
	// Due slots.
	grace := cmp.Or(s.Grace, 2*time.Second)
	for _, task := range s.Tasks {
		last, err := s.lastSlot(ctx, term, v, task, now)
		if err != nil {
			return err
		}
		if why := st.unrunnable[task.Name]; why != "" {
			// Slots past their grace that no runner could take are
			// recorded, whatever the task's missed: policy, so that none
			// is lost unseen.
			if last, err = s.missUntil(ctx, term, v, task, last, now.Add(-grace), why); err != nil {
				return err
			}
		}
		for _, slot := range task.Due(last, now, grace) {
			key := s.Layout.Run(task.Name, slot)
			if _, exists := v.runs[key]; exists {
				if err := s.advance(ctx, term, task.Name, slot); err != nil {
					return err
				}
				continue
			}
			runner, ok := pick(v, task, slot, "")
			if !ok {
				break // no runner yet: the slot stays due for its grace
			}
			if err := s.assign(ctx, term, v, task, slot, runner); err != nil {
				return err
			}
		}
	}
	return s.prune(ctx, term, v, byName, now)
}

// unrunnable says why no live runner can run task's definition, or "".
func unrunnable(v *view, task *tasks.Task) string {
	hash := task.Hash()
	var other, without []string
	for _, node := range slices.Sorted(maps.Keys(v.runners)) {
		switch h, ok := v.runners[node].tasks[task.Name]; {
		case h == hash:
			return ""
		case ok:
			other = append(other, node+" has "+h)
		default:
			without = append(without, node)
		}
	}
	why := "no live runner has definition " + hash + " of the task"
	if len(other) > 0 {
		why += "; " + strings.Join(other, ", ")
	}
	if len(without) > 0 {
		why += "; not defined on " + strings.Join(without, ", ")
	}
	return why
}

// publish records the leader's task definitions under the task keys, with
// whether a live runner has them, and reports each change of that once.
func (s *Scheduler) publish(ctx context.Context, term *leases.Term, v *view, st *termState) error {
	var ops []clientv3.Op
	defined := map[string]bool{}
	for _, t := range s.Tasks {
		defined[t.Name] = true
		why := unrunnable(v, t)
		if prev, reported := st.unrunnable[t.Name]; why != prev || (why != "" && !reported) {
			if why != "" {
				s.Log.Warn("no live runner can run this task: its slots will be recorded as missed; give the nodes the same tasks file",
					"task", t.Name, "hash", t.Hash(), "why", why)
				st.unrunnable[t.Name] = why
			} else if reported {
				s.Log.Info("a live runner can run this task again", "task", t.Name, "hash", t.Hash())
				delete(st.unrunnable, t.Name)
			}
			s.Metrics.setUnrunnable(t.Name, why != "")
		}
		val := encode(Published{Name: t.Name, Schedule: t.Schedule, Command: t.Command, Timeout: t.Timeout,
			Retries: t.Retries, Hash: t.Hash(), Unrunnable: why})
		if v.published[t.Name] != val {
			ops = append(ops, clientv3.OpPut(s.Layout.Task(t.Name), val))
		}
	}
	for name := range v.published {
		if !defined[name] {
			ops = append(ops, clientv3.OpDelete(s.Layout.Task(name)))
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), txnBatch)
		if _, err := term.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return fmt.Errorf("publish tasks: %w", err)
		}
		ops = ops[n:]
	}
	return nil
}

// orphan closes an open run of a task the leader does not define, unless
// its runner term is alive and has the task, in which case it finishes.
func (s *Scheduler) orphan(ctx context.Context, term *leases.Term, v *view, key string, r seen) error {
	old := r.run
	if old.State != StateAssigned {
		return nil
	}
	rn, live := v.runners[old.Runner]
	if live && rn.token == old.RunnerToken && rn.tasks[old.Task] != "" {
		return nil
	}
	next := old
	next.State, next.FinishedAt, next.LeaderToken = StateLost, s.now(), term.Token()
	next.Reason = "task " + old.Task + " is no longer defined by the leader, and runner " + old.Runner + " cannot run it"
	resp, err := term.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", r.rev)).
		Then(clientv3.OpDelete(s.Layout.Assign(old.Runner, old.Task, old.Slot)), clientv3.OpPut(key, encode(next))).Commit()
	if err != nil {
		return fmt.Errorf("close %s: %w", key, err)
	}
	if resp.Succeeded {
		s.Metrics.ended(old.Task, StateLost, next.FinishedAt)
		s.Log.Warn("run of an undefined task closed", "task", old.Task, "slot", old.Slot.Format(time.RFC3339), "why", next.Reason)
	}
	return nil
}

// lastSlot returns the last slot scheduled for task. A task never
// scheduled starts now: the slots of its past are not missed, they were
// never due. Its start is recorded, so that a slot no runner takes is
// later seen to pass its grace.
func (s *Scheduler) lastSlot(ctx context.Context, term *leases.Term, v *view, task *tasks.Task, now time.Time) (time.Time, error) {
	if last, ok := v.last[task.Name]; ok {
		return last, nil
	}
	start := now.Add(-2 * cmp.Or(s.Tick, 250*time.Millisecond)).Truncate(time.Second)
	key := s.Layout.Schedule(task.Name)
	resp, err := term.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, tasks.SlotKey(start))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return time.Time{}, fmt.Errorf("start schedule of %s: %w", task.Name, err)
	}
	if !resp.Succeeded {
		// The key was written since this round's view was read (an
		// operator, or a restore): it, not now, says where the task is.
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			if last, perr := tasks.ParseSlotKey(string(kvs[0].Value)); perr == nil {
				start = last
			}
		}
	}
	v.last[task.Name] = start
	return start, nil
}

// missUntil records as missed the slots of task after last and before
// cutoff that have no run, at most MaxMissedPerRound of them, and returns
// the new last slot.
func (s *Scheduler) missUntil(ctx context.Context, term *leases.Term, v *view, task *tasks.Task, last, cutoff time.Time, why string) (time.Time, error) {
	for n := 0; n < maxMissedPerRound; n++ {
		slot := task.Next(last)
		if slot.IsZero() || !slot.Before(cutoff) {
			break
		}
		if _, exists := v.runs[s.Layout.Run(task.Name, slot)]; exists {
			if err := s.advance(ctx, term, task.Name, slot); err != nil {
				return last, err
			}
		} else if err := s.miss(ctx, term, task, slot, why); err != nil {
			return last, err
		}
		last = slot
	}
	return last, nil
}

// maxMissedPerRound bounds the work of one round after a long time without
// a runner; the next rounds record the rest.
const maxMissedPerRound = 100

// miss records slot as missed, for good, and moves the schedule past it.
func (s *Scheduler) miss(ctx context.Context, term *leases.Term, task *tasks.Task, slot time.Time, why string) error {
	now := s.now()
	run := Run{Task: task.Name, Slot: slot, Hash: task.Hash(), State: StateMissed, LeaderToken: term.Token(),
		FinishedAt: now, ExitCode: -1, Reason: why}
	runKey := s.Layout.Run(task.Name, slot)
	resp, err := term.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(runKey), "=", 0)).
		Then(clientv3.OpPut(runKey, encode(run)), clientv3.OpPut(s.Layout.Schedule(task.Name), tasks.SlotKey(slot))).Commit()
	if err != nil {
		return fmt.Errorf("record missed %s: %w", runKey, err)
	}
	if resp.Succeeded {
		s.Metrics.slotMissed(task.Name, "no_runner")
		s.Log.Debug("slot recorded as missed", "task", task.Name, "slot", slot.Format(time.RFC3339), "why", why)
	}
	return nil
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// pick chooses the least loaded live runner that has task's definition,
// other than avoid when there is a choice; ties are spread by a hash of the
// slot.
func pick(v *view, task *tasks.Task, slot time.Time, avoid string) (string, bool) {
	hash := task.Hash()
	var nodes []string
	avoidable := false
	for node, r := range v.runners {
		if r.tasks[task.Name] != hash {
			continue
		}
		if node == avoid {
			avoidable = true
			continue
		}
		nodes = append(nodes, node)
	}
	if len(nodes) == 0 {
		if !avoidable {
			return "", false
		}
		nodes = []string{avoid}
	}
	spread := func(node string) uint32 {
		h := fnv.New32a()
		fmt.Fprintf(h, "%s/%d/%s", task.Name, slot.Unix(), node)
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
		Task: task.Name, Slot: slot, Hash: task.Hash(), State: StateAssigned, Attempt: 1,
		Runner: runner, RunnerToken: v.runners[runner].token, LeaderToken: term.Token(), AssignedAt: s.now(),
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
//
// A lost run whose task no live runner can run (unrunnable says why) is
// closed rather than left assigned to a runner that is gone.
func (s *Scheduler) retry(ctx context.Context, term *leases.Term, v *view, task *tasks.Task, key string, r seen, final State, why, unrunnable string) error {
	old := r.run
	ops := []clientv3.Op{}
	if old.State == StateAssigned {
		ops = append(ops, clientv3.OpDelete(s.Layout.Assign(old.Runner, old.Task, old.Slot)))
	}
	next := old
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", r.rev)}
	runner, ok := pick(v, task, old.Slot, old.Runner)
	switch retries := old.Attempt <= task.Retries; {
	case retries && ok:
		next.State, next.Attempt, next.Runner = StateAssigned, old.Attempt+1, runner
		next.RunnerToken, next.LeaderToken, next.AssignedAt = v.runners[runner].token, term.Token(), s.now()
		next.Hash = task.Hash()
		next.FinishedAt, next.ExitCode, next.Reason = time.Time{}, 0, ""
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.Layout.Runner(runner)), "=", next.RunnerToken))
		ops = append(ops, clientv3.OpPut(s.Layout.Assign(runner, old.Task, old.Slot), encode(next.assignment())))
	case retries && (unrunnable == "" || old.State != StateAssigned):
		return nil // no live runner: the next round tries again
	case old.State == StateAssigned:
		if retries {
			why += "; " + unrunnable
		}
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
			// A retry after a failure is routine (the unit warned of the
			// failure); a run taken from a runner that went away is not.
			level := slog.LevelInfo
			if final == StateLost {
				level = slog.LevelWarn
			}
			s.Log.Log(ctx, level, "reassigned", "task", old.Task, "slot", old.Slot.Format(time.RFC3339), "attempt", next.Attempt, "runner", next.Runner, "why", why)
		} else {
			s.Metrics.ended(old.Task, next.State, next.FinishedAt)
			s.Metrics.retriesExhausted(old.Task)
			s.Log.Error("run given up: no retries left", "task", old.Task, "slot", old.Slot.Format(time.RFC3339), "state", next.State,
				"attempts", old.Attempt, "why", why)
		}
	}
	return nil
}
