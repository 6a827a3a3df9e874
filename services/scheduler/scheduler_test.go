package scheduler

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/services/guard"
	"github.com/leasehold/leasehold/services/tasks"
)

// guardEnv makes the test binary act as the units' guard process.
const guardEnv = "SCHEDULER_TEST_GUARD"

func TestMain(m *testing.M) {
	if os.Getenv(guardEnv) == "1" {
		os.Exit(guard.Main(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// testGuard re-executes the test binary as the guard.
func testGuard() guard.Spec {
	return guard.Spec{Self: os.Args[0], Args: []string{"-test.run=^$"}, KillGrace: 200 * time.Millisecond,
		GuardEnv: []string{guardEnv + "=1", "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")}}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestPickLeastLoaded(t *testing.T) {
	slot := time.Unix(1_700_000_000, 0)
	task := &tasks.Task{Name: "t", Schedule: "@every 1s", Command: "true"}
	has := map[string]string{"t": task.Hash()}
	v := &view{runners: map[string]runner{"a": {1, has}, "b": {2, has}, "c": {3, has}}, load: map[string]int{"a": 2, "b": 0, "c": 1}}
	if got, ok := pick(v, task, slot, ""); !ok || got != "b" {
		t.Errorf("pick = %q, %v; want b, the least loaded", got, ok)
	}
	if got, _ := pick(v, task, slot, "b"); got != "c" {
		t.Errorf("pick avoiding b = %q; want c", got)
	}
	only := &view{runners: map[string]runner{"a": {1, has}}, load: map[string]int{}}
	if got, ok := pick(only, task, slot, "a"); !ok || got != "a" {
		t.Errorf("pick with only the avoided runner = %q, %v; want a", got, ok)
	}
	if _, ok := pick(&view{runners: map[string]runner{}}, task, slot, ""); ok {
		t.Error("pick with no runner succeeded")
	}
}

// The leader gives a run only to a runner that has the task with the same
// definition: not to one without the task, nor to one with another
// definition of it, however lightly loaded.
func TestPickOnlyRunnersWithTheDefinition(t *testing.T) {
	slot := time.Unix(1_700_000_000, 0)
	task := &tasks.Task{Name: "t", Schedule: "@every 1s", Command: "true"}
	changed := &tasks.Task{Name: "t", Schedule: "@every 1s", Command: "false"}
	v := &view{runners: map[string]runner{
		"same":  {1, map[string]string{"t": task.Hash()}},
		"other": {2, map[string]string{"t": changed.Hash()}},
		"none":  {3, map[string]string{"u": "x"}},
		"old":   {4, nil},
	}, load: map[string]int{"same": 10}}
	if got, ok := pick(v, task, slot, ""); !ok || got != "same" {
		t.Errorf("pick = %q, %v; want same, the only runner with the definition", got, ok)
	}
	delete(v.runners, "same")
	if got, ok := pick(v, task, slot, ""); ok {
		t.Errorf("pick = %q; want none: no runner has the definition", got)
	}
	if why := unrunnable(v, task); !strings.Contains(why, "other has "+changed.Hash()) || !strings.Contains(why, "not defined on none, old") {
		t.Errorf("unrunnable = %q; want it to name other's definition and the runners without the task", why)
	}
}

func mustTask(t *testing.T, yaml string) []*tasks.Task {
	t.Helper()
	valid, problems, err := tasks.Parse([]byte(yaml))
	if err != nil || len(problems) > 0 {
		t.Fatalf("tasks: %v %v", err, problems)
	}
	return valid
}

// runnerKey registers a runner as a node would: its key, advertising ts,
// under a lease.
func runnerKey(t *testing.T, c *clientv3.Client, l Layout, node string, ts []*tasks.Task) (clientv3.LeaseID, int64) {
	t.Helper()
	ctx := context.Background()
	lease, err := c.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Put(ctx, l.Runner(node), encode(NewAdvert(node, ts)), clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.KeepAlive(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	return lease.ID, resp.Header.Revision
}

// nextAssignment waits for the next assignment put under runner's prefix.
func nextAssignment(t *testing.T, w clientv3.WatchChan) Assignment {
	t.Helper()
	for {
		select {
		case wr := <-w:
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					var a Assignment
					if err := json.Unmarshal(ev.Kv.Value, &a); err != nil {
						t.Fatal(err)
					}
					return a
				}
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no assignment")
		}
	}
}

// The leader assigns due slots to live runners, fenced and stamped with
// its token, and reassigns a gone runner's runs as new attempts.
func TestLeaderAssignsAndReassigns(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	layout := NewLayout("/sched-test")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ts := mustTask(t, "tasks:\n  - name: t\n    schedule: \"@every 1s\"\n    command: \"true\"\n    retries: 1\n")
	firstLease, firstToken := runnerKey(t, c, layout, "r1", ts)
	toR1 := c.Watch(ctx, layout.Assignments("r1"), clientv3.WithPrefix())
	toR2 := c.Watch(ctx, layout.Assignments("r2"), clientv3.WithPrefix())

	s := &Scheduler{Client: c, Layout: layout, Log: quiet, Tick: 50 * time.Millisecond, Tasks: ts}
	rt, err := leasehold.New(c, leasehold.Election("e", layout.Leader(), leasehold.TTL(2*time.Second), leasehold.Service("scheduler", s)),
		leasehold.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() { cancel(); <-done }()

	a := nextAssignment(t, toR1)
	if a.Runner != "r1" || a.RunnerToken != firstToken || a.Attempt != 1 || a.LeaderToken == 0 {
		t.Errorf("assignment = %+v; want attempt 1 to r1's term %d with a leader token", a, firstToken)
	}
	// r1 goes away; r2 appears: r1's open runs move to r2 as attempt 2.
	_, secondToken := runnerKey(t, c, layout, "r2", ts)
	if _, err := c.Revoke(ctx, firstLease); err != nil {
		t.Fatal(err)
	}
	for {
		b := nextAssignment(t, toR2)
		if b.Attempt == 2 && b.Task == a.Task && b.Slot.Equal(a.Slot) {
			if b.RunnerToken != secondToken {
				t.Errorf("reassignment to r2 carries runner token %d; want %d", b.RunnerToken, secondToken)
			}
			break
		}
	}
	resp, err := c.Get(ctx, layout.Run(a.Task, a.Slot))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("run record: %v %v", resp, err)
	}
	var r Run
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		t.Fatal(err)
	}
	if r.State != StateAssigned || r.Runner != "r2" || r.Attempt != 2 {
		t.Errorf("run = %+v; want assigned to r2, attempt 2", r)
	}
	if n, err := c.Get(ctx, layout.Assign("r1", a.Task, a.Slot), clientv3.WithCountOnly()); err != nil || n.Count != 0 {
		t.Errorf("r1's assignment is still there: %v %v", n, err)
	}
	if !strings.HasPrefix(layout.Run("t", a.Slot), "/sched-test/runs/t/") {
		t.Errorf("run key %q", layout.Run("t", a.Slot))
	}
}
