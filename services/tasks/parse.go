package tasks

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// TaskError is a problem with one task: one field of it, or the task as a
// whole. Its message names the task (by name, or by index when the name is
// missing), then the field, what is wrong and how to fix it:
//
//	task "report": schedule "*/x * * * *": failed to parse int from */x: ...: use 5-field cron ...
type TaskError struct {
	Index int    // position in the file's tasks list; -1 for a task not read from a file
	Name  string // the task's name as written; "" if missing
	Line  int    // line in the file of the field (or the task); 0 if unknown
	Field string // "name", "schedule", ..., an unknown key as written, or "" for the whole task
	Msg   string // the field, what is wrong and the fix
	Err   error  // underlying cause (cron parser, time.ParseDuration, ...), if any
}

func (e *TaskError) Error() string {
	return taskLabel(e.Name, e.Index) + ": " + e.Msg
}

func (e *TaskError) Unwrap() error { return e.Err }

func taskLabel(name string, index int) string {
	switch {
	case name != "":
		return fmt.Sprintf("task %q", name)
	case index >= 0:
		return fmt.Sprintf("tasks[%d]", index)
	default:
		return "unnamed task"
	}
}

// fields are the keys a task may have, in the order they are documented.
var fields = []string{"name", "schedule", "command", "timeout", "retries", "retry_backoff", "missed"}

// Load reads and parses the tasks file at path; see Parse.
func Load(path string) (valid []*Task, problems []error, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("tasks: read tasks file: %w", err) // *PathError names the path
	}
	valid, problems, err = parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("tasks file %s: %w", path, err)
	}
	return valid, problems, nil
}

// Parse reads a tasks file. It returns the valid tasks in file order, and
// one error (a *TaskError, or several joined) per invalid task, also in file
// order. Each task is checked on its own so that one bad task does not
// disable the others; unknown fields are problems too, so that a typo such as
// "comand" cannot silently drop a field. Of two tasks with the same name, the
// second is rejected.
//
// err reports a file that is not a tasks list at all: not YAML, more than
// one YAML document, no top-level "tasks" list, unknown top-level keys, or an
// empty list. Then no tasks are returned.
func Parse(data []byte) (valid []*Task, problems []error, err error) {
	valid, problems, err = parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("tasks file: %w", err)
	}
	return valid, problems, nil
}

// parse is Parse without the context on err, which Load adds with the path.
func parse(data []byte) (valid []*Task, problems []error, err error) {
	list, err := taskList(data)
	if err != nil {
		return nil, nil, err
	}
	seen := make(map[string]int) // name -> index of its first occurrence
	for i, node := range list.Content {
		t, err := decodeTask(node, i, seen)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		valid = append(valid, t)
	}
	return valid, problems, nil
}

// taskList returns the sequence node under the top-level "tasks" key.
func taskList(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New(`empty: want a top-level "tasks" list, e.g. "tasks:\n  - name: report\n    schedule: \"@every 10s\"\n    command: echo hi"`)
		}
		return nil, fmt.Errorf("not valid YAML: %w%s", err, tabsHint(data))
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, fmt.Errorf(`more than one YAML document (line %d): put all tasks in one "tasks" list`, extra.Line)
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}

	root := resolve(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = resolve(root.Content[0])
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf(`want a mapping with a top-level "tasks" list, got %s`, kindName(root))
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], resolve(root.Content[i+1])
		switch {
		case key.Value != "tasks":
			return nil, fmt.Errorf(`line %d: unknown top-level key %q: the file holds only a "tasks" list`, key.Line, key.Value)
		case list != nil:
			return nil, fmt.Errorf(`line %d: "tasks" appears twice: merge the two lists`, key.Line)
		case val.Kind != yaml.SequenceNode:
			return nil, fmt.Errorf(`line %d: "tasks" must be a list of tasks ("- name: ..."), got %s`, key.Line, kindName(val))
		}
		list = val
	}
	if list == nil {
		return nil, errors.New(`no top-level "tasks" list: start the file with "tasks:" followed by "- name: ..." entries`)
	}
	if len(list.Content) == 0 {
		return nil, fmt.Errorf(`line %d: the "tasks" list is empty: add at least one task`, list.Line)
	}
	return list, nil
}

