//go:build linux

package guard

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/leasehold/leasehold/clock"
)

const (
	// startTimeout bounds Start's wait for the guard to take the spec and
	// answer. A guard answers in milliseconds; this only catches a Self or
	// Args that do not lead to Main (a binary that does something else).
	startTimeout = 10 * time.Second
	// abortGrace is how long a failed Start waits for the guard to exit by
	// itself after its control pipe was closed, before killing it.
	abortGrace = 2 * time.Second
	// outputDrain is exec.Cmd.WaitDelay for the guard: with a Stdout or
	// Stderr that is not an *os.File, how long Wait keeps copying output
	// after the guard exited, should a process that escaped the guard
	// still hold the pipe.
	outputDrain = 2 * time.Second
)

// Process is a running guard and, through it, a running command.
type Process struct {
	cmd    *exec.Cmd
	pgid   int
	stR    *os.File      // read end of the status pipe
	status *bufio.Reader // on stR

	mu       sync.Mutex
	ctl      *os.File // write end of the control pipe; nil once closed
	ctlRaw   syscall.RawConn
	stopSent bool

	once sync.Once
	res  Result
}

// Start starts the guard, which starts the command. The command is killed
// unless the guard's deadline, given here first and then by Extend, keeps
// being moved past the current time. deadline is an instant of clock.Boot
// (CLOCK_BOOTTIME is system-wide, so the guard reads the same clock); an
// instant of any other clock is meaningless to the guard.
//
// Start returns once the command runs, or with an error once the guard
// has exited (nothing is left running then). It returns ErrDeadlinePassed
// if the deadline passed before the command could start. The caller must
// call Wait.
func Start(spec Spec, deadline clock.Time) (*Process, error) {
	if spec.Command == "" {
		return nil, errors.New("guard: empty Command")
	}
	if spec.Timeout < 0 {
		return nil, errors.New("guard: negative Timeout")
	}
	if !clock.Boot.Now().Before(deadline) {
		return nil, ErrDeadlinePassed
	}
	grace := spec.KillGrace
	if grace == 0 {
		grace = DefaultKillGrace
	}
	hdr, err := json.Marshal(header{
		Version:   protocolVersion,
		Command:   spec.Command,
		Env:       append(os.Environ(), spec.Env...),
		Dir:       spec.Dir,
		Timeout:   int64(spec.Timeout),
		KillGrace: int64(max(grace, 0)),
		Deadline:  int64(deadline),
	})
	if err != nil {
		return nil, fmt.Errorf("guard: encoding spec: %w", err)
	}
	self, argv0 := spec.Self, spec.Self
	if self == "" {
		if self, argv0, err = selfExe(); err != nil {
			return nil, err
		}
	}

	// os.Pipe descriptors are close-on-exec, so no other child of this
	// process inherits the control pipe's write end: the guard sees EOF
	// exactly when this process exits or closes it.
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		_, _ = ctlR.Close(), ctlW.Close()
		return nil, fmt.Errorf("guard: %w", err)
	}
	cmd := exec.Command(self, spec.Args...)
	cmd.Args[0] = argv0
	cmd.Env = append(os.Environ(), spec.GuardEnv...)
	cmd.Stdin = ctlR
	cmd.ExtraFiles = []*os.File{stW} // fd 3 in the guard
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.WaitDelay = outputDrain
	// The guard gets a process group of its own, so that job control aimed
	// at this process's group does not reach it: a terminal's Ctrl-Z
	// (SIGTSTP) or a `kill -STOP -<pgid>` would otherwise stop the guard
	// along with its parent, and a stopped guard cannot kill at the
	// deadline. Ctrl-C and terminal hang-up reach only the parent; if they
	// kill it, its control pipe closes and the guard kills the command at
	// once, and a parent that handles them calls Stop. No Pdeathsig: the
	// guard must outlive its parent long enough to kill the command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	_, _ = ctlR.Close(), stW.Close() // the guard's ends; ours must not keep them open
	if err != nil {
		_, _ = ctlW.Close(), stR.Close()
		return nil, fmt.Errorf("guard: starting %s: %w", self, err)
	}
	rc, err := ctlW.SyscallConn()
	if err != nil { // not for an *os.File from os.Pipe
		panic("guard: control pipe: " + err.Error())
	}
	p := &Process{cmd: cmd, stR: stR, status: bufio.NewReader(stR), ctl: ctlW, ctlRaw: rc}
	if err := p.handshake(hdr, self); err != nil {
		p.abort()
		return nil, err
	}
	return p, nil
}

// selfExe returns the path that re-executes this binary and the argv[0] to
// show for it. /proc/self/exe is resolved by the kernel in the forked
// child, so it is this process's own image even after the file on disk
// was replaced.
func selfExe() (path, argv0 string, err error) {
	const procExe = "/proc/self/exe"
	if _, err := os.Stat(procExe); err == nil {
		return procExe, os.Args[0], nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("guard: finding this executable: %w", err)
	}
	return exe, exe, nil
}

