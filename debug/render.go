package debug

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/leasehold/leasehold"

	"github.com/leasehold/leasehold/debug/internal/textfmt"
)

// StateColor is the ANSI colour of a node state: green when working,
// cyan while getting there, yellow while waiting or stopping, dim when
// stopped, red when failed.
func StateColor(state string) string {
	switch state {
	case leasehold.StateRunning, leasehold.StateHeld, leasehold.StateLeading:
		return textfmt.Green
	case leasehold.StateStarting, leasehold.StateAcquiring, leasehold.StateCampaigning:
		return textfmt.Cyan
	case leasehold.StateBackoff, leasehold.StateStopping:
		return textfmt.Yellow
	case leasehold.StateFailed:
		return textfmt.Red
	}
	return textfmt.Dim
}

// Render prints s as an indented tree, like tree(1): one line per node with
// its name, kind and state, then what matters for its kind (lease id,
// seconds of safety left of the TTL, term, role and fencing token, leader,
// restarts, last error) and how long it has been in its state. With color,
// states and errors are coloured with ANSI escapes.
func Render(w io.Writer, s leasehold.Snapshot, color bool) error {
	paint := textfmt.Painter(color)
	type line struct {
		prefix string
		n      leasehold.NodeSnapshot
	}
	var lines []line
	var walk func(n leasehold.NodeSnapshot, prefix, childPrefix string)
	walk = func(n leasehold.NodeSnapshot, prefix, childPrefix string) {
		lines = append(lines, line{prefix, n})
		for i, c := range n.Children {
			if i == len(n.Children)-1 {
				walk(c, childPrefix+"└── ", childPrefix+"    ")
			} else {
				walk(c, childPrefix+"├── ", childPrefix+"│   ")
			}
		}
	}
	walk(s.Tree, "", "")
	nameWidth := 0
	for _, l := range lines {
		nameWidth = max(nameWidth, utf8.RuneCountInString(l.prefix+l.n.Name))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%s %s  %s\n", paint(textfmt.Bold, "node"), paint(textfmt.Bold, s.Node), s.At.UTC().Format(time.RFC3339))
	for _, l := range lines {
		n := l.n
		name := l.prefix + n.Name
		pad := strings.Repeat(" ", nameWidth-utf8.RuneCountInString(name))
		var l strings.Builder
		fmt.Fprintf(&l, "%s%s  %-8s  %s", name, pad, n.Kind, paint(StateColor(n.State), fmt.Sprintf("%-11s", n.State)))
		var details []string
		if !n.Since.IsZero() && !s.At.IsZero() {
			details = append(details, fmt.Sprintf("%-9s", "for "+textfmt.Age(s.At.Sub(n.Since))))
		}
		switch n.Kind {
		case leasehold.KindLease, leasehold.KindElection:
			if n.Held {
				details = append(details, fmt.Sprintf("safe %s/%s", textfmt.Seconds(n.HeldUntilMs), textfmt.Seconds(n.TTLMillis)))
			} else if n.LeaseID != "" {
				details = append(details, paint(textfmt.Red, "not held"))
			}
			if n.Term > 0 {
				details = append(details, fmt.Sprintf("term %d", n.Term))
			}
			switch {
			case n.Role == "leader":
				details = append(details, paint(textfmt.Bold+textfmt.Yellow, fmt.Sprintf("LEADER token %d", n.Token)))
			case n.Role != "" && n.Leader != "":
				details = append(details, "candidate, leader "+n.Leader)
			case n.Role != "":
				details = append(details, "candidate, no leader")
			case n.Token > 0:
				details = append(details, fmt.Sprintf("token %d", n.Token))
			}
			if n.LeaseID != "" {
				details = append(details, "lease "+n.LeaseID)
			}
			if n.RenewalFail > 0 {
				details = append(details, paint(textfmt.Yellow, fmt.Sprintf("renewal failures %d", n.RenewalFail)))
			}
		}
		if n.Restarts > 0 {
			details = append(details, paint(textfmt.Yellow, fmt.Sprintf("restarts %d", n.Restarts)))
		}
		if n.LastError != "" {
			details = append(details, paint(textfmt.Red, "last error: "+truncate(firstLine(n.LastError), 72)))
		}
		if len(details) > 0 {
			l.WriteString("  " + strings.Join(details, "  "))
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
