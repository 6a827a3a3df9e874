package guard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/leasehold/leasehold/clock"
)

// The wire protocol between Start (the parent) and Main (the guard). Both
// ends are normally the same binary, so there is no negotiation; the
// version in the header only turns a mismatch (Spec.Self naming another
// build) into a clear error instead of a misread spec. See doc.go.
const (
	protocolVersion = 1

	// statusFD is the guard's status pipe: the first of exec.Cmd's
	// ExtraFiles.
	statusFD = 3

	lineDeadline = "deadline" // control: "deadline <clock.Time ns>"
	lineStop     = "stop"     // control: "stop"
	linePgid     = "pgid"     // status: "pgid <n>"
	lineResult   = "result"   // status: "result <code> <reason> [<quoted error>]"
)

// header is the first line on the control pipe, as JSON. The spec travels
// here rather than in the guard's environment or arguments so that it is
// not size-limited (MAX_ARG_STRLEN), not visible in ps, and not inherited
// by the command.
type header struct {
	Version int    `json:"v"`
	Command string `json:"command"`
	// Env is the command's complete environment, computed by the parent,
	// so that Spec.GuardEnv never reaches the command.
	Env       []string `json:"env"`
	Dir       string   `json:"dir,omitempty"`
	Timeout   int64    `json:"timeout_ns,omitempty"`    // 0: none
	KillGrace int64    `json:"kill_grace_ns,omitempty"` // resolved: 0 means SIGKILL at once
	Deadline  int64    `json:"deadline"`                // clock.Boot instant
}

// control is one parsed control line.
type control struct {
	stop     bool
	deadline clock.Time // if !stop
}

func formatDeadline(t clock.Time) string {
	return lineDeadline + " " + strconv.FormatInt(int64(t), 10) + "\n"
}

func parseControl(line string) (control, error) {
	verb, arg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	switch verb {
	case lineStop:
		if arg == "" {
			return control{stop: true}, nil
		}
	case lineDeadline:
		if ns, err := strconv.ParseInt(arg, 10, 64); err == nil {
			return control{deadline: clock.Time(ns)}, nil
		}
	}
	return control{}, fmt.Errorf("guard: bad control line %q", line)
}

func formatPgid(pgid int) string {
	return linePgid + " " + strconv.Itoa(pgid) + "\n"
}

func formatResult(code int, reason Reason, msg string) string {
	s := lineResult + " " + strconv.Itoa(code) + " " + string(reason)
	if msg != "" {
		s += " " + strconv.Quote(msg)
	}
	return s + "\n"
}

// status is one parsed status line: either a pgid or a result.
type status struct {
	pgid   int
	result *Result
}

func parseStatus(line string) (status, error) {
	bad := fmt.Errorf("guard: bad status line %q", line)
	if !strings.HasSuffix(line, "\n") {
		return status{}, bad // cut short: the guard died while writing
	}
	f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 4)
	switch {
	case f[0] == linePgid && len(f) == 2:
		n, err := strconv.Atoi(f[1])
		if err != nil || n <= 0 {
			return status{}, bad
		}
		return status{pgid: n}, nil
	case f[0] == lineResult && len(f) >= 3:
		code, err := strconv.Atoi(f[1])
		if err != nil {
			return status{}, bad
		}
		r := &Result{ExitCode: code, Reason: Reason(f[2])}
		switch r.Reason {
		case ReasonExited, ReasonTimeout, ReasonDeadline, ReasonOrphaned, ReasonStopped, ReasonError:
		default:
			return status{}, bad
		}
		if len(f) == 4 {
			msg, err := strconv.Unquote(f[3])
			if err != nil {
				return status{}, bad
			}
			r.Err = errors.New(msg)
		}
		if r.Reason == ReasonError && r.Err == nil {
			r.Err = errors.New("guard: unspecified error")
		}
		return status{result: r}, nil
	}
	return status{}, bad
}
