package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Markdown writes the machine, the etcd, the settings and the table.
func (r *Report) Markdown(w io.Writer) {
	c := r.Config
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	title := "leasehold vs a plain etcd election"
	if c.Quick {
		title += " (--quick: tiny sizes, not for publishing)"
	}
	p("### %s\n\n", title)
	p("- Machine: %s\n", r.Machine)
	p("- %s\n", r.Etcd)
	p("- Lease TTL %s on both sides: leasehold renews every %s, stop budget %s, guard 50 ms; the baseline is `concurrency.Session` (`WithTTL(%d)`) + `Election`, acting until `Session.Done()`. A leader acts every %s.\n",
		benchTTL, ms(benchTTL/3)+" ms", ms(benchTTL/3)+" ms", int(benchTTL/time.Second), ms(actEvery)+" ms")
	p("- One etcd round trip (a linearizable read) takes %s ms (p50 of %d).\n", ms(r.RoundTrip.Percentile(50)), len(r.RoundTrip))
	p("- Run: %s, took %s.\n\n", r.Started.Format("2006-01-02 15:04 MST"), r.Took.Round(time.Second))

	p("| Measure | leasehold | naive baseline |\n|---|---|---|\n")
	row := func(measure, lh, naive string) { p("| %s | %s | %s |\n", measure, lh, naive) }

	mmm := func(s Sample) string {
		return fmt.Sprintf("%s / %s / %s ms (%d of %d negative)", signedMs(s.Min()), signedMs(s.Median()), signedMs(s.Max()), s.Negative(), len(s))
	}
	row(fmt.Sprintf("1. Split-brain window under a partition of the leader: successor's first act − old leader's last act (+ gap, − overlap); min / median / max of %d", len(r.Split.Leasehold)),
		mmm(r.Split.Leasehold), mmm(r.Split.Naive))

	pct := func(s Sample) string {
		return fmt.Sprintf("%s / %s / %s ms", ms(s.Percentile(50)), ms(s.Percentile(99)), ms(s.Max()))
	}
	slowPct := func(s Sample) string {
		return fmt.Sprintf("%s (%d over 50 ms)", pct(s), s.Above(50*time.Millisecond))
	}
	row(fmt.Sprintf("2. Graceful handover, successor waiting %s before: stop asked → successor acting; p50 / p99 / max of %d", c.HandoverWait, len(r.HandoverLong.Leasehold)),
		slowPct(r.HandoverLong.Leasehold), slowPct(r.HandoverLong.Naive))
	row(fmt.Sprintf("2. Graceful handover, leader stops 0–100 ms (uniformly at random) after the successor's key exists; p50 / p99 / max of %d", len(r.HandoverShort.Leasehold)),
		slowPct(r.HandoverShort.Leasehold), slowPct(r.HandoverShort.Naive))
	row(fmt.Sprintf("2. Graceful handover, leader stops as soon as the successor's key exists; p50 / p99 / max of %d", len(r.HandoverNow.Leasehold)),
		slowPct(r.HandoverNow.Leasehold), slowPct(r.HandoverNow.Naive))
	row(fmt.Sprintf("2. Leadership moved on purpose: StepDown asked → successor acting (the old leader stays up and rejoins behind); p50 / p99 / max of %d", len(r.StepDown)),
		slowPct(r.StepDown), "no equivalent")
	row(fmt.Sprintf("2. … alongside it, in the same run: graceful stop of the leader (what SIGTERM does) → successor acting; p50 / p99 / max of %d", len(r.StepDownStop)),
		slowPct(r.StepDownStop), "see the rows above")
	row(fmt.Sprintf("2. Physical floor of a handover on this etcd (raw clientv3: revoke, delete event on a synced watch, read); p50 / p99 / max of %d", len(r.Floor)),
		pct(r.Floor), "same floor")

	pm := func(s Sample) string { return fmt.Sprintf("%s / %s ms", ms(s.Percentile(50)), ms(s.Max())) }
	row(fmt.Sprintf("3. Crash failover: leader SIGKILLed → successor acting, TTL %s; p50 / max of %d", benchTTL, len(r.Crash.Leasehold)),
		pm(r.Crash.Leasehold), pm(r.Crash.Naive))

	td := func(t Teardown) string {
		return fmt.Sprintf("%s ms; %s ms if each service takes %s to return; %.2f goroutines, %s per service",
			ms(t.Took), ms(t.SlowTook), c.SlowStop, t.Goroutines, bytesIEC(t.HeapBytes))
	}
	for _, t := range r.Teardown {
		row(fmt.Sprintf("4. Teardown of one lease subtree of %s services: lease lost → all returned; per service, the lease's own cost spread over them (baseline: plain suture supervisor cancelled → Serve returned)%s", thousands(t.Leasehold.Services), c.trialsNote()),
			td(t.Leasehold), td(t.Naive))
	}

	row("5. etcd requests per lease per minute, idle leader"+r.idleNote(),
		fmt.Sprintf("%.0f", r.IdlePerMinute.Leasehold), fmt.Sprintf("%.0f", r.IdlePerMinute.Naive))
	var ns []string
	var lh, nv []string
	for i, n := range c.Candidates {
		ns = append(ns, fmt.Sprint(n))
		lh = append(lh, fmt.Sprint(r.Change[i].Leasehold.Median()))
		nv = append(nv, fmt.Sprint(r.Change[i].Naive.Median()))
	}
	row(fmt.Sprintf("5. etcd requests on one leader change with %s waiting candidates (stop → successor acting + 100 ms, all clients, renewals excluded; median of %d)", strings.Join(ns, " / "), c.Changes),
		strings.Join(lh, " / "), strings.Join(nv, " / "))
	p("\n")
}

