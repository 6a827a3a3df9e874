package debug

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/leasehold/leasehold/supervisor"
)

// ANSI styles used by Render.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

// StateColor is the ANSI colour of a node state: green when working,
// cyan while getting there, yellow while waiting or stopping, dim when
// stopped, red when failed.
func StateColor(state string) string {
	switch state {
	case supervisor.StateRunning, supervisor.StateHeld, supervisor.StateLeading:
		return ansiGreen
	case supervisor.StateStarting, supervisor.StateAcquiring, supervisor.StateCampaigning:
		return ansiCyan
	case supervisor.StateBackoff, supervisor.StateStopping:
		return ansiYellow
	case supervisor.StateFailed:
		return ansiRed
	}
	return ansiDim
}

// Render prints s as an indented tree, like tree(1): one line per node with
// its name, kind and state, then what matters for its kind (lease id,
// seconds of safety left of the TTL, term, role and fencing token, leader,
// restarts, last error) and how long it has been in its state. With color,
// states and errors are coloured with ANSI escapes.
func Render(w io.Writer, s supervisor.Snapshot, color bool) error {
	paint := func(style, text string) string {
		if !color || style == "" {
			return text
		}
		return style + text + ansiReset
	}
	type line struct {
		prefix string
		n      supervisor.NodeSnapshot
	}
	var lines []line
	var walk func(n supervisor.NodeSnapshot, prefix, childPrefix string)
	walk = func(n supervisor.NodeSnapshot, prefix, childPrefix string) {
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
	fmt.Fprintf(&b, "%s %s  %s\n", paint(ansiBold, "node"), paint(ansiBold, s.Node), s.At.UTC().Format(time.RFC3339))
	for _, l := range lines {
		n := l.n
		name := l.prefix + n.Name
		pad := strings.Repeat(" ", nameWidth-utf8.RuneCountInString(name))
		var l strings.Builder
		fmt.Fprintf(&l, "%s%s  %-8s  %s", name, pad, n.Kind, paint(StateColor(n.State), fmt.Sprintf("%-11s", n.State)))
		var details []string
		if !n.Since.IsZero() && !s.At.IsZero() {
			details = append(details, fmt.Sprintf("%-9s", "for "+age(s.At.Sub(n.Since))))
		}
		switch n.Kind {
		case supervisor.KindLease, supervisor.KindElection:
			if n.Held {
				details = append(details, fmt.Sprintf("safe %s/%s", seconds(n.HeldUntilMs), seconds(n.TTLMillis)))
			} else if n.LeaseID != "" {
				details = append(details, paint(ansiRed, "not held"))
			}
			if n.Term > 0 {
				details = append(details, fmt.Sprintf("term %d", n.Term))
			}
			switch {
			case n.Role == "leader":
				details = append(details, paint(ansiBold+ansiYellow, fmt.Sprintf("LEADER token %d", n.Token)))
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
				details = append(details, paint(ansiYellow, fmt.Sprintf("renewal failures %d", n.RenewalFail)))
			}
		}
		if n.Restarts > 0 {
			details = append(details, paint(ansiYellow, fmt.Sprintf("restarts %d", n.Restarts)))
		}
		if n.LastError != "" {
			details = append(details, paint(ansiRed, "last error: "+truncate(firstLine(n.LastError), 72)))
		}
		if len(details) > 0 {
			l.WriteString("  " + strings.Join(details, "  "))
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// seconds formats milliseconds as seconds with one decimal, or none for
// whole seconds: 9.6s, 10s.
func seconds(ms int64) string {
	if ms%1000 == 0 {
		return fmt.Sprintf("%ds", ms/1000)
	}
	return fmt.Sprintf("%.1fs", float64(ms)/1000)
}

// age formats a duration coarsely: 450ms, 12s, 3m12s, 2h5m, 3d4h.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
