package scheduler

import (
	"encoding/json"
	"time"
)

// Assignment is the value of an assignment key: one attempt of one slot
// given to one runner term.
type Assignment struct {
	Task        string    `json:"task"`
	Slot        time.Time `json:"slot"`
	Attempt     int       `json:"attempt"`
	Runner      string    `json:"runner"`
	RunnerToken int64     `json:"runner_token"` // the runner term the attempt belongs to
	LeaderToken int64     `json:"leader_token"` // the leader term that made it
	Hash        string    `json:"hash"`         // the definition the leader scheduled (tasks.Task.Hash)
	AssignedAt  time.Time `json:"assigned_at"`
}

// State is the state of a run.
type State string

// Run states. A run is assigned until its unit reports done or failed, or
// the leader finds its runner gone (lost); failed and lost runs with
// retries left are assigned again as a new attempt.
const (
	StateAssigned State = "assigned"
	StateDone     State = "done"
	StateFailed   State = "failed"
	StateLost     State = "lost"
	// StateMissed: the slot was never started, and never will be: no live
	// runner could run the task's definition in time. Reason says why.
	StateMissed State = "missed"
)

// Run is the value of a run record: the latest attempt of one task slot.
type Run struct {
	Task        string    `json:"task"`
	Slot        time.Time `json:"slot"`
	Hash        string    `json:"hash,omitempty"` // the definition scheduled
	State       State     `json:"state"`
	Attempt     int       `json:"attempt"`
	Runner      string    `json:"runner"`
	RunnerToken int64     `json:"runner_token"`
	LeaderToken int64     `json:"leader_token"`
	AssignedAt  time.Time `json:"assigned_at"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	ExitCode    int       `json:"exit_code"`
	Reason      string    `json:"reason,omitempty"` // how the command ended (the guard's reason), or why the run was lost
}

func (r Run) assignment() Assignment {
	return Assignment{Task: r.Task, Slot: r.Slot, Attempt: r.Attempt, Runner: r.Runner, RunnerToken: r.RunnerToken,
		LeaderToken: r.LeaderToken, Hash: r.Hash, AssignedAt: r.AssignedAt}
}

// Final reports whether the run is over for good given its task's retries
// (a task no longer defined has none): only final runs are removed by the
// retention policy.
func (r Run) Final(retries int) bool {
	switch r.State {
	case StateDone, StateLost, StateMissed:
		return true
	case StateFailed:
		return r.Attempt > retries
	}
	return false
}

// Advert is the value of a runner key: the node, and the tasks this runner
// term can run, each with its definition's hash. A runner's tasks are fixed
// for its term, so a leader that checks the advert and fences the
// assignment on the runner's token knows the runner has the definition.
type Advert struct {
	Node  string            `json:"node"`
	Tasks map[string]string `json:"tasks"` // name -> tasks.Task.Hash
}

// Published is the value of a task key (Layout.Task): the leader's
// definition of a task, and whether a live runner has it.
type Published struct {
	Name     string        `json:"name"`
	Schedule string        `json:"schedule"`
	Command  string        `json:"command"`
	Timeout  time.Duration `json:"timeout_ns,omitempty"`
	Retries  int           `json:"retries"`
	Hash     string        `json:"hash"`
	// Unrunnable, when set, says why no live runner can run this
	// definition: its slots are recorded as missed.
	Unrunnable string `json:"unrunnable,omitempty"`
}

func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are encoded
	}
	return string(b)
}
