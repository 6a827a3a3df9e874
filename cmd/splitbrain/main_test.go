package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/faults"
)

// Child processes are this test binary re-executed with roleEnv set.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// The seed of TestSensitivity, whose plan must hold enough pauses and
// partitions of the leader.
const sensitivitySeed = 7

func TestPlanIsReproducible(t *testing.T) {
	a, b := newPlanner(42, allKinds, 2*time.Second), newPlanner(42, allKinds, 2*time.Second)
	for range 100 {
		if fa, fb := a.next(), b.next(); fa != fb {
			t.Fatalf("same seed, different faults: %v and %v", fa, fb)
		}
	}
	if a.next() == newPlanner(43, allKinds, 2*time.Second).next() {
		t.Error("seeds 42 and 43 begin alike")
	}
}

// TestSensitivity is the checker's own test: the same short campaign of
// pauses and partitions finds overlaps in the naive baseline and none in
// leasehold. A checker that cannot fail proves nothing.
func TestSensitivity(t *testing.T) {
	const n = 5
	p := newPlanner(sensitivitySeed, []string{faultPause, faultPartition}, 2*time.Second)
	pauses := 0
	for range n {
		if f := p.next(); f.Kind == faultPause && f.Leader {
			pauses++
		}
	}
	if pauses < 2 {
		t.Fatalf("seed %d plans %d pauses of the leader in %d faults; pick a seed with at least 2", sensitivitySeed, pauses, n)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Socket paths must stay short: not t.TempDir().
	work, err := os.MkdirTemp("", "sbt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	results := map[string]result{}
	done := make(chan result)
	for _, mode := range []string{"leasehold", "naive"} {
		cfg := campaignConfig{
			Mode: mode, Nodes: 3, Members: 1, Faults: n, Seed: sensitivitySeed,
			Kinds: []string{faultPause, faultPartition}, TTL: 2 * time.Second,
			Etcd: faults.EtcdSettings{TickMs: 10, ElectionMs: 100, NoFsync: true},
			Self: self, Marker: "sbt-" + filepath.Base(work),
			Work: filepath.Join(work, mode), HistDir: filepath.Join(work, mode, "history"),
			Log: testLog{t},
		}
		go func() { done <- runCampaign(ctx, cfg) }()
	}
	for range 2 {
		r := <-done
		results[r.Mode] = r
	}
	var o options
	o.seed, o.nodes, o.members, o.ttl = sensitivitySeed, 3, 1, 2*time.Second
	t.Log(renderTable(o, faults.EtcdSettings{TickMs: 10, ElectionMs: 100, NoFsync: true}, []result{results["leasehold"], results["naive"]}))
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s campaign: %v", r.Mode, r.Err)
		}
		if r.Injected != n {
			t.Errorf("%s campaign injected %d faults; want %d", r.Mode, r.Injected, n)
		}
		if !r.Report.WritesChecked || r.Report.Commits == 0 {
			t.Errorf("%s campaign: writes not checked (%d commits in etcd's record)", r.Mode, r.Report.Commits)
		}
	}
	if lh := results["leasehold"].Report; lh.Violations() != 0 {
		t.Errorf("leasehold violations:\n%s", lh.Summary(10))
	}
	if nv := results["naive"].Report; len(nv.Overlaps) == 0 {
		t.Errorf("the naive baseline shows no overlap after %d pauses of its leader: the checker proves nothing\n%s", pauses, nv.Summary(10))
	}
	if left := faults.Leftovers("sbt-" + filepath.Base(work)); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startDriver runs the driver as a child process with its temp dir in a
// directory of the test's, and waits until its etcd and nodes run. It
// returns the command and the marker of its children.
func startDriver(t *testing.T, tmp string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--mode", "leasehold", "--faults", "100", "--kinds", "partition,pause",
		"--members", "1", "--etcd-tick", "10", "--etcd-election", "100", "-q")
	cmd.Env = append(os.Environ(), roleEnv+"=driver", "TMPDIR="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if dirs, _ := filepath.Glob(filepath.Join(tmp, "splitbrain-*")); len(dirs) == 1 {
			marker := filepath.Base(dirs[0])
			// One etcd member and three nodes, and a leader acting.
			if len(faults.Leftovers(marker)) >= 4 {
				if hist, _ := filepath.Glob(filepath.Join(dirs[0], "leasehold", "history", "n*.jsonl")); len(hist) >= 3 {
					time.Sleep(2 * time.Second)
					return cmd, marker, &out
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the driver did not start its processes within 60s; output:\n%s", out.String())
	return nil, "", nil
}

func awaitExit(t *testing.T, cmd *exec.Cmd, bound time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the driver did not exit within %s", bound)
	}
}

// A driver stopped by a signal heals, stops every process it started and
// removes its temp dir.
func TestCleanupOnSignal(t *testing.T) {
	tmp := t.TempDir()
	cmd, marker, out := startDriver(t, tmp)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	awaitExit(t, cmd, 60*time.Second)
	if code := cmd.ProcessState.ExitCode(); code != 4 {
		t.Errorf("exit status %d; want 4 (interrupted); output:\n%s", code, out.String())
	}
	if left := faults.Leftovers(marker); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("left in the temp dir: %v", entries)
	}
	if !strings.Contains(out.String(), "| faults injected |") {
		t.Errorf("no table after an interrupted campaign; output:\n%s", out.String())
	}
}

// A driver killed outright cannot clean up its temp dir, but its children
// die with it (Pdeathsig, and each child's watch on its parent).
func TestChildrenDieWithTheDriver(t *testing.T) {
	tmp := t.TempDir()
	cmd, marker, _ := startDriver(t, tmp)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	awaitExit(t, cmd, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for len(faults.Leftovers(marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes still running 10s after the driver was killed: %v", faults.Leftovers(marker))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
