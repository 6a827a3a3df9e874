package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/verify/campaign"
	"github.com/leasehold/leasehold/internal/verify/faults"
)

// Child processes are this test binary re-executed with campaign.RoleEnv
// set: the driver itself, and its nodes and etcd members.
func TestMain(m *testing.M) {
	if os.Getenv(campaign.RoleEnv) != "" {
		os.Exit(run(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// startDriver runs the driver as a child process with its temp dir in a
// directory of the test's, and waits until its etcd and nodes run. It
// returns the command and the marker of its children.
func startDriver(t *testing.T, tmp string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--mode", "leasehold", "--faults", "100", "--kinds", "partition,pause",
		"--members", "1", "--etcd-tick", "10", "--etcd-election", "100", "-q")
	cmd.Env = append(os.Environ(), campaign.RoleEnv+"=driver", "TMPDIR="+tmp)
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
