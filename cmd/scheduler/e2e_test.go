package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/services/scheduler"
)

const e2ePrefix = "/e2e"

// node is one scheduler process.
type node struct {
	id   string
	cmd  *exec.Cmd
	exit chan error
}

func startNode(t *testing.T, id, endpoint, tasksFile, logDir string) *node {
	t.Helper()
	return spawnNode(t, id, logDir, nil, "--endpoints", endpoint, "--node-id", id, "--prefix", e2ePrefix,
		"--ttl", "2s", "--grace", "1m", "--tasks", tasksFile, "--debug-addr", "", "--log-format", "json", "--log-level", "debug")
}

// spawnNode starts this test binary as scheduler process id with args and
// env added to the environment, logging to logDir/id.log, and stops it when
// the test ends: resumed (it may have been SIGSTOPped), then SIGTERM, then
// SIGKILL after 30s.
func spawnNode(t *testing.T, id, logDir string, env []string, args ...string) *node {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	// GORACE: a race-built guard otherwise sleeps 1s at exit.
	cmd.Env = append(append(os.Environ(), mainEnv+"=1", "GORACE=atexit_sleep_ms=0"), env...)
	logFile, err := os.Create(filepath.Join(logDir, id+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{id: id, cmd: cmd, exit: make(chan error, 1)}
	go func() { n.exit <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exit:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-n.exit
		}
	})
	return n
}

