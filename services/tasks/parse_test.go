package tasks

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The format as outside tools write it, verbatim from the specification.
const specExample = `tasks:
  - name: report          # [a-z0-9-], unique, max 63 chars
    schedule: "@every 10s" # standard 5-field cron, or @every <duration>, @hourly, ...
    command: "echo hi"     # required, non-empty; run with sh -c by someone else
    timeout: 30s           # optional Go duration > 0; the run is killed after it
    retries: 2             # optional int >= 0; attempts after a failed or lost run
    missed: latest         # optional: latest | skip (default latest); slots missed while no leader ran
`

func TestParseSpecExample(t *testing.T) {
	valid, problems, err := Parse([]byte(specExample))
	if err != nil || len(problems) != 0 {
		t.Fatalf("Parse: got problems %v, err %v; want none", problems, err)
	}
	if len(valid) != 1 {
		t.Fatalf("got %d tasks; want 1", len(valid))
	}
	got := *valid[0]
	got.sched = nil
	want := Task{Name: "report", Schedule: "@every 10s", Command: "echo hi", Timeout: 30 * time.Second, Retries: 2, Missed: MissedLatest}
	if got != want {
		t.Errorf("got %+v; want %+v", got, want)
	}
	if valid[0].sched == nil {
		t.Errorf("got no parsed schedule; want one")
	}
}

func TestParseDefaultsAndNulls(t *testing.T) {
	valid, problems, err := Parse([]byte(`
tasks:
  - name: a
    schedule: '@daily'
    command: run
  - name: b
    schedule: 0 3 * * 1-5
    command: run
    timeout:
    retries: ~
    missed:
  - name: "007"
    schedule: "@every 1h30m"
    command: run
    retries: "3"
    missed: skip
`))
	if err != nil || len(problems) != 0 {
		t.Fatalf("Parse: got problems %v, err %v; want none", problems, err)
	}
	var got []Task
	for _, v := range valid {
		c := *v
		c.sched = nil
		got = append(got, c)
	}
	want := []Task{
		{Name: "a", Schedule: "@daily", Command: "run", Missed: MissedLatest},
		{Name: "b", Schedule: "0 3 * * 1-5", Command: "run", Missed: MissedLatest},
		{Name: "007", Schedule: "@every 1h30m", Command: "run", Retries: 3, Missed: MissedSkip},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v; want %+v", got, want)
	}
}

