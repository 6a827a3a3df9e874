package campaign

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leasehold/leasehold/internal/verify/checker"
	"github.com/leasehold/leasehold/internal/verify/faults"
	"github.com/leasehold/leasehold/internal/verify/history"
)

// RoleEnv names the role of a child process: "node" or "etcd".
const RoleEnv = "SPLITBRAIN_ROLE"

// roleEnv is RoleEnv, for the campaign's own use.
const roleEnv = RoleEnv

// Options say what to run: the command's flags, resolved.
type Options struct {
	Mode        string        // leasehold, naive or both
	Nodes       int           // node processes
	Members     int           // etcd members, each a process
	Faults      int           // faults per campaign
	NaiveFaults int           // faults for the naive baseline
	Duration    time.Duration // inject faults for this long instead of a number of them
	Seed        uint64        // seed of the fault schedule
	Kinds       string        // fault kinds, comma separated, or "all"
	Out         string        // keep histories and logs here; empty: a temp dir, removed
	TTL         time.Duration // the nodes' lease TTL
	Timeout     time.Duration // hard bound on the whole run
	TickMs      uint          // etcd heartbeat interval
	ElectionMs  uint          // etcd election timeout
	Fsync       bool          // fsync etcd's WAL
	Quiet       bool          // no progress lines on stderr
}

// AllKinds lists the fault kinds a campaign can inject.
func AllKinds() []string { return append([]string(nil), allKinds...) }

// RunRole runs a child process's role, named by RoleEnv: "node" or "etcd".
// A program that runs campaigns calls it first thing when RoleEnv is set.
func RunRole(role string, args []string) int {
	switch role {
	case "node":
		return runNode(args)
	case "etcd":
		m, err := faults.ParseMember(args)
		if err == nil {
			err = faults.RunMember(m)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "splitbrain: unknown role %q\n", role)
	return 2
}

// Check checks kept histories, one campaign per directory, printing a
// summary of each; it returns 1 if any has a violation, 2 on bad input.
func Check(dirs []string) int {
	if len(dirs) == 0 {
		fmt.Fprintln(os.Stderr, "usage: splitbrain check DIR... (each DIR holds one campaign's *.jsonl)")
		return 2
	}
	status := 0
	for _, dir := range dirs {
		events, torn, err := history.ReadDir(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		r := checker.Check(events)
		fmt.Printf("%s:\n%s", dir, r.Summary(20))
		if len(torn) > 0 {
			fmt.Printf("torn last lines (dropped): %s\n", strings.Join(torn, ", "))
		}
		if r.Violations() > 0 {
			status = 1
		}
	}
	return status
}

// cleanup is what must go whatever happens: child process groups and
// scratch directories.
var cleanup struct {
	sync.Mutex
	groups []*faults.Group
	dirs   []string
	done   bool
}

func registerGroup(g *faults.Group) {
	cleanup.Lock()
	defer cleanup.Unlock()
	cleanup.groups = append(cleanup.groups, g)
}

func registerDir(dir string) {
	cleanup.Lock()
	defer cleanup.Unlock()
	cleanup.dirs = append(cleanup.dirs, dir)
}

// cleanUp kills every child process group and removes every scratch
// directory. It is idempotent.
func cleanUp() {
	cleanup.Lock()
	defer cleanup.Unlock()
	if cleanup.done {
		return
	}
	cleanup.done = true
	var wg sync.WaitGroup
	for _, g := range cleanup.groups {
		wg.Go(g.Close)
	}
	wg.Wait()
	for _, d := range cleanup.dirs {
		_ = os.RemoveAll(d)
	}
}

// safeGo runs f on a goroutine; a panic there cleans up before it crashes
// the process.
func safeGo(f func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				cleanUp()
				panic(fmt.Sprintf("%v\n%s", r, debug.Stack()))
			}
		}()
		f()
	}()
}

