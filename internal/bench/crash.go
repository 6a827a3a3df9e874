package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/leasehold/leasehold/clock"
)

// The crash and teardown measurements re-execute the running binary (the
// bench command, or a test binary) in a child role; these variables tell it
// which.
const (
	childRoleEnv      = "LEASEHOLD_BENCH_CHILD"
	childEndpointsEnv = "LEASEHOLD_BENCH_ENDPOINTS"
	childPrefixEnv    = "LEASEHOLD_BENCH_PREFIX"
	childTeardownEnv  = "LEASEHOLD_BENCH_TEARDOWN" // impl,services,slow
)

// Child runs a child role when this process was started as one, and then
// returns its exit status and true; otherwise it returns false at once.
// Call it first thing in main (and in TestMain).
func Child() (int, bool) {
	role := os.Getenv(childRoleEnv)
	if role == "" {
		return 0, false
	}
	endpoints := strings.Split(os.Getenv(childEndpointsEnv), ",")
	if role == "teardown" {
		return runTeardownChild(endpoints, os.Getenv(childTeardownEnv)), true
	}
	return runLeaderChild(role, endpoints, os.Getenv(childPrefixEnv)), true
}

// runLeaderChild leads an election as leasehold or the baseline, prints
// ELECTED once it acts, and runs until it is killed, stdin closes (the
// parent died) or SIGTERM.
func runLeaderChild(role string, endpoints []string, prefix string) int {
	var s side
	switch role {
	case leaseholdSide.name:
		s = leaseholdSide
	case naiveSide.name:
		s = naiveSide
	default:
		fmt.Println("ERROR unknown role", role)
		return 2
	}
	c, err := newClient(endpoints, nil)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	defer c.Close()
	cand, err := s.start(c, prefix, "crash-child")
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	defer func() { _ = cand.stop() }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	select {
	case <-cand.actor().first:
		fmt.Println("ELECTED")
	case <-ctx.Done():
		return 0
	}
	<-ctx.Done()
	return 0
}

// childProc is a running child role and the lines it prints.
type childProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // closed when its stdout ends
	exited chan struct{}
}

// startChild re-executes this binary in role, with env added.
func (e *env) startChild(role string, env ...string) (*childProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childRoleEnv+"="+role, childEndpointsEnv+"="+strings.Join(e.endpoints, ","))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &childProc{cmd: cmd, stdin: stdin, lines: make(chan string, 16), exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		_ = cmd.Wait()
	}()
	return p, nil
}

// await returns the first line with prefix, or an error when the child
// prints ERROR, exits, or takes too long.
func (p *childProc) await(ctx context.Context, prefix string) (string, error) {
	timeout := time.After(waitTimeout)
	for {
		select {
		case line, ok := <-p.lines:
			switch {
			case !ok:
				return "", fmt.Errorf("the child exited before printing %s", prefix)
			case strings.HasPrefix(line, "ERROR"):
				return "", fmt.Errorf("child: %s", line)
			case strings.HasPrefix(line, prefix):
				return line, nil
			}
		case <-ctx.Done():
			return "", ctx.Err()
		case <-timeout:
			return "", fmt.Errorf("the child printed no %s after %s", prefix, waitTimeout)
		}
	}
}

// kill kills the child and waits for it.
func (p *childProc) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.stdin.Close()
	for range p.lines {
	}
	<-p.exited
}

// crashTrial measures one crash failover: a child process leads, an
// in-process successor waits, the child is SIGKILLed, and the failover
// lasts from the kill to the successor's first act.
func (e *env) crashTrial(ctx context.Context, s side) (time.Duration, error) {
	prefix := e.newPrefix("crash-" + s.name)
	child, err := e.startChild(s.name, childPrefixEnv+"="+prefix)
	if err != nil {
		return 0, err
	}
	defer child.kill()
	if _, err := child.await(ctx, "ELECTED"); err != nil {
		return 0, err
	}

	c, err := e.client(nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	succ, err := s.start(c, prefix, "successor")
	if err != nil {
		return 0, err
	}
	defer func() { _ = succ.stop() }()
	if err := e.awaitKeys(ctx, prefix, 2); err != nil {
		return 0, err
	}
	// Kill at a random point of the leader's renewal cycle (up to a second
	// for the baseline's client).
	if err := sleepCtx(ctx, 200*time.Millisecond+rand.N(time.Second)); err != nil {
		return 0, err
	}
	killed := clock.Boot.Now()
	if err := child.cmd.Process.Kill(); err != nil {
		return 0, err
	}
	if err := await(ctx, succ.actor().first, "the successor to act after the kill"); err != nil {
		return 0, err
	}
	first, _ := succ.actor().times()
	return first.Sub(killed), nil
}
