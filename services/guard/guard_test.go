//go:build linux

package guard_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/clock"
	"github.com/leasehold/leasehold/services/guard"
)

// The test binary plays three parts: the tests; the guard (mainEnv set,
// as Spec.GuardEnv does); and a runner that starts a guard and is then
// killed or paused by a test (roleEnv set).
const (
	mainEnv     = "GUARD_TEST_MAIN"
	roleEnv     = "GUARD_TEST_ROLE"
	roleOrphan  = "orphan"  // never extends (deadline an hour away): only its death can end the command
	roleExtends = "extends" // extends 300ms ahead every 100ms
)

func TestMain(m *testing.M) {
	// The guard inherits the runner role's environment, so mainEnv wins.
	if os.Getenv(mainEnv) == "1" {
		os.Exit(guard.Main(os.Args[1:]))
	}
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRunner(role))
	}
	goleak.VerifyTestMain(m)
}

// runRunner starts a guard running `sleep 60`, prints the command's process
// group, and keeps the guard's deadline as its role says until its stdin
// closes.
func runRunner(role string) int {
	ahead := time.Hour
	if role == roleExtends {
		ahead = 300 * time.Millisecond
	}
	p, err := guard.Start(spec("sleep 60"), in(ahead))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Printf("pgid %d\n", p.CommandPgid())
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-eof:
			p.Stop()
			p.Wait()
			return 0
		case <-tick.C:
			if role == roleExtends {
				_ = p.Extend(in(ahead))
			}
		}
	}
}

// spec is a Spec that re-executes the test binary as the guard.
func spec(command string) guard.Spec {
	return guard.Spec{
		Command: command,
		Self:    os.Args[0],
		Args:    []string{"-test.run=^$"},
		GuardEnv: []string{
			mainEnv + "=1",
			// Under -race a program sleeps a second before exiting
			// (atexit_sleep_ms), and Wait waits for the guard's exit.
			// Later GORACE options win, so the caller's are kept.
			"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
		},
	}
}

// in returns the clock.Boot instant d from now.
func in(d time.Duration) clock.Time { return clock.Boot.Now().Add(d) }

// start starts a guard, and makes sure it is gone when the test ends.
func start(t *testing.T, s guard.Spec, deadline clock.Time) *guard.Process {
	t.Helper()
	p, err := guard.Start(s, deadline)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		p.Stop()
		p.Wait()
	})
	return p
}

// outputPipe returns a pipe for a command's stdout: the write end to put
// in the Spec (close it after Start), and a reader on the read end.
func outputPipe(t *testing.T) (w *os.File, r *bufio.Reader) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pr.Close(), pw.Close() })
	return pw, bufio.NewReader(pr)
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the command's output: %q, %v", line, err)
	}
	return strings.TrimSuffix(line, "\n")
}

func checkResult(t *testing.T, got guard.Result, code int, reason guard.Reason) {
	t.Helper()
	if got.ExitCode != code || got.Reason != reason || got.Err != nil {
		t.Errorf("result = %+v, want exit code %d, reason %q, no error", got, code, reason)
	}
}

// checkGone checks that no process has the given pid (or, negative, is in
// the given process group). After Wait it must hold at once.
func checkGone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("kill(%d, 0) = %v, want ESRCH: still there", pid, err)
	}
}

// waitGone polls until the process group pgid is gone.
func waitGone(t *testing.T, pgid int) {
	t.Helper()
	limit := time.Now().Add(30 * time.Second)
	for syscall.Kill(-pgid, 0) != syscall.ESRCH {
		if time.Now().After(limit) {
			t.Fatalf("process group %d still exists", pgid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExitCodeAndEnv(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	s := spec(`echo "$GUARD_TEST_VAR ${GUARD_TEST_MAIN-unset}"; exit 3`)
	s.Env = []string{"GUARD_TEST_VAR=hello"}
	s.Stdout = &out
	p := start(t, s, in(time.Hour))
	checkResult(t, p.Wait(), 3, guard.ReasonExited)
	// Spec.Env reaches the command; Spec.GuardEnv does not.
	if got, want := out.String(), "hello unset\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	checkGone(t, -p.CommandPgid())
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	p := start(t, spec("sleep 60"), in(300*time.Millisecond))
	checkResult(t, p.Wait(), 128+int(syscall.SIGKILL), guard.ReasonDeadline)
	checkGone(t, -p.CommandPgid())
}

func TestEarlierDeadline(t *testing.T) {
	t.Parallel()
	p := start(t, spec("sleep 60"), in(time.Hour))
	if err := p.Extend(clock.Boot.Now()); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	checkResult(t, p.Wait(), 128+int(syscall.SIGKILL), guard.ReasonDeadline)
	checkGone(t, -p.CommandPgid())
}

// TestExtendKeepsAlive runs alone (not parallel): it depends on this
// process getting to extend every 50ms within 200ms deadlines.
func TestExtendKeepsAlive(t *testing.T) {
	const ahead = 200 * time.Millisecond
	p := start(t, spec("sleep 1; exit 0"), in(ahead))
	done := make(chan guard.Result, 1)
	go func() { done <- p.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			checkResult(t, res, 0, guard.ReasonExited)
			checkGone(t, -p.CommandPgid())
			if err := p.Extend(in(ahead)); !errors.Is(err, guard.ErrFinished) {
				t.Errorf("Extend after Wait = %v, want ErrFinished", err)
			}
			return
		case <-tick.C:
			if err := p.Extend(in(ahead)); err != nil && !errors.Is(err, guard.ErrFinished) {
				t.Errorf("Extend: %v", err)
			}
		}
	}
}

// startRunner starts the test binary as a runner in the given role, and
// returns it with the process group of the command its guard runs.
func startRunner(t *testing.T, role string) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = os.Stderr
	// The runner exits (and, orphaned, its guard kills the command) if
	// this process dies first and its end of the runner's stdin closes.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	pgid, perr := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "pgid "))
	if err != nil || perr != nil {
		t.Fatalf("runner said %q (%v)", line, err)
	}
	if err := syscall.Kill(-pgid, 0); err != nil {
		t.Fatalf("command's process group %d not running: %v", pgid, err)
	}
	return cmd, pgid
}

func TestOrphaned(t *testing.T) {
	t.Parallel()
	runner, pgid := startRunner(t, roleOrphan)
	if err := runner.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pgid)
}

func TestPausedRunner(t *testing.T) {
	t.Parallel()
	runner, pgid := startRunner(t, roleExtends)
	if err := runner.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pgid)
	// The command died of the deadline, not of anything the runner did.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", runner.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Field 3, after the parenthesised command name, is the state.
	if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) == 0 || f[0] != "T" {
		t.Errorf("runner not stopped when the command's group was gone: stat %q", stat)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	t.Parallel()
	w, r := outputPipe(t)
	s := spec(`trap '' TERM; echo ready; sleep 60`)
	s.Stdout = w
	s.KillGrace = 200 * time.Millisecond
	p := start(t, s, in(time.Hour))
	_ = w.Close()
	if got := readLine(t, r); got != "ready" {
		t.Fatalf("command said %q", got)
	}
	p.Stop()
	p.Stop() // idempotent
	checkResult(t, p.Wait(), 128+int(syscall.SIGKILL), guard.ReasonStopped)
	checkGone(t, -p.CommandPgid())
	p.Stop() // harmless after Wait
}

