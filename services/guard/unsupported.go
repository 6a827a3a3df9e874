//go:build !linux

package guard

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/leasehold/leasehold/clock"
)

// errUnsupported is returned everywhere but on Linux: the guard relies on
// CLOCK_BOOTTIME instants being meaningful across processes, on
// Linux-only process controls (child subreaper, parent-death signal), and
// on /proc.
var errUnsupported = fmt.Errorf("guard: %w on %s", errors.ErrUnsupported, runtime.GOOS)

// Process is a running guard; on this system none can be started.
type Process struct{}

// Start fails on this system.
func Start(spec Spec, deadline clock.Time) (*Process, error) { return nil, errUnsupported }

// Extend fails on this system.
func (p *Process) Extend(deadline clock.Time) error { return errUnsupported }

// Stop does nothing on this system.
func (p *Process) Stop() {}

// Wait reports an error on this system.
func (p *Process) Wait() Result {
	return Result{ExitCode: -1, Reason: ReasonError, Err: errUnsupported}
}

// Pid returns 0 on this system.
func (p *Process) Pid() int { return 0 }

// CommandPgid returns 0 on this system.
func (p *Process) CommandPgid() int { return 0 }

// Main fails on this system.
func Main(args []string) int {
	fmt.Fprintln(os.Stderr, errUnsupported)
	return exitInternalOther
}

const exitInternalOther = 125
