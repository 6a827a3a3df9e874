package tasks

import "time"

// Examples returns the built-in tasks used when no tasks file is given. They
// show something within seconds: a heartbeat every 5s printing what the
// runner passes to commands, a report every 15s that fails its first attempt
// to show retries, and a per-minute task in 5-field cron syntax. Each call
// returns new, validated tasks.
func Examples() []*Task {
	ts := []*Task{
		{
			Name:     "heartbeat",
			Schedule: "@every 5s",
			Command:  `echo "heartbeat slot $LEASEHOLD_SLOT on $LEASEHOLD_NODE (attempt $LEASEHOLD_ATTEMPT, token $LEASEHOLD_TOKEN)"`,
			Missed:   MissedSkip, // a late heartbeat says nothing
		},
		{
			Name:     "report",
			Schedule: "@every 15s",
			// Fails the first attempt to show a retry; it succeeds by the
			// third whether the runner counts attempts from 0 or from 1.
			Command: `if [ -n "$LEASEHOLD_ATTEMPT" ] && [ "$LEASEHOLD_ATTEMPT" -le 1 ]; then ` +
				`echo "report $LEASEHOLD_SLOT: simulated failure on attempt $LEASEHOLD_ATTEMPT, to be retried" >&2; exit 1; fi; ` +
				`sleep 1; echo "report $LEASEHOLD_SLOT done on $LEASEHOLD_NODE (attempt $LEASEHOLD_ATTEMPT)"`,
			Timeout: 10 * time.Second,
			Retries: 2,
			Missed:  MissedLatest,
		},
		{
			Name:     "minutely",
			Schedule: "*/1 * * * *", // 5-field cron: minute hour day-of-month month day-of-week, UTC
			Command:  `echo "minutely slot $LEASEHOLD_SLOT on $LEASEHOLD_NODE"`,
			Timeout:  30 * time.Second,
			Missed:   MissedLatest,
		},
	}
	for _, t := range ts {
		if err := t.Validate(); err != nil {
			panic("tasks: built-in example is invalid: " + err.Error()) // a bug here, caught by tests
		}
	}
	return ts
}
