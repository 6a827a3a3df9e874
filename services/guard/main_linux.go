//go:build linux

package guard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leasehold/leasehold/clock"
)

const (
	// exitInternal is the guard's exit status when it has no command
	// status to mirror (the command did not run, or the guard failed). The
	// parent only looks at the guard's exit status if no result arrived.
	exitInternal = 125

	// sweepTimeout bounds the wait, after the command's shell exited and
	// everything left was sent SIGKILL, for those processes to be gone.
	// Killed processes normally vanish within milliseconds; only one stuck
	// in the kernel (uninterruptible I/O) or a zombie whose parent is out
	// of reach takes longer, and the result then says so.
	sweepTimeout = 5 * time.Second
)

// Main runs the guard: the process that Start re-executes. It returns the
// process exit status, for os.Exit; the parent learns the result from the
// status pipe, not from that status.
//
// Main takes everything from its control pipe (stdin) and status pipe
// (fd 3) and ignores args, so whatever arguments made the binary dispatch
// to it (a subcommand, test flags) do no harm. It should be called early in
// main, before the program starts other work, and its return value passed
// to os.Exit: it leaves a goroutine blocked on stdin and changes
// process-wide state (signal handling, child subreaper).
func Main(args []string) int {
	_ = args
	var st unix.Stat_t
	if err := unix.Fstat(statusFD, &st); err != nil {
		fmt.Fprintln(os.Stderr, "guard: no status pipe on fd 3: guard.Main must be started by guard.Start")
		return 2
	}
	// fd 3 came through exec.Cmd.ExtraFiles, so it is inheritable. The
	// command must not inherit it: a process of the command that survived
	// would keep the parent from ever seeing EOF on the status pipe.
	syscall.CloseOnExec(statusFD)
	g := &guardian{status: os.NewFile(statusFD, "guard-status")}
	return g.run()
}

// guardian is the state of a guard's single event loop. All fields are
// owned by the goroutine running run.
type guardian struct {
	status *os.File

	pgid     int           // the command's process group (= its shell's pid)
	grace    time.Duration // SIGTERM to SIGKILL; 0: SIGKILL at once
	reason   Reason        // first cause of ending the command; "" while none
	errMsg   string        // detail for ReasonError
	termSent bool
	killSent bool
	graceT   clock.Timer // armed by the first SIGTERM; nil before
}

// ctlEvent is a control line, or the error that ended the control pipe.
type ctlEvent struct {
	line string
	err  error
}

// readControl forwards control lines until the pipe fails. EOF means every
// copy of the write end is closed: the parent exited or was killed (the
// kernel closes a dead process's descriptors), or it gave up on us.
func readControl(r io.Reader, out chan<- ctlEvent) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			// A partial last line is dropped: a parent that died
			// mid-write meant nothing by it.
			out <- ctlEvent{err: err}
			return
		}
		out <- ctlEvent{line: line}
	}
}

