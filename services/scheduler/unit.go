package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/thejerf/suture/v4"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/leases"
	"github.com/leasehold/leasehold/services/guard"
	"github.com/leasehold/leasehold/services/tasks"
)

// extendEvery is how often a unit passes its lease's HeldUntil to its
// guard: often enough that a renewal reaches the guard long before the
// previous deadline.
const extendEvery = 100 * time.Millisecond

// Unit runs one attempt of one task slot under a guard, then reports how it
// ended and is done. Stopped early (its lease lost, or the node stopping), it
// reports nothing: the leader reassigns the run once the runner key is gone.
type Unit struct {
	Client     *clientv3.Client
	Layout     Layout
	Node       string
	Task       *tasks.Task
	Assignment Assignment
	Key        string // the assignment key
	Rev        int64  // its mod revision: the report applies only to this assignment
	Guard      guard.Spec
	Output     Output // nil discards the command's output
	Metrics    *Metrics
	Log        *slog.Logger // carries task, slot, attempt and node
}

// Serve runs the command and reports; it returns suture.ErrDoNotRestart once
// the run is over, so the unit is never started twice.
func (u *Unit) Serve(ctx context.Context) error {
	term, lease := leasehold.TermOf(ctx), leasehold.LeaseOf(ctx)
	spec := u.Guard
	spec.Command, spec.Timeout = u.Task.Command, u.Task.Timeout
	flush := func() {}
	if u.Output != nil {
		stdout, stderr := u.Output(u.Log)
		spec.Stdout, spec.Stderr = stdout, stderr
		// Wait returns once the output is copied: unterminated last lines
		// are logged after it, before the run's end.
		flush = func() { _ = stdout.Close(); _ = stderr.Close() }
	}
	spec.Env = append(append([]string(nil), spec.Env...),
		"LEASEHOLD_TASK="+u.Task.Name,
		"LEASEHOLD_SLOT="+u.Assignment.Slot.UTC().Format(time.RFC3339),
		"LEASEHOLD_ATTEMPT="+strconv.Itoa(u.Assignment.Attempt),
		"LEASEHOLD_TOKEN="+strconv.FormatInt(term.Token(), 10),
		"LEASEHOLD_NODE="+u.Node,
	)
	started := time.Now()
	// Logged before the start so that no output line precedes it.
	u.Log.Info("started", "command", u.Task.Command)
	p, err := guard.Start(spec, lease.HeldUntil())
	if err != nil {
		return u.report(ctx, term, guard.Result{ExitCode: -1, Reason: guard.ReasonError, Err: err}, started)
	}
	done := make(chan guard.Result, 1)
	go func() { done <- p.Wait() }()
	tick := time.NewTicker(extendEvery)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			flush()
			return u.report(ctx, term, res, started)
		case <-ctx.Done():
			p.Stop()
			res := <-done
			flush()
			if res.Reason == guard.ReasonExited {
				// The command ended by itself as the unit was stopped:
				// its outcome is known, so record it rather than run the
				// slot again.
				return u.report(ctx, term, res, started)
			}
			u.Log.Warn("stopped before the run ended", "reason", res.Reason)
			return nil
		case <-tick.C:
			// ErrFinished: the command has just ended; done is ready.
			if err := p.Extend(lease.HeldUntil()); err != nil && !errors.Is(err, guard.ErrFinished) {
				u.Log.Warn("cannot extend the guard's deadline", "err", err)
			}
		}
	}
}

// report records the run's end, fenced by the runner term and by the
// assignment still being this one, and removes the assignment.
func (u *Unit) report(ctx context.Context, term *leases.Term, res guard.Result, started time.Time) error {
	// A run that ended as its unit was being stopped is still worth
	// recording while the runner term lasts: the fence decides, and the
	// wait is bounded well inside the lease's stop budget.
	lease := term.Lease()
	budget := min(time.Second, lease.HeldUntil().Sub(lease.Config().Clock.Now())/2)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(budget, 0))
	defer cancel()
	run := Run{
		Task: u.Task.Name, Slot: u.Assignment.Slot, State: StateDone, Attempt: u.Assignment.Attempt,
		Runner: u.Node, RunnerToken: u.Assignment.RunnerToken, LeaderToken: u.Assignment.LeaderToken,
		Hash: u.Assignment.Hash, AssignedAt: u.Assignment.AssignedAt,
		FinishedAt: time.Now().UTC(), ExitCode: res.ExitCode, Reason: string(res.Reason),
	}
	if res.ExitCode != 0 || res.Reason != guard.ReasonExited {
		run.State = StateFailed
		if res.Err != nil {
			run.Reason += ": " + res.Err.Error()
		}
	}
	for attempt := 1; ; attempt++ {
		resp, err := term.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(u.Key), "=", u.Rev)).
			Then(clientv3.OpPut(u.Layout.Run(run.Task, run.Slot), encode(run)), clientv3.OpDelete(u.Key)).
			Commit()
		switch {
		case err == nil && resp.Succeeded:
			u.Metrics.ended(run.Task, run.State, run.FinishedAt)
			switch {
			case run.State == StateDone:
				u.Log.Info("finished", "state", run.State, "exit_code", run.ExitCode, "took", run.FinishedAt.Sub(started).Round(time.Millisecond).String())
			case run.Attempt > u.Task.Retries:
				u.Metrics.retriesExhausted(run.Task)
				u.Log.Error("run failed; no retries left", "exit_code", run.ExitCode, "reason", run.Reason,
					"attempts", run.Attempt, "took", run.FinishedAt.Sub(started).Round(time.Millisecond).String())
			default:
				u.Log.Warn("run failed; it will be retried", "exit_code", run.ExitCode, "reason", run.Reason,
					"retry_in", u.Task.RetryDelay(run.Attempt).String())
			}
			return suture.ErrDoNotRestart
		case err == nil:
			u.Log.Warn("run taken back before its report; not recorded", "state", run.State)
			return suture.ErrDoNotRestart
		case errors.Is(err, leases.ErrFenced), ctx.Err() != nil:
			u.Log.Warn("runner term over before the report; not recorded", "state", run.State)
			return suture.ErrDoNotRestart
		case attempt == 5:
			return fmt.Errorf("report %s: %w: %w", u.Key, err, suture.ErrDoNotRestart)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}