// poll waits until cond holds, checking every 50ms, for at most a minute.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leaderOf(t *testing.T, c *clientv3.Client) string {
	t.Helper()
	resp, err := c.Get(context.Background(), e2ePrefix+"/leader/", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

func runs(t *testing.T, c *clientv3.Client) map[string]scheduler.Run {
	t.Helper()
	resp, err := c.Get(context.Background(), e2ePrefix+"/runs/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]scheduler.Run{}
	for _, kv := range resp.Kvs {
		var r scheduler.Run
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			t.Fatal(err)
		}
		out[string(kv.Key)] = r
	}
	return out
}

func countDone(t *testing.T, c *clientv3.Client) int {
	n := 0
	for _, r := range runs(t, c) {
		if r.State == scheduler.StateDone {
			n++
		}
	}
	return n
}

// mark is one line a command printed: what (start, tick, end), the task and
// slot, the attempt, the node and the wall time in ns (one machine, one
// clock).
type mark struct {
	what, run, node string // run is task/slot
	attempt         int
	at              int64
}

// command prints marks to out: a start, a tick every 100ms for ticks
// ticks, and an end.
func command(out string, ticks int) string {
	mark := func(what string) string {
		return `echo "` + what + ` $LEASEHOLD_TASK/$LEASEHOLD_SLOT $LEASEHOLD_ATTEMPT $LEASEHOLD_NODE $(date +%s%N)" >> ` + out
	}
	return mark("start") + `; i=0; while [ $i -lt ` + strconv.Itoa(ticks) + ` ]; do ` + mark("tick") +
		`; sleep 0.1; i=$((i+1)); done; ` + mark("end")
}

// Three scheduler processes share one etcd; the leader is killed with
// SIGKILL, another node is paused with SIGSTOP past its TTL. From etcd's
// records and the commands' own output: every due slot ran, none twice at
// the same time, none after it completed, a paused runner's command died
// before its runner key expired, and assignment tokens never go backwards in
// revision order.
func TestClusterSurvivesKillAndPause(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	dir := t.TempDir()
	if keep := os.Getenv("LEASEHOLD_E2E_DIR"); keep != "" {
		dir = keep // keep the nodes' logs and the marks for a post-mortem
	}
	out := dir + "/marks"
	tasksFile := dir + "/tasks.yaml"
	// tick runs every second for about 1.5s, so runs are often in flight
	// when faults hit; long runs for 6s, so the paused node is caught
	// running one.
	yaml := fmt.Sprintf("tasks:\n"+
		"  - name: tick\n    schedule: \"@every 1s\"\n    command: '%s'\n    retries: 5\n"+
		"  - name: long\n    schedule: \"@every 3s\"\n    command: '%s'\n    retries: 5\n",
		command(out, 15), command(out, 60))
	if err := os.WriteFile(tasksFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*node{}
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes[id] = startNode(t, id, srv.Endpoint, tasksFile, dir)
	}
	// Watch runner keys to learn when each one is deleted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runnerGone := make(chan struct {
		node string
		at   int64
	}, 16)
	wresp, err := c.Get(ctx, e2ePrefix+"/runners/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	watch := c.Watch(ctx, e2ePrefix+"/runners/", clientv3.WithPrefix(), clientv3.WithRev(wresp.Header.Revision+1), clientv3.WithFilterPut())
	go func() {
		for wr := range watch {
			for _, ev := range wr.Events {
				runnerGone <- struct {
					node string
					at   int64
				}{strings.TrimPrefix(string(ev.Kv.Key), e2ePrefix+"/runners/"), time.Now().UnixNano()}
			}
		}
	}()

	var leader string
	poll(t, "a leader", func() bool { leader = leaderOf(t, c); return leader != "" })
	poll(t, "three runs done", func() bool { return countDone(t, c) >= 3 })

	// SIGKILL the leader.
	if err := nodes[leader].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-nodes[leader].exit
	nodes[leader].exit <- nil
	killed := leader
	poll(t, "a new leader", func() bool { leader = leaderOf(t, c); return leader != "" && leader != killed })
	before := countDone(t, c)
	poll(t, "runs after the failover", func() bool { return countDone(t, c) >= before+3 })

	// SIGSTOP a node while it runs a long command, past its TTL.
	var paused, caught string // caught: the long run it was running
	poll(t, "a node running a long command", func() bool {
		for _, r := range running(readMarks(t, out)) {
			// Started under 2s ago, it has 4s left: more than a runner
			// lease's safe time (under 2s with a 2s TTL), so only its
			// guard can end it before the runner key expires.
			if strings.HasPrefix(r.run, "long/") && r.node != killed && time.Now().UnixNano()-r.at < int64(2*time.Second) {
				paused, caught = r.node, r.run+" "+strconv.Itoa(r.attempt)
				return true
			}
		}
		return false
	})
	if err := nodes[paused].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pausedAt := time.Now().UnixNano()
	var goneAt int64
	for goneAt == 0 {
		select {
		case g := <-runnerGone:
			if g.node == paused && g.at > pausedAt {
				goneAt = g.at
			}
		case <-time.After(time.Minute):
			t.Fatal("the paused node's runner key never expired")
		}
	}
	before = countDone(t, c)
	poll(t, "runs while a node is paused", func() bool { return countDone(t, c) >= before+2 })
	if err := nodes[paused].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	before = countDone(t, c)
	poll(t, "runs after the pause", func() bool { return countDone(t, c) >= before+3 })

	// Faults over: every slot up to now must end done while the surviving
	// nodes run on; then they stop gracefully.
	cutoff := time.Now().UTC().Truncate(time.Second)
	poll(t, "every slot up to the cutoff done", func() bool {
		for _, r := range runs(t, c) {
			if !r.Slot.After(cutoff) && r.State != scheduler.StateDone {
				return false
			}
		}
		return true
	})
	for id, n := range nodes {
		if id == killed {
			continue
		}
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		err := <-n.exit
		n.exit <- err
		if id == paused {
			// Resumed past its lease's HeldUntil, it exits by the default
			// overrun policy (75), or stops cleanly if it had none to run.
			t.Logf("paused node %s ended with %v", id, err)
		} else if err != nil {
			t.Errorf("node %s: %v", id, err)
		}
	}
	cancel()

	marks := readMarks(t, out)
	// The guard killed the caught command before the paused runner's key
	// expired: it never printed its end, nor anything after that moment.
	var last int64
	for _, m := range marks {
		if m.run+" "+strconv.Itoa(m.attempt) == caught {
			if m.what == "end" {
				t.Errorf("%s ran to its end on the paused node", caught)
			}
			last = max(last, m.at)
		}
	}
	if last >= goneAt {
		t.Errorf("%s printed at %d, not before the paused runner's key expired at %d", caught, last, goneAt)
	}
	t.Logf("paused %s while it ran %s: its last mark came %s before the runner key expired",
		paused, caught, time.Duration(goneAt-last))
	checkRecords(t, c, marks, paused, goneAt, cutoff)
}

// running lists the attempts that have started and not ended.
func running(marks []mark) []mark {
	open := map[string]mark{}
	for _, m := range marks {
		key := m.run + " " + strconv.Itoa(m.attempt)
		switch m.what {
		case "start":
			open[key] = m
		case "end":
			delete(open, key)
		}
	}
	out := make([]mark, 0, len(open))
	for _, m := range open {
		out = append(out, m)
	}
	return out
}

func readMarks(t *testing.T, path string) []mark {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var marks []mark
	s := bufio.NewScanner(f)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) != 5 {
			continue // a line still being written
		}
		attempt, _ := strconv.Atoi(f[2])
		at, _ := strconv.ParseInt(f[4], 10, 64)
		marks = append(marks, mark{what: f[0], run: f[1], attempt: attempt, node: f[3], at: at})
	}
	return marks
}

