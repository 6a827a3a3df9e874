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
)

// Run is the value of a run record: the latest attempt of one task slot.
type Run struct {
	Task        string    `json:"task"`
	Slot        time.Time `json:"slot"`
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
	return Assignment{Task: r.Task, Slot: r.Slot, Attempt: r.Attempt, Runner: r.Runner, RunnerToken: r.RunnerToken, LeaderToken: r.LeaderToken}
}

func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are encoded
	}
	return string(b)
}
