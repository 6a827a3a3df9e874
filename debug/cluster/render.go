package cluster

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/leasehold/leasehold/debug"
)

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiDim    = "\x1b[2m"
)

// statusColor is the ANSI colour of a node status.
func statusColor(status string) string {
	switch status {
	case StatusUp:
		return ansiGreen
	case StatusUnreachable:
		return ansiRed
	case StatusNoEndpoint:
		return ansiYellow
	}
	return ansiDim
}

// Render prints v for a terminal: the elections and their leaders first,
// then one line per node (status, leadership, version, lease), the tasks,
// and each reachable node's tree as debug.Render prints it. With color,
// statuses are coloured with ANSI escapes.
func Render(w io.Writer, v View, color bool) error {
	paint := func(style, text string) string {
		if !color || style == "" {
			return text
		}
		return style + text + ansiReset
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s seen from %s  %s  registry %s\n", paint(ansiBold, "cluster"), paint(ansiBold, v.From), v.At.UTC().Format(time.RFC3339), v.Members)
	if v.EtcdError != "" {
		fmt.Fprintf(&b, "%s\n", paint(ansiRed, "etcd: "+v.EtcdError))
	}
	for _, e := range v.Elections {
		if e.Leader == "" {
			fmt.Fprintf(&b, "election %s  %s\n", e.Prefix, paint(ansiRed, "NO LEADER"))
			continue
		}
		line := fmt.Sprintf("election %s  %s  lease %s", e.Prefix, paint(ansiBold+ansiYellow, fmt.Sprintf("LEADER %s token %d", e.Leader, e.Token)), e.LeaseID)
		if e.SafetyLeftMs >= 0 {
			line += fmt.Sprintf("  safe %s", seconds(max(0, e.SafetyLeftMs-e.AgeMs)))
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
			details = append(details, paint(ansiBold+ansiYellow, "LEADER "+strings.Join(n.Leads, ",")))
		}
		if n.Version != "" {
			details = append(details, "version "+n.Version)
		}
		if !n.Started.IsZero() {
			details = append(details, "up "+age(v.At.Sub(n.Started)))
		}
		if n.LeaseTTLMs > 0 {
			details = append(details, "etcd ttl "+seconds(n.LeaseTTLMs))
		}
		if !n.GoneSince.IsZero() {
			details = append(details, "gone for "+age(v.At.Sub(n.GoneSince)))
		}
		if n.DebugURL != "" {
			details = append(details, n.DebugURL)
		}
		if n.Error != "" {
			details = append(details, paint(ansiRed, n.Error))
		}
		fmt.Fprintf(&b, "node %-*s  %s  %s\n", width, n.ID, paint(statusColor(n.Status), fmt.Sprintf("%-11s", n.Status)), strings.Join(details, "  "))
	}
	if len(v.Tasks) > 0 || v.TasksError != "" {
		b.WriteString("\n")
		if v.TasksError != "" {
			b.WriteString(paint(ansiRed, "tasks: "+v.TasksError) + "\n")
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
				line += paint(ansiRed, fmt.Sprintf("  %d recent failures, last %s %s: %s", len(t.Failures), f.Slot.UTC().Format(time.RFC3339), f.State, f.Reason))
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
		return ansiGreen
	case "failed", "lost":
		return ansiRed
	}
	return ansiYellow
}

func seconds(ms int64) string {
	if ms%1000 == 0 {
		return fmt.Sprintf("%ds", ms/1000)
	}
	return fmt.Sprintf("%.1fs", float64(ms)/1000)
}

func age(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", max(0, d.Milliseconds()))
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
