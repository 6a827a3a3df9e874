package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/leasehold/leasehold/internal/soak"
	"github.com/leasehold/leasehold/services/guard"
)

// runSoak is "bench soak": the scheduler's etcd storage over minutes.
func runSoak(args []string, stdout, stderr io.Writer) int {
	cfg := soak.Config{Guard: guard.Spec{Args: []string{"guard"}}, Progress: stderr}
	fs := flag.NewFlagSet("bench soak", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.DurationVar(&cfg.Duration, "duration", 4*time.Minute, "how long the nodes run")
	fs.IntVar(&cfg.Tasks, "tasks", 20, "tasks, each running true")
	fs.DurationVar(&cfg.Every, "every", 2*time.Second, "each task's period (@every)")
	fs.IntVar(&cfg.Nodes, "nodes", 3, "scheduler nodes, in this process")
	fs.IntVar(&cfg.Keep, "keep", 50, "finished run records kept per task")
	fs.StringVar(&cfg.Compaction, "compaction", "1m", "etcd's periodic auto-compaction retention (the binary uses 10m)")
	fs.DurationVar(&cfg.Sample, "sample", 10*time.Second, "time between samples")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: bench soak [flags]: many fast tasks for minutes; prints etcd's key count and db size")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "bench soak: %v (see -h)\n", err)
		return exitUsage
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "bench soak: unexpected argument %q: flags only\n", fs.Arg(0))
		return exitUsage
	case cfg.Duration <= 0 || cfg.Tasks < 1 || cfg.Nodes < 1 || cfg.Keep < 1 || cfg.Sample <= 0 || cfg.Every < time.Second:
		fmt.Fprintln(stderr, "bench soak: --duration and --sample must be positive, --tasks, --nodes and --keep at least 1, --every at least 1s")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := soak.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bench soak:", err)
		return exitFailed
	}
	res.Markdown(stdout)
	if !res.Flat() {
		return exitFailed
	}
	return exitOK
}