func TestParseBadTask(t *testing.T) {
	// Each case is the middle of three tasks; the other two must survive.
	const good1 = "  - name: alpha\n    schedule: \"@every 10s\"\n    command: echo a\n"
	const good2 = "  - name: omega\n    schedule: \"*/5 * * * *\"\n    command: echo o\n"
	tests := []struct {
		name  string
		task  string
		field string
		want  []string // substrings of the problem's message
	}{
		{"bad cron", "  - name: bad\n    schedule: \"*/x * * * *\"\n    command: echo\n", "schedule",
			[]string{`task "bad": schedule "*/x * * * *": `, "use 5-field cron", "@every 10s"}},
		{"six-field cron", "  - name: bad\n    schedule: \"0 */5 * * * *\"\n    command: echo\n", "schedule",
			[]string{`task "bad": schedule "0 */5 * * * *": `, "exactly 5 fields"}},
		{"missing schedule", "  - name: bad\n    command: echo\n", "schedule",
			[]string{`task "bad": schedule: missing`}},
		{"every below 1s", "  - name: bad\n    schedule: \"@every 500ms\"\n    command: echo\n", "schedule",
			[]string{`task "bad": schedule "@every 500ms": interval 500ms is below 1s`}},
		{"every fractional", "  - name: bad\n    schedule: \"@every 1500ms\"\n    command: echo\n", "schedule",
			[]string{`task "bad": schedule "@every 1500ms": interval 1.5s is not a whole number of seconds`}},
		{"every no duration", "  - name: bad\n    schedule: \"@every\"\n    command: echo\n", "schedule",
			[]string{`task "bad": schedule "@every": @every needs a duration`}},
		{"time zone", "  - name: bad\n    schedule: \"CRON_TZ=Europe/Berlin 0 3 * * *\"\n    command: echo\n", "schedule",
			[]string{`task "bad": schedule "CRON_TZ=Europe/Berlin 0 3 * * *": time zone prefixes are not supported`}},
		{"tz without a space", "  - name: bad\n    schedule: \"TZ=UTC\"\n    command: echo\n", "schedule",
			[]string{`task "bad": schedule "TZ=UTC": time zone prefixes`}},
		{"never fires", "  - name: bad\n    schedule: \"0 0 30 2 *\"\n    command: echo\n", "schedule",
			[]string{`task "bad": schedule "0 0 30 2 *": never fires`}},
		{"missing command", "  - name: bad\n    schedule: \"@hourly\"\n", "command",
			[]string{`task "bad": command: missing or empty`, `command: "echo hi"`}},
		{"blank command", "  - name: bad\n    schedule: \"@hourly\"\n    command: \"  \"\n", "command",
			[]string{`task "bad": command: missing or empty`}},
		{"command not a string", "  - name: bad\n    schedule: \"@hourly\"\n    command: [echo, hi]\n", "command",
			[]string{`task "bad": command: got a list: want a string`}},
		{"duplicate name", "  - name: alpha\n    schedule: \"@hourly\"\n    command: echo\n", "name",
			[]string{`task "alpha": name "alpha": already used by tasks[0] (this is tasks[1])`}},
		{"bad name chars", "  - name: Nightly_Report\n    schedule: \"@hourly\"\n    command: echo\n", "name",
			[]string{`task "Nightly_Report": name "Nightly_Report": character 'N' at offset 0 is not allowed`, `e.g. "nightly-report"`}},
		{"name too long", "  - name: " + strings.Repeat("x", 64) + "\n    schedule: \"@hourly\"\n    command: echo\n", "name",
			[]string{`name "` + strings.Repeat("x", 64) + `": 64 characters long: shorten it to at most 63`}},
		{"missing name", "  - schedule: \"@hourly\"\n    command: echo\n", "name",
			[]string{`tasks[1]: name: missing`}},
		{"unknown field", "  - name: bad\n    schedule: \"@hourly\"\n    command: echo\n    owner: bob\n", "owner",
			[]string{`task "bad": owner: unknown field: fields are name, schedule, command, timeout, retries, retry_backoff, missed`}},
		{"field set twice", "  - name: bad\n    schedule: \"@hourly\"\n    command: echo\n    command: echo 2\n", "command",
			[]string{`task "bad": command: set twice (lines 7 and 8)`}},
		{"bad timeout", "  - name: bad\n    schedule: \"@hourly\"\n    command: echo\n    timeout: 30\n", "timeout",
			[]string{`task "bad": timeout "30": time: missing unit`, "timeout: 30s"}},
		{"zero timeout", "  - name: bad\n    schedule: \"@hourly\"\n    command: echo\n    timeout: 0s\n", "timeout",
			[]string{`task "bad": timeout "0s": must be greater than 0`}},
		{"negative timeout", "  - name: bad\n    schedule: \"@hourly\"\n    command: echo\n    timeout: -5s\n", "timeout",
			[]string{`task "bad": timeout "-5s": must be greater than 0`}},
		{"negative retries", "  - name: bad\n    schedule: \"@hourly\"\n    command: echo\n    retries: -1\n", "retries",
			[]string{`task "bad": retries -1: must be >= 0`}},
		{"retries not a number", "  - name: bad\n    schedule: \"@hourly\"\n    command: echo\n    retries: 1.5\n", "retries",
			[]string{`task "bad": retries "1.5": not a whole number`}},
		{"bad missed", "  - name: bad\n    schedule: \"@hourly\"\n    command: echo\n    missed: never\n", "missed",
			[]string{`task "bad": missed "never": must be "latest" or "skip"`}},
		{"merge cycle", "  - &self {name: bad, schedule: \"@hourly\", command: echo, <<: *self}\n", "<<",
			[]string{`task "bad": <<: merges a mapping into itself`}},
		{"recursive list", "  - &self [1, *self]\n", "",
			[]string{`tasks[1]: not a mapping but a list`}},
		{"not a mapping", "  - just a string\n", "",
			[]string{`tasks[1]: not a mapping but the value "just a string"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			valid, problems, err := Parse([]byte("tasks:\n" + good1 + tt.task + good2))
			if err != nil {
				t.Fatalf("Parse: got err %v; want nil", err)
			}
			if got := names(valid); !reflect.DeepEqual(got, []string{"alpha", "omega"}) {
				t.Errorf("valid tasks: got %v; want %v", got, []string{"alpha", "omega"})
			}
			if len(problems) != 1 {
				t.Fatalf("problems: got %d %v; want 1", len(problems), problems)
			}
			msg := problems[0].Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("problem: got %q; want it to contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("problem: got %q; want a single line", msg)
			}
			var te *TaskError
			if !errors.As(problems[0], &te) {
				t.Fatalf("problem: got %T; want a *TaskError", problems[0])
			}
			if te.Field != tt.field || te.Index != 1 {
				t.Errorf("TaskError: got field %q index %d; want %q, 1", te.Field, te.Index, tt.field)
			}
		})
	}
}

func TestParseTypoReportsBothFields(t *testing.T) {
	// "comand" must not silently leave the task without a command: the task
	// is rejected with one problem that names the unknown key and the
	// missing field, each on its own line.
	valid, problems, err := Parse([]byte(`
tasks:
  - name: report
    schedule: "@every 10s"
    comand: echo hi
    timeout: soon
`))
	if err != nil || len(valid) != 0 {
		t.Fatalf("Parse: got %d valid, err %v; want 0, nil", len(valid), err)
	}
	if len(problems) != 1 {
		t.Fatalf("problems: got %d %v; want 1", len(problems), problems)
	}
	lines := strings.Split(problems[0].Error(), "\n")
	want := []string{
		`task "report": command: missing or empty: add the shell command to run (with sh -c), e.g. command: "echo hi"`,
		`task "report": comand: unknown field (did you mean "command"?): fields are name, schedule, command, timeout, retries, retry_backoff, missed`,
		`task "report": timeout "soon": time: invalid duration "soon": use a Go duration with a unit, e.g. timeout: 30s or timeout: 5m`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("got %q; want %q", lines, want)
	}
	var fieldsGot []string
	for _, e := range problems[0].(interface{ Unwrap() []error }).Unwrap() {
		var te *TaskError
		if errors.As(e, &te) {
			fieldsGot = append(fieldsGot, te.Field)
		}
	}
	if want := []string{"command", "comand", "timeout"}; !reflect.DeepEqual(fieldsGot, want) {
		t.Errorf("fields: got %v; want %v", fieldsGot, want)
	}
}

func TestParseProblemsInFileOrder(t *testing.T) {
	valid, problems, err := Parse([]byte(`
tasks:
  - name: one
    schedule: "@every 1s"
    command: "true"
  - name: one
    schedule: "@every 2s"
    command: "true"
  - name: two
    schedule: "@every 3s"
  - name: three
    schedule: "@every 4s"
    command: "true"
  - name: one
    schedule: "bad"
    command: "true"
`))
	if err != nil {
		t.Fatalf("Parse: got err %v; want nil", err)
	}
	if got, want := names(valid), []string{"one", "three"}; !reflect.DeepEqual(got, want) {
		t.Errorf("valid: got %v; want %v", got, want)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Error())
	}
	want := []string{
		`task "one": name "one": already used by tasks[0] (this is tasks[1]): give each task a unique name`,
		`task "two": command: missing or empty: add the shell command to run (with sh -c), e.g. command: "echo hi"`,
		`task "one": name "one": already used by tasks[0] (this is tasks[4]): give each task a unique name` + "\n" +
			`task "one": schedule "bad": expected exactly 5 fields, found 1: [bad]: ` + scheduleHelp,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q; want %q", got, want)
	}
}

func TestParseMergeKeys(t *testing.T) {
	valid, problems, err := Parse([]byte(`
tasks:
  - &defaults
    name: first
    schedule: "@hourly"
    command: echo first
    timeout: 1m
    retries: 3
  - <<: *defaults
    name: second
    command: echo second
`))
	if err != nil || len(problems) != 0 {
		t.Fatalf("Parse: got problems %v, err %v; want none", problems, err)
	}
	if len(valid) != 2 {
		t.Fatalf("got %d tasks; want 2", len(valid))
	}
	got := *valid[1]
	got.sched = nil
	want := Task{Name: "second", Schedule: "@hourly", Command: "echo second", Timeout: time.Minute, Retries: 3, Missed: MissedLatest}
	if got != want {
		t.Errorf("got %+v; want %+v", got, want)
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "empty: want a top-level \"tasks\" list"},
		{"comments only", "# nothing here\n", "empty: want a top-level \"tasks\" list"},
		{"not yaml", "tasks: [\n", "not valid YAML: "},
		{"bad indentation", "tasks:\n  - name: a\n   schedule: x\n", "not valid YAML: "},
		{"top-level list", "- name: a\n", `want a mapping with a top-level "tasks" list, got a list`},
		{"top-level scalar", "hello\n", `want a mapping with a top-level "tasks" list, got the value "hello"`},
		{"no tasks key", "task:\n  - name: a\n", `line 1: unknown top-level key "task"`},
		{"extra top-level key", "version: 1\ntasks:\n  - name: a\n", `line 1: unknown top-level key "version"`},
		{"tasks null", "tasks:\n", `line 1: "tasks" must be a list of tasks ("- name: ..."), got nothing (null)`},
		{"tasks mapping", "tasks:\n  name: a\n", `line 1: "tasks" must be a list of tasks ("- name: ..."), got a mapping`},
		{"empty list", "tasks: []\n", `line 1: the "tasks" list is empty`},
		{"two documents", "tasks:\n  - name: a\n---\ntasks:\n  - name: b\n", "more than one YAML document (line 3)"},
		{"empty mapping", "{}\n", `no top-level "tasks" list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			valid, problems, err := Parse([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err: got %v; want one containing %q", err, tt.want)
			}
			if valid != nil || problems != nil {
				t.Errorf("got %v, %v; want no tasks and no problems", valid, problems)
			}
		})
	}
}

func TestParseAllInvalid(t *testing.T) {
	valid, problems, err := Parse([]byte("tasks:\n  - name: a\n"))
	if err != nil {
		t.Fatalf("Parse: got err %v; want nil (an invalid task is a problem, not a file error)", err)
	}
	if len(valid) != 0 || len(problems) != 1 {
		t.Errorf("got %d valid, %d problems; want 0, 1", len(valid), len(problems))
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tasks.yaml")
	if err := os.WriteFile(good, []byte(specExample), 0o600); err != nil {
		t.Fatal(err)
	}
	valid, problems, err := Load(good)
	if err != nil || len(problems) != 0 || len(valid) != 1 {
		t.Errorf("Load(good): got %d valid, problems %v, err %v; want 1, none, nil", len(valid), problems, err)
	}

	missing := filepath.Join(dir, "missing.yaml")
	if _, _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing): got %v; want an os.ErrNotExist naming %s", err, missing)
	}

	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("Load(empty): got %v; want an error naming %s", err, empty)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		task Task
		want string // "" for valid
	}{
		{"valid", Task{Name: "ok", Schedule: "@every 1m", Command: "true"}, ""},
		{"negative timeout", Task{Name: "t", Schedule: "@hourly", Command: "true", Timeout: -time.Second},
			`task "t": timeout -1s: must not be negative`},
		{"negative retries", Task{Name: "r", Schedule: "@hourly", Command: "true", Retries: -2},
			`task "r": retries -2: must be >= 0`},
		{"bad missed", Task{Name: "m", Schedule: "@hourly", Command: "true", Missed: "all"},
			`task "m": missed "all": must be "latest" or "skip"`},
		{"no name", Task{Schedule: "@hourly", Command: "true"},
			`unnamed task: name: missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := tt.task
			err := task.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: got %v; want nil", err)
				}
				if task.Missed != MissedLatest || task.sched == nil {
					t.Errorf("after Validate: got Missed %q, sched %v; want %q and a schedule", task.Missed, task.sched, MissedLatest)
				}
				return
			}
			if err == nil || err.Error() != strings.SplitN(err.Error(), "\n", 2)[0] || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Validate: got %v; want one line starting with %q", err, tt.want)
			}
			if task.sched != nil {
				t.Errorf("after failed Validate: got a schedule; want none")
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ key, want string }{
		{"comand", ` (did you mean "command"?)`},
		{"Schedule", ` (did you mean "schedule"?)`},
		{"retry", ` (did you mean "retries"?)`},
		{"timout", ` (did you mean "timeout"?)`},
		{"owner", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.key); got != tt.want {
			t.Errorf("suggest(%q): got %q; want %q", tt.key, got, tt.want)
		}
	}
}

func names(ts []*Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func TestParseRetryBackoff(t *testing.T) {
	valid, problems, err := Parse([]byte("tasks:\n  - name: a\n    schedule: \"@every 5s\"\n    command: \"true\"\n    retry_backoff: 3s\n"))
	if err != nil || len(problems) > 0 || len(valid) != 1 {
		t.Fatalf("Parse = %v, %v, %v", valid, problems, err)
	}
	if valid[0].RetryBackoff != 3*time.Second {
		t.Errorf("RetryBackoff = %v; want 3s", valid[0].RetryBackoff)
	}
	_, problems, _ = Parse([]byte("tasks:\n  - name: a\n    schedule: \"@every 5s\"\n    command: \"true\"\n    retry_backoff: 3\n"))
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), "retry_backoff") {
		t.Errorf("retry_backoff: 3 gives %v; want a problem naming retry_backoff", problems)
	}
}

func TestParseTabsHint(t *testing.T) {
	_, _, err := Parse([]byte("tasks:\n\t- name: a\n\t  schedule: \"@every 5s\"\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2 is indented with a tab") {
		t.Errorf("tab-indented file: err = %v; want a hint naming line 2 and tabs", err)
	}
}