// Drive runs the campaigns o asks for (leasehold, the naive baseline, or
// both side by side), prints their table and returns the exit status: 0
// all well; 1 leasehold violations; 3 the naive baseline found no overlap
// although partitions and pauses hit its leader at least three times; 4 the
// campaign could not run or finish within its time bound. The child
// processes are this very executable, re-run with RoleEnv set.
func Drive(o Options) (status int) {
	kinds, err := parseKinds(o.Kinds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "splitbrain:", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "splitbrain:", err)
		return 4
	}
	defer func() {
		if r := recover(); r != nil {
			cleanUp()
			panic(r)
		}
		cleanUp()
	}()
	work, err := os.MkdirTemp("", "splitbrain-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "splitbrain:", err)
		return 4
	}
	registerDir(work)

	base, interrupt := context.WithCancelCause(context.Background())
	defer interrupt(nil)
	ctx, cancel := context.WithTimeoutCause(base, o.Timeout, fmt.Errorf("the time bound (--timeout %s) was reached", o.Timeout))
	defer cancel()
	// The first signal ends the campaign (which heals, stops and cleans
	// up); a second one, or the time bound plus a grace, kills everything.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	safeGo(func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "splitbrain: %s: stopping the campaign\n", s)
			interrupt(fmt.Errorf("interrupted by %s", s))
		case <-ctx.Done():
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "splitbrain: %s again: killing everything\n", s)
		case <-time.After(o.Timeout + 2*time.Minute):
			fmt.Fprintln(os.Stderr, "splitbrain: teardown did not finish: killing everything")
		}
		cleanUp()
		os.Exit(4)
	})

	modes := []string{o.Mode}
	if o.Mode == "both" {
		modes = []string{"leasehold", "naive"}
	}
	etcd := faults.EtcdSettings{TickMs: o.TickMs, ElectionMs: o.ElectionMs, NoFsync: !o.Fsync}
	results := make([]result, len(modes))
	var wg sync.WaitGroup
	for i, mode := range modes {
		histDir := filepath.Join(work, mode, "history")
		if o.Out != "" {
			histDir = filepath.Join(o.Out, mode)
			if err := os.RemoveAll(histDir); err != nil {
				fmt.Fprintln(os.Stderr, "splitbrain:", err)
				return 4
			}
		}
		cfg := campaignConfig{
			Mode: mode, Nodes: o.Nodes, Members: o.Members, Faults: o.Faults, Duration: o.Duration,
			Seed: o.Seed, Kinds: kinds, TTL: o.TTL, Etcd: etcd, Self: self,
			Marker: filepath.Base(work), Work: filepath.Join(work, mode), HistDir: histDir,
		}
		if mode == "naive" {
			cfg.Faults = o.NaiveFaults
		}
		if !o.Quiet {
			cfg.Log = os.Stderr
		}
		wg.Add(1)
		safeGo(func() { defer wg.Done(); results[i] = runCampaign(ctx, cfg) })
	}
	wg.Wait()
	if o.Out != "" {
		for _, mode := range modes {
			_ = os.Rename(filepath.Join(work, mode, "logs"), filepath.Join(o.Out, mode, "logs"))
		}
	}
	fmt.Print(renderTable(o, etcd, results))
	return verdict(results)
}

// verdict is the exit status for results.
func verdict(results []result) int {
	status := 0
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(os.Stderr, "splitbrain: %s campaign: %v\n", r.Mode, r.Err)
			status = 4
		}
	}
	for _, r := range results {
		switch {
		case r.Mode == "leasehold" && r.Report.Violations() > 0:
			fmt.Fprintf(os.Stderr, "splitbrain: LEASEHOLD VIOLATIONS:\n%s", r.Report.Summary(20))
			return 1
		case r.Mode == "naive" && !sensitive(r):
			fmt.Fprintf(os.Stderr, "splitbrain: the naive baseline found no overlap in %d partitions and pauses of its leader: the checker proves nothing\n", hitsAtLeader(r))
			if status == 0 {
				status = 3
			}
		}
	}
	return status
}

// hitsAtLeader counts partitions and pauses aimed at the naive leader.
func hitsAtLeader(r result) int {
	n := 0
	for _, k := range []string{faultPause, faultPartition} {
		if fs := r.Report.Faults[k]; fs != nil {
			n += fs.AtLeader
		}
	}
	return n
}

// sensitive: the naive baseline found an overlap, or was not given at
// least three partitions or pauses of its leader to find one in.
func sensitive(r result) bool {
	return len(r.Report.Overlaps) > 0 || hitsAtLeader(r) < 3
}
