// Package textfmt formats the debug endpoint's data for terminals: the
// ANSI styles and the short durations that both the tree (package debug)
// and the cluster view (package debug/cluster) print.
package textfmt

import (
	"fmt"
	"time"
)

// ANSI styles.
const (
	Reset  = "\x1b[0m"
	Bold   = "\x1b[1m"
	Dim    = "\x1b[2m"
	Red    = "\x1b[31m"
	Green  = "\x1b[32m"
	Yellow = "\x1b[33m"
	Cyan   = "\x1b[36m"
)

// Painter returns a func that wraps text in an ANSI style when color is
// set, and leaves it as it is otherwise (or for an empty style).
func Painter(color bool) func(style, text string) string {
	return func(style, text string) string {
		if !color || style == "" {
			return text
		}
		return style + text + Reset
	}
}

// Seconds formats milliseconds as seconds with one decimal, or none for
// whole seconds: 9.6s, 10s.
func Seconds(ms int64) string {
	if ms%1000 == 0 {
		return fmt.Sprintf("%ds", ms/1000)
	}
	return fmt.Sprintf("%.1fs", float64(ms)/1000)
}

// Age formats a duration coarsely: 450ms, 12s, 3m12s, 2h5m, 3d4h; a
// negative one (clock skew) as 0s.
func Age(d time.Duration) string {
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
