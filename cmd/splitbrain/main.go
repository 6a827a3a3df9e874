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
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/verify/campaign"
)

// longEnv, set to 1, selects the long campaign (as --long does).
const longEnv = "SPLITBRAIN_LONG"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if role := os.Getenv(campaign.RoleEnv); role != "" {
		if role == "driver" { // the driver itself as a child, for tests
			return runDriver(args)
		}
		return campaign.RunRole(role, args)
	}
	if len(args) > 0 && args[0] == "check" {
		return campaign.Check(args[1:])
	}
	return runDriver(args)
}

func runDriver(args []string) int {
	o, err := parseOptions(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "splitbrain:", err)
		return 2
	}
	return campaign.Drive(o)
}

// parseOptions reads the driver's flags into the campaign's options.
func parseOptions(args []string) (campaign.Options, error) {
	var o campaign.Options
	var long bool
	fs := flag.NewFlagSet("splitbrain", flag.ContinueOnError)
	fs.StringVar(&o.Mode, "mode", "both", "leasehold, naive, or both (run side by side)")
	fs.IntVar(&o.Nodes, "nodes", 3, "node processes")
	fs.IntVar(&o.Members, "members", 3, "etcd members (separate processes)")
	fs.IntVar(&o.Faults, "faults", 0, "faults to inject per campaign (default 12, or 500 with --long)")
	fs.IntVar(&o.NaiveFaults, "naive-faults", 0, "faults for the naive baseline (default: as --faults; 150 with --long)")
	fs.DurationVar(&o.Duration, "duration", 0, "inject faults for this long instead of a number of them")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the fault schedule")
	fs.StringVar(&o.Kinds, "kinds", "all", "fault kinds, comma separated: "+strings.Join(campaign.AllKinds(), ","))
	fs.StringVar(&o.Out, "out", "", "keep histories and logs in this directory (default: a temp dir, removed)")
	fs.DurationVar(&o.TTL, "ttl", 2*time.Second, "the nodes' lease TTL")
	fs.DurationVar(&o.Timeout, "timeout", 0, "hard bound on the whole run (default: from the faults or duration)")
	fs.UintVar(&o.TickMs, "etcd-tick", 100, "etcd heartbeat interval, ms")
	fs.UintVar(&o.ElectionMs, "etcd-election", 1000, "etcd election timeout, ms")
	fs.BoolVar(&o.Fsync, "etcd-fsync", false, "fsync etcd's WAL (off: faults kill processes, not machines)")
	fs.BoolVar(&long, "long", os.Getenv(longEnv) == "1", "the long campaign (also "+longEnv+"=1)")
	fs.BoolVar(&o.Quiet, "q", false, "no progress lines on stderr")
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
	case o.Mode != "leasehold" && o.Mode != "naive" && o.Mode != "both":
		return o, fmt.Errorf("--mode %q: want leasehold, naive or both", o.Mode)
	case o.Nodes < 2:
		return o, fmt.Errorf("--nodes %d: need at least 2", o.Nodes)
	case o.Members < 1:
		return o, fmt.Errorf("--members %d: need at least 1", o.Members)
	case o.TTL < 2*time.Second || o.TTL%time.Second != 0:
		return o, fmt.Errorf("--ttl %s: whole seconds, at least 2s", o.TTL)
	}
	if o.Faults == 0 && o.Duration == 0 {
		o.Faults = 12
		if long {
			o.Faults = 500
		}
	}
	if o.NaiveFaults == 0 {
		o.NaiveFaults = o.Faults
		if long && o.Faults > 150 {
			o.NaiveFaults = 150
		}
	}
	if o.Timeout == 0 {
		o.Timeout = time.Duration(max(o.Faults, o.NaiveFaults))*15*time.Second + 3*time.Minute
		if o.Duration > 0 {
			o.Timeout = o.Duration + 3*time.Minute
		}
	}
	return o, nil
}
