package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/services/scheduler"
)

// "scheduler status" and "scheduler runs" read a running cluster's state
// from etcd, with the debug endpoint off.
func TestStatusAndRuns(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	tasksFile := dir + "/tasks.yaml"
	if err := os.WriteFile(tasksFile, []byte("tasks:\n  - name: ok\n    schedule: \"@every 1s\"\n    command: \"true\"\n"+
		"  - name: bad\n    schedule: \"@every 1s\"\n    command: \"exit 4\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "--endpoints", srv.Endpoint, "--node-id", "s1", "--prefix", "/status", "--ttl", "2s",
		"--tasks", tasksFile, "--debug-addr", "", "--log-format", "json")
	cmd.Env = append(os.Environ(), mainEnv+"=1", "GORACE=atexit_sleep_ms=0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	read := func(args ...string) (string, int) {
		var out, errb strings.Builder
		code := run(append(args, "--endpoints", srv.Endpoint, "--prefix", "/status"), &out, &errb)
		if code != exitOK {
			t.Logf("%v: exit %d: %s", args, code, errb.String())
		}
		return out.String(), code
	}
	var st scheduler.Status
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code := read("status", "-o", "json")
		if code == exitOK && json.Unmarshal([]byte(out), &st) == nil && len(st.Tasks) == 2 && st.Tasks[0].Last != nil && st.Tasks[1].Last != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed both tasks with a last run: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Leader != "s1" || len(st.Nodes) != 1 || !st.Nodes[0].Runner || !st.Nodes[0].Member {
		t.Errorf("status = %+v; want leader s1, one member node with a runner", st)
	}
	for _, task := range st.Tasks {
		want := map[string]scheduler.State{"ok": scheduler.StateDone, "bad": scheduler.StateFailed}[task.Name]
		if task.Last.State != want || task.Next.IsZero() || task.Schedule != "@every 1s" {
			t.Errorf("task %s: last %s, next %v, schedule %q; want last %s, a next slot, @every 1s", task.Name, task.Last.State, task.Next, task.Schedule, want)
		}
	}
	text, _ := read("status")
	for _, want := range []string{"leader: s1", "TASK", "bad", "@every 1s", "failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("status text lacks %q:\n%s", want, text)
		}
	}

	out, _ := read("runs", "--failed", "-o", "json")
	var runs []scheduler.Run
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) == 0 {
		t.Fatalf("runs --failed: %v %q", err, out)
	}
	for _, r := range runs {
		if r.Task != "bad" || r.State != scheduler.StateFailed || r.ExitCode != 4 || r.AssignedAt.IsZero() {
			t.Errorf("failed run %+v; want task bad, failed, exit 4, with assigned_at", r)
		}
	}
	out, _ = read("runs", "--task", "ok", "-n", "1", "-o", "json")
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) != 1 || runs[0].Task != "ok" {
		t.Errorf("runs --task ok -n 1 = %+v (%v); want one run of ok", runs, err)
	}
	if _, code := read("runs", "-o", "yaml"); code != exitUsage {
		t.Errorf("runs -o yaml: exit %d; want %d", code, exitUsage)
	}
}
