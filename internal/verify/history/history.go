// Package history is the event log of a split-brain campaign: every process
// (each node incarnation, the fault driver, and the driver's dump of etcd's
// own record) appends JSON lines to a file of its own, and the checker reads
// them all back.
//
// Timestamps are CLOCK_BOOTTIME nanoseconds (clock.Boot), a clock that every
// process on one machine shares and that never goes backwards, so events of
// different processes compare directly.
//
// Each event is one write(2) on a file opened with O_APPEND, so a process
// killed with SIGKILL leaves whole lines behind; the reader still tolerates a
// torn last line (and counts it) rather than trusting that.
package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/leasehold/leasehold/clock"
)

// Kind says what an event records.
type Kind string

// Events of a node process.
const (
	// Start: the process started (Inc, PID).
	Start Kind = "start"
	// Acquired: the node believes it leads from At on, in term (Lease,
	// Token). Recorded under the same guard as Act.
	Acquired Kind = "acquired"
	// Act: the node acted as leader at At. An act is instantaneous: the
	// clock is read, the node's belief that it leads is checked at that
	// reading (the guard, see the package checker), and the line is
	// appended. The leadership interval of a term is [first act, last act].
	Act Kind = "act"
	// Refused: the service's context was still live but the guard said the
	// lease could already have expired (leasehold: At >= HeldUntil), so it
	// did not act. Only after a process pause; counted, never a violation.
	Refused Kind = "refused"
	// Write: a write to etcd made on behalf of a term, with its outcome.
	Write Kind = "write"
	// Lost: the node's library reported the term or lease lost.
	Lost Kind = "lost"
	// Overrun: leasehold's overrun policy ran (the process exits with 75).
	Overrun Kind = "overrun"
	// Stopped: the acting service returned.
	Stopped Kind = "stopped"
)

// Events of the driver.
const (
	// Campaign describes the campaign (Detail: its settings).
	Campaign Kind = "campaign"
	// Fault: a fault began (Phase "start") or was healed (Phase "end").
	Fault Kind = "fault"
	// Exit: a node process exited (Code, or Signal when killed).
	Exit Kind = "exit"
)

// Events of etcd's own record, dumped by the driver after a campaign from a
// watch replayed from revision 1.
const (
	// Key: an election key was created (Op "put") or deleted (Op
	// "delete") at revision Rev; Token is its create revision.
	Key Kind = "key"
	// Commit: a data write committed at revision Rev; Token, Node and
	// Seq come from the written value, Fenced says which key it went to.
	Commit Kind = "commit"
)

// Results of a Write.
const (
	Accepted = "accepted" // committed at Rev
	Rejected = "rejected" // the fence failed at Rev: nothing was applied
	Unknown  = "unknown"  // an error or timeout: it may or may not have committed
)

// Event is one line of a history.
type Event struct {
	Node  string `json:"node"`           // node id (n1, n2...), "driver" or "etcd"
	Inc   int    `json:"inc,omitempty"`  // incarnation of the node process, from 1
	PID   int    `json:"pid,omitempty"`  // process id
	Mode  string `json:"mode,omitempty"` // leasehold or naive
	Kind  Kind   `json:"kind"`
	At    int64  `json:"at"` // CLOCK_BOOTTIME ns
	Lease int64  `json:"lease,omitempty"`
	// Token is the term's fencing token: its election key's create
	// revision.
	Token int64 `json:"token,omitempty"`
	// HeldUntil (leasehold) is the lease's HeldUntil when the event was
	// recorded.
	HeldUntil int64 `json:"held_until,omitempty"`

	// Writes and commits.
	Fenced bool   `json:"fenced,omitempty"`
	Seq    int64  `json:"seq,omitempty"`
	Rev    int64  `json:"rev,omitempty"`
	Result string `json:"result,omitempty"`
	Sent   int64  `json:"sent,omitempty"` // when the write was sent (At is when it returned)
	Err    string `json:"err,omitempty"`

	// Driver events.
	Fault  string `json:"fault,omitempty"`  // fault kind
	Phase  string `json:"phase,omitempty"`  // start or end
	Target string `json:"target,omitempty"` // node or etcd member
	Role   string `json:"role,omitempty"`   // leader, follower or cluster
	Code   int    `json:"code,omitempty"`   // exit status
	Signal string `json:"signal,omitempty"` // the signal that killed it
	Detail string `json:"detail,omitempty"`

	// etcd record.
	Op  string `json:"op,omitempty"`
	Key string `json:"key,omitempty"`

	// File and Line say where the event was read from (not written).
	File string `json:"-"`
	Line int    `json:"-"`
}

// Writer appends events to one history file. It is safe for concurrent use.
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	base Event // fields stamped on every event unless set
	err  error
}

// Create opens path for appending (creating it), with base's Node, Inc, PID
// and Mode stamped on every event that does not set them.
func Create(path string, base Event) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Writer{f: f, base: base}, nil
}

// Append stamps e (At defaults to clock.Boot.Now()) and writes it as one
// line with a single write(2). The first error is kept and returned by
// this and every later call.
func (w *Writer) Append(e Event) error {
	if e.At == 0 {
		e.At = int64(clock.Boot.Now())
	}
	if e.Node == "" {
		e.Node = w.base.Node
	}
	if e.Inc == 0 {
		e.Inc = w.base.Inc
	}
	if e.PID == 0 {
		e.PID = w.base.PID
	}
	if e.Mode == "" {
		e.Mode = w.base.Mode
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	// O_APPEND makes the write land at the end whatever other writers do,
	// and one write call keeps the line whole. os.File.Write loops only on
	// a short write, which a regular file does not do for a line this size.
	if _, err := w.f.Write(line); err != nil {
		w.err = err
	}
	return w.err
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// Read parses events from r. A last line without a newline that is not
// valid JSON is a torn write: it is dropped and reported by torn. Any
// other bad line is an error.
func Read(r io.Reader, name string) (events []Event, torn bool, err error) {
	br := bufio.NewReaderSize(r, 1<<16)
	for n := 1; ; n++ {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 {
			complete := line[len(line)-1] == '\n'
			trimmed := bytes.TrimSpace(line)
			if len(trimmed) > 0 {
				var e Event
				if jerr := json.Unmarshal(trimmed, &e); jerr != nil {
					if !complete && errors.Is(rerr, io.EOF) {
						return events, true, nil
					}
					return events, false, fmt.Errorf("%s:%d: %w", name, n, jerr)
				}
				e.File, e.Line = name, n
				events = append(events, e)
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return events, false, nil
			}
			return events, false, rerr
		}
	}
}

// ReadFile reads one history file.
func ReadFile(path string) ([]Event, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	return Read(f, filepath.Base(path))
}

// ReadDir reads every *.jsonl file in dir, in name order, and returns their
// events concatenated and the names of files whose last line was torn.
func ReadDir(dir string) (events []Event, torn []string, err error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, nil, err
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("history: no *.jsonl files in %s", dir)
	}
	sort.Strings(names)
	for _, name := range names {
		evs, t, err := ReadFile(name)
		if err != nil {
			return nil, nil, err
		}
		if t {
			torn = append(torn, strings.TrimSuffix(filepath.Base(name), ".jsonl"))
		}
		events = append(events, evs...)
	}
	return events, torn, nil
}