func (r *Report) idleNote() string {
	if r.Config.Idle >= time.Minute {
		return ""
	}
	return fmt.Sprintf(" (counted over %s, scaled to a minute)", r.Config.Idle)
}

// Checks are the acceptance conditions, evaluated on the report.
func (r *Report) Checks() []Check {
	var out []Check
	add := func(ok bool, format string, args ...any) {
		out = append(out, Check{OK: ok, What: fmt.Sprintf(format, args...)})
	}
	safety := func(ok bool, format string, args ...any) {
		add(ok, format, args...)
		out[len(out)-1].Safety = true
	}
	safety(r.Split.Leasehold.Negative() == 0, "leasehold's split-brain window is never negative (min %s ms)", signedMs(r.Split.Leasehold.Min()))
	add(r.Split.Naive.Negative() > 0, "the baseline's window is negative under partition in %d of %d trials (min %s ms)",
		r.Split.Naive.Negative(), len(r.Split.Naive), signedMs(r.Split.Naive.Min()))
	// "Within a few etcd round trips": on loopback a round trip is a
	// fraction of a millisecond and client-side work dominates, so the
	// yardstick is the baseline's best case, a handover to a successor whose
	// watch has synced: the same etcd work (the floor) and the same client.
	best, rtt := r.HandoverLong.Naive.Percentile(99), r.RoundTrip.Percentile(50)
	for _, h := range []struct {
		name string
		s    Sample
	}{{"waiting long", r.HandoverLong.Leasehold}, {"stopping within 100 ms", r.HandoverShort.Leasehold}, {"stopping at once", r.HandoverNow.Leasehold}} {
		p99 := h.s.Percentile(99)
		add(p99 <= 2*best, "leasehold's handover p99 (%s) is %s ms (%.0f round trips of %s ms): within twice the baseline's best case, its p99 of %s ms with a synced watch",
			h.name, ms(p99), float64(p99)/float64(rtt), ms(rtt), ms(best))
	}
	if len(r.Teardown) > 0 {
		big := r.Teardown[len(r.Teardown)-1].Leasehold
		add(big.SlowTook < 4*r.Config.SlowStop, "teardown of %s services that each take %s to stop takes %s ms: bounded by the slowest service, not their number",
			thousands(big.Services), r.Config.SlowStop, ms(big.SlowTook))
		floor := r.Teardown[len(r.Teardown)-1].Naive
		add(float64(big.Took) <= 1.5*float64(floor.Took) && big.HeapBytes <= 2048,
			"teardown of %s services takes %s ms, %.1f× plain suture's %s ms in the same run, at %.1f KiB per service (goals: within 1.5×, at most 2 KiB)",
			thousands(big.Services), ms(big.Took), float64(big.Took)/float64(max(floor.Took, 1)), ms(floor.Took), big.HeapBytes/1024)
	}
	if len(r.Change) > 1 {
		first, last := r.Change[0].Leasehold.Median(), r.Change[len(r.Change)-1].Leasehold.Median()
		add(last <= first+2, "leasehold's leader change costs %d requests with %s waiting and %d with %d: it does not grow with candidates",
			first, plural(r.Config.Candidates[0], "candidate"), last, r.Config.Candidates[len(r.Config.Candidates)-1])
	}
	safety(r.Overruns == 0, "no leasehold overruns (%d)", r.Overruns)
	return out
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Check is one acceptance condition and whether the run met it.
type Check struct {
	OK   bool
	What string
	// Safety marks leasehold's promises (as opposed to speed and the
	// baseline's behaviour): a failed safety check is a bug.
	Safety bool
}

// SafetyHolds reports whether every safety check passed.
func (r *Report) SafetyHolds() bool {
	for _, c := range r.Checks() {
		if c.Safety && !c.OK {
			return false
		}
	}
	return true
}

// WriteChecks writes the checks as a markdown task list. A failed safety
// check is marked as such; the others describe this run, and a small run
// may not show what a full one does.
func (r *Report) WriteChecks(w io.Writer) {
	for _, c := range r.Checks() {
		mark, note := "[x]", ""
		if !c.OK {
			mark = "[ ]"
			if c.Safety {
				note = " — SAFETY VIOLATION"
			}
		}
		fmt.Fprintf(w, "- %s %s%s\n", mark, c.What, note)
	}
}

// Details writes the partition trials' timings and per-method request
// counts, for the curious.
func (r *Report) Details(w io.Writer) {
	for _, s := range []struct {
		name string
		ts   []SplitTiming
	}{{"leasehold", r.SplitTimings.Leasehold}, {"baseline", r.SplitTimings.Naive}} {
		var old, succ Sample
		for _, t := range s.ts {
			old, succ = append(old, t.OldLast), append(succ, t.NewFirst)
		}
		fmt.Fprintf(w, "partition, %s: after the partition, the old leader last acted at %s / %s / %s ms and the successor first acted at %s / %s / %s ms (min / median / max)\n",
			s.name, ms(old.Min()), ms(old.Median()), ms(old.Max()), ms(succ.Min()), ms(succ.Median()), ms(succ.Max()))
	}
	fmt.Fprintf(w, "idle requests by method, leasehold: %s\n", strings.Join(r.IdleMethods.Leasehold, " "))
	fmt.Fprintf(w, "idle requests by method, baseline:  %s\n", strings.Join(r.IdleMethods.Naive, " "))
	for i, n := range r.Config.Candidates {
		fmt.Fprintf(w, "leader change requests, %d candidates: leasehold %v, baseline %v\n", n, r.Change[i].Leasehold, r.Change[i].Naive)
		fmt.Fprintf(w, "  first change by client (c0 = old leader, c1 = successor) and method (renewals excluded), leasehold: %s\n", strings.Join(r.ChangeMethods[i].Leasehold, " "))
		fmt.Fprintf(w, "  first change by client and method, baseline:  %s\n", strings.Join(r.ChangeMethods[i].Naive, " "))
	}
}

// trialsNote says which teardown trial the table shows, when there are
// several.
func (c Config) trialsNote() string {
	if c.TeardownTrials <= 1 {
		return ""
	}
	return fmt.Sprintf("; median of %d", c.TeardownTrials)
}
