package tasks

import (
	"math/rand/v2"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 1, 2, 15, 0, 0, 0, time.UTC)

func mustTask(t *testing.T, schedule string, missed Missed) *Task {
	t.Helper()
	task := &Task{Name: "t", Schedule: schedule, Command: "true", Missed: missed}
	if err := task.Validate(); err != nil {
		t.Fatalf("Validate(%q): %v", schedule, err)
	}
	return task
}

func TestNext(t *testing.T) {
	berlin := time.FixedZone("UTC+1", 3600)
	tests := []struct {
		schedule string
		after    time.Time
		want     time.Time
	}{
		{"@every 10s", t0, t0.Add(10 * time.Second)},
		{"@every 10s", t0.Add(-time.Nanosecond), t0},
		{"@every 10s", t0.Add(3500 * time.Millisecond), t0.Add(10 * time.Second)},
		// Anchored to the Unix epoch, not to the argument.
		{"@every 7s", time.Unix(100, 0), time.Unix(105, 0).UTC()},
		{"@every 7s", time.Unix(-10, 0), time.Unix(-7, 0).UTC()},
		{"@every 7s", time.Unix(-14, 500), time.Unix(-7, 0).UTC()},
		{"@every 1h", t0.Add(time.Minute), t0.Add(time.Hour)},
		{"*/5 * * * *", t0, t0.Add(5 * time.Minute)},
		{"*/5 * * * *", t0.Add(-time.Millisecond), t0},
		{"@hourly", t0.Add(time.Second), t0.Add(time.Hour)},
		{"@daily", t0, time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC)},
		{"@midnight", t0, time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC)},
		{"@weekly", t0, time.Date(2024, 1, 7, 0, 0, 0, 0, time.UTC)},
		{"@monthly", t0, time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)},
		{"@yearly", t0, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"@annually", t0, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0 0 29 2 *", t0, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		// Evaluated in UTC whatever the location of the argument.
		{"0 15 * * *", t0.In(berlin).Add(-time.Second), t0},
		{"@every 10s", t0.In(berlin), t0.Add(10 * time.Second)},
	}
	for _, tt := range tests {
		task := mustTask(t, tt.schedule, "")
		got := task.Next(tt.after)
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("Next(%q, %v): got %v; want %v", tt.schedule, tt.after, got, tt.want)
		}
	}
}

func TestNextUnvalidated(t *testing.T) {
	task := &Task{Name: "t", Schedule: "@every 10s", Command: "true"}
	if got, want := task.Next(t0), t0.Add(10*time.Second); !got.Equal(want) {
		t.Errorf("Next: got %v; want %v", got, want)
	}
	bad := &Task{Name: "t", Schedule: "nonsense", Command: "true"}
	if got := bad.Next(t0); !got.IsZero() {
		t.Errorf("Next with a bad schedule: got %v; want the zero Time", got)
	}
	if got := bad.Due(t0, t0.Add(time.Hour), time.Minute); got != nil {
		t.Errorf("Due with a bad schedule: got %v; want nil", got)
	}
}

// at returns t0 plus the given seconds.
func at(secs ...int) []time.Time {
	var out []time.Time
	for _, s := range secs {
		out = append(out, t0.Add(time.Duration(s)*time.Second))
	}
	return out
}