func checkRecords(t *testing.T, c *clientv3.Client, marks []mark, paused string, pausedGoneAt int64, cutoff time.Time) {
	t.Helper()
	// Attempts of one slot, from the commands' own output.
	type attempt struct {
		node        string
		start, last int64
		ended       bool
	}
	slots := map[string]map[int]*attempt{}
	for _, m := range marks {
		if slots[m.run] == nil {
			slots[m.run] = map[int]*attempt{}
		}
		a := slots[m.run][m.attempt]
		if a == nil {
			a = &attempt{node: m.node, start: m.at}
			slots[m.run][m.attempt] = a
		}
		if a.node != m.node {
			t.Errorf("%s attempt %d ran on %s and %s", m.run, m.attempt, a.node, m.node)
		}
		a.last = max(a.last, m.at)
		a.ended = a.ended || m.what == "end"
	}
	records := runs(t, c)
	recordOf := func(run string) (scheduler.Run, bool) {
		task, slot, _ := strings.Cut(run, "/")
		s, err := time.Parse(time.RFC3339, slot)
		if err != nil {
			t.Fatalf("run %q: %v", run, err)
		}
		r, ok := records[e2ePrefix+"/runs/"+task+"/"+s.UTC().Format("20060102T150405Z")]
		return r, ok
	}
	// None twice at the same time, none after it completed.
	for run, attempts := range slots {
		var order []int
		for n := range attempts {
			order = append(order, n)
		}
		sort.Ints(order)
		for i := 1; i < len(order); i++ {
			prev, next := attempts[order[i-1]], attempts[order[i]]
			if next.start <= prev.last {
				t.Errorf("%s: attempt %d started at %d while attempt %d was still printing at %d", run, order[i], next.start, order[i-1], prev.last)
			}
		}
		// Completed means recorded done: no later attempt may start. (An
		// attempt whose node died between its command's end and its
		// report is not completed; it runs again: at-least-once.)
		if r, ok := recordOf(run); ok && r.State == scheduler.StateDone {
			if last := order[len(order)-1]; last > r.Attempt {
				t.Errorf("%s: attempt %d ran after attempt %d completed", run, last, r.Attempt)
			}
		}
		// No command on the paused runner outlived its runner key.
		for n, a := range attempts {
			if a.node == paused && a.last > pausedGoneAt && a.start < pausedGoneAt {
				t.Errorf("%s attempt %d on the paused node printed at %d, after its runner key expired at %d", run, n, a.last, pausedGoneAt)
			}
		}
	}
	// Every due slot ran: each slot of each task from its first run to the
	// cutoff has a run, done by an attempt whose command output ends.
	for task, period := range map[string]time.Duration{"tick": time.Second, "long": 3 * time.Second} {
		var first time.Time
		for _, r := range records {
			if r.Task == task && (first.IsZero() || r.Slot.Before(first)) {
				first = r.Slot
			}
		}
		if first.IsZero() {
			t.Errorf("task %s never ran", task)
			continue
		}
		for s := first; !s.After(cutoff); s = s.Add(period) {
			run := task + "/" + s.UTC().Format(time.RFC3339)
			r, ok := recordOf(run)
			switch {
			case !ok:
				t.Errorf("%s has no run", run)
			case r.State != scheduler.StateDone:
				t.Errorf("%s ended %s after %d attempts (%s)", run, r.State, r.Attempt, r.Reason)
			default:
				if a := slots[run][r.Attempt]; a == nil || !a.ended {
					t.Errorf("%s is recorded done by attempt %d, whose command output does not end", run, r.Attempt)
				}
			}
		}
	}
	// Assignment tokens never go backwards in revision order.
	var lastToken int64
	resp, err := c.Get(context.Background(), e2ePrefix+"/runs/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	history := c.Watch(wctx, e2ePrefix+"/assign/", clientv3.WithPrefix(), clientv3.WithRev(1), clientv3.WithFilterDelete())
	for wr := range history {
		for _, ev := range wr.Events {
			var a scheduler.Assignment
			if err := json.Unmarshal(ev.Kv.Value, &a); err != nil {
				t.Fatal(err)
			}
			if a.LeaderToken < lastToken {
				t.Errorf("assignment at revision %d has leader token %d after %d", ev.Kv.ModRevision, a.LeaderToken, lastToken)
			}
			lastToken = a.LeaderToken
		}
		if wr.Header.Revision >= resp.Header.Revision {
			break
		}
	}
	if wctx.Err() != nil {
		t.Error("the assignment history could not be read to its end")
	}
	t.Logf("%d runs up to the cutoff %s; %d command marks; last leader token %d", len(records), cutoff.Format(time.TimeOnly), len(marks), lastToken)
}