func (g *guardian) run() int {
	// Catch signals before anything else, so that SIGTERM or SIGINT during
	// start-up is a stop request rather than the guard's death. SIGHUP is
	// caught only to be ignored: a terminal hang-up must not kill the
	// guard (the parent decides what a hang-up means and the pipe tells us
	// if it died of it); SIGPIPE likewise. Handlers, unlike ignored
	// dispositions, are reset on exec, so the command still gets the
	// default actions.
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)

	ctlc := make(chan ctlEvent, 16)
	go readControl(os.Stdin, ctlc)

	// Phase 1: the header, which carries the spec and first deadline.
	var h header
	for got := false; !got; {
		select {
		case ev := <-ctlc:
			if ev.err != nil {
				return g.finish(-1, ReasonOrphaned, "")
			}
			if err := json.Unmarshal([]byte(ev.line), &h); err != nil {
				return g.finish(-1, ReasonError, "bad header: "+err.Error())
			}
			if h.Version != protocolVersion {
				return g.finish(-1, ReasonError, fmt.Sprintf("protocol version %d, want %d", h.Version, protocolVersion))
			}
			got = true
		case sig := <-sigc:
			if isStopSignal(sig) {
				return g.finish(-1, ReasonStopped, "")
			}
		}
	}
	g.grace = max(time.Duration(h.KillGrace), 0)

	// Phase 2: arm the deadline before the command exists, and never
	// start it past the deadline.
	deadline := clock.Time(h.Deadline)
	dl := clock.Boot.NewTimer(deadline)
	defer dl.Stop()
	if !clock.Boot.Now().Before(deadline) {
		return g.finish(-1, ReasonDeadline, "")
	}

	// As a child subreaper the guard inherits every orphaned descendant of
	// the command instead of init. That lets it reap the zombies of the
	// command's group (so "the group is gone" becomes observable, even
	// where init does not reap), and find and kill processes that left the
	// group (setsid, double fork). Failure (Linux < 3.4) only weakens the
	// final sweep.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

	cmd := exec.Command("/bin/sh", "-c", h.Command)
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would mean the guard's environment
	}
	cmd.Dir = h.Dir
	// The guard's stdout and stderr are the parent's choice of output; as
	// *os.File they are handed to the command directly, with no copying
	// through the guard. Stdin stays nil (/dev/null): the control pipe is
	// the guard's alone.
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own group, so that one kill(-pgid) reaches the shell and
		// everything it started, and nothing else.
		Setpgid: true,
		// Defence in depth for a guard that is SIGKILLed itself: the
		// kernel then kills the shell (or the program it exec'd). It
		// cannot reach the rest of the group. This fires when the
		// forking OS thread exits, not the process; the guard never
		// locks goroutines to threads, so its threads live as long as
		// it does.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		msg := "starting command: " + err.Error()
		if h.Dir != "" {
			// A missing Dir shows as ENOENT on /bin/sh.
			msg = fmt.Sprintf("starting command in %s: %v", h.Dir, err)
		}
		return g.finish(-1, ReasonError, msg)
	}
	g.pgid = cmd.Process.Pid
	// If the parent is gone this write fails; EOF on the control pipe
	// follows and ends the command.
	_, _ = io.WriteString(g.status, formatPgid(g.pgid))

	exited := make(chan struct{})
	go func() {
		waitExited(g.pgid)
		close(exited)
	}()

	var timeoutC <-chan struct{}
	if h.Timeout > 0 {
		t := clock.Boot.NewTimer(clock.Boot.Now().Add(time.Duration(h.Timeout)))
		defer t.Stop()
		timeoutC = t.C()
	}
	defer func() {
		if g.graceT != nil {
			g.graceT.Stop()
		}
	}()

	// Phase 3: supervise. Every kill(-pgid) in here is safe from pid
	// reuse: the shell is our child and is not reaped before the loop
	// ends, so its pid, which is the group id, stays taken.
	for {
		select {
		case ev := <-ctlc:
			if ev.err != nil {
				ctlc = nil // the reader has returned
				g.kill(ReasonOrphaned)
				continue
			}
			c, err := parseControl(ev.line)
			switch {
			case err != nil:
				// A parent that sends garbage cannot be trusted to
				// extend deadlines correctly either.
				if g.reason == "" {
					g.errMsg = err.Error()
				}
				g.kill(ReasonError)
			case c.stop:
				g.terminate(ReasonStopped)
			default:
				// Later or earlier: the parent's latest word is the
				// deadline. An instant already past fires at once.
				deadline = c.deadline
				dl.Reset(deadline)
			}
		case <-dl.C():
			// The timer only delivers once the clock reached the
			// current arming; re-checking costs one clock read and
			// makes "never kill early" independent of that promise.
			if clock.Boot.Now().Before(deadline) {
				dl.Reset(deadline)
				continue
			}
			// No grace: at the deadline the lease may already be
			// unsafe to act under.
			g.kill(ReasonDeadline)
		case <-timeoutC:
			g.terminate(ReasonTimeout)
		case <-g.graceC():
			g.kill(g.reason)
		case sig := <-sigc:
			if isStopSignal(sig) {
				g.terminate(ReasonStopped)
			}
		case <-exited:
			return g.cleanUp(cmd)
		}
	}
}

func isStopSignal(sig os.Signal) bool {
	return sig == syscall.SIGTERM || sig == syscall.SIGINT
}

// setReason records the first cause of ending the command.
func (g *guardian) setReason(r Reason) {
	if g.reason == "" {
		g.reason = r
	}
}

// kill ends the command's group at once; r is the reason unless one was
// given before.
func (g *guardian) kill(r Reason) {
	g.setReason(r)
	g.signalGroup(syscall.SIGKILL)
	g.killSent = true
}

