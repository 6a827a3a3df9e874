package scheduler

import (
	"strings"
	"time"

	"github.com/leasehold/leasehold/services/tasks"
)

// Layout names the scheduler's keys under one prefix.
type Layout struct {
	Prefix string // without a trailing "/"
}

// NewLayout returns the layout under prefix (default /leasehold).
func NewLayout(prefix string) Layout {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		prefix = "/leasehold"
	}
	return Layout{Prefix: prefix}
}

// Node is a node's membership key, held by its registry lease.
func (l Layout) Node(node string) string { return l.Prefix + "/nodes/" + node }

// Leader is the election prefix (etcdctl elect --listen <Leader>).
func (l Layout) Leader() string { return l.Prefix + "/leader" }

// Runner is a node's runner key; its create revision is the runner token.
func (l Layout) Runner(node string) string { return l.Runners() + node }

// Runners is the prefix of all runner keys.
func (l Layout) Runners() string { return l.Prefix + "/runners/" }

// Assign is the key of one run's assignment to a runner.
func (l Layout) Assign(runner, task string, slot time.Time) string {
	return l.Assignments(runner) + task + "/" + tasks.SlotKey(slot)
}

// Assignments is the prefix of a runner's assignments.
func (l Layout) Assignments(runner string) string { return l.Prefix + "/assign/" + runner + "/" }

// Run is the record of one task slot.
func (l Layout) Run(task string, slot time.Time) string {
	return l.Runs() + task + "/" + tasks.SlotKey(slot)
}

// Runs is the prefix of all run records.
func (l Layout) Runs() string { return l.Prefix + "/runs/" }

// Schedule holds the last slot the leader scheduled for a task.
func (l Layout) Schedule(task string) string { return l.Schedules() + task }

// Schedules is the prefix of all schedule keys.
func (l Layout) Schedules() string { return l.Prefix + "/schedule/" }

// Task holds the leader's definition of a task (a Published).
func (l Layout) Task(task string) string { return l.Tasks() + task }

// Tasks is the prefix of all task keys.
func (l Layout) Tasks() string { return l.Prefix + "/tasks/" }