func TestStopLeavesNothing(t *testing.T) {
	t.Parallel()
	w, r := outputPipe(t)
	s := spec(`sleep 100 & echo $!; wait`)
	s.Stdout = w
	p := start(t, s, in(time.Hour))
	_ = w.Close()
	sleep, err := strconv.Atoi(readLine(t, r))
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
	checkResult(t, p.Wait(), 128+int(syscall.SIGTERM), guard.ReasonStopped)
	checkGone(t, sleep)
	checkGone(t, -p.CommandPgid())
}

func TestSignalToGuardStops(t *testing.T) {
	t.Parallel()
	p := start(t, spec("sleep 60"), in(time.Hour))
	if err := syscall.Kill(p.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	checkResult(t, p.Wait(), 128+int(syscall.SIGTERM), guard.ReasonStopped)
	checkGone(t, -p.CommandPgid())
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	s := spec("sleep 60")
	s.Timeout = 200 * time.Millisecond
	p := start(t, s, in(time.Hour))
	checkResult(t, p.Wait(), 128+int(syscall.SIGTERM), guard.ReasonTimeout)
	checkGone(t, -p.CommandPgid())
}

// TestLeftoversKilled: a unit ends with its shell; what the shell left
// running, in its group or not, is killed.
func TestLeftoversKilled(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "escaped")
	var out bytes.Buffer
	// The second background job leaves the group and session with
	// setsid; the shell waits until it has, then exits.
	s := spec(`sleep 100 & echo $!
setsid sh -c 'echo $$ >"$PIDFILE"; exec sleep 100' &
while [ ! -s "$PIDFILE" ]; do sleep 0.01; done
exit 0`)
	s.Env = []string{"PIDFILE=" + pidFile}
	s.Stdout = &out
	p := start(t, s, in(time.Hour))
	checkResult(t, p.Wait(), 0, guard.ReasonExited)
	checkGone(t, -p.CommandPgid())
	for _, s := range []string{out.String(), readFile(t, pidFile)} {
		pid, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("pid %q: %v", s, err)
		}
		checkGone(t, pid)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		spec     func(*guard.Spec)
		deadline clock.Time
		want     error // nil: any error
	}{
		{"deadline passed", func(*guard.Spec) {}, clock.Boot.Now(), guard.ErrDeadlinePassed},
		{"empty command", func(s *guard.Spec) { s.Command = "" }, in(time.Hour), nil},
		{"bad dir", func(s *guard.Spec) { s.Dir = "/nonexistent/dir" }, in(time.Hour), nil},
		{"not a guard", func(s *guard.Spec) { s.Self = "/bin/true" }, in(time.Hour), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec("exit 0")
			tc.spec(&s)
			p, err := guard.Start(s, tc.deadline)
			if err == nil {
				p.Wait()
				t.Fatal("Start succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Start: %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestGuardKilled: a guard that dies without reporting takes the command's
// shell with it (parent-death signal), and Wait kills the rest of the
// group.
func TestGuardKilled(t *testing.T) {
	t.Parallel()
	w, r := outputPipe(t)
	s := spec(`sleep 100 & echo $!; wait`)
	s.Stdout = w
	p := start(t, s, in(time.Hour))
	_ = w.Close()
	sleep, err := strconv.Atoi(readLine(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	res := p.Wait()
	if res.Reason != guard.ReasonError || res.ExitCode != -1 || res.Err == nil {
		t.Errorf("result = %+v, want reason error, exit code -1, an error", res)
	}
	t.Log(res.Err)
	// Without the guard nobody here reaps them, so dead may mean zombie.
	for _, pid := range []int{p.CommandPgid(), sleep} {
		limit := time.Now().Add(30 * time.Second)
		for !dead(pid) {
			if time.Now().After(limit) {
				t.Fatalf("process %d still running", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// dead reports whether process pid is gone or a zombie.
func dead(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}