func TestDue(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name     string
		schedule string
		missed   Missed
		last     time.Time
		now      time.Time
		grace    time.Duration
		want     []time.Time
	}{
		// A new task: only (now-grace, now], no history.
		{"fresh", "@every 10s", MissedLatest, time.Time{}, t0.Add(25 * sec), 10 * sec, at(20)},
		{"fresh, lower bound open", "@every 10s", MissedLatest, time.Time{}, t0.Add(30 * sec), 10 * sec, at(30)},
		{"fresh, several", "@every 10s", MissedSkip, time.Time{}, t0.Add(30 * sec), 25 * sec, at(10, 20, 30)},
		{"fresh, small grace on slot", "@every 10s", MissedLatest, time.Time{}, t0, sec, at(0)},
		{"fresh, zero grace is an empty window", "@every 10s", MissedLatest, time.Time{}, t0, 0, nil},
		{"fresh, long ago not backfilled", "@hourly", MissedLatest, time.Time{}, t0.Add(30 * time.Minute), time.Minute, nil},

		// Boundaries: a slot equal to now is due, one equal to last is not.
		{"slot == now", "@every 10s", MissedLatest, t0, t0.Add(10 * sec), 0, at(10)},
		{"slot == last", "@every 10s", MissedLatest, t0.Add(10 * sec), t0.Add(10 * sec), 0, nil},
		{"just before slot", "@every 10s", MissedLatest, t0, t0.Add(10*sec - time.Nanosecond), 0, nil},
		{"fractional now", "@every 10s", MissedLatest, t0, t0.Add(10500 * time.Millisecond), sec, at(10)},
		{"last in the future", "@every 10s", MissedLatest, t0.Add(time.Hour), t0, time.Minute, nil},
		{"negative grace is zero", "@every 10s", MissedSkip, t0, t0.Add(20 * sec), -time.Hour, at(20)},

		// now-s == grace is within grace; now-s > grace is missed.
		{"latest, short gap", "@every 10s", MissedLatest, t0, t0.Add(35 * sec), 5 * sec, at(20, 30)},
		{"skip, short gap", "@every 10s", MissedSkip, t0, t0.Add(35 * sec), 5 * sec, at(30)},
		{"latest, all within grace", "@every 10s", MissedLatest, t0, t0.Add(35 * sec), 25 * sec, at(10, 20, 30)},
		{"latest, missed is last+1 slot", "@every 10s", MissedLatest, t0, t0.Add(25 * sec), 10 * sec, at(10, 20)},
		{"latest, nothing missed beyond last", "@every 10s", MissedLatest, t0.Add(20 * sec), t0.Add(35 * sec), 5 * sec, at(30)},
		{"latest, fractional grace", "@every 1s", MissedLatest, t0, t0.Add(10 * sec), 2500 * time.Millisecond, at(7, 8, 9, 10)},
		{"skip, fractional grace", "@every 1s", MissedSkip, t0, t0.Add(10 * sec), 2500 * time.Millisecond, at(8, 9, 10)},

		// A week of downtime at @every 1s: 604800 slots, computed without
		// walking them.
		{"latest, week gap", "@every 1s", MissedLatest, t0.Add(-7 * 24 * time.Hour), t0, 3 * sec, at(-4, -3, -2, -1, 0)},
		{"skip, week gap", "@every 1s", MissedSkip, t0.Add(-7 * 24 * time.Hour), t0, 3 * sec, at(-3, -2, -1, 0)},
		{"latest, week gap, zero grace", "@every 1s", MissedLatest, t0.Add(-7 * 24 * time.Hour), t0, 0, at(-1, 0)},
		{"latest, week gap, zero grace, late tick", "@every 1s", MissedLatest, t0.Add(-7 * 24 * time.Hour), t0.Add(500 * time.Millisecond), 0, at(0)},
		{"latest, years gap", "@every 1s", MissedLatest, time.Unix(1, 0), t0, 0, at(-1, 0)},
		{"skip, years gap", "@every 1s", MissedSkip, time.Unix(1, 0), t0, 0, at(0)},

		// 5-field cron: t0 is 15:00.
		{"cron latest, gap, none within grace", "*/5 * * * *", MissedLatest, t0, t0.Add(27*time.Minute + 30*sec), time.Minute, at(25 * 60)},
		{"cron skip, gap, none within grace", "*/5 * * * *", MissedSkip, t0, t0.Add(27*time.Minute + 30*sec), time.Minute, nil},
		{"cron latest, gap and one within grace", "*/5 * * * *", MissedLatest, t0, t0.Add(25*time.Minute + 30*sec), time.Minute, at(20*60, 25*60)},
		{"cron skip, gap and one within grace", "*/5 * * * *", MissedSkip, t0, t0.Add(25*time.Minute + 30*sec), time.Minute, at(25 * 60)},
		{"cron latest, month gap", "0 3 * * *", MissedLatest, t0.AddDate(0, -1, 0), t0, time.Minute,
			[]time.Time{time.Date(2024, 1, 2, 3, 0, 0, 0, time.UTC)}},
		{"cron latest, sparse", "0 0 29 2 *", MissedLatest, time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC), t0, time.Minute,
			[]time.Time{time.Date(2020, 2, 29, 0, 0, 0, 0, time.UTC)}},
		{"cron latest, sparse, none after last", "0 0 29 2 *", MissedLatest, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), t0, time.Minute, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := mustTask(t, tt.schedule, tt.missed)
			got := task.Due(tt.last, tt.now, tt.grace)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Due(%v, %v, %v): got %v; want %v", tt.last, tt.now, tt.grace, got, tt.want)
			}
		})
	}
}

