package tasks

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Missed is the policy for slots that were missed, that is, slots that are
// more than the grace period in the past when the scheduler gets to them
// (typically because no leader was running).
type Missed string

const (
	// MissedLatest runs only the most recent missed slot: one catch-up run,
	// however long the outage. It is the default.
	MissedLatest Missed = "latest"
	// MissedSkip runs none of the missed slots.
	MissedSkip Missed = "skip"
)

// MaxDue bounds the slots Due returns in one call. A task that is due more
// often (an @every 1s task with a grace period of an hour) gets the oldest
// MaxDue; once the caller records the last of them as scheduled, the next call
// returns the rest.
const MaxDue = 1000

// MaxNameLen is the longest task name accepted. Names become parts of etcd
// keys and log fields; 63 matches a DNS label, which outside tools may rely on.
const MaxNameLen = 63

// Task is one scheduled task. Build tasks with Parse, Load or Examples, or
// fill in the fields and call Validate; treat a task as read-only afterwards.
// The methods of a validated task are safe for concurrent use.
type Task struct {
	Name     string        // [a-z0-9-], 1 to MaxNameLen characters, unique within a file
	Schedule string        // 5-field cron or a descriptor (@every 10s, @hourly, ...), in UTC
	Command  string        // run with sh -c
	Timeout  time.Duration // a run is killed after this; 0: no limit
	Retries  int           // further attempts after a failed or lost run
	// RetryBackoff is the wait before the first retry of a failed run; it
	// doubles with every further attempt, up to MaxRetryBackoff. 0 means
	// DefaultRetryBackoff. A lost run (its runner gone) is retried at once.
	RetryBackoff time.Duration
	Missed       Missed // policy for missed slots; "" means MissedLatest

	sched schedule // parsed Schedule; nil until Validate succeeds
}

// Validate checks every field of t, parses its schedule and fills in
// defaults (Missed). It returns nil, a *TaskError, or several *TaskErrors
// joined with errors.Join (one per bad field). It must not run concurrently
// with other methods of t.
func (t *Task) Validate() error {
	v := &validator{index: -1, name: t.Name}
	v.checkName(t.Name, 0)
	sched := v.checkSchedule(t.Schedule, 0)
	v.checkCommand(t.Command, 0)
	if t.Timeout < 0 {
		v.add("timeout", 0, nil, "timeout %v: must not be negative: use 0 for no limit, or e.g. 30s", t.Timeout)
	}
	if t.Retries < 0 {
		v.add("retries", 0, nil, "retries %d: must be >= 0: use 0 for no retries", t.Retries)
	}
	if t.RetryBackoff < 0 {
		v.add("retry_backoff", 0, nil, "retry_backoff %v: must not be negative: use 0 for the default (%s), or e.g. 10s", t.RetryBackoff, DefaultRetryBackoff)
	}
	v.checkMissed(string(t.Missed), 0)
	if err := v.err(); err != nil {
		return err
	}
	if t.Missed == "" {
		t.Missed = MissedLatest
	}
	t.sched = sched
	return nil
}

// schedule returns the parsed schedule. A task that was never validated
// parses it afresh on each call rather than caching it, so that a
// hand-built Task cannot race with itself; nil means it does not parse.
func (t *Task) schedule() schedule {
	if t.sched != nil {
		return t.sched
	}
	s, err := parseSchedule(t.Schedule)
	if err != nil {
		return nil
	}
	return s
}

// Next returns the first slot strictly after the given time: a whole second
// in UTC. It returns the zero Time if the schedule does not parse (Validate
// says why) or has no slot within the following five years.
func (t *Task) Next(after time.Time) time.Time {
	s := t.schedule()
	if s == nil {
		return time.Time{}
	}
	return s.next(after.UTC())
}

// Due returns the slots to start now, oldest first, given the last slot
// already scheduled (the zero Time if none) and the current time.
//
// The candidates are the slots s with last < s <= now. A slot is missed when
// now-s > grace; of the missed slots, MissedLatest keeps only the most recent
// and MissedSkip keeps none, while slots within grace are always kept. When
// last is zero the task is new and only slots in (now-grace, now] are
// candidates, so adding a task never replays its history; with a grace of
// zero that window is empty, so a caller that wants a new task to start must
// use a positive grace (at least its tick interval) or record now as the
// task's last slot. A negative grace counts as zero.
//
// The work is bounded whatever the gap since last: the most recent missed
// slot is found by binary search over the gap (about 64 schedule evaluations
// at most), and at most MaxDue slots within grace are examined. If more than
// MaxDue slots are due, the oldest MaxDue are returned; the caller records the
// last of them as scheduled and gets the rest on its next call.
func (t *Task) Due(last, now time.Time, grace time.Duration) []time.Time {
	sched := t.schedule()
	if sched == nil {
		return nil
	}
	now = now.UTC()
	if grace < 0 {
		grace = 0
	}
	cutoff := now.Add(-grace) // slots before cutoff are missed

	var due []time.Time
	var from time.Time // slots within grace are those strictly after from
	if last.IsZero() {
		from = cutoff // (now-grace, now]
	} else {
		last = last.UTC()
		if !last.Before(now) {
			return nil
		}
		// Slots are whole seconds, so s >= cutoff is s > cutoff-1ns.
		from = cutoff.Add(-time.Nanosecond)
		if from.Before(last) {
			from = last
		}
		if t.Missed != MissedSkip {
			if s := latestBefore(sched, last, cutoff); !s.IsZero() {
				due = append(due, s)
			}
		}
	}
	for s := sched.next(from); !s.IsZero() && !s.After(now) && len(due) < MaxDue; s = sched.next(s) {
		due = append(due, s)
	}
	return due
}

