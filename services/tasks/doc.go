// Package tasks defines the tasks of leasehold's cluster-wide cron — a
// distributed task scheduler that never runs a slot twice at once — and the
// slot arithmetic its leader uses to decide what to start.
//
// A Task is a name, a schedule, a shell command (run with sh -c by the
// runner, not by this package), an optional timeout, a number of retries and
// a policy for missed slots. Tasks come from a YAML file read with Load or
// Parse, or from Examples when no file is given:
//
//	tasks:
//	  - name: report           # [a-z0-9-], unique, at most 63 characters
//	    schedule: "@every 10s" # 5-field cron, @every <duration>, @hourly, @daily, ...
//	    command: "echo hi"     # required; run with sh -c
//	    timeout: 30s           # optional, > 0; the run is killed after it
//	    retries: 2             # optional, >= 0; attempts after a failed or lost run
//	    retry_backoff: 5s      # optional, > 0; wait before the first retry, doubling (default 5s)
//	    missed: latest         # optional: latest (default) or skip
//
// Parsing is strict per task and forgiving per file: a task with a typo,
// an unknown field or a bad value is reported as one problem naming the task
// and the field, and the other tasks are still returned, so one bad edit does
// not stop every task in the cluster. Only a file that cannot be read as a
// tasks list at all is an error.
//
// A slot is an instant at which a task's schedule fires: a whole second in
// UTC. A slot is the identity of a run — the scheduler claims the pair (task,
// slot) in etcd under a key built with SlotKey, so however leadership moves,
// no slot is started twice concurrently — and commands see it as RFC 3339.
// Slots must therefore be the same on every node: cron schedules are
// evaluated in UTC (time zone prefixes are rejected, since nodes may differ in
// tzdata), and "@every d" slots are the multiples of d since the Unix epoch.
// The latter differs from robfig/cron, which counts @every from whenever the
// job was added; anchoring it lets a new leader compute exactly the slots its
// predecessor did.
//
// The leader remembers, per task, the last slot it scheduled and asks Due
// which slots to start now. A slot that is more than a grace period late was
// missed, usually because no leader was running; the task's Missed policy
// decides whether the most recent missed slot still runs (latest, a single
// catch-up run) or none do (skip). A task with no last slot starts with the
// slots inside the grace period and does not backfill history. Due's work is
// bounded however long the outage: it finds the most recent missed slot by
// binary search rather than by walking every slot, and returns at most MaxDue
// slots per call.
//
// This package only describes tasks: it starts no goroutines, touches no
// etcd and runs no commands.
package tasks