func TestDueBounded(t *testing.T) {
	// More than MaxDue slots within grace: the oldest MaxDue come first, and
	// recording the last of them as scheduled yields the rest.
	for _, missed := range []Missed{MissedLatest, MissedSkip} {
		task := mustTask(t, "@every 1s", missed)
		last := t0.Add(-2500 * time.Second)
		var all []time.Time
		for range 10 {
			due := task.Due(last, t0, time.Hour)
			if len(due) == 0 {
				break
			}
			if len(due) > MaxDue {
				t.Fatalf("%s: got %d slots; want at most %d", missed, len(due), MaxDue)
			}
			all = append(all, due...)
			last = due[len(due)-1]
		}
		if len(all) != 2500 || !all[0].Equal(t0.Add(-2499*time.Second)) || !all[len(all)-1].Equal(t0) {
			t.Fatalf("%s: got %d slots from %v to %v; want 2500 from %v to %v",
				missed, len(all), all[0], all[len(all)-1], t0.Add(-2499*time.Second), t0)
		}
		for i := 1; i < len(all); i++ {
			if got, want := all[i].Sub(all[i-1]), time.Second; got != want {
				t.Fatalf("%s: gap before slot %d: got %v; want %v", missed, i, got, want)
			}
		}
	}
}

// bruteDue is Due written down from its definition, walking every slot.
func bruteDue(task *Task, last, now time.Time, grace time.Duration) []time.Time {
	if grace < 0 {
		grace = 0
	}
	var missed, within []time.Time
	from := last
	if last.IsZero() {
		from = now.Add(-grace)
	}
	for s := task.Next(from); !s.After(now); s = task.Next(s) {
		if last.IsZero() && !s.After(now.Add(-grace)) {
			continue
		}
		if now.Sub(s) > grace {
			missed = append(missed, s)
		} else {
			within = append(within, s)
		}
	}
	var out []time.Time
	if task.Missed == MissedLatest && len(missed) > 0 {
		out = append(out, missed[len(missed)-1])
	}
	out = append(out, within...)
	if len(out) > MaxDue {
		out = out[:MaxDue]
	}
	return out
}

func TestDueMatchesDefinition(t *testing.T) {
	schedules := []string{"@every 1s", "@every 7s", "@every 1m", "*/5 * * * *", "7,8 * * * *", "0 */2 * * 1-5", "@hourly"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sc := range schedules {
		for _, missed := range []Missed{MissedLatest, MissedSkip} {
			task := mustTask(t, sc, missed)
			for range 100 {
				now := t0.Add(time.Duration(rng.Int64N(int64(48 * time.Hour))))
				var last time.Time
				if rng.IntN(5) > 0 {
					last = now.Add(-time.Duration(rng.Int64N(int64(3 * time.Hour)))).Truncate(time.Second)
				}
				grace := time.Duration(rng.Int64N(int64(20*time.Minute))) - time.Minute
				got := task.Due(last, now, grace)
				want := bruteDue(task, last, now, grace)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s %s: Due(%v, %v, %v): got %v; want %v", sc, missed, last, now, grace, got, want)
				}
			}
		}
	}
}

func TestDueResultsAreUTCWholeSeconds(t *testing.T) {
	loc := time.FixedZone("UTC-5", -5*3600)
	for _, sc := range []string{"@every 3s", "* * * * *"} {
		task := mustTask(t, sc, MissedLatest)
		for _, s := range task.Due(t0.Add(-time.Hour).In(loc), t0.Add(1234*time.Millisecond).In(loc), 5*time.Minute) {
			if s.Location() != time.UTC || s.Nanosecond() != 0 {
				t.Fatalf("%s: got slot %v; want UTC whole seconds", sc, s)
			}
		}
	}
}

