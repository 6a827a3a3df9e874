// Package scheduler is a distributed task scheduler built on leasehold: a
// cluster-wide cron that never runs a slot twice at once. Every node runs
// the same tree:
//
//	registry            lease    the node's membership key
//	├── election        election leadership for the scheduler
//	│   └── scheduler   service  assigns due task runs to live runners (leader only)
//	├── step-down       service  acts on a step-down request addressed to this node's term
//	└── runner          lease    the node's runner key; owns its assignments
//	    ├── assignments service  watches this runner's assignments
//	    ├── leader-log  service  logs who leads, on every node
//	    └── unit:<task>:<slot>   one service per assigned run, added and removed dynamically
//
// The leader computes due slots, picks a live runner (least loaded first),
// and records the run and the assignment in one transaction fenced by its
// election term. A runner starts a unit per assignment made to its current
// runner term; the unit runs the command under a guard process (package
// guard) whose deadline is the runner lease's HeldUntil, so the command dies
// before the lease can expire even if the runner is paused or killed. The
// unit reports completion in a transaction fenced by the runner term and by
// the assignment's revision. When a runner's key disappears, the leader
// reassigns its unfinished runs as new attempts: by then the runner's lease
// has expired or been revoked, so its units have stopped.
//
// Key layout under the prefix P (see Layout): P/nodes/<node>,
// P/leader/<lease id>, P/runners/<node>, P/assign/<node>/<task>/<slot>,
// P/runs/<task>/<slot>, P/schedule/<task>, P/tasks/<task>, P/step-down.
//
// The registry key's value is the node's NodeInfo as JSON: which process
// holds the id (host, pid, start, a random instance id) and, for the
// cluster page, its debug URL and version (package debug/cluster reads it).
//
// A runner key's value is an Advert: the names and definition hashes of the
// tasks its term can run. The leader gives a run only to a runner term
// with the definition it schedules, publishes its definitions under
// P/tasks/ (with why one is unrunnable), records as missed the slots that
// no runner could take within their grace, and deletes finished run
// records beyond the Retention policy.
package scheduler
