package faults

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MarkerEnv is set in the environment of every child a Group starts, to
// the group's marker, so that leftovers can be found (Leftovers).
const MarkerEnv = "SPLITBRAIN_CAMPAIGN"

// Group starts child processes, each in a process group of its own, and
// kills them all on Close. Children also get SIGKILL from the kernel when
// the process that started them dies (Pdeathsig), so a driver killed with
// SIGKILL leaves no children running either.
type Group struct {
	marker string

	mu     sync.Mutex
	live   map[*Proc]struct{}
	closed bool
}

// NewGroup returns a Group whose children carry marker in MarkerEnv.
func NewGroup(marker string) *Group {
	return &Group{marker: marker, live: map[*Proc]struct{}{}}
}

// Marker is the group's marker.
func (g *Group) Marker() string { return g.marker }

// Proc is a started child process.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	// Ready receives the first stdout line starting with "READY" (the rest
	// of the line), once.
	Ready chan string
	done  chan struct{}
	state *os.ProcessState
	err   error
}

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exit returns how the process ended, once Done is closed: its exit status,
// or -1 and the signal that killed it.
func (p *Proc) Exit() (code int, signal string) {
	if p.state == nil {
		return -1, "unknown"
	}
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, unixSignalName(ws.Signal())
	}
	return p.state.ExitCode(), ""
}

func unixSignalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	}
	return s.String()
}

// Signal sends sig to the process's group, unless the process has been
// reaped (its pid may then be reused).
func (p *Proc) Signal(sig syscall.Signal) error {
	if !p.Alive() {
		return os.ErrProcessDone
	}
	return syscall.Kill(-p.Cmd.Process.Pid, sig)
}

// Alive reports whether the process has not exited yet.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop asks the process to stop (SIGCONT then SIGTERM) and kills its group
// if it has not exited within grace. It returns once it has exited.
func (p *Proc) Stop(grace time.Duration) {
	_ = p.Signal(syscall.SIGCONT)
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.Kill()
}

// Kill kills the process's group and waits for the process to exit.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("faults: process group closed")

// Start starts path with args and extra environment, stderr to the file
// stderr (may be nil: discarded), in a new process group.
func (g *Group) Start(name, path string, args, env []string, stderr *os.File) (*Proc, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(append(os.Environ(), env...), MarkerEnv+"="+g.marker)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("faults: start %s: %w", name, err)
	}
	pw.Close()
	p := &Proc{Name: name, Cmd: cmd, Ready: make(chan string, 1), done: make(chan struct{})}
	g.live[p] = struct{}{}
	// stdout is read until EOF, so the child never blocks on a full pipe.
	var readers sync.WaitGroup
	readers.Go(func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if line := sc.Text(); !sent && strings.HasPrefix(line, "READY") {
				p.Ready <- strings.TrimSpace(strings.TrimPrefix(line, "READY"))
				sent = true
			}
		}
	})
	go func() {
		p.err = cmd.Wait()
		p.state = cmd.ProcessState
		readers.Wait()
		g.mu.Lock()
		delete(g.live, p)
		g.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Close kills every live child's process group (SIGCONT first, so stopped
// ones die at once) and waits for them, up to a bound. Start fails after
// Close.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	procs := make([]*Proc, 0, len(g.live))
	for p := range g.live {
		procs = append(procs, p)
	}
	g.mu.Unlock()
	for _, p := range procs {
		_ = p.Signal(syscall.SIGKILL)
		_ = p.Signal(syscall.SIGCONT)
	}
	deadline := time.After(10 * time.Second)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			return
		}
	}
}

// Leftovers lists the processes (pids) whose environment carries marker.
func Leftovers(marker string) []int {
	want := []byte(MarkerEnv + "=" + marker + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		// A zombie has an empty environ; it is dead already.
		if bytes.Contains(append(env, 0), want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ExitWithParent makes this process exit with status 1 if its parent
// process goes away, in case Pdeathsig did not fire (it is tied to the
// thread that started the child).
func ExitWithParent() {
	ppid := os.Getppid()
	go func() {
		for range time.Tick(250 * time.Millisecond) {
			if os.Getppid() != ppid {
				os.Exit(1)
			}
		}
	}()
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
