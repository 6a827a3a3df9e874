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
	t := table{b: &b, results: results}
	t.head()
	t.faultRows()
	t.safetyRows()
	t.livenessRows()
	t.coverageRows()
	writeNotes(&b, results)
	writeSensitivity(&b, results)
	return b.String()
}

// table writes a markdown table with one column per campaign, so that
// each row below names its measure and says how to read one report.
type table struct {
	b       *strings.Builder
	results []result
}

// head writes the header row, one column per campaign's mode.
func (t table) head() {
	head := "| |"
	rule := "|---|"
	for _, r := range t.results {
		head += " " + r.Mode + " |"
		rule += "---:|"
	}
	t.b.WriteString(head + "\n" + rule + "\n")
}

// row writes one measure, cell giving each campaign's value.
func (t table) row(name string, cell func(r result, rep *checker.Report) string) {
	line := "| " + name + " |"
	for _, r := range t.results {
		line += " " + cell(r, r.Report) + " |"
	}
	t.b.WriteString(line + "\n")
}

// faultRows say what the campaigns did: the faults, the leadership
// changes and the node exits they caused.
func (t table) faultRows() {
	t.row("faults injected", func(r result, _ *checker.Report) string { return fmt.Sprint(r.Injected) })
	for _, k := range allKinds {
		t.row("&nbsp;&nbsp;"+k+" (at the leader)", func(_ result, rep *checker.Report) string {
			fs := rep.Faults[k]
			if fs == nil {
				return "0"
			}
			return fmt.Sprintf("%d (%d)", fs.Injected, fs.AtLeader)
		})
	}
	t.row("leadership changes", func(_ result, rep *checker.Report) string { return fmt.Sprint(max(len(rep.Terms)-1, 0)) })
	t.row("node exits: overrun (75) / SIGKILL / other", func(_ result, rep *checker.Report) string {
		other := 0
		for what, n := range rep.Exits {
			if what != "status 75" && what != "SIGKILL" && what != "status 0" {
				other += n
			}
		}
		return fmt.Sprintf("%d / %d / %d", rep.Exits["status 75"], rep.Exits["SIGKILL"], other)
	})
}

// safetyRows are the violations of single leadership (in bold when any)
// and the writes they were judged on.
func (t table) safetyRows() {
	t.row("**overlapping leadership intervals**", func(_ result, rep *checker.Report) string { return bold(len(rep.Overlaps)) })
	t.row("longest overlap", func(_ result, rep *checker.Report) string {
		if len(rep.Overlaps) == 0 {
			return "–"
		}
		return ms(rep.LongestOverlap())
	})
	t.row("**tokens going backwards**", func(_ result, rep *checker.Report) string { return bold(len(rep.Backwards)) })
	t.row("**stale fenced commits**", func(_ result, rep *checker.Report) string {
		if !rep.WritesChecked {
			return "not checked"
		}
		return bold(rep.StaleFenced())
	})
	t.row("**stale plain commits**", func(_ result, rep *checker.Report) string {
		if !rep.WritesChecked {
			return "not checked"
		}
		if rep.Plain == (checker.Writes{}) && rep.StalePlain() == 0 {
			return "– (all fenced)"
		}
		return bold(rep.StalePlain())
	})
	t.row("fenced writes accepted / rejected / unknown", func(_ result, rep *checker.Report) string {
		return fmt.Sprintf("%d / %d / %d", rep.Fenced.Accepted, rep.Fenced.Rejected, rep.Fenced.Unknown)
	})
	t.row("commits in etcd's record", func(_ result, rep *checker.Report) string { return fmt.Sprint(rep.Commits) })
	t.row("acts refused by the guard (leasehold: past HeldUntil)", func(_ result, rep *checker.Report) string { return fmt.Sprint(rep.Refused) })
}

// livenessRows say how long the cluster went without a leader: between
// terms, and after a fault at the leader, by kind.
func (t table) livenessRows() {
	t.row("interregnum min / median / max", func(_ result, rep *checker.Report) string { return rep.Interregnum().String() })
	t.row("failover after a leader fault: min / median / max", func(_ result, rep *checker.Report) string { return rep.Failover.String() })
	for _, k := range []string{faultKill, faultPause, faultPartition, faultStubborn} {
		t.row("&nbsp;&nbsp;"+k+": failovers, median", func(_ result, rep *checker.Report) string {
			fs := rep.Faults[k]
			if fs == nil || fs.Failovers == 0 {
				return "–"
			}
			return fmt.Sprintf("%d, %s", fs.Failovers, ms(fs.Failover.Median))
		})
	}
	t.row("faults with no leader acting after 4 TTL + 5 s", func(r result, _ *checker.Report) string { return fmt.Sprint(r.NoRecovery) })
}

// coverageRows say how much the checker saw, so that a clean table from
// a short or torn history is not mistaken for a strong result.
func (t table) coverageRows() {
	t.row("acts / terms / events checked", func(_ result, rep *checker.Report) string {
		return fmt.Sprintf("%d / %d / %d", rep.Acts, len(rep.Terms), rep.Events)
	})
	t.row("torn last lines", func(r result, _ *checker.Report) string { return fmt.Sprint(len(r.Torn)) })
	t.row("wall time", func(r result, _ *checker.Report) string { return r.Wall.Round(time.Second).String() })
}

// writeNotes follows the table with each campaign's first violations and
// why it did not finish, which the table's counts cannot show.
func writeNotes(b *strings.Builder, results []result) {
	for _, r := range results {
		if r.Report.Violations() > 0 {
			fmt.Fprintf(b, "\n%s, first violations:\n\n```\n%s```\n", r.Mode, r.Report.Summary(5))
		}
		if r.Err != nil {
			fmt.Fprintf(b, "\n%s campaign did not finish as planned: %v\n", r.Mode, r.Err)
		}
	}
}

// writeSensitivity judges the checker by the naive baseline, if it ran: a
// checker that finds no overlap where one is expected proves nothing.
func writeSensitivity(b *strings.Builder, results []result) {
	i := slices.IndexFunc(results, func(r result) bool { return r.Mode == "naive" })
	if i < 0 {
		return
	}
	r := results[i]
	switch {
	case len(r.Report.Overlaps) > 0:
		fmt.Fprintf(b, "\nSensitivity: the checker found %d overlaps in the naive baseline (%d partitions and pauses of its leader).\n", len(r.Report.Overlaps), hitsAtLeader(r))
	case hitsAtLeader(r) < 3:
		fmt.Fprintf(b, "\nSensitivity: not judged: only %d partitions and pauses hit the naive leader.\n", hitsAtLeader(r))
	default:
		fmt.Fprintf(b, "\nSensitivity: FAILED: no overlap in the naive baseline after %d partitions and pauses of its leader.\n", hitsAtLeader(r))
	}
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