func TestSlotKey(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{t0.Add(4*time.Minute + 5*time.Second), "20240102T150405Z"},
		{t0.In(time.FixedZone("UTC+2", 7200)), "20240102T150000Z"},
		{t0.Add(999 * time.Millisecond), "20240102T150000Z"},
		{time.Unix(0, 0), "19700101T000000Z"},
	}
	for _, tt := range tests {
		got := SlotKey(tt.in)
		if got != tt.want {
			t.Errorf("SlotKey(%v): got %q; want %q", tt.in, got, tt.want)
		}
		back, err := ParseSlotKey(got)
		if err != nil {
			t.Fatalf("ParseSlotKey(%q): %v", got, err)
		}
		if want := tt.in.UTC().Truncate(time.Second); !back.Equal(want) || back.Location() != time.UTC {
			t.Errorf("ParseSlotKey(%q): got %v; want %v", got, back, want)
		}
	}
	for _, bad := range []string{"", "2024-01-02T15:04:05Z", "20240102T150405", "20240102T150405+0100", "20241302T150405Z", "2024012T150405Z"} {
		if _, err := ParseSlotKey(bad); err == nil || !strings.Contains(err.Error(), "YYYYMMDDTHHMMSSZ") {
			t.Errorf("ParseSlotKey(%q): got %v; want an error describing the form", bad, err)
		}
	}
}

func TestExamples(t *testing.T) {
	ex := Examples()
	if len(ex) < 2 || len(ex) > 3 {
		t.Fatalf("got %d examples; want 2 or 3", len(ex))
	}
	seen := map[string]bool{}
	for _, task := range ex {
		// Re-validate a fresh copy, as if read from a file.
		c := Task{Name: task.Name, Schedule: task.Schedule, Command: task.Command, Timeout: task.Timeout, Retries: task.Retries, Missed: task.Missed}
		if err := c.Validate(); err != nil {
			t.Errorf("example %q: got %v; want valid", task.Name, err)
		}
		if seen[task.Name] {
			t.Errorf("example %q: got a duplicate name; want unique", task.Name)
		}
		seen[task.Name] = true
		// Something shows within a minute.
		if next := task.Next(t0); next.IsZero() || next.Sub(t0) > time.Minute {
			t.Errorf("example %q: got next slot %v; want within a minute of %v", task.Name, next, t0)
		}
		// The command is valid POSIX sh, if a shell is at hand.
		if sh, err := exec.LookPath("sh"); err == nil {
			if out, err := exec.Command(sh, "-n", "-c", task.Command).CombinedOutput(); err != nil {
				t.Errorf("example %q: sh -n: got %v %s; want no syntax errors", task.Name, err, out)
			}
		}
	}
	if ex[0] == Examples()[0] {
		t.Errorf("Examples: got shared tasks across calls; want fresh ones")
	}
}

func TestHashNamesTheDefinition(t *testing.T) {
	base := func() *Task {
		return &Task{Name: "a", Schedule: "@every 5s", Command: "true", Retries: 1}
	}
	if a, b := base(), base(); a.Hash() != b.Hash() {
		t.Fatal("the same definition hashes differently")
	}
	for name, change := range map[string]func(*Task){
		"schedule":      func(t *Task) { t.Schedule = "@every 6s" },
		"command":       func(t *Task) { t.Command = "false" },
		"timeout":       func(t *Task) { t.Timeout = time.Second },
		"retries":       func(t *Task) { t.Retries = 2 },
		"retry_backoff": func(t *Task) { t.RetryBackoff = time.Second },
		"missed":        func(t *Task) { t.Missed = MissedSkip },
	} {
		c := base()
		change(c)
		if c.Hash() == base().Hash() {
			t.Errorf("changing %s keeps the hash", name)
		}
	}
}

func TestRetryDelayDoubles(t *testing.T) {
	task := &Task{RetryBackoff: time.Second}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 30: MaxRetryBackoff} {
		if got := task.RetryDelay(attempt); got != want {
			t.Errorf("RetryDelay(%d) = %v; want %v", attempt, got, want)
		}
	}
	if got := (&Task{}).RetryDelay(1); got != DefaultRetryBackoff {
		t.Errorf("default RetryDelay(1) = %v; want %v", got, DefaultRetryBackoff)
	}
}