// handshake sends the header and waits for the guard's first status line:
// the command's pgid, or a result if the command was not started.
func (p *Process) handshake(hdr []byte, self string) error {
	limit := time.Now().Add(startTimeout)
	// The header is usually far below the pipe's capacity and goes at
	// once; a huge environment waits for the guard to read.
	_ = p.ctl.SetWriteDeadline(limit)
	_, err := p.ctl.Write(append(hdr, '\n'))
	_ = p.ctl.SetWriteDeadline(time.Time{})
	if err == nil {
		_ = p.stR.SetReadDeadline(limit)
		var line string
		line, err = p.status.ReadString('\n')
		_ = p.stR.SetReadDeadline(time.Time{})
		if err == nil {
			st, err := parseStatus(line)
			switch {
			case err != nil:
				return err
			case st.result == nil:
				p.pgid = st.pgid
				return nil
			case st.result.Reason == ReasonDeadline:
				return ErrDeadlinePassed
			case st.result.Err != nil:
				return fmt.Errorf("guard: command not started: %w", st.result.Err)
			default:
				return fmt.Errorf("guard: command not started: %s", st.result.Reason)
			}
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("guard: %s did not answer within %v: do Spec.Self and Spec.Args make it call guard.Main?", self, startTimeout)
	}
	return fmt.Errorf("guard: %s exited without starting the command (%v): do Spec.Self and Spec.Args make it call guard.Main?", self, err)
}

// abort ends a guard whose handshake failed, and reaps it.
func (p *Process) abort() {
	// EOF on the control pipe is how a guard learns its parent is gone: a
	// real guard kills the command, had it started one, and exits.
	p.closeCtl()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, p.status)
		_ = p.cmd.Wait()
		close(done)
	}()
	t := time.NewTimer(abortGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		// Not a guard we can talk to. Process.Signal is safe even if
		// the process was reaped meanwhile; closing our end of the
		// status pipe ends the copy should anything else hold it.
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.stR.Close()
		<-done
	}
	_ = p.stR.Close()
}

// Extend moves the guard's deadline to deadline, a clock.Boot instant,
// later or earlier. It costs one non-blocking write, and is safe to call
// concurrently with Stop and Wait. It returns ErrFinished once the guard
// has exited, and ErrNotReading if the guard has stopped reading (it keeps
// enforcing the last deadline it read).
func (p *Process) Extend(deadline clock.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sendLocked(formatDeadline(deadline))
}

// Stop asks the guard to stop the command: SIGTERM to the command's
// process group, SIGKILL after Spec.KillGrace. It returns at once; Wait
// reports the end. Stop is idempotent, and a no-op once the guard has
// exited.
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopSent || p.ctl == nil {
		return
	}
	p.stopSent = true
	if err := p.sendLocked(lineStop + "\n"); err != nil {
		// The guard does not read its pipe (it is stuck or stopped), or
		// it is exiting. SIGTERM means the same to it and needs no
		// pipe; it is still our unreaped child, so the pid is its.
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
}

// sendLocked writes one control line without blocking; p.mu is held.
func (p *Process) sendLocked(line string) error {
	if p.ctl == nil {
		return ErrFinished
	}
	var werr error
	err := p.ctlRaw.Write(func(fd uintptr) bool {
		// Lines are far shorter than PIPE_BUF, so the kernel writes
		// each whole or not at all, and lines from concurrent calls
		// cannot interleave. Returning true makes this a single
		// attempt: on a full pipe, fail rather than block the caller.
		for {
			_, werr = unix.Write(int(fd), []byte(line))
			if werr != unix.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		return fmt.Errorf("guard: control pipe: %w", err)
	case werr == unix.EAGAIN:
		return ErrNotReading
	case werr == unix.EPIPE:
		return ErrFinished
	case werr != nil:
		return fmt.Errorf("guard: control pipe: %w", werr)
	}
	return nil
}

func (p *Process) closeCtl() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctl != nil {
		_ = p.ctl.Close()
		p.ctl = nil
	}
}

// Wait waits for the guard to exit, which it does only after the
// command's process group is gone, and returns how the command ended.
// Later calls return the same Result.
//
// If Spec.Stdout or Spec.Stderr is not an *os.File, Wait also waits for
// the output to be copied, for at most a short while after the guard
// exited (a process that escaped the guard's reach may hold the pipe);
// Result.Err then notes the cut.
//
// Should the guard die without reporting (it was SIGKILLed, or crashed),
// Wait kills the command's process group itself, as a last resort, and
// returns ReasonError.
func (p *Process) Wait() Result {
	p.once.Do(func() { p.res = p.wait() })
	return p.res
}

func (p *Process) wait() Result {
	var res *Result
	for {
		line, err := p.status.ReadString('\n')
		if line != "" {
			if st, perr := parseStatus(line); perr == nil && st.result != nil {
				res = st.result
			}
		}
		if err != nil {
			break // EOF: the guard exited (fd 3 is close-on-exec for the command)
		}
	}
	werr := p.cmd.Wait()
	p.closeCtl()
	_ = p.stR.Close()
	if res == nil {
		// The command's shell got SIGKILL from the kernel as the guard
		// died (Pdeathsig), but the rest of its group may live on. The
		// group id stays taken while any member lives, so this reaches
		// exactly the leftovers; only if none is left could the id, in
		// the moments since, have been reused after a full pid wrap.
		if p.pgid > 0 {
			_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		}
		how := "exit status 0"
		if werr != nil {
			how = werr.Error()
		}
		return Result{ExitCode: -1, Reason: ReasonError,
			Err: fmt.Errorf("guard: exited without reporting a result (%s); killed the command's process group", how)}
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		res.Err = errors.Join(res.Err, fmt.Errorf("guard: %w", werr))
	}
	return *res
}

// Pid returns the guard's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// CommandPgid returns the command's process group id (the pid of its
// shell). The group is gone once Wait has returned.
func (p *Process) CommandPgid() int { return p.pgid }