// decodeTask decodes and validates the task at index i, recording its name
// in seen if it is the first with that name.
func decodeTask(node *yaml.Node, i int, seen map[string]int) (*Task, error) {
	node = resolve(node)
	if node.Kind != yaml.MappingNode {
		return nil, &TaskError{Index: i, Line: node.Line,
			Msg: fmt.Sprintf("not a mapping but %s: write each task as a mapping of %s, e.g. \"- name: report\"", kindName(node), strings.Join(fields, ", "))}
	}
	v := &validator{index: i, line: node.Line}
	vals := v.fieldValues(node)

	t := &Task{}
	var sched schedule
	for _, f := range fields {
		n, present := vals[f]
		line := v.line
		if present {
			line = n.Line
		}
		var s string
		if present {
			var ok bool
			if s, ok = v.scalar(f, n, fieldWant[f]); !ok {
				continue
			}
		}
		switch f {
		case "name":
			t.Name, v.name = s, s
			v.checkName(s, line)
		case "schedule":
			t.Schedule = s
			sched = v.checkSchedule(s, line)
		case "command":
			t.Command = s
			v.checkCommand(s, line)
		case "timeout":
			if s == "" {
				continue // absent or null: no limit
			}
			d, err := time.ParseDuration(strings.TrimSpace(s))
			switch {
			case err != nil:
				v.add(f, line, err, "timeout %q: %v: use a Go duration with a unit, e.g. timeout: 30s or timeout: 5m", s, err)
			case d <= 0:
				v.add(f, line, nil, "timeout %q: must be greater than 0: omit timeout for no limit, or use e.g. 30s", s)
			default:
				t.Timeout = d
			}
		case "retries":
			if s == "" {
				continue
			}
			r, err := strconv.Atoi(strings.TrimSpace(s))
			switch {
			case err != nil:
				v.add(f, line, err, "retries %q: not a whole number: use an integer >= 0, e.g. retries: 2", s)
			case r < 0:
				v.add(f, line, nil, "retries %d: must be >= 0: use 0 for no retries", r)
			default:
				t.Retries = r
			}
		case "retry_backoff":
			if s == "" {
				continue // absent or null: DefaultRetryBackoff
			}
			d, err := time.ParseDuration(strings.TrimSpace(s))
			switch {
			case err != nil:
				v.add(f, line, err, "retry_backoff %q: %v: use a Go duration with a unit, e.g. retry_backoff: 10s", s, err)
			case d <= 0:
				v.add(f, line, nil, "retry_backoff %q: must be greater than 0: omit it for the default (%s), or use e.g. 10s", s, DefaultRetryBackoff)
			default:
				t.RetryBackoff = d
			}
		case "missed":
			t.Missed = Missed(s)
			v.checkMissed(s, line)
		}
	}
	if t.Missed == "" {
		t.Missed = MissedLatest
	}

	// A name is taken by its first occurrence even if that task is invalid:
	// the user meant two tasks, and one of them must be renamed either way.
	if first, dup := seen[t.Name]; dup && v.nameOK {
		v.add("name", v.nameLine, nil, "name %q: already used by tasks[%d] (this is tasks[%d]): give each task a unique name", t.Name, first, i)
	} else if v.nameOK {
		seen[t.Name] = i
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	t.sched = sched
	return t, nil
}

// fieldWant describes each field's expected value for type errors.
var fieldWant = map[string]string{
	"name":          "a string such as report",
	"schedule":      `a string such as "@every 10s"`,
	"command":       `a string such as "echo hi"`,
	"timeout":       "a duration such as 30s",
	"retries":       "a whole number such as 2",
	"retry_backoff": "a duration such as 10s",
	"missed":        "latest or skip",
}

// validator collects the problems of one task.
type validator struct {
	index    int    // position in the file, or -1
	name     string // for labels; "" if missing
	line     int    // line of the task itself
	nameOK   bool   // the name is present and valid
	nameLine int
	merging  []*yaml.Node // mappings whose merge keys are being expanded
	errs     []*TaskError
}

func (v *validator) add(field string, line int, cause error, format string, args ...any) {
	v.errs = append(v.errs, &TaskError{
		Index: v.index, Name: v.name, Line: line, Field: field,
		Msg: fmt.Sprintf(format, args...), Err: cause,
	})
}

// err returns the collected problems as one error: one per invalid task is
// what callers list, and errors.Join keeps each field's line self-contained.
// Problems found before the name was read (unknown keys) get it now.
func (v *validator) err() error {
	for _, e := range v.errs {
		e.Name = v.name
	}
	// File order reads best; Validate has no lines and keeps field order.
	slices.SortStableFunc(v.errs, func(a, b *TaskError) int { return cmp.Compare(a.Line, b.Line) })
	switch len(v.errs) {
	case 0:
		return nil
	case 1:
		return v.errs[0]
	default:
		errs := make([]error, len(v.errs))
		for i, e := range v.errs {
			errs[i] = e
		}
		return errors.Join(errs...)
	}
}

// fieldValues maps each known key of a task mapping to its value, reporting
// unknown and repeated keys. Merge keys ("<<: *defaults") are honoured, with
// keys written in the task itself taking precedence.
func (v *validator) fieldValues(m *yaml.Node) map[string]*yaml.Node {
	vals := make(map[string]*yaml.Node)
	keyLine := make(map[string]int)
	var merged []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i], m.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			v.add("", key.Line, nil, "line %d: a key is %s: keys are field names (%s)", key.Line, kindName(key), strings.Join(fields, ", "))
			continue
		}
		if key.ShortTag() == "!!merge" {
			merged = append(merged, val)
			continue
		}
		if !isField(key.Value) {
			v.add(key.Value, key.Line, nil, "%s: unknown field%s: fields are %s", key.Value, suggest(key.Value), strings.Join(fields, ", "))
			continue
		}
		if first, dup := keyLine[key.Value]; dup {
			v.add(key.Value, key.Line, nil, "%s: set twice (lines %d and %d): keep one", key.Value, first, key.Line)
			continue
		}
		keyLine[key.Value] = key.Line
		vals[key.Value] = val
	}
	for _, src := range merged {
		src = resolve(src)
		maps := []*yaml.Node{src}
		if src.Kind == yaml.SequenceNode {
			maps = src.Content
		}
		for _, mm := range maps {
			mm = resolve(mm)
			if mm.Kind != yaml.MappingNode {
				v.add("<<", mm.Line, nil, "<<: merges %s: merge only mappings of task fields, e.g. <<: *defaults", kindName(mm))
				continue
			}
			if mm == m || slices.Contains(v.merging, mm) {
				// An anchor merged into itself would recurse forever.
				v.add("<<", mm.Line, nil, "<<: merges a mapping into itself: merge a separate mapping of defaults")
				continue
			}
			v.merging = append(v.merging, m)
			inner := v.fieldValues(mm)
			v.merging = v.merging[:len(v.merging)-1]
			for k, val := range inner {
				if _, set := vals[k]; !set {
					vals[k] = val
				}
			}
		}
	}
	return vals
}

