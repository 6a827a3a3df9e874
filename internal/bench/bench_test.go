package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The crash and teardown measurements re-execute this test binary.
	if code, ok := Child(); ok {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// The quick run measures everything against an embedded etcd, and
// leasehold keeps its safety promise in it.
func TestQuickRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real trials for about half a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	cfg := QuickConfig()
	cfg.Progress = &progress
	start := time.Now()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("quick run took %s", time.Since(start))

	if len(r.Split.Leasehold) != cfg.SplitTrials || len(r.Split.Naive) != cfg.SplitTrials {
		t.Errorf("split-brain trials: %d and %d; want %d each", len(r.Split.Leasehold), len(r.Split.Naive), cfg.SplitTrials)
	}
	if n := r.Split.Leasehold.Negative(); n != 0 {
		t.Errorf("leasehold's split-brain window was negative in %d trials: %v", n, r.Split.Leasehold)
	}
	if r.Overruns != 0 {
		t.Errorf("%d overruns", r.Overruns)
	}
	for name, s := range map[string]Sample{
		"handover long, leasehold": r.HandoverLong.Leasehold, "handover long, naive": r.HandoverLong.Naive,
		"handover short, leasehold": r.HandoverShort.Leasehold, "handover short, naive": r.HandoverShort.Naive,
		"handover at once, leasehold": r.HandoverNow.Leasehold, "handover at once, naive": r.HandoverNow.Naive,
	} {
		if len(s) != cfg.Handovers || s.Min() <= 0 {
			t.Errorf("%s: %v; want %d positive durations", name, s, cfg.Handovers)
		}
	}
	for name, s := range map[string]Sample{"step-down": r.StepDown, "graceful stop beside it": r.StepDownStop} {
		if len(s) != min(cfg.Handovers, 50) || s.Min() <= 0 {
			t.Errorf("%s: %v; want %d positive durations", name, s, min(cfg.Handovers, 50))
		}
	}
	if len(r.Floor) != cfg.FloorTrials || r.Floor.Min() <= 0 {
		t.Errorf("floor: %v", r.Floor)
	}
	// A crash hands over after about the TTL, never before the lease could
	// have expired on the server: the TTL after the last renewal, which
	// came at most a renewal interval (the baseline's is up to 1 s) before
	// the kill.
	for _, d := range append(append(Sample(nil), r.Crash.Leasehold...), r.Crash.Naive...) {
		if d < benchTTL/2-50*time.Millisecond || d > 2*benchTTL {
			t.Errorf("crash failover %s; want about the TTL %s", d, benchTTL)
		}
	}
	if len(r.Teardown) != len(cfg.TeardownSizes) {
		t.Fatalf("teardowns: %d; want %d", len(r.Teardown), len(cfg.TeardownSizes))
	}
	for _, p := range r.Teardown {
		for _, td := range []Teardown{p.Leasehold, p.Naive} {
			if td.Took <= 0 || td.SlowTook < cfg.SlowStop || td.Goroutines < 0.9 {
				t.Errorf("teardown %+v: want a positive time, a slow time of at least %s and a goroutine per service", td, cfg.SlowStop)
			}
		}
	}
	if r.IdlePerMinute.Leasehold <= 0 || r.IdlePerMinute.Naive <= 0 {
		t.Errorf("idle cost %+v; want renewals on both sides", r.IdlePerMinute)
	}
	for i, p := range r.Change {
		if p.Leasehold.Median() <= 0 || p.Naive.Median() <= 0 {
			t.Errorf("leader change with %d candidates: %+v; want requests on both sides", cfg.Candidates[i], p)
		}
	}

	var out bytes.Buffer
	r.Markdown(&out)
	table := out.String()
	for _, want := range []string{"| Measure | leasehold | naive baseline |", "Machine:", "etcd 3.", "Split-brain", "handover", "StepDown asked", "graceful stop of the leader", "Crash failover", "Teardown", "requests"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
	if rows := strings.Count(table, "\n| ") - 1; rows != 10+len(cfg.TeardownSizes) { // minus the header
		t.Errorf("the table has %d rows; want %d:\n%s", rows, 10+len(cfg.TeardownSizes), table)
	}
	r.WriteChecks(&out)
	r.Details(&out)
	t.Logf("\n%s", out.String())
}