// latestBefore returns the latest slot s with after < s < before, or the zero
// Time if there is none.
//
// Cron schedules cannot be stepped backwards, and walking forwards from
// after could take millions of steps after a long outage (@every 1s, a week
// down). Instead it binary-searches for the largest second x in
// [after, before) whose next slot is still before the bound: that next slot
// is the answer. This needs only that next is monotonic.
func latestBefore(sched schedule, after, before time.Time) time.Time {
	lo := after.Unix() // a slot > after is a slot > floor(after)
	end := before.Unix()
	if before.Nanosecond() != 0 {
		end++ // a whole-second slot < before is a slot < ceil(before)
	}
	ok := func(x int64) (time.Time, bool) {
		s := sched.next(time.Unix(x, 0).UTC())
		return s, !s.IsZero() && s.Unix() < end
	}
	s, found := ok(lo)
	if !found {
		return time.Time{}
	}
	// Invariant: ok(lo) holds and every x >= hi fails it.
	hi := end - 1
	if hs, found := ok(hi); found {
		return hs
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if ms, found := ok(mid); found {
			lo, s = mid, ms
		} else {
			hi = mid
		}
	}
	return s
}

// SlotKeyLayout is the time layout of SlotKey: sortable, and free of colons
// so that it can be used in etcd keys and file names as is.
const SlotKeyLayout = "20060102T150405Z"

// SlotKey formats a slot for etcd keys, e.g. "20240102T150405Z". Slots are
// whole seconds; any fraction is dropped.
func SlotKey(t time.Time) string {
	return t.UTC().Format(SlotKeyLayout)
}

// ParseSlotKey parses a key made by SlotKey and returns the slot in UTC.
func ParseSlotKey(s string) (time.Time, error) {
	t, err := time.Parse(SlotKeyLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("tasks: slot key %q: want the form YYYYMMDDTHHMMSSZ, e.g. 20240102T150405Z: %w", s, err)
	}
	return t, nil
}

// schedule yields the slots of a task: next returns the first slot strictly
// after t, a whole second in the location of t (always UTC here), or the zero
// Time if there is none.
type schedule interface {
	next(t time.Time) time.Time
}

// cronSchedule is a 5-field cron schedule or an @hourly-style descriptor.
// robfig evaluates it in the location of the time it is given, which is UTC.
type cronSchedule struct{ s cron.Schedule }

func (c cronSchedule) next(t time.Time) time.Time { return c.s.Next(t) }

// everySchedule is "@every d": the multiples of d since the Unix epoch, so
// that every node, and every leader after a failover, agrees on the slots.
type everySchedule struct{ sec int64 }

func (e everySchedule) next(t time.Time) time.Time {
	u := t.Unix() // floor, also before 1970
	n := u / e.sec
	if u%e.sec < 0 {
		n-- // floor division
	}
	return time.Unix((n+1)*e.sec, 0).In(t.Location())
}

// scheduleHelp ends every schedule error: the fix is usually to use one of
// the supported forms.
const scheduleHelp = `use 5-field cron (minute hour day-of-month month day-of-week, e.g. "*/5 * * * *") or @every 10s, @hourly, @daily, @weekly, @monthly, @yearly, @midnight`

// parseSchedule parses a Task.Schedule. Its errors are the part of the
// message after `schedule "<spec>": `.
func parseSchedule(spec string) (schedule, error) {
	s := strings.TrimSpace(spec)
	switch {
	case s == "":
		return nil, errors.New(`missing: add one, e.g. schedule: "*/5 * * * *" or schedule: "@every 10s"`)
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		// Nodes may differ in tzdata and so in slots; also robfig panics on
		// "TZ=x" without a space.
		return nil, errors.New("time zone prefixes are not supported: schedules are evaluated in UTC so that every node computes the same slots; write the times in UTC")
	case strings.HasPrefix(s, "@every"):
		return parseEvery(strings.TrimSpace(strings.TrimPrefix(s, "@every")))
	}
	sched, err := parseCron(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, scheduleHelp)
	}
	// robfig gives up after five years, and every satisfiable 5-field
	// schedule fires within five years of any instant; so this catches
	// impossible dates such as February 30.
	if sched.Next(time.Unix(0, 0).UTC()).IsZero() {
		return nil, errors.New("never fires (no date matches its day-of-month and month): fix those fields")
	}
	return cronSchedule{sched}, nil
}

// parseEvery parses the duration of "@every <duration>". robfig would
// silently round it down to whole seconds (and sub-second ones up to 1s);
// slots are whole seconds, so anything else is rejected instead.
func parseEvery(arg string) (schedule, error) {
	if arg == "" {
		return nil, errors.New("@every needs a duration: use e.g. @every 10s, @every 5m or @every 1h30m")
	}
	d, err := time.ParseDuration(arg)
	if err != nil {
		return nil, fmt.Errorf("%w: use a Go duration, e.g. @every 10s, @every 5m or @every 1h30m", err)
	}
	if d < time.Second {
		return nil, fmt.Errorf("interval %v is below 1s: use @every 1s or longer (slots are whole seconds)", d)
	}
	if d%time.Second != 0 {
		return nil, fmt.Errorf("interval %v is not a whole number of seconds: use e.g. @every %v (slots are whole seconds)", d, d.Truncate(time.Second))
	}
	return everySchedule{sec: int64(d / time.Second)}, nil
}

// parseCron wraps cron.ParseStandard, turning a panic on hostile input into
// an error: schedules come from files written by other tools.
func parseCron(s string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("cron parser failed: %v", r)
		}
	}()
	return cron.ParseStandard(s)
}
