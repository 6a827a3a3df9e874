package guard

import (
	"errors"
	"io"
	"time"
)

// DefaultKillGrace is the time a stopped or timed-out command is given
// between SIGTERM and SIGKILL when Spec.KillGrace is zero.
const DefaultKillGrace = 500 * time.Millisecond

// Spec describes a command to run under a guard.
type Spec struct {
	// Command is run as /bin/sh -c Command, in a process group of its own.
	Command string
	// Env is added to the caller's environment (os.Environ() at Start)
	// for the command; a later entry overrides an earlier one with the
	// same key.
	Env []string
	// Dir is the command's working directory; empty means the caller's.
	Dir string
	// Timeout, if positive, limits how long the command runs: after it
	// the command's group gets SIGTERM, then SIGKILL after KillGrace.
	// Zero means no limit.
	Timeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL when the command
	// is stopped (Stop, a signal to the guard) or times out. Zero means
	// DefaultKillGrace; a negative value means SIGKILL at once. It does
	// not apply to a passed deadline or a dead parent: those kill at once.
	KillGrace time.Duration
	// Stdout and Stderr receive the command's output; nil discards it.
	// An *os.File is handed to the command as it is; any other writer is
	// fed through a pipe, see Process.Wait.
	Stdout, Stderr io.Writer

	// Self is the binary that is re-executed as the guard. Empty means
	// this very binary: /proc/self/exe, which stays the running image
	// even if the file was replaced on disk since (a deploy), so the
	// guard always speaks the caller's protocol version; os.Executable()
	// if /proc is not mounted.
	Self string
	// Args are the arguments that make Self call Main, e.g.
	// []string{"guard"}. Main itself ignores its arguments.
	Args []string
	// GuardEnv is added to the guard's environment only (not the
	// command's), e.g. a variable that makes a test binary call Main.
	GuardEnv []string
}

// Reason says why a command ended.
type Reason string

// The reasons a Result can carry.
const (
	// ReasonExited: the command's shell exited by itself; ExitCode is its
	// status.
	ReasonExited Reason = "exited"
	// ReasonTimeout: Spec.Timeout elapsed and the command was killed.
	ReasonTimeout Reason = "timeout"
	// ReasonDeadline: the deadline was not extended in time (the parent
	// stopped extending it, or was paused) and the command was killed.
	ReasonDeadline Reason = "deadline"
	// ReasonOrphaned: the control pipe closed, so the parent died, and the
	// command was killed.
	ReasonOrphaned Reason = "orphaned"
	// ReasonStopped: Stop was called, or the guard got SIGTERM or SIGINT,
	// and the command was stopped.
	ReasonStopped Reason = "stopped"
	// ReasonError: the guard failed; Result.Err says how.
	ReasonError Reason = "error"
)

// Result is how a guarded command ended.
type Result struct {
	// ExitCode is the exit status of the command's shell, or 128+n if it
	// was killed by signal n (as a shell reports it), or -1 if it is
	// unknown (ReasonError).
	ExitCode int
	// Reason is why the command ended: the first cause that made the
	// guard end it, or ReasonExited if it ended by itself.
	Reason Reason
	// Err is set when Reason is ReasonError, and otherwise when something
	// went wrong around a command that did end for Reason: the guard could
	// not confirm that every process the command left behind was gone, or
	// its output could not be delivered in full.
	Err error
}

var (
	// ErrDeadlinePassed is returned by Start when the deadline had passed
	// before the command could be started.
	ErrDeadlinePassed = errors.New("guard: deadline passed before the command started")
	// ErrFinished is returned by Extend after the guard has exited.
	ErrFinished = errors.New("guard: guard process has finished")
	// ErrNotReading is returned by Extend when the control pipe is full:
	// the guard is not reading it (it is itself stopped or stuck). The
	// guard still enforces the last deadline it read if it ever runs.
	ErrNotReading = errors.New("guard: control pipe full, guard not reading")
)
