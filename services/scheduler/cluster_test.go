package scheduler

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold"
	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/services/tasks"
)

// testNode is one in-process scheduler node: the tree the binary runs,
// with its units' commands run under real guard processes.
type testNode struct {
	id     string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func startTestNode(t *testing.T, c *clientv3.Client, cfg Config) *testNode {
	t.Helper()
	cfg.Client, cfg.TTL, cfg.Guard = c, 2*time.Second, testGuard()
	cfg.Tick = cmp.Or(cfg.Tick, 50*time.Millisecond)
	if cfg.Log == nil {
		cfg.Log = quiet
	}
	rt, err := leasehold.New(c, Tree(cfg), leasehold.Options{NodeID: cfg.NodeID, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{id: cfg.NodeID, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- rt.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// stop stops the node gracefully and waits for it; stopping twice is fine.
func (n *testNode) stop() {
	n.once.Do(func() {
		n.cancel()
		n.err = <-n.done
	})
	if n.err != nil {
		panic(fmt.Sprintf("node %s: %v", n.id, n.err))
	}
}

// awaitAdvert waits until node's runner key advertises hash for task.
func awaitAdvert(t *testing.T, c *clientv3.Client, l Layout, node string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get(context.Background(), l.Runner(node))
		if err == nil && len(resp.Kvs) == 1 {
			var ad Advert
			if json.Unmarshal(resp.Kvs[0].Value, &ad) == nil && fmt.Sprint(ad.Tasks) == fmt.Sprint(want) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("runner %s never advertised %v", node, want)
}

func readRuns(t *testing.T, c *clientv3.Client, l Layout) []Run {
	t.Helper()
	resp, err := c.Get(context.Background(), l.Runs(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var out []Run
	for _, kv := range resp.Kvs {
		var r Run
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// awaitDone waits until n more runs of task are done than now.
func awaitDone(t *testing.T, c *clientv3.Client, l Layout, task string, n int) {
	t.Helper()
	count := func() int {
		k := 0
		for _, r := range readRuns(t, c, l) {
			if r.Task == task && r.State == StateDone {
				k++
			}
		}
		return k
	}
	want := count() + n
	deadline := time.Now().Add(30 * time.Second)
	for count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d runs of %s done after 30s", want, task)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A rolling change of the tasks file, node by node, while three nodes run:
// one task's command changes, one task is removed and one added. Every
// slot of the tasks the leader schedules runs to done exactly once, no
// run of one slot overlaps another, none goes to a runner without its
// definition, and nothing of the removed task is left open.
func TestRollingTasksChange(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	layout := NewLayout("/rolling")
	marks := filepath.Join(t.TempDir(), "marks")
	// Each run prints a start and an end mark with its identity and
	// definition version; a run lasts 200ms, so a stop can catch one. The
	// end mark's date ignores the stop's SIGTERM, so a stop that lands on
	// it cannot leave the mark without its time (the shell's trap then
	// adds a killed mark after it).
	cmd := func(version string) string {
		return fmt.Sprintf(`m="$LEASEHOLD_TASK $LEASEHOLD_SLOT $LEASEHOLD_ATTEMPT $LEASEHOLD_NODE %[1]s"; `+
			`trap 'echo "killed $m $(date +%%s%%N)" >> %[2]s; exit 143' TERM; `+
			`echo "start $m $(date +%%s%%N)" >> %[2]s; sleep 0.2; echo "end $m $(trap '' TERM; date +%%s%%N)" >> %[2]s`, version, marks)
	}
	file := func(version string, names ...string) []*tasks.Task {
		var b strings.Builder
		b.WriteString("tasks:\n")
		for _, name := range names {
			v := "v1"
			if name == "changes" {
				v = version // only this task's definition changes
			}
			fmt.Fprintf(&b, "  - name: %s\n    schedule: \"@every 1s\"\n    retries: 2\n    retry_backoff: 100ms\n    command: %q\n", name, cmd(v))
		}
		return mustTask(t, b.String())
	}
	v1 := file("v1", "changes", "stays", "removed")
	v2 := file("v2", "changes", "stays", "added")
	hashes := func(ts []*tasks.Task) map[string]string { return NewAdvert("", ts).Tasks }
	versionHash := map[string]string{"v1": v1[0].Hash(), "v2": v2[0].Hash()}

	ids := []string{"n1", "n2", "n3"}
	nodes := map[string]*testNode{}
	for _, id := range ids {
		nodes[id] = startTestNode(t, c, Config{Layout: layout, NodeID: id, Tasks: v1, Grace: time.Minute})
	}
	awaitDone(t, c, layout, "changes", 2)
	for _, id := range ids {
		nodes[id].stop()
		nodes[id] = startTestNode(t, c, Config{Layout: layout, NodeID: id, Tasks: v2, Grace: time.Minute})
		awaitAdvert(t, c, layout, id, hashes(v2))
		awaitDone(t, c, layout, "stays", 2)
	}
	awaitDone(t, c, layout, "added", 2)
	awaitDone(t, c, layout, "changes", 2)
	for _, id := range ids {
		nodes[id].stop()
	}

	// Records: per task, every slot from the first to the last is there;
	// all but those cut by the final stop are done.
	byTask := map[string][]Run{}
	records := map[string]Run{} // task slot -> record
	for _, r := range readRuns(t, c, layout) {
		byTask[r.Task] = append(byTask[r.Task], r)
		records[r.Task+" "+r.Slot.UTC().Format(time.RFC3339)] = r
		if r.State == StateAssigned && r.Task == "removed" {
			t.Errorf("run of the removed task left open: %+v", r)
		}
		if r.State == StateMissed {
			t.Errorf("slot missed although a runner had the leader's definition: %+v", r)
		}
		if r.AssignedAt.IsZero() && r.State != StateMissed {
			t.Errorf("record without assigned_at: %+v", r)
		}
	}
	for _, task := range []string{"changes", "stays", "added"} {
		runs := byTask[task]
		slices.SortFunc(runs, func(a, b Run) int { return a.Slot.Compare(b.Slot) })
		for i := 1; i < len(runs); i++ {
			if gap := runs[i].Slot.Sub(runs[i-1].Slot); gap != time.Second {
				t.Errorf("%s: no record for the slots between %s and %s: lost", task, runs[i-1].Slot, runs[i].Slot)
			}
		}
		for _, r := range runs {
			if r.State != StateDone && r.State != StateLost && r.State != StateAssigned {
				t.Errorf("%s: slot %s ended %s (%s)", task, r.Slot, r.State, r.Reason)
			}
		}
	}
	resp, err := c.Get(context.Background(), layout.Prefix+"/assign/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key), "/removed/") {
			t.Errorf("assignment of the removed task left: %s", kv.Key)
		}
	}

	// Marks: no two runs of one slot overlap; no slot ends twice; a
	// runner ran only definitions it had.
	type span struct {
		node, version string
		start, end    int64 // end 0: killed without a mark
		finished      bool  // ran to its end
	}
	spans := map[string][]*span{} // task slot -> runs
	f, err := os.Open(marks)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	open := map[string]*span{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 7 {
			t.Errorf("bad mark %q", sc.Text())
			continue
		}
		what, run, attempt, node, version := fs[0], fs[1]+" "+fs[2], fs[3], fs[4], fs[5]
		at, _ := strconv.ParseInt(fs[6], 10, 64)
		id := run + " " + attempt
		switch what {
		case "start":
			s := &span{node: node, version: version, start: at}
			open[id] = s
			spans[run] = append(spans[run], s)
		case "end", "killed":
			// A killed mark after the end mark is a stop that came as the
			// run was writing its end: the shell then exits 143, so the
			// attempt ended killed, and the slot is run again (at least
			// once, as documented).
			if s := open[id]; s != nil {
				s.end, s.finished = at, what == "end"
			}
		}
	}
	twice := 0
	for run, ss := range spans {
		ended := 0
		for i, a := range ss {
			if a.finished {
				ended++
			}
			if a.end == 0 {
				t.Logf("%s: a run on %s was killed without a mark; its span is unknown", run, a.node)
				continue
			}
			for _, b := range ss[i+1:] {
				if b.end != 0 && a.start < b.end && b.start < a.end {
					t.Errorf("%s: two runs overlap: %+v and %+v", run, *a, *b)
				}
			}
		}
		if ended > 1 {
			t.Errorf("%s ran to its end %d times", run, ended)
		}
		if len(ss) > 1 {
			twice++
		}
		// The definition that ran is the one the leader scheduled.
		if r, ok := records[run]; ok && r.State == StateDone && strings.HasPrefix(run, "changes ") {
			last := ss[len(ss)-1]
			if want := versionHash[last.version]; r.Hash != want {
				t.Errorf("%s: runner %s ran definition %s (%s); the leader scheduled %s", run, last.node, last.version, want, r.Hash)
			}
		}
	}
	t.Logf("%d slots ran; %d were started again after a stop cut them", len(spans), twice)
}