// scalar returns the string value of a field. YAML null counts as absent
// (""), so "timeout:" with nothing after it means no timeout.
func (v *validator) scalar(field string, n *yaml.Node, want string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		v.add(field, n.Line, nil, "%s: got %s: want %s", field, kindName(n), want)
		return "", false
	}
	if n.ShortTag() == "!!null" {
		return "", true
	}
	return n.Value, true
}

func (v *validator) checkName(name string, line int) {
	v.nameLine = line
	switch {
	case name == "":
		v.add("name", line, nil, "name: missing: add a unique name of lowercase letters, digits and '-', e.g. name: nightly-report")
		return
	case len(name) > MaxNameLen:
		v.add("name", line, nil, "name %q: %d characters long: shorten it to at most %d", name, len(name), MaxNameLen)
		return
	}
	for i, r := range name {
		if !nameChar(r) {
			fix := ""
			if s := sanitizeName(name); s != "" {
				fix = fmt.Sprintf(", e.g. %q", s)
			}
			v.add("name", line, nil, "name %q: character %q at offset %d is not allowed: use only lowercase letters a-z, digits 0-9 and '-'%s", name, r, i, fix)
			return
		}
	}
	v.nameOK = true
}

func (v *validator) checkSchedule(spec string, line int) schedule {
	sched, err := parseSchedule(spec)
	if err != nil {
		if strings.TrimSpace(spec) == "" {
			v.add("schedule", line, nil, "schedule: %v", err)
		} else {
			v.add("schedule", line, errors.Unwrap(err), "schedule %q: %v", spec, err)
		}
		return nil
	}
	return sched
}

func (v *validator) checkCommand(cmd string, line int) {
	if strings.TrimSpace(cmd) == "" {
		v.add("command", line, nil, `command: missing or empty: add the shell command to run (with sh -c), e.g. command: "echo hi"`)
	}
}

func (v *validator) checkMissed(m string, line int) {
	switch Missed(m) {
	case "", MissedLatest, MissedSkip:
	default:
		v.add("missed", line, nil, "missed %q: must be %q or %q: latest runs only the most recent slot missed while no leader ran, skip runs none", m, MissedLatest, MissedSkip)
	}
}

func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'
}

// sanitizeName suggests a valid name close to an invalid one: lowercased,
// with runs of other characters replaced by '-'.
func sanitizeName(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if nameChar(r) {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if len(s) > MaxNameLen {
		s = strings.TrimRight(s[:MaxNameLen], "-")
	}
	return s
}

func isField(k string) bool {
	for _, f := range fields {
		if k == f {
			return true
		}
	}
	return false
}

// suggest names the known field closest to an unknown key, if one is close
// enough to be a likely typo.
func suggest(key string) string {
	limit := 2 // edits; short keys need a closer match to avoid nonsense
	if len(key) >= 5 {
		limit = 3 // "retry" for "retries"
	}
	best, bestDist := "", limit+1
	for _, f := range fields {
		if d := editDistance(strings.ToLower(key), f); d < bestDist {
			best, bestDist = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// resolve follows aliases (*anchor) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.DocumentNode:
		return "a document"
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing (null)"
		}
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	default:
		return "an empty value"
	}
}

// tabsHint explains the most common cause of a YAML syntax error: YAML
// forbids tabs in indentation, and editors insert them silently.
func tabsHint(data []byte) string {
	for i, line := range bytes.Split(data, []byte("\n")) {
		indent := line[:len(line)-len(bytes.TrimLeft(line, " \t"))]
		if bytes.IndexByte(indent, '\t') >= 0 {
			return fmt.Sprintf(" (line %d is indented with a tab: YAML allows only spaces in indentation; replace the tabs with spaces)", i+1)
		}
	}
	return ""
}
