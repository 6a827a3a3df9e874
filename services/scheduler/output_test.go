package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/etcdtest"
	"github.com/leasehold/leasehold/services/tasks"
)

// Each stream is logged line by line on its own: interleaved writes to
// stdout and stderr do not splice, a long line is cut at the cap, and an
// unterminated last line is logged at Close.
func TestLogLinesPerStream(t *testing.T) {
	logs := newCapture()
	stdout, stderr := LogLines(8)(slog.New(logs).With("task", "t"))
	fmt.Fprint(stdout, "a")
	fmt.Fprint(stderr, "b\n")
	fmt.Fprint(stdout, "c\n0123456789ab\nlast")
	if err := stdout.Close(); err != nil {
		t.Fatal(err)
	}
	_ = stderr.Close()
	var got []string
	for _, l := range logs.lines("output") {
		if l["task"] != "t" {
			t.Errorf("line %v lacks the unit's attributes", l)
		}
		got = append(got, l["stream"]+":"+l["line"]+map[string]string{"true": "+"}[l["continued"]])
	}
	want := "stderr:b stdout:ac stdout:01234567 stdout:89ab+ stdout:last"
	if strings.Join(got, " ") != want {
		t.Errorf("logged %q; want %q", strings.Join(got, " "), want)
	}
}

// A unit's output lines follow its "started", carry task, slot, attempt
// and node, keep stdout and stderr apart, and include an unterminated last
// line; a command that ends does not draw a warning about the guard.
func TestUnitOutput(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	layout := NewLayout("/output")
	logs := newCapture()
	ts := mustTask(t, "tasks:\n  - name: t\n    schedule: \"@every 1h\"\n    command: \"printf a; echo b >&2; printf 'c\\\\nlast'\"\n")
	startTestNode(t, c, Config{Layout: layout, NodeID: "n1", Tasks: ts, Log: slog.New(logs), Grace: time.Second, Output: LogLines(0)})
	if _, err := c.Put(context.Background(), layout.Schedule("t"), tasks.SlotKey(time.Now().Add(-2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	await(t, "the run finished", func() bool { return len(logs.lines("finished")) == 1 })
	logs.mu.Lock()
	var order []string
	for _, r := range logs.recs {
		if r.Message == "started" || r.Message == "output" || r.Message == "finished" {
			order = append(order, r.Message)
		}
	}
	logs.mu.Unlock()
	if strings.Join(order, " ") != "started output output output finished" {
		t.Errorf("unit records in order: %v; want started, three output lines, finished", order)
	}
	var got []string
	for _, l := range logs.lines("output") {
		for _, k := range []string{"task", "slot", "attempt", "node"} {
			if l[k] == "" {
				t.Errorf("output line %v lacks %s", l, k)
			}
		}
		got = append(got, l["stream"]+":"+l["line"])
	}
	slices.Sort(got)
	if want := "stderr:b stdout:ac stdout:last"; strings.Join(got, " ") != want {
		t.Errorf("output %q; want %q", strings.Join(got, " "), want)
	}
	if n := logs.count(slog.LevelWarn, "cannot extend the guard's deadline"); n != 0 {
		t.Errorf("%d warnings about extending a finished guard", n)
	}
}
