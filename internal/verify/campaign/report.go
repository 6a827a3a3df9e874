package campaign

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/verify/checker"
	"github.com/leasehold/leasehold/internal/verify/faults"
)

// renderTable renders the campaigns' results side by side as markdown.
func renderTable(o Options, etcd faults.EtcdSettings, results []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### splitbrain: seed %d, %d nodes, TTL %s, %d etcd members (%s)\n\n", o.Seed, o.Nodes, o.TTL, o.Members, etcd)
	head := "| |"
	rule := "|---|"
	for _, r := range results {
		head += " " + r.Mode + " |"
		rule += "---:|"
	}
	b.WriteString(head + "\n" + rule + "\n")
	row := func(name string, cell func(r result, rep *checker.Report) string) {
		line := "| " + name + " |"
		for _, r := range results {
			line += " " + cell(r, r.Report) + " |"
		}
		b.WriteString(line + "\n")
	}
	row("faults injected", func(r result, _ *checker.Report) string { return fmt.Sprint(r.Injected) })
	for _, k := range allKinds {
		row("&nbsp;&nbsp;"+k+" (at the leader)", func(_ result, rep *checker.Report) string {
			fs := rep.Faults[k]
			if fs == nil {
				return "0"
			}
			return fmt.Sprintf("%d (%d)", fs.Injected, fs.AtLeader)
		})
	}
	row("leadership changes", func(_ result, rep *checker.Report) string { return fmt.Sprint(max(len(rep.Terms)-1, 0)) })
	row("node exits: overrun (75) / SIGKILL / other", func(_ result, rep *checker.Report) string {
		other := 0
		for what, n := range rep.Exits {
			if what != "status 75" && what != "SIGKILL" && what != "status 0" {
				other += n
			}
		}
		return fmt.Sprintf("%d / %d / %d", rep.Exits["status 75"], rep.Exits["SIGKILL"], other)
	})
	row("**overlapping leadership intervals**", func(_ result, rep *checker.Report) string { return bold(len(rep.Overlaps)) })
	row("longest overlap", func(_ result, rep *checker.Report) string {
		if len(rep.Overlaps) == 0 {
			return "–"
		}
		return ms(rep.LongestOverlap())
	})
	row("**tokens going backwards**", func(_ result, rep *checker.Report) string { return bold(len(rep.Backwards)) })
	row("**stale fenced commits**", func(_ result, rep *checker.Report) string {
		if !rep.WritesChecked {
			return "not checked"
		}
		return bold(rep.StaleFenced())
	})
	row("**stale plain commits**", func(_ result, rep *checker.Report) string {
		if !rep.WritesChecked {
			return "not checked"
		}
		if rep.Plain == (checker.Writes{}) && rep.StalePlain() == 0 {
			return "– (all fenced)"
		}
		return bold(rep.StalePlain())
	})
	row("fenced writes accepted / rejected / unknown", func(_ result, rep *checker.Report) string {
		return fmt.Sprintf("%d / %d / %d", rep.Fenced.Accepted, rep.Fenced.Rejected, rep.Fenced.Unknown)
	})
	row("commits in etcd's record", func(_ result, rep *checker.Report) string { return fmt.Sprint(rep.Commits) })
	row("acts refused by the guard (leasehold: past HeldUntil)", func(_ result, rep *checker.Report) string { return fmt.Sprint(rep.Refused) })
	row("interregnum min / median / max", func(_ result, rep *checker.Report) string { return rep.Interregnum().String() })
	row("failover after a leader fault: min / median / max", func(_ result, rep *checker.Report) string { return rep.Failover.String() })
	for _, k := range []string{faultKill, faultPause, faultPartition, faultStubborn} {
		row("&nbsp;&nbsp;"+k+": failovers, median", func(_ result, rep *checker.Report) string {
			fs := rep.Faults[k]
			if fs == nil || fs.Failovers == 0 {
				return "–"
			}
			return fmt.Sprintf("%d, %s", fs.Failovers, ms(fs.Failover.Median))
		})
	}
	row("faults with no leader acting after 4 TTL + 5 s", func(r result, _ *checker.Report) string { return fmt.Sprint(r.NoRecovery) })
	row("acts / terms / events checked", func(_ result, rep *checker.Report) string {
		return fmt.Sprintf("%d / %d / %d", rep.Acts, len(rep.Terms), rep.Events)
	})
	row("torn last lines", func(r result, _ *checker.Report) string { return fmt.Sprint(len(r.Torn)) })
	row("wall time", func(r result, _ *checker.Report) string { return r.Wall.Round(time.Second).String() })
	for _, r := range results {
		if r.Report.Violations() > 0 {
			fmt.Fprintf(&b, "\n%s, first violations:\n\n```\n%s```\n", r.Mode, r.Report.Summary(5))
		}
		if r.Err != nil {
			fmt.Fprintf(&b, "\n%s campaign did not finish as planned: %v\n", r.Mode, r.Err)
		}
	}
	if i := slices.IndexFunc(results, func(r result) bool { return r.Mode == "naive" }); i >= 0 {
		r := results[i]
		switch {
		case len(r.Report.Overlaps) > 0:
			fmt.Fprintf(&b, "\nSensitivity: the checker found %d overlaps in the naive baseline (%d partitions and pauses of its leader).\n", len(r.Report.Overlaps), hitsAtLeader(r))
		case hitsAtLeader(r) < 3:
			fmt.Fprintf(&b, "\nSensitivity: not judged: only %d partitions and pauses hit the naive leader.\n", hitsAtLeader(r))
		default:
			fmt.Fprintf(&b, "\nSensitivity: FAILED: no overlap in the naive baseline after %d partitions and pauses of its leader.\n", hitsAtLeader(r))
		}
	}
	return b.String()
}

func bold(n int) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("**%d**", n)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}
