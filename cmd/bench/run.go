package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/leasehold/leasehold/internal/bench"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // a measurement could not be made
	exitUsage  = 2
	exitUnsafe = 3 // leasehold broke a safety promise in this run
)

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "soak" {
		return runSoak(args[1:], stdout, stderr)
	}
	cfg, verbose, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitUsage
	}
	if !verbose {
		cfg.Progress = nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitFailed
	}
	report.Markdown(stdout)
	fmt.Fprintln(stdout, "Checks:")
	fmt.Fprintln(stdout)
	report.WriteChecks(stdout)
	if verbose {
		fmt.Fprintln(stderr)
		report.Details(stderr)
	}
	if !report.SafetyHolds() {
		return exitUnsafe
	}
	return exitOK
}

func parseFlags(args []string, stderr io.Writer) (bench.Config, bool, error) {
	def := bench.DefaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		endpoints, sizes, candidates string
		quick, verbose               bool
	)
	cfg := def
	fs.StringVar(&endpoints, "endpoints", "", "etcd endpoints, comma separated; when empty, an embedded etcd with fast settings starts on loopback")
	fs.BoolVar(&quick, "quick", false, "tiny sizes, for CI (size flags given explicitly still apply)")
	fs.BoolVar(&verbose, "v", true, "progress and per-method request counts on stderr")
	fs.IntVar(&cfg.SplitTrials, "trials", def.SplitTrials, "partition trials per side")
	fs.IntVar(&cfg.Handovers, "handovers", def.Handovers, "graceful handovers per phase and side")
	fs.DurationVar(&cfg.HandoverWait, "handover-wait", def.HandoverWait, "how long the successor waits before the leader stops, in the first handover phase")
	fs.IntVar(&cfg.FloorTrials, "floor-trials", def.FloorTrials, "raw revoke-watch-read measurements")
	fs.IntVar(&cfg.CrashTrials, "crash-trials", def.CrashTrials, "SIGKILL trials per side")
	fs.StringVar(&sizes, "sizes", ints(def.TeardownSizes), "services per teardown run, comma separated")
	fs.IntVar(&cfg.TeardownTrials, "teardown-trials", def.TeardownTrials, "teardowns per size and side; the table shows the median")
	fs.DurationVar(&cfg.SlowStop, "slow-stop", def.SlowStop, "time each service takes to return in the slow teardown variant")
	fs.DurationVar(&cfg.Idle, "idle", def.Idle, "how long the idle etcd cost is counted")
	fs.StringVar(&candidates, "candidates", ints(def.Candidates), "waiting candidates per leader-change cost run, comma separated")
	fs.IntVar(&cfg.Changes, "changes", def.Changes, "leader changes counted per candidate count")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: bench [flags]")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return cfg, false, err
		}
		return cfg, false, fmt.Errorf("%v (see -h)", err)
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("unexpected argument %q: flags only (see -h)", fs.Arg(0))
	}
	var err error
	if cfg.TeardownSizes, err = parseInts("--sizes", sizes); err != nil {
		return cfg, false, err
	}
	if cfg.Candidates, err = parseInts("--candidates", candidates); err != nil {
		return cfg, false, err
	}
	if quick {
		// Tiny sizes, except for the sizes given explicitly.
		explicit := cfg
		cfg = bench.QuickConfig()
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "trials":
				cfg.SplitTrials = explicit.SplitTrials
			case "handovers":
				cfg.Handovers = explicit.Handovers
			case "handover-wait":
				cfg.HandoverWait = explicit.HandoverWait
			case "floor-trials":
				cfg.FloorTrials = explicit.FloorTrials
			case "crash-trials":
				cfg.CrashTrials = explicit.CrashTrials
			case "sizes":
				cfg.TeardownSizes = explicit.TeardownSizes
			case "teardown-trials":
				cfg.TeardownTrials = explicit.TeardownTrials
			case "slow-stop":
				cfg.SlowStop = explicit.SlowStop
			case "idle":
				cfg.Idle = explicit.Idle
			case "candidates":
				cfg.Candidates = explicit.Candidates
			case "changes":
				cfg.Changes = explicit.Changes
			}
		})
	}
	if endpoints != "" {
		cfg.Endpoints = strings.Split(endpoints, ",")
	}
	cfg.Progress = stderr
	if err := cfg.Validate(); err != nil {
		return cfg, false, err
	}
	return cfg, verbose, nil
}

func ints(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func parseInts(flagName, s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s %q: use positive integers separated by commas", flagName, s)
		}
		out = append(out, n)
	}
	return out, nil
}
