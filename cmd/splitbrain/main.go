// Command splitbrain checks the claim "no two leaders act at once" the way
// Jepsen checks such claims: it runs real node processes against a real
// etcd cluster (separate processes), injects faults chosen by a seed,
// records what every process did (package history) and checks the
// histories (package checker).
//
//	splitbrain [flags]            run a campaign and print its table
//	splitbrain check DIR...       check histories kept with --out
//
// It runs the same campaign against leasehold nodes and against naive nodes
// built the usual way (concurrency.Session + Election, acting until
// Session.Done()). leasehold must show no violation; the naive baseline
// must show overlaps under partitions and pauses, or the checker proves
// nothing.
//
// Exit status: 0 all well; 1 leasehold violations; 3 the naive baseline
// found no overlap although partitions and pauses hit its leader at least
// three times; 4 the campaign could not run or finish within its time
// bound; 2 bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leasehold/leasehold/checker"
	"github.com/leasehold/leasehold/history"
	"github.com/leasehold/leasehold/internal/faults"
)

// roleEnv names the role of a child process: "node" or "etcd".
const roleEnv = "SPLITBRAIN_ROLE"

// longEnv, set to 1, selects the long campaign (as --long does).
const longEnv = "SPLITBRAIN_LONG"

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(runCheck(os.Args[2:]))
	}
	os.Exit(runDriver(os.Args[1:]))
}

// runRole runs a child process's role.
func runRole(role string, args []string) int {
	switch role {
	case "node":
		return runNode(args)
	case "driver": // the driver itself as a child, for tests
		return runDriver(args)
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

// runCheck checks kept histories, one campaign per directory.
func runCheck(dirs []string) int {
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

// options are the driver's flags.
type options struct {
	mode        string
	nodes       int
	members     int
	faults      int
	naiveFaults int
	duration    time.Duration
	seed        uint64
	kinds       string
	out         string
	ttl         time.Duration
	timeout     time.Duration
	tick        uint
	election    uint
	fsync       bool
	long        bool
	quiet       bool
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("splitbrain", flag.ContinueOnError)
	fs.StringVar(&o.mode, "mode", "both", "leasehold, naive, or both (run side by side)")
	fs.IntVar(&o.nodes, "nodes", 3, "node processes")
	fs.IntVar(&o.members, "members", 3, "etcd members (separate processes)")
	fs.IntVar(&o.faults, "faults", 0, "faults to inject per campaign (default 12, or 500 with --long)")
	fs.IntVar(&o.naiveFaults, "naive-faults", 0, "faults for the naive baseline (default: as --faults; 150 with --long)")
	fs.DurationVar(&o.duration, "duration", 0, "inject faults for this long instead of a number of them")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the fault schedule")
	fs.StringVar(&o.kinds, "kinds", "all", "fault kinds, comma separated: "+strings.Join(allKinds, ","))
	fs.StringVar(&o.out, "out", "", "keep histories and logs in this directory (default: a temp dir, removed)")
	fs.DurationVar(&o.ttl, "ttl", 2*time.Second, "the nodes' lease TTL")
	fs.DurationVar(&o.timeout, "timeout", 0, "hard bound on the whole run (default: from the faults or duration)")
	fs.UintVar(&o.tick, "etcd-tick", 100, "etcd heartbeat interval, ms")
	fs.UintVar(&o.election, "etcd-election", 1000, "etcd election timeout, ms")
	fs.BoolVar(&o.fsync, "etcd-fsync", false, "fsync etcd's WAL (off: faults kill processes, not machines)")
	fs.BoolVar(&o.long, "long", os.Getenv(longEnv) == "1", "the long campaign (also "+longEnv+"=1)")
	fs.BoolVar(&o.quiet, "q", false, "no progress lines on stderr")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: splitbrain [flags]   |   splitbrain check DIR...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.mode != "leasehold" && o.mode != "naive" && o.mode != "both":
		return o, fmt.Errorf("--mode %q: want leasehold, naive or both", o.mode)
	case o.nodes < 2:
		return o, fmt.Errorf("--nodes %d: need at least 2", o.nodes)
	case o.members < 1:
		return o, fmt.Errorf("--members %d: need at least 1", o.members)
	case o.ttl < 2*time.Second || o.ttl%time.Second != 0:
		return o, fmt.Errorf("--ttl %s: whole seconds, at least 2s", o.ttl)
	}
	if o.faults == 0 && o.duration == 0 {
		o.faults = 12
		if o.long {
			o.faults = 500
		}
	}
	if o.naiveFaults == 0 {
		o.naiveFaults = o.faults
		if o.long && o.faults > 150 {
			o.naiveFaults = 150
		}
	}
	if o.timeout == 0 {
		o.timeout = time.Duration(max(o.faults, o.naiveFaults))*15*time.Second + 3*time.Minute
		if o.duration > 0 {
			o.timeout = o.duration + 3*time.Minute
		}
	}
	return o, nil
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

func runDriver(args []string) (status int) {
	o, err := parseOptions(args)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "splitbrain:", err)
		return 2
	}
	kinds, err := parseKinds(o.kinds)
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
	ctx, cancel := context.WithTimeoutCause(base, o.timeout, fmt.Errorf("the time bound (--timeout %s) was reached", o.timeout))
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
		case <-time.After(o.timeout + 2*time.Minute):
			fmt.Fprintln(os.Stderr, "splitbrain: teardown did not finish: killing everything")
		}
		cleanUp()
		os.Exit(4)
	})

	modes := []string{o.mode}
	if o.mode == "both" {
		modes = []string{"leasehold", "naive"}
	}
	etcd := faults.EtcdSettings{TickMs: o.tick, ElectionMs: o.election, NoFsync: !o.fsync}
	results := make([]result, len(modes))
	var wg sync.WaitGroup
	for i, mode := range modes {
		histDir := filepath.Join(work, mode, "history")
		if o.out != "" {
			histDir = filepath.Join(o.out, mode)
			if err := os.RemoveAll(histDir); err != nil {
				fmt.Fprintln(os.Stderr, "splitbrain:", err)
				return 4
			}
		}
		cfg := campaignConfig{
			Mode: mode, Nodes: o.nodes, Members: o.members, Faults: o.faults, Duration: o.duration,
			Seed: o.seed, Kinds: kinds, TTL: o.ttl, Etcd: etcd, Self: self,
			Marker: filepath.Base(work), Work: filepath.Join(work, mode), HistDir: histDir,
		}
		if mode == "naive" {
			cfg.Faults = o.naiveFaults
		}
		if !o.quiet {
			cfg.Log = os.Stderr
		}
		wg.Add(1)
		safeGo(func() { defer wg.Done(); results[i] = runCampaign(ctx, cfg) })
	}
	wg.Wait()
	if o.out != "" {
		for _, mode := range modes {
			_ = os.Rename(filepath.Join(work, mode, "logs"), filepath.Join(o.out, mode, "logs"))
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
