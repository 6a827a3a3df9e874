package scheduler

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/services/tasks"
)

// capture is a slog handler that keeps every record.
type capture struct {
	mu    sync.Mutex
	recs  []slog.Record
	attrs []slog.Attr
	all   *capture
}

func newCapture() *capture { c := &capture{}; c.all = c; return c }

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(c.attrs...)
	c.all.mu.Lock()
	defer c.all.mu.Unlock()
	c.all.recs = append(c.all.recs, r)
	return nil
}
func (c *capture) WithAttrs(as []slog.Attr) slog.Handler {
	return &capture{attrs: append(append([]slog.Attr(nil), c.attrs...), as...), all: c.all}
}
func (c *capture) WithGroup(string) slog.Handler { return c }

// count returns how many records had msg and, if level is set, level.
func (c *capture) count(level slog.Level, msg string) int {
	c.all.mu.Lock()
	defer c.all.mu.Unlock()
	n := 0
	for _, r := range c.all.recs {
		if r.Level == level && r.Message == msg {
			n++
		}
	}
	return n
}

// lines returns the records with msg, each as its attributes.
func (c *capture) lines(msg string) []map[string]string {
	c.all.mu.Lock()
	defer c.all.mu.Unlock()
	var out []map[string]string
	for _, r := range c.all.recs {
		if r.Message != msg {
			continue
		}
		m := map[string]string{"time": r.Time.Format(time.RFC3339Nano)}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

// runLeader runs s under an election until the test ends.
func runLeader(t *testing.T, c *clientv3.Client, s *Scheduler) {
	t.Helper()
	rt, err := leasehold.New(c, leasehold.Election("e", s.Layout.Leader(), leasehold.TTL(2*time.Second), leasehold.Service("scheduler", s)),
		leasehold.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A task that no live runner has with the leader's definition is reported
// once (log, task key), and its slots are recorded as missed with the
// reason once their grace is over, instead of staying due unseen.
func TestUnrunnableTaskSlotsAreMissed(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	layout := NewLayout("/unrunnable")
	leaderTasks := mustTask(t, "tasks:\n  - name: t\n    schedule: \"@every 1s\"\n    command: \"echo new\"\n    retries: 1\n")
	runnerTasks := mustTask(t, "tasks:\n  - name: t\n    schedule: \"@every 1s\"\n    command: \"echo old\"\n    retries: 1\n")
	runnerKey(t, c, layout, "r1", runnerTasks)
	// A run left assigned to a runner that is gone, with a retry left.
	ctx := context.Background()
	orphanSlot := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	orphan := Run{Task: "t", Slot: orphanSlot, State: StateAssigned, Attempt: 1, Runner: "gone", RunnerToken: 1, AssignedAt: orphanSlot}
	if _, err := c.Put(ctx, layout.Run("t", orphanSlot), encode(orphan)); err != nil {
		t.Fatal(err)
	}
	logs := newCapture()
	reg := prometheus.NewRegistry()
	s := &Scheduler{Client: c, Layout: layout, Log: slog.New(logs), Tick: 50 * time.Millisecond, Grace: 300 * time.Millisecond, Tasks: leaderTasks,
		Metrics: NewMetrics(reg)}
	runLeader(t, c, s)

	var missed []Run
	await(t, "two missed slots", func() bool {
		missed = missed[:0]
		for _, r := range readRuns(t, c, layout) {
			if r.State == StateMissed {
				missed = append(missed, r)
			}
		}
		return len(missed) >= 2
	})
	for _, r := range readRuns(t, c, layout) {
		if r.Slot.Equal(orphanSlot) && (r.State != StateLost || !strings.Contains(r.Reason, "runner gone is gone; no live runner has definition")) {
			t.Errorf("run of a gone runner = %+v; want it closed as lost, saying no runner has the definition", r)
		}
	}
	for _, r := range missed {
		if !strings.Contains(r.Reason, "r1 has "+runnerTasks[0].Hash()) {
			t.Errorf("missed run's reason = %q; want it to name r1's other definition", r.Reason)
		}
	}
	if got := metricValue(t, s.Metrics.missed.WithLabelValues("t", "no_runner")); got < 2 {
		t.Errorf("missed_total{task=t,reason=no_runner} = %v; want at least 2", got)
	}
	if got := metricValue(t, s.Metrics.unrunnable.WithLabelValues("t")); got != 1 {
		t.Errorf("task_unrunnable{task=t} = %v; want 1", got)
	}
	const warn = "no live runner can run this task: its slots will be recorded as missed; give the nodes the same tasks file"
	if n := logs.count(slog.LevelWarn, warn); n != 1 {
		t.Errorf("%d warnings about the unrunnable task; want exactly 1", n)
	}
	resp, err := c.Get(context.Background(), layout.Task("t"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("task key: %v %v", resp, err)
	}
	var p Published
	if err := json.Unmarshal(resp.Kvs[0].Value, &p); err != nil || p.Unrunnable == "" || p.Hash != leaderTasks[0].Hash() {
		t.Errorf("published task = %+v (%v); want the leader's hash and why it is unrunnable", p, err)
	}
	if n, err := c.Get(ctx, layout.Assign("gone", "t", orphanSlot), clientv3.WithCountOnly()); err != nil || n.Count != 0 {
		t.Errorf("assignment to the gone runner left: %v %v", n, err)
	}
	// A runner with the leader's definition makes it runnable again.
	runnerKey(t, c, layout, "r2", leaderTasks)
	await(t, "a run assigned to r2", func() bool {
		for _, r := range readRuns(t, c, layout) {
			if r.State == StateAssigned && r.Runner == "r2" {
				return true
			}
		}
		return false
	})
	await(t, "the recovery logged", func() bool { return logs.count(slog.LevelInfo, "a live runner can run this task again") == 1 })
}

// The leader deletes finished run records beyond the newest Keep of each
// task, and never an open one.
func TestRetentionKeepsTheNewest(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	layout := NewLayout("/retention")
	ts := mustTask(t, "tasks:\n  - name: t\n    schedule: \"@every 1h\"\n    command: \"true\"\n")
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Ten done slots, one open (assigned to a live runner), and the
	// schedule at the latest.
	_, token := runnerKey(t, c, layout, "r1", ts)
	for i := range 10 {
		slot := base.Add(time.Duration(i) * time.Hour)
		r := Run{Task: "t", Slot: slot, State: StateDone, Attempt: 1, Runner: "r1"}
		if i == 0 {
			r.State, r.RunnerToken = StateAssigned, token
			if _, err := c.Put(ctx, layout.Assign("r1", "t", slot), encode(r.assignment())); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Put(ctx, layout.Run("t", slot), encode(r)); err != nil {
			t.Fatal(err)
		}
	}
	last := base.Add(9 * time.Hour)
	if _, err := c.Put(ctx, layout.Schedule("t"), tasks.SlotKey(last)); err != nil {
		t.Fatal(err)
	}
	s := &Scheduler{Client: c, Layout: layout, Log: quiet, Tick: 50 * time.Millisecond, Tasks: ts,
		Retention: Retention{Keep: 3, KeepFor: 365 * 24 * time.Hour}, Now: func() time.Time { return last.Add(time.Minute) }}
	runLeader(t, c, s)
	await(t, "old records deleted", func() bool { return len(readRuns(t, c, layout)) == 4 })
	for _, r := range readRuns(t, c, layout) {
		if r.State == StateDone && r.Slot.Before(base.Add(7*time.Hour)) {
			t.Errorf("kept %s; want only the newest 3 done", r.Slot)
		}
		if r.State == StateAssigned && !r.Slot.Equal(base) {
			t.Errorf("open run %+v changed", r)
		}
	}
}

// A failed run is retried only after its task's backoff, and a run that
// fails with no retries left is logged at ERROR with its exit code.
func TestRetryBackoffAndExhaustion(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	layout := NewLayout("/retry")
	logs := newCapture()
	ts := mustTask(t, "tasks:\n  - name: t\n    schedule: \"@every 1h\"\n    command: \"exit 3\"\n    retries: 2\n    retry_backoff: 400ms\n")
	metrics := NewMetrics(prometheus.NewRegistry())
	// A new task is due only from the next hour. Its schedule, put before
	// the leader first reads it, says it last ran two hours ago, so one
	// slot is due now (missed: latest).
	if _, err := c.Put(context.Background(), layout.Schedule("t"), tasks.SlotKey(time.Now().Add(-2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	startTestNode(t, c, Config{Layout: layout, NodeID: "n1", Tasks: ts, Log: slog.New(logs), Grace: time.Second, Metrics: metrics})
	await(t, "retries exhausted", func() bool { return logs.count(slog.LevelError, "run failed; no retries left") == 1 })
	fails := logs.lines("run failed; it will be retried")
	if len(fails) != 2 {
		t.Fatalf("%d retried failures logged; want 2", len(fails))
	}
	if got := metricValue(t, metrics.exhausted.WithLabelValues("t")); got != 1 {
		t.Errorf("retries_exhausted_total{task=t} = %v; want 1", got)
	}
	if got := metricValue(t, metrics.runs.WithLabelValues("t", "failed")); got != 3 {
		t.Errorf("runs_total{task=t,state=failed} = %v; want 3", got)
	}
	final := logs.lines("run failed; no retries left")[0]
	if final["exit_code"] != "3" || final["attempts"] != "3" {
		t.Errorf("final failure logged %v; want exit_code 3 after 3 attempts", final)
	}
	for _, r := range readRuns(t, c, layout) {
		if r.Attempt != 3 || r.State != StateFailed || r.AssignedAt.IsZero() {
			t.Errorf("record %+v; want failed after attempt 3, with assigned_at", r)
		}
	}
	// Attempts start at least the backoff apart, doubling: a lower bound
	// the leader enforces (each attempt starts before it fails).
	started := logs.lines("started")
	if len(started) != 3 {
		t.Fatalf("%d starts; want 3", len(started))
	}
	at := func(i int) time.Time { tm, _ := time.Parse(time.RFC3339Nano, started[i]["time"]); return tm }
	if d := at(1).Sub(at(0)); d < 400*time.Millisecond {
		t.Errorf("attempt 2 started %v after attempt 1; want at least the 400ms backoff", d)
	}
	if d := at(2).Sub(at(1)); d < 800*time.Millisecond {
		t.Errorf("attempt 3 started %v after attempt 2; want at least the doubled 800ms backoff", d)
	}
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}
