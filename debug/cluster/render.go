package cluster

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/leasehold/leasehold/debug"
	"github.com/leasehold/leasehold/debug/internal/textfmt"
)

// statusColor is the ANSI colour of a node status.
func statusColor(status string) string {
	switch status {
	case StatusUp:
		return textfmt.Green
	case StatusUnreachable:
		return textfmt.Red
	case StatusNoEndpoint:
		return textfmt.Yellow
	}
	return textfmt.Dim
}

// Render prints v for a terminal: the elections and their leaders first,
// then one line per node (status, leadership, version, lease), the tasks,
// and each reachable node's tree as debug.Render prints it. With color,
// statuses are coloured with ANSI escapes.
func Render(w io.Writer, v View, color bool) error {
	paint := textfmt.Painter(color)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s seen from %s  %s  registry %s\n", paint(textfmt.Bold, "cluster"), paint(textfmt.Bold, v.From), v.At.UTC().Format(time.RFC3339), v.Members)
	if v.EtcdError != "" {
		fmt.Fprintf(&b, "%s\n", paint(textfmt.Red, "etcd: "+v.EtcdError))
	}
	for _, e := range v.Elections {
		if e.Leader == "" {
			fmt.Fprintf(&b, "election %s  %s\n", e.Prefix, paint(textfmt.Red, "NO LEADER"))
			continue
		}
		line := fmt.Sprintf("election %s  %s  lease %s", e.Prefix, paint(textfmt.Bold+textfmt.Yellow, fmt.Sprintf("LEADER %s token %d", e.Leader, e.Token)), e.LeaseID)
		if e.SafetyLeftMs >= 0 {
			line += fmt.Sprintf("  safe %s", textfmt.Seconds(max(0, e.SafetyLeftMs-e.AgeMs)))
		}
		if len(e.Candidates) > 0 {
			line += "  candidates " + strings.Join(e.Candidates, ", ")
		}
		b.WriteString(line + "\n")
	}
	width := 0
	for _, n := range v.Nodes {
		width = max(width, len(n.ID))
	}
	b.WriteString("\n")
	for _, n := range v.Nodes {
		details := []string{}
		if len(n.Leads) > 0 {
			details = append(details, paint(textfmt.Bold+textfmt.Yellow, "LEADER "+strings.Join(n.Leads, ",")))
		}
		if n.Version != "" {
			details = append(details, "version "+n.Version)
		}
		if !n.Started.IsZero() {
			details = append(details, "up "+textfmt.Age(v.At.Sub(n.Started)))
		}
		if n.LeaseTTLMs > 0 {
			details = append(details, "etcd ttl "+textfmt.Seconds(n.LeaseTTLMs))
		}
		if !n.GoneSince.IsZero() {
			details = append(details, "gone for "+textfmt.Age(v.At.Sub(n.GoneSince)))
		}
		if n.DebugURL != "" {
			details = append(details, n.DebugURL)
		}
		if n.Error != "" {
			details = append(details, paint(textfmt.Red, n.Error))
		}
		fmt.Fprintf(&b, "node %-*s  %s  %s\n", width, n.ID, paint(statusColor(n.Status), fmt.Sprintf("%-11s", n.Status)), strings.Join(details, "  "))
	}
	if len(v.Tasks) > 0 || v.TasksError != "" {
		b.WriteString("\n")
		if v.TasksError != "" {
			b.WriteString(paint(textfmt.Red, "tasks: "+v.TasksError) + "\n")
		}
		for _, t := range v.Tasks {
			line := fmt.Sprintf("task %s (%s)", t.Name, t.Schedule)
			if r := t.LastRun; r != nil {
				line += fmt.Sprintf("  last %s %s", r.Slot.UTC().Format(time.RFC3339), paint(runColor(r.State), r.State))
				if r.Runner != "" {
					line += " on " + r.Runner
				}
			}
			if !t.NextSlot.IsZero() {
				line += "  next " + t.NextSlot.UTC().Format(time.RFC3339)
			}
			if len(t.Failures) > 0 {
				f := t.Failures[0]
				line += paint(textfmt.Red, fmt.Sprintf("  %d recent failures, last %s %s: %s", len(t.Failures), f.Slot.UTC().Format(time.RFC3339), f.State, f.Reason))
			}
			b.WriteString(line + "\n")
		}
	}
	for _, n := range v.Nodes {
		if n.Tree == nil {
			continue
		}
		b.WriteString("\n")
		if err := debug.Render(&b, *n.Tree, color); err != nil {
			return err
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func runColor(state string) string {
	switch state {
	case "done":
		return textfmt.Green
	case "failed", "lost":
		return textfmt.Red
	}
	return textfmt.Yellow
}
