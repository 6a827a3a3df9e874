package campaign

import (
	"context"
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

// The seed of TestSensitivity, whose plan must hold enough pauses and
// partitions of the leader.
const sensitivitySeed = 7

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

// TestSensitivity is the checker's own test: the same short campaign of
// pauses and partitions finds overlaps in the naive baseline and none in
// leasehold. A checker that cannot fail proves nothing.
func TestSensitivity(t *testing.T) {
	const n = 5
	p := newPlanner(sensitivitySeed, []string{faultPause, faultPartition}, 2*time.Second)
	pauses := 0
	for range n {
		if f := p.next(); f.Kind == faultPause && f.Leader {
			pauses++
		}
	}
	if pauses < 2 {
		t.Fatalf("seed %d plans %d pauses of the leader in %d faults; pick a seed with at least 2", sensitivitySeed, pauses, n)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Socket paths must stay short: not t.TempDir().
	work, err := os.MkdirTemp("", "sbt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	results := map[string]result{}
	done := make(chan result)
	for _, mode := range []string{"leasehold", "naive"} {
		cfg := campaignConfig{
			Mode: mode, Nodes: 3, Members: 1, Faults: n, Seed: sensitivitySeed,
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
	o := Options{Seed: sensitivitySeed, Nodes: 3, Members: 1, TTL: 2 * time.Second}
	t.Log(renderTable(o, faults.EtcdSettings{TickMs: 10, ElectionMs: 100, NoFsync: true}, []result{results["leasehold"], results["naive"]}))
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s campaign: %v", r.Mode, r.Err)
		}
		if r.Injected != n {
			t.Errorf("%s campaign injected %d faults; want %d", r.Mode, r.Injected, n)
		}
		if !r.Report.WritesChecked || r.Report.Commits == 0 {
			t.Errorf("%s campaign: writes not checked (%d commits in etcd's record)", r.Mode, r.Report.Commits)
		}
	}
	if lh := results["leasehold"].Report; lh.Violations() != 0 {
		t.Errorf("leasehold violations:\n%s", lh.Summary(10))
	}
	if nv := results["naive"].Report; len(nv.Overlaps) == 0 {
		t.Errorf("the naive baseline shows no overlap after %d pauses of its leader: the checker proves nothing\n%s", pauses, nv.Summary(10))
	}
	if left := faults.Leftovers("sbt-" + filepath.Base(work)); len(left) > 0 {
		t.Errorf("processes left running: %v", left)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
