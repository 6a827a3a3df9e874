package campaign

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/verify/faults"
)

// Child processes (nodes, etcd members) are this test binary re-executed
// with RoleEnv set.
func TestMain(m *testing.M) {
	if role := os.Getenv(RoleEnv); role != "" {
		os.Exit(RunRole(role, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// The seeds TestSensitivity tries, in order: each plans enough pauses and
// partitions of the leader.
var sensitivitySeeds = []uint64{7, 9, 10}

func TestPlanIsReproducible(t *testing.T) {
	a, b := newPlanner(42, allKinds, 2*time.Second), newPlanner(42, allKinds, 2*time.Second)
	for range 100 {
		if fa, fb := a.next(), b.next(); fa != fb {
			t.Fatalf("same seed, different faults: %v and %v", fa, fb)
		}
	}
	if a.next() == newPlanner(43, allKinds, 2*time.Second).next() {
		t.Error("seeds 42 and 43 begin alike")
	}
}

// TestSensitivity is the checker's own test: a short campaign of pauses and
// partitions finds overlaps in the naive baseline and none in leasehold. A
// checker that cannot fail proves nothing. Whether a paused naive leader
// acts again before it notices its lapsed session depends on timing, so
// the test tries up to three seeds for the naive overlap; leasehold must
// show no violation in any of them.
func TestSensitivity(t *testing.T) {
	const n = 5
	var summaries []string
	for _, seed := range sensitivitySeeds {
		p := newPlanner(seed, []string{faultPause, faultPartition}, 2*time.Second)
		pauses := 0
		for range n {
			if f := p.next(); f.Kind == faultPause && f.Leader {
				pauses++
			}
		}
		if pauses < 2 {
			t.Fatalf("seed %d plans %d pauses of the leader in %d faults; pick seeds with at least 2", seed, pauses, n)
		}
		results := sensitivityCampaigns(t, seed, n)
		if lh := results["leasehold"].Report; lh.Violations() != 0 {
			t.Fatalf("seed %d: leasehold violations:\n%s", seed, lh.Summary(10))
		}
		nv := results["naive"].Report
		if len(nv.Overlaps) > 0 {
			return
		}
		summaries = append(summaries, fmt.Sprintf("seed %d, %d pauses of its leader:\n%s", seed, pauses, nv.Summary(10)))
	}
	t.Errorf("the naive baseline showed no overlap with any seed: the checker proves nothing\n%s", strings.Join(summaries, "\n"))
}

// sensitivityCampaigns runs the leasehold and naive campaigns of n pauses
// and partitions side by side with seed, checks what every run must show,
// and returns both results by mode.
func sensitivityCampaigns(t *testing.T, seed uint64, n int) map[string]result {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Socket paths must stay short: not t.TempDir().
	work, err := os.MkdirTemp("", "sbt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	results := map[string]result{}
	done := make(chan result)
	for _, mode := range []string{"leasehold", "naive"} {
		cfg := campaignConfig{
			Mode: mode, Nodes: 3, Members: 1, Faults: n, Seed: seed,
			Kinds: []string{faultPause, faultPartition}, TTL: 2 * time.Second,
			Etcd: faults.EtcdSettings{TickMs: 10, ElectionMs: 100, NoFsync: true},
			Self: self, Marker: "sbt-" + filepath.Base(work),
			Work: filepath.Join(work, mode), HistDir: filepath.Join(work, mode, "history"),
			Log: testLog{t},
		}
		go func() { done <- runCampaign(ctx, cfg) }()
	}
	for range 2 {
		r := <-done
		results[r.Mode] = r
	}
	o := Options{Seed: seed, Nodes: 3, Members: 1, TTL: 2 * time.Second}
	t.Log(renderTable(o, faults.EtcdSettings{TickMs: 10, ElectionMs: 100, NoFsync: true}, []result{results["leasehold"], results["naive"]}))
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("seed %d, %s campaign: %v", seed, r.Mode, r.Err)
		}
		if r.Injected != n {
			t.Errorf("seed %d, %s campaign injected %d faults; want %d", seed, r.Mode, r.Injected, n)
		}
		if !r.Report.WritesChecked || r.Report.Commits == 0 {
			t.Errorf("seed %d, %s campaign: writes not checked (%d commits in etcd's record)", seed, r.Mode, r.Report.Commits)
		}
	}
	if left := faults.Leftovers("sbt-" + filepath.Base(work)); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}
	return results
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
