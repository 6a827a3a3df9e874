package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leasehold/leasehold/services/scheduler"
)

// readCmd holds the flags "scheduler status" and "scheduler runs" share:
// they read etcd directly, so they work with the debug endpoint off.
type readCmd struct {
	name    string
	fs      *flag.FlagSet
	o       options
	output  string
	timeout time.Duration
}

func newReadCmd(name string) *readCmd {
	c := &readCmd{name: name, fs: flag.NewFlagSet("scheduler "+name, flag.ContinueOnError)}
	fs := c.fs
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.o.endpoints, "endpoints", "http://127.0.0.1:2379", "etcd endpoints, comma separated")
	fs.StringVar(&c.o.prefix, "prefix", "/leasehold", "etcd key prefix of the scheduler's keys")
	fs.StringVar(&c.o.cacert, "cacert", "", "verify etcd's certificate with this CA bundle")
	fs.StringVar(&c.o.cert, "cert", "", "client certificate for etcd TLS")
	fs.StringVar(&c.o.key, "key", "", "client key for etcd TLS")
	fs.StringVar(&c.o.user, "user", "", "etcd user, as name or name:password")
	fs.StringVar(&c.o.password, "password", "", "etcd password, when --user has none")
	fs.StringVar(&c.output, "o", "text", "output format: text or json")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "give up after this long")
	return c
}

// parse parses args; it returns false with the exit code when the command
// should not go on.
func (c *readCmd) parse(args []string, usage string, stderr io.Writer) (int, bool) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, usage)
			c.fs.SetOutput(stderr)
			c.fs.PrintDefaults()
			return exitOK, false
		}
		fmt.Fprintf(stderr, "scheduler %s: %v (see scheduler %s -h)\n", c.name, durationHint(err), c.name)
		return exitUsage, false
	}
	var err error
	switch {
	case c.fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q: flags only", c.fs.Arg(0))
	case c.output != "text" && c.output != "json":
		err = fmt.Errorf("-o %q: use text or json", c.output)
	case (c.o.cert == "") != (c.o.key == ""):
		err = errors.New("--cert and --key go together: give both or neither")
	default:
		err = checkEndpoints(c.o.endpoints)
	}
	if err != nil {
		fmt.Fprintf(stderr, "scheduler %s: %v\n", c.name, err)
		return exitUsage, false
	}
	return exitOK, true
}

// client connects to etcd.
func (c *readCmd) client(stderr io.Writer) (*clientv3.Client, bool) {
	cfg, err := clientConfig(&c.o, strings.Split(c.o.endpoints, ","))
	if err != nil {
		fmt.Fprintf(stderr, "scheduler %s: %v\n", c.name, err)
		return nil, false
	}
	cfg.DialTimeout = c.timeout
	cl, err := clientv3.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "scheduler %s: cannot reach etcd at %s: %v\n", c.name, c.o.endpoints, err)
		return nil, false
	}
	return cl, true
}

// read connects to etcd and runs f within the command's timeout; it
// reports false, having said why on stderr, when either fails.
func (c *readCmd) read(stderr io.Writer, f func(context.Context, *clientv3.Client) error) bool {
	cl, ok := c.client(stderr)
	if !ok {
		return false
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := f(ctx, cl); err != nil {
		fmt.Fprintf(stderr, "scheduler %s: cannot read etcd at %s: %v\n", c.name, c.o.endpoints, err)
		return false
	}
	return true
}

func (c *readCmd) write(stdout, stderr io.Writer, v any, text func() error) int {
	var err error
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(v)
	} else {
		err = text()
	}
	if err != nil {
		fmt.Fprintf(stderr, "scheduler %s: %v\n", c.name, err)
		return exitFailure
	}
	return exitOK
}

// runStatus is "scheduler status": nodes, leader, and every task's last
// run, next slot and runner.
func runStatus(args []string, stdout, stderr io.Writer) int {
	c := newReadCmd("status")
	if code, ok := c.parse(args, "usage: scheduler status [flags]: nodes, leader and tasks, read from etcd", stderr); !ok {
		return code
	}
	now := time.Now()
	var st *scheduler.Status
	if !c.read(stderr, func(ctx context.Context, cl *clientv3.Client) (err error) {
		st, err = scheduler.ReadStatus(ctx, cl, scheduler.NewLayout(c.o.prefix), now)
		return err
	}) {
		return exitFailure
	}
	return c.write(stdout, stderr, st, func() error { return st.WriteText(stdout, now) })
}

// runRuns is "scheduler runs": run records, newest first.
func runRuns(args []string, stdout, stderr io.Writer) int {
	c := newReadCmd("runs")
	var q scheduler.RunsQuery
	c.fs.StringVar(&q.Task, "task", "", "only this task's runs")
	c.fs.BoolVar(&q.Failed, "failed", false, "only failed, lost and missed runs")
	c.fs.IntVar(&q.Limit, "n", 20, "show the newest n runs; 0 for all")
	if code, ok := c.parse(args, "usage: scheduler runs [--task T] [--failed] [-n N] [flags]: run records, newest first, read from etcd", stderr); !ok {
		return code
	}
	if q.Limit < 0 {
		fmt.Fprintf(stderr, "scheduler runs: -n %d: use 0 for all, or a positive count\n", q.Limit)
		return exitUsage
	}
	var runs []scheduler.Run
	if !c.read(stderr, func(ctx context.Context, cl *clientv3.Client) (err error) {
		runs, err = scheduler.ReadRuns(ctx, cl, scheduler.NewLayout(c.o.prefix), q)
		return err
	}) {
		return exitFailure
	}
	if runs == nil {
		runs = []scheduler.Run{}
	}
	return c.write(stdout, stderr, runs, func() error { return scheduler.WriteRunsText(stdout, runs) })
}