// terminate asks the command's group to stop, and arms SIGKILL after the
// grace. Once a stop is under way it changes nothing.
func (g *guardian) terminate(r Reason) {
	g.setReason(r)
	if g.termSent || g.killSent {
		return
	}
	g.termSent = true
	g.signalGroup(syscall.SIGTERM)
	// A stopped process keeps SIGTERM pending until continued, so a
	// group that someone stopped would sit out the whole grace.
	g.signalGroup(syscall.SIGCONT)
	if g.grace <= 0 {
		g.kill(r)
		return
	}
	g.graceT = clock.Boot.NewTimer(clock.Boot.Now().Add(g.grace))
}

// graceC is the channel of the grace timer, or nil (never ready) before a
// stop.
func (g *guardian) graceC() <-chan struct{} {
	if g.graceT == nil {
		return nil
	}
	return g.graceT.C()
}

func (g *guardian) signalGroup(sig syscall.Signal) {
	// Errors are not actionable: the group exists as long as the unreaped
	// shell does, and the guard may signal its own children.
	_ = unix.Kill(-g.pgid, sig)
}

// waitExited blocks until the process pid has exited, without reaping it.
func waitExited(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			// nil, or ECHILD which cannot happen for our own unreaped
			// child; either way cmd.Wait has the final word.
			return
		}
	}
}

// cleanUp runs once the command's shell has exited (but is not yet
// reaped): it kills what the shell left behind, reaps it all, and reports.
func (g *guardian) cleanUp(cmd *exec.Cmd) int {
	// Children of the shell may linger in the group (`sleep 100 & exit`).
	// The unit is over when its shell is: they die with it. Killing before
	// reaping the shell keeps the group id pinned to this group.
	g.signalGroup(syscall.SIGKILL)
	_ = cmd.Wait() // only reaps: output goes straight to *os.File
	code := exitCode(cmd.ProcessState)
	g.setReason(ReasonExited)
	msg := g.errMsg
	if err := sweep(g.pgid, sweepTimeout); err != nil {
		if msg != "" {
			msg += "; "
		}
		msg += err.Error()
	}
	return g.finish(code, g.reason, msg)
}

// exitCode is the shell's status as a shell would report it.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// finish reports the result to the parent and returns the guard's exit
// status.
func (g *guardian) finish(code int, reason Reason, msg string) int {
	// A failed write means the parent is gone; nobody is left to tell.
	_, _ = io.WriteString(g.status, formatResult(code, reason, msg))
	_ = g.status.Close()
	if reason == ReasonError || code < 0 || code > 255 {
		return exitInternal
	}
	return code
}

// sweep waits until the command's process group is empty and the guard has
// no children left, reaping zombies and killing any descendant that left
// the group. It is called after the shell was reaped and the group sent
// SIGKILL, so it never signals the group again: once empty, the group id
// may be reused.
//
// Why a poll: the processes to wait for are not all our children yet (a
// killed process's children are re-parented to us only as it dies), and
// members whose parent is out of reach never will be, so no single
// blocking wait covers them. Killed processes vanish within milliseconds.
func sweep(pgid int, timeout time.Duration) error {
	limit := time.Now().Add(timeout)
	pause := 100 * time.Microsecond
	for {
		children := reapChildren()
		groupGone := unix.Kill(-pgid, 0) == unix.ESRCH
		if !children && groupGone {
			return nil
		}
		if children {
			// Every child of the guard is now a descendant of the
			// command that escaped its group (setsid, or a double fork
			// re-parented to us): the command's lifetime bounds theirs
			// too. They are unreaped children, so their pids cannot
			// have been reused.
			for _, pid := range listChildren() {
				_ = unix.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(limit) {
			if !groupGone {
				return fmt.Errorf("guard: process group %d not gone %v after SIGKILL", pgid, timeout)
			}
			return fmt.Errorf("guard: descendants of the command not gone %v after SIGKILL", timeout)
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// reapChildren reaps every exited child and reports whether any child is
// left.
func reapChildren() bool {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
		case err != nil: // ECHILD: none left
			return false
		case pid == 0: // children left, none exited
			return true
		}
	}
}

// listChildren returns the guard's child processes, from
// /proc/self/task/*/children: a child belongs to the thread that forked it
// or adopted it, and the Go runtime has many threads. It returns nil where
// the kernel lacks CONFIG_PROC_CHILDREN; the sweep then reports what it
// could not kill instead of killing it.
func listChildren() []int {
	files, _ := filepath.Glob("/proc/self/task/*/children")
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
